"""A run directory: creating and locking it, its statistics, sample grids, and stopping a run.

    runs/00003-patn_small-synthetic/
        .train.lock          held (flock) by the process training the run, for its lifetime
        config.yaml          the resolved config
        config-history.jsonl fields changed on resume, with the step they apply after
        stats.jsonl          one JSON line of averaged losses per log interval
        events.out.tfevents  the same in TensorBoard
        samples/             sample grids of test pairs
        checkpoints/         step-NNNNNNN/ directories (see `posetransfer.checkpoint`), `latest`

Resuming (`open_run`) first checks that ``train.resume`` names such a directory, or one of its
checkpoints, and only then locks it, clears what an interrupted run left there, chooses the
checkpoint and checks the config against it: all before anything is built. Under torchrun only
rank 0 creates, locks and writes the run directory; the others learn its path (and the
checkpoint to resume from) by broadcast.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from posetransfer.checkpoint import (
    MANIFEST_FILE,
    read_checkpoint_config,
    read_train_state,
    remove_orphans,
    resolve_checkpoint,
    verify_checkpoint,
)
from posetransfer.checkpoint.format import CHECKPOINTS_DIR, is_checkpoint_dir
from posetransfer.config import Config
from posetransfer.core.files import (
    LockHeld,
    atomic_write,
    disk_error,
    exclusive_lock,
    remove_partial,
)
from posetransfer.data.datasets import tensor_to_image
from posetransfer.errors import InputError
from posetransfer.models.blocks import eval_mode
from posetransfer.pose.draw import sample_grid, save_png
from posetransfer.train.build import Training
from posetransfer.train.resume import check_position, resume_changes

LOCK_FILE = ".train.lock"
CONFIG_FILE = "config.yaml"
STATS_FILE = "stats.jsonl"
HISTORY_FILE = "config-history.jsonl"
SAMPLES_DIR = "samples"
N_SAMPLES = 8  # test pairs shown in each sample grid


class RunLock:
    """An exclusive lock on a run directory (`files.exclusive_lock` on its ``.train.lock``).

    Held until `release`; the operating system drops it when the process ends, however it ends
    (even killed with SIGKILL), so a stale lock never blocks a later resume.
    """

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_FILE
        self._hold = contextlib.ExitStack()
        try:
            self._hold.enter_context(exclusive_lock(self.path, wait=False))
        except LockHeld as e:
            who = f"process {e.holder}" if e.holder.isdigit() else "another process"
            raise InputError(
                f"{run_dir}: {who} is already training this run (it holds {LOCK_FILE}); "
                "wait for it to end or stop it before resuming"
            ) from None

    def release(self) -> None:
        """Give the lock up."""
        self._hold.close()


@dataclass
class Run:
    """The run directory being trained and, when resuming, where from and what changed."""

    dir: Path
    checkpoint: Path | None = None
    """The checkpoint resumed from; None for a new run."""
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Config fields that differ from the checkpoint's: name -> (saved, new)."""
    step: int = 0
    """The checkpoint's step (0 for a new run)."""
    state: dict[str, Any] | None = field(default=None, repr=False)
    """The checkpoint's training state, as rank 0 read it to check it (restoring takes it)."""
    lock: RunLock | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()


def new_run_dir(cfg: Config) -> Path:
    """Create the next numbered run directory, ``<runs_dir>/NNNNN-<name>``."""
    runs = Path(cfg.train.runs_dir)
    name = cfg.train.run_name or f"{cfg.model.generator}-{cfg.data.dataset}"
    try:
        runs.mkdir(parents=True, exist_ok=True)
        while True:
            numbers = [
                int(m.group(1)) for p in runs.iterdir() if (m := re.match(r"(\d{5})-", p.name))
            ]
            run_dir = runs / f"{max(numbers, default=-1) + 1:05d}-{name}"
            try:
                run_dir.mkdir()
                return run_dir
            except FileExistsError:  # another process took that number just now
                continue
    except OSError as e:
        raise disk_error(runs, e) from None


