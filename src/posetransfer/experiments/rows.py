"""One row of a quality table, as one resumable job: train, generate the test pairs, evaluate.

A row lives in ``DIR/rows/<slug>/``::

    runs/NNNNN-<slug>/   the training run (checkpoints, logs, sample grids)
    generated/           its test images (<from>___<to>.png, generate.json)
    report.json, .md     `evaluate`'s report
    per_pair.csv         per-pair scores
    row.json             written last: the row is finished and never redone

Each stage continues what an interrupted attempt left: training resumes from the run's newest
intact checkpoint, generation keeps the intact images, and the evaluation (minutes) is redone.
Rows are independent, so a launcher may run them in any order, in parallel or on other machines.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from posetransfer.checkpoint import read_checkpoint_config, resolve_checkpoint
from posetransfer.config import DataConfig
from posetransfer.core.files import atomic_write, generated_name, read_image, save_image
from posetransfer.data.prepare.layout import DATASET_FILES, IMAGE_SIZE, SPLITS
from posetransfer.data.synthetic.dataset import ANNOTATION_FILES, PAIRS_FILES
from posetransfer.errors import InputError
from posetransfer.experiments.presets import Preset, get_preset, row_config
from posetransfer.experiments.spec import Row, load_experiment
from posetransfer.generate import generate
from posetransfer.metrics.report import write_report
from posetransfer.metrics.runner import evaluate
from posetransfer.pose import read_pairs
from posetransfer.train import train

ROW_DONE = "row.json"
TRAIN_LOG = "train-time.json"


@dataclass(frozen=True)
class RowJob:
    """Everything one row needs (plain data: a launcher may send it to another process)."""

    out: str
    """The experiment's folder."""
    experiment: str
    row: str
    """The row's label."""
    preset: str
    dataset: str
    data_root: str
    external: str | None = None
    """External rows: the folder of the other method's outputs."""
    weights: tuple[tuple[str, str], ...] = ()
    """`evaluate`'s network weights, (name, path) pairs (inception, fid, alexnet, ssd)."""
    device: str = "auto"
    progress: bool = True

    @property
    def row_dir(self) -> Path:
        return Path(self.out) / "rows" / self.spec.slug

    @property
    def spec(self) -> Row:
        exp = load_experiment(self.experiment)
        return next(r for r in exp.rows if r.row == self.row)


def data_config(dataset: str, root: Path) -> DataConfig:
    """The file layout of ``dataset`` under ``root``: `posetransfer prepare`'s for the real
    datasets (`DATASET_FILES`, sizes `IMAGE_SIZE`), `posetransfer synthetic`'s otherwise."""
    if dataset in DATASET_FILES:
        files = DATASET_FILES[dataset]
        names = {
            f"{split}_{kind}": files[kind][split]
            for kind in ("annotations", "pairs")
            for split in SPLITS
        }
        height, width = IMAGE_SIZE[dataset]
    else:
        files = {"annotations": ANNOTATION_FILES, "pairs": PAIRS_FILES}
        names = {f"{split}_{kind}": files[kind][split] for kind in files for split in SPLITS}
        height, width = 128, 64
    return DataConfig(dataset=dataset, root=str(root), height=height, width=width, **names)


def eval_pairs_file(out: Path, data: DataConfig, preset: Preset) -> Path:
    """The test pairs every row is scored on: the dataset's, or its first ``eval_pairs``."""
    pairs = data.path("test_pairs")
    if preset.eval_pairs is None:
        return pairs
    path = out / "eval-pairs.csv"
    if not path.is_file():
        rows = read_pairs(pairs)[: preset.eval_pairs]
        atomic_write(path, "from,to\n" + "".join(f"{s},{t}\n" for s, t in rows))
    return path


def read_row(row_dir: Path) -> dict[str, Any] | None:
    """A finished row's record, or None (not finished, or a damaged record: redone)."""
    try:
        return json.loads((row_dir / ROW_DONE).read_text())
    except (OSError, ValueError):
        return None


