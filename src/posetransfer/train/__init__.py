"""Training: `train(cfg) -> Path`, one function from config to run directory.

Runs on one CPU or GPU, or unchanged under ``torchrun --nproc_per_node N`` (DistributedDataParallel:
every process sees its own shard of each epoch, rank 0 logs and writes checkpoints). A run lives in
a numbered directory (see `posetransfer.train.run`) holding its config, stats, sample grids and
checkpoints; one process at a time trains it (a lock on the directory).

Resuming (``train.resume``: a run directory, whose newest intact checkpoint is used, or one of
its checkpoints) restores the networks, optimisers, image pools, step, data order and every RNG,
so that an interrupted run continues exactly as if it had not stopped. The run is checked before
anything is built: its lock, the config, the number of processes and ``train.iterations``
against the checkpoint (`posetransfer.train.resume`). The config may differ from the
checkpoint's only in the fields that steer the rest of the run (iterations, lr and its decay,
log/sample/checkpoint intervals, checkpoints kept, time budget, progress bar, device, precision
and memory layout, data workers): those apply after the checkpoint's step and are recorded in the
run's ``config-history.jsonl``; any other changed field is refused. Resuming a finished run (its
checkpoint at ``train.iterations``) trains nothing and returns the run directory.

Ctrl-C or SIGTERM finishes the current step, writes a checkpoint and raises `TrainingInterrupted`
(a KeyboardInterrupt); a signal during the last step or the final checkpoint of a run that
reaches ``train.iterations`` lets it finish normally. The time budget ``train.max_minutes``
also checkpoints, and returns.

Modules: `build` (processes, data, networks, optimisers), `state` (the resumable state, saved and
restored), `step` (one G and D update), `run` (run directory, lock, stats, samples, stopping),
`resume` (what a resume must keep, and what may change).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from posetransfer.checkpoint.format import CHECKPOINTS_DIR
from posetransfer.config import Config
from posetransfer.errors import InputError, InputWarning
from posetransfer.runtime.load import load_generator
from posetransfer.train.build import (
    Training,
    batches,
    build,
    check_generator_name,
    compile_failures,
    compile_settings,
    distribute,
    setup_processes,
)
from posetransfer.train.resume import resume_config
from posetransfer.train.run import (
    Stats,
    StepTimer,
    StopRequest,
    TrainingInterrupted,
    begin_run,
    log_step,
    open_run,
    progress_bar,
    sample_step,
)
from posetransfer.train.state import restore_state, save_state
from posetransfer.train.step import train_step

__all__ = ["TrainingInterrupted", "resume_config", "train"]


def train(cfg: Config, checkpoint: Path | None = None) -> Path:
    """Train a generator as configured and return the run directory.

    Args:
        cfg: the full configuration; ``cfg.train.resume`` continues an earlier run.
        checkpoint: when resuming, the checkpoint ``cfg`` was read from (`resume_config`), so
            that the settings and the weights come from the same one.

    Returns:
        The run directory, holding checkpoints, samples and logs.

    Raises:
        InputError: a bad config, data or checkpoint, a config change a resume cannot make, or
            a run another process is training.
        TrainingInterrupted: Ctrl-C or SIGTERM stopped training (after its checkpoint).
    """
    # Processes, devices and seeds; fail early on a wrong generator name.
    rank, world, device = setup_processes(cfg)
    check_generator_name(cfg)

    with contextlib.ExitStack() as stack:
        # A resumed run is locked, cleared of leftovers and checked against its checkpoint
        # before anything is built; a new run gets its directory once everything is built.
        run = open_run(cfg, rank, world, checkpoint) if cfg.train.resume else None
        if run is not None:
            stack.callback(run.close)
            if run.step >= cfg.train.iterations:
                if rank == 0:
                    tqdm.write(
                        f"{run.dir}: already finished at step {run.step} "
                        f"(train.iterations={cfg.train.iterations}); nothing to train"
                    )
                return run.dir

        # Build: data, networks, losses, optimisers; restore when resuming.
        t = build(cfg, rank, world, device)
        if run is None:
            if cfg.train.init_from:
                init_generator(t.generator, cfg.train.init_from)
            run = open_run(cfg, rank, world)
            stack.callback(run.close)
        else:
            restore_state(t, run.checkpoint, run.state)
            run.state = None  # the optimiser states now live in the optimisers
        if rank == 0:
            begin_run(run, cfg, t.step)
            tqdm.write(describe_training(t))
        if cfg.train.compile:
            stack.enter_context(compile_settings())
        failures = compile_failures() if cfg.train.compile else None
        distribute(t)
        resumed_step = run.step if run.checkpoint is not None else None
        stats = Stats(run.dir if rank == 0 else None, resumed_step)
        stack.callback(stats.close)
        stop = stack.enter_context(StopRequest(rank))
        bar = stack.enter_context(progress_bar(t))
        data = batches(t, lambda: stop.signalled)
        stack.callback(data.close)
        if world > 1:  # no process leaves (and releases the run) before all are done
            stack.callback(_barrier)

        # Train: step, log, sample, save.
        ckpt_dir = run.dir / CHECKPOINTS_DIR
        saved_at = t.step if run.checkpoint is not None else -1
        t.generator.train()
        for d in t.discs.values():
            d.train()
        timer = StepTimer()
        while t.step < cfg.train.iterations:
            started = time.perf_counter()
            batch = next(data, None)
            if batch is None:  # the data workers stopped with a Ctrl-C
                break
            got = time.perf_counter()
            train_step(t, batch, stats)
            timer.add(got - started, time.perf_counter() - got)
            if failures is not None:  # after the first compiled step: did it compile?
                if compile_failures() > failures and _is_compiled(t) and rank == 0:
                    warnings.warn(
                        "train.compile: torch could not compile the generator (its log above "
                        "says why); training runs eager",
                        InputWarning,
                        stacklevel=2,
                    )
                failures = None
            t.step += 1
            bar.update(1)
            log_step(t, stats, bar, timer)
            sample_step(t, run.dir)
            stopping = stop.now(t)
            if t.step % cfg.train.checkpoint_every == 0 or stopping:
                save_state(t, ckpt_dir)
                saved_at = t.step
            if stopping:
                break
        if t.step > 0 and t.step != saved_at:
            save_state(t, ckpt_dir)
        finished = t.step >= cfg.train.iterations
        if not finished and not stop.signalled and rank == 0:  # the time budget is spent
            tqdm.write(
                f"stopped at step {t.step} of {cfg.train.iterations}: train.max_minutes="
                f"{cfg.train.max_minutes} spent"
            )
    # A signal that came once the last step was done stops nothing: the run is complete.
    if stop.signalled and not finished:
        raise TrainingInterrupted(run.dir, t.step, stop.signum)
    return run.dir


def describe_training(t: Training) -> str:
    """One line saying how training runs, as `posetransfer.runtime.load.describe` for inference.

    E.g. ``training: torch on cpu, fp32 (auto)``: the precision ``auto`` resolved to is shown.
    """
    picked = f"{t.precision} (auto)" if t.cfg.train.precision == "auto" else t.precision
    processes = f", {t.world} processes" if t.world > 1 else ""
    return f"training: torch on {t.device}, {picked}{processes}"


def init_generator(generator: torch.nn.Module, source: str) -> None:
    """Load the generator weights of ``source`` (``train.init_from``) into ``generator``."""
    try:
        trained, _ = load_generator(source, device="cpu", precision=None)
    except InputError as e:
        raise InputError(f"train.init_from: {e}", arg="train.init_from") from None
    try:
        generator.load_state_dict(trained.state_dict())
    except RuntimeError as e:
        raise InputError(
            f"train.init_from={source}: its generator does not fit model.generator "
            f"({str(e).splitlines()[0]})",
            arg="train.init_from",
        ) from None


def _is_compiled(t: Training) -> bool:
    """Is the trained generator a `torch.compile` module (not left eager by `compiled`)?"""
    import torch._dynamo

    return isinstance(t.ddp_generator, torch._dynamo.eval_frame.OptimizedModule)


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