def locate_run(path: str | Path) -> tuple[Path, Path | None]:
    """The run a ``train.resume`` path names, and the checkpoint when it names one; no writes.

    Accepted: a run directory (holding config.yaml and checkpoints/), its checkpoints/ folder,
    or one of its checkpoints, ``RUN/checkpoints/step-N``. Anything else is refused before the
    folder is locked or cleaned, so that no folder outside a run is ever touched.

    Raises:
        InputError: naming the path (``arg="train.resume"``).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"train.resume={p}: not found", arg="train.resume")
    ckpt = None
    if is_checkpoint_dir(p):
        ckpt, run_dir = p, p.parent.parent
        inside = p.parent.name == CHECKPOINTS_DIR and bool(re.fullmatch(r"step-\d+", p.name))
    else:
        its_checkpoints = p.name == CHECKPOINTS_DIR and not (p / CHECKPOINTS_DIR).is_dir()
        run_dir = p.parent if its_checkpoints else p
        inside = True
    if not (inside and (run_dir / CONFIG_FILE).is_file() and (run_dir / CHECKPOINTS_DIR).is_dir()):
        raise InputError(
            f"train.resume={p}: not a run directory (one holding {CONFIG_FILE} and "
            f"{CHECKPOINTS_DIR}/) nor a checkpoint of one (RUN/{CHECKPOINTS_DIR}/step-N)",
            arg="train.resume",
        )
    return run_dir, ckpt


def _choose_checkpoint(cfg: Config, run_dir: Path, named: Path | None, base: Path | None) -> Path:
    """The checkpoint to resume: the config's own, the one named, or the newest intact one."""
    if base is None:
        if named is None:
            return resolve_checkpoint(run_dir, names=None)
        verify_checkpoint(named, names=None)
        return named
    base = Path(base)
    if base.parent.resolve() != (run_dir / CHECKPOINTS_DIR).resolve() or (
        named is not None and named.resolve() != base.resolve()
    ):
        raise InputError(
            f"train.resume={cfg.train.resume}: the config was read from {base}, a checkpoint "
            "that path does not name",
            arg="train.resume",
        )
    if not base.is_dir():
        raise InputError(
            f"{base}: gone since its config was read (did another process train {run_dir} in "
            "the meantime?); resume again"
        )
    verify_checkpoint(base, names=None)
    return base


def _open_on_rank0(cfg: Config, world: int, base: Path | None) -> Run:
    if not cfg.train.resume:
        run_dir = new_run_dir(cfg)
        return Run(run_dir, lock=RunLock(run_dir))
    run_dir, named = locate_run(cfg.train.resume)
    lock = RunLock(run_dir)
    try:
        for note in remove_orphans(run_dir / CHECKPOINTS_DIR):
            tqdm.write(f"{run_dir / CHECKPOINTS_DIR}: {note} (left by an interrupted run)")
        remove_partial(run_dir)
        remove_partial(run_dir / SAMPLES_DIR)
        ckpt = _choose_checkpoint(cfg, run_dir, named, base)
        if not (ckpt / MANIFEST_FILE).is_file():
            tqdm.write(f"note: {ckpt} has no {MANIFEST_FILE} (an older checkpoint): not verified")
        changes = resume_changes(read_checkpoint_config(ckpt)[1], cfg, ckpt)
        state = read_train_state(ckpt)
        check_position(state, ckpt, cfg, world)
    except BaseException:
        lock.release()
        raise
    return Run(run_dir, ckpt, changes, step=state["step"], state=state, lock=lock)


def open_run(cfg: Config, rank: int, world: int, checkpoint: Path | None = None) -> Run:
    """The run to train: a new numbered directory, or the resumed run with its checkpoint.

    Rank 0 locks the directory for the run's lifetime (`Run.close` releases it). When resuming,
    it first checks the path (`locate_run`), then, under the lock, clears what an interrupted
    run left there, picks the checkpoint (``checkpoint``, the one the config was read from, or
    the one ``train.resume`` names, else the newest intact one) and checks the config, the
    number of processes and ``train.iterations`` against it. An InputError there is raised in
    every process.
    """
    run, error = None, None
    if rank == 0:
        try:
            run = _open_on_rank0(cfg, world, checkpoint)
        except InputError as e:
            error = e
    if world > 1:
        shared = [None if run is None else (run.dir, run.checkpoint, run.changes, run.step), None]
        shared[1] = None if error is None else (str(error), error.arg)
        dist.broadcast_object_list(shared, src=0)
        if rank != 0:
            if shared[1] is not None:
                raise InputError(shared[1][0], arg=shared[1][1])
            run = Run(*shared[0])
    if error is not None:
        raise error
    return run