def run_row(job: RowJob) -> dict[str, Any]:
    """Run (or continue) one row and return its record (``row.json``)."""
    row_dir = job.row_dir
    done = read_row(row_dir)
    if done is not None:
        return done
    row, preset = job.spec, get_preset(job.preset)
    data = data_config(job.dataset, Path(job.data_root))
    out = Path(job.out)
    pairs = eval_pairs_file(out, data, preset)
    row_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"row": row.row, "job": asdict(job)}

    # Train (resuming the row's run when one was started).
    if row.trains:
        run_dir, training = _train(job, row_dir, preset)
        record["training"] = training
        generated = row_dir / "generated"
        generate(
            run_dir,
            data.path("test_dir"),
            data.path("test_annotations"),
            pairs,
            generated,
            device=job.device,
            skip_existing=True,
            progress=job.progress,
        )
    elif row.real:
        generated = _real_targets(row_dir / "generated", data.path("test_dir"), pairs)
    else:
        if job.external is None:
            raise InputError(f"row {row.row!r}: needs --external {row.row}=DIR")
        generated = Path(job.external)

    # Evaluate.
    report = evaluate(
        generated,
        data.root,
        data.path("test_annotations"),
        pairs,
        metrics=list(preset.metrics),
        protocol=preset.protocol,
        real_stats=out / "fid-real-stats.npz",
        weights=dict(job.weights),
        device=job.device,
        progress=job.progress,
        per_pair=row_dir / "per_pair.csv",
    )
    write_report(report, row_dir / "report.json")
    record.update(
        generated_dir=str(generated),
        evaluated=report.evaluated,
        pairs=report.pairs,
        results=report.results,
        evaluate_seconds=report.seconds,
    )
    atomic_write(row_dir / ROW_DONE, json.dumps(record, indent=2) + "\n")
    return record


def train_row(job: RowJob) -> Path:
    """Only the training of a row (the other processes of a row under torchrun)."""
    return _train(job, job.row_dir, get_preset(job.preset))[0]


def _started_run(runs_dir: Path) -> Path | None:
    """The row's run with an intact checkpoint, to resume (the newest, if several)."""
    for run in sorted(runs_dir.glob("*"), reverse=True):
        try:
            resolve_checkpoint(run)
        except (InputError, OSError):
            continue
        return run
    return None


def _train(job: RowJob, row_dir: Path, preset: Preset) -> tuple[Path, dict[str, Any]]:
    row = job.spec
    runs_dir = row_dir / "runs"
    started = _started_run(runs_dir) if runs_dir.is_dir() else None
    extra = [f"train.device={job.device}"]
    if started is not None:
        extra.append(f"train.resume={started}")
    cfg = row_config(
        preset, row.model, job.dataset, Path(job.data_root), runs_dir, row.slug, job.progress, extra
    )
    # The seconds of every attempt add up (an interrupted one is counted when it stops).
    log = row_dir / TRAIN_LOG
    spent = _read_seconds(log)
    t0 = time.monotonic()
    try:
        run_dir = train(cfg)
    finally:
        spent += time.monotonic() - t0
        atomic_write(log, json.dumps({"seconds": round(spent, 1)}) + "\n")
    info, _ = read_checkpoint_config(resolve_checkpoint(run_dir))
    return run_dir, {
        "run_dir": str(run_dir),
        "generator": cfg.model.generator,
        "generator_kwargs": cfg.model.generator_kwargs(),
        "iterations": cfg.train.iterations,
        "steps": info["step"],
        "batch_size": cfg.train.batch_size,
        "max_minutes": cfg.train.max_minutes,
        "precision": cfg.train.precision,
        "seconds": round(spent, 1),
        "resumed": started is not None,
    }


def _read_seconds(path: Path) -> float:
    try:
        return float(json.loads(path.read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _real_targets(folder: Path, test_dir: Path, pairs: Path) -> Path:
    """The "Real data" row: each pair's real target under the generated image's name."""
    folder.mkdir(parents=True, exist_ok=True)
    for src, tgt in read_pairs(pairs):
        dest = folder / generated_name(src, tgt)
        if dest.exists():
            continue
        save_image(read_image(test_dir / tgt), dest)
    return folder