def _rewrite_rows(path: Path, up_to_step: int, new_rows: list[dict[str, Any]]) -> None:
    """Atomically keep a JSON-lines file's rows of steps <= ``up_to_step``, then add ``new_rows``.

    Lines a killed process left half-written are dropped too.
    """
    kept = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and row.get("step", 0) <= up_to_step:
                kept.append(line)
    if kept or new_rows or path.is_file():
        atomic_write(path, "".join(f"{line}\n" for line in kept + list(map(json.dumps, new_rows))))


def begin_run(run: Run, cfg: Config, step: int) -> None:
    """Write the run's config.yaml and, when resuming, its history (rank 0, after restoring).

    Resuming from step N drops the history of steps from N on (left by a run that went further
    than its last checkpoint), then records the fields this resume changed as applying after N.
    """
    if run.checkpoint is not None:
        changed = {k: list(v) for k, v in run.changes.items()}
        row = {"step": step, "checkpoint": run.checkpoint.name, "changed": changed}
        _rewrite_rows(run.dir / HISTORY_FILE, step - 1, [row] if changed else [])
    atomic_write(run.dir / CONFIG_FILE, cfg.to_yaml())


class Stats:
    """Averages named values between log calls; rank 0 writes stats.jsonl and TensorBoard.

    Resuming from step N first drops the rows (and TensorBoard events) of steps after N, which
    the run logged after its last checkpoint and logs again now.
    """

    def __init__(self, run_dir: Path | None, resumed_step: int | None = None):
        self.sums: dict[str, float | torch.Tensor] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.run_dir = run_dir
        self.writer = None
        if run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            purge = None
            if resumed_step is not None:
                _rewrite_rows(run_dir / STATS_FILE, resumed_step, [])
                purge = resumed_step + 1
            self.writer = SummaryWriter(str(run_dir), purge_step=purge)

    def report(self, name: str, value: float | torch.Tensor) -> None:
        """Add a value to this interval's average of ``name``.

        Tensors are summed where they live, in float64: reading one as a Python number would
        wait for the device at every step; `flush` reads them once per log interval.
        """
        if torch.is_tensor(value):
            value = value.detach().to(torch.float64)
        self.sums[name] = self.sums[name] + value
        self.counts[name] += 1

    def flush(self, step: int) -> dict[str, float]:
        """Write (rank 0) and return the averages since the last flush."""
        means = {k: float(self.sums[k]) / self.counts[k] for k in self.sums}
        self.sums.clear()
        self.counts.clear()
        if self.run_dir is not None and means:
            path = self.run_dir / STATS_FILE
            try:
                with path.open("a") as f:
                    f.write(json.dumps({"step": step, **means}) + "\n")
            except OSError as e:
                raise disk_error(path, e) from None
            for k, v in means.items():
                self.writer.add_scalar(k, v, step)
            self.writer.flush()
        return means

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def progress_bar(t: Training) -> tqdm:
    """The training progress bar (rank 0, unless ``train.progress`` is off)."""
    return tqdm(
        total=t.cfg.train.iterations,
        initial=t.step,
        disable=t.rank != 0 or not t.cfg.train.progress,
        desc="train",
        unit="it",
        dynamic_ncols=True,
    )


class StepTimer:
    """Wall time of the training steps, and the share of it spent waiting for the next batch.

    Only the steps count (waiting for a batch plus the update), not sample grids or
    checkpoints. On a GPU the update is asynchronous, so its time shows up a few steps later,
    when the queue of kernels is full; over a log interval the share is right.
    """

    def __init__(self) -> None:
        self.wait = self.busy = 0.0
        self.steps = 0

    def add(self, wait: float, busy: float) -> None:
        """One step: seconds waiting for its batch, seconds updating."""
        self.wait, self.busy, self.steps = self.wait + wait, self.busy + busy, self.steps + 1

    def report(self, stats: Stats) -> None:
        """Report ``time/it_per_s`` and ``time/data_share`` since the last report, and reset."""
        total = self.wait + self.busy
        if self.steps and total > 0:
            stats.report("time/it_per_s", self.steps / total)
            stats.report("time/data_share", self.wait / total)
        self.wait = self.busy = 0.0
        self.steps = 0


def log_step(t: Training, stats: Stats, bar: tqdm, timer: StepTimer) -> None:
    """Every ``train.log_every`` steps: write the averaged losses, the lr and the speed."""
    if t.step % t.cfg.train.log_every:
        return
    timer.report(stats)
    stats.report("lr", t.scheds["G"].get_last_lr()[0])
    means = stats.flush(t.step)
    bar.set_postfix(
        {k.split("/")[-1]: f"{v:.3f}" for k, v in means.items() if k.startswith("loss/G_")}
    )


def sample_step(t: Training, run_dir: Path) -> None:
    """Every ``train.sample_every`` steps and at the end: a sample grid (rank 0)."""
    every, last = t.cfg.train.sample_every, t.cfg.train.iterations
    if t.rank == 0 and (t.step % every == 0 or t.step == last):
        write_samples(
            t.generator, t.sample_set, run_dir / SAMPLES_DIR / f"step-{t.step:07d}.png", t.device
        )


@torch.no_grad()
def write_samples(generator: nn.Module, dataset, path: Path, device: torch.device) -> Path:
    """A grid of the first test pairs: condition, target pose, generated, ground truth."""
    items = [dataset[i] for i in range(min(N_SAMPLES, len(dataset)))]
    src = torch.stack([it["src_img"] for it in items]).to(device)
    with eval_mode(generator):
        fake = generator(
            src,
            torch.stack([it["src_pose"] for it in items]).to(device),
            torch.stack([it["tgt_pose"] for it in items]).to(device),
        )
    grid = sample_grid(
        [tensor_to_image(it["src_img"]) for it in items],
        [it["tgt_kps"].numpy() for it in items],
        [tensor_to_image(f) for f in fake],
        [tensor_to_image(it["tgt_img"]) for it in items],
    )
    return save_png(grid, path)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C or SIGTERM, after writing its checkpoint.

    A KeyboardInterrupt, so that callers stop as on any Ctrl-C; `exit_code` is the shell's
    convention for a process ended by that signal (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, run_dir: Path, step: int, signum: int):
        super().__init__(f"{run_dir}: stopped by {signal.Signals(signum).name} at step {step}")
        self.run_dir, self.step, self.signum = run_dir, step, signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopRequest:
    """While entered, Ctrl-C and SIGTERM ask training to stop after the current step.

    A second Ctrl-C raises KeyboardInterrupt at once. Outside the main thread (where Python
    allows no signal handlers) nothing is installed.
    """

    def __init__(self, rank: int):
        self.rank = rank
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._t_start = time.monotonic()

    def __enter__(self) -> StopRequest:
        self._t_start = time.monotonic()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum, frame) -> None:
        if self.signum is not None:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.signum = signum
        if self.rank == 0:
            tqdm.write(
                "interrupted: finishing this step and writing a checkpoint (Ctrl-C again to abort)"
            )

    @property
    def signalled(self) -> bool:
        return self.signum is not None

    def now(self, t: Training) -> bool:
        """Stop after this step? On a signal or past ``train.max_minutes``; all processes agree."""
        minutes = (time.monotonic() - self._t_start) / 60
        max_minutes = t.cfg.train.max_minutes
        want = self.signalled or (max_minutes is not None and minutes >= max_minutes)
        if t.world > 1:
            flag = torch.tensor([float(want)], device=t.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            want = bool(flag.item())
        return want
