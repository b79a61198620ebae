"""The demo: synthetic data -> a small PATN trained on the CPU -> held-out pairs -> metrics.

What `make demo` runs. It builds the procedural synthetic dataset, trains the ``synthetic``
config for a few minutes (proof that training works on this machine), generates the test pairs
(identities never seen in training) with that model and with each bundled model
(`posetransfer.pretrained`, trained for much longer), and compares them with the baseline of
copying the condition image:

    OUT/samples.png    condition | target pose | demo model | PATN | APATN | ground truth
    OUT/table.md       SSIM, mask-SSIM, L1 and body L1 of each, and of the copy baseline
    OUT/metrics.json   that table, plus the demo model's ssim / l1 beside the copy baseline's
                       ssim_copy_source / l1_copy_source, iterations and timings
    OUT/generated/     one PNG per test pair (generated-synthetic-patn/ ... for the bundled ones)
    OUT/runs/          the training run (checkpoints, TensorBoard logs, sample grids)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posetransfer.checkpoint import read_checkpoint_config, resolve_checkpoint
from posetransfer.checkpoint.bundled import installed_pretrained
from posetransfer.config import DataConfig, load_config
from posetransfer.core.device import device_description, resolve_device
from posetransfer.core.files import atomic_write, read_image
from posetransfer.core.report import Report
from posetransfer.data.synthetic import SyntheticConfig, make_synthetic_dataset
from posetransfer.generate import generate
from posetransfer.metrics.scores import score_copy_baseline, score_pairs, score_table
from posetransfer.pose import drop_outside, read_annotations, read_pairs
from posetransfer.pose.draw import comparison_grid, save_png
from posetransfer.train import train

L1_SCALE = (
    "mean absolute difference of uint8 RGB values (0..255); body L1 over the target's body "
    "mask only"
)
SSIM_PROTOCOL = (
    "paper (Gaussian sigma 1.5, data_range of the generated image); mask-SSIM: both images "
    "masked by the target's body mask"
)


@dataclass(frozen=True)
class DemoReport(Report):
    """What `run_demo` measured; `to_dict` is ``OUT/metrics.json``."""

    ssim: float
    l1: float
    """The demo model's SSIM and L1 over the held-out pairs."""
    ssim_copy_source: float
    l1_copy_source: float
    """The same of copying the condition image (the baseline to beat)."""
    table: dict[str, dict[str, float]]
    """Row label (the copy baseline, "demo model", each bundled model) -> score -> value."""
    bundled: dict[str, str]
    """Table label -> bundled model name, of the bundled models installed."""
    pairs: int
    l1_scale: str
    ssim_protocol: str
    iterations: int
    """The demo model's training iterations."""
    train_seconds: float
    total_seconds: float
    run_dir: str
    machine: dict[str, object]
    """Where it ran: the CPU or GPU model, torch's threads, the 1-minute load average."""
    beats_copy_source: bool
    """Better SSIM and lower L1 than copying the condition image."""


def run_demo(
    out: str | Path,
    minutes: float = 8.0,
    data: str | Path | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
    synthetic: SyntheticConfig | None = None,
) -> DemoReport:
    """Run the whole demo and return its metrics (also written to ``OUT/metrics.json``).

    Args:
        out: output folder.
        minutes: training time budget (training also stops at ``train.iterations``).
        data: where the synthetic dataset lives (built if missing); default ``OUT/data``.
        overrides: extra ``section.field=value`` config overrides.
        progress: show progress bars.
        synthetic: the synthetic dataset's settings (default `SyntheticConfig()`).
    """
    t0 = time.monotonic()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(data) if data is not None else out / "data"

    # Data.
    make_synthetic_dataset(root, synthetic or SyntheticConfig(), progress=progress)

    # Train.
    cfg = load_config(
        "synthetic",
        [
            f"data.root={root}",
            f"train.runs_dir={out / 'runs'}",
            f"train.max_minutes={minutes}",
            f"train.progress={progress}",
            *(overrides or []),
        ],
    )
    t_train = time.monotonic()
    run_dir = train(cfg)
    train_seconds = time.monotonic() - t_train

    # Generate the held-out pairs: with the model just trained, and with each bundled model.
    test_dir = cfg.data.path("test_dir")
    ann_path, pairs_path = cfg.data.path("test_annotations"), cfg.data.path("test_pairs")
    outputs = {
        "demo model": generate(
            run_dir, test_dir, ann_path, pairs_path, out / "generated", progress=progress
        )
    }
    for name in installed_pretrained():
        label = BUNDLED_LABELS[name]
        outputs[label] = generate(
            name, test_dir, ann_path, pairs_path, out / f"generated-{name}", progress=progress
        )

    # Score them beside copying the condition image.
    table = {"copy condition image": score_copy_baseline(test_dir, ann_path, pairs_path)}
    for label, paths in outputs.items():
        table[label] = score_pairs(test_dir, ann_path, pairs_path, paths)
    write_grid(out / "samples.png", test_dir, ann_path, pairs_path, outputs, cfg.data)

    step = read_checkpoint_config(resolve_checkpoint(run_dir))[0]["step"]
    ours, copy = table["demo model"], table["copy condition image"]
    report = DemoReport(
        ssim=ours["ssim"],
        l1=ours["l1"],
        ssim_copy_source=copy["ssim"],
        l1_copy_source=copy["l1"],
        table=table,
        bundled={BUNDLED_LABELS[n]: n for n in installed_pretrained()},
        pairs=len(outputs["demo model"]),
        l1_scale=L1_SCALE,
        ssim_protocol=SSIM_PROTOCOL,
        iterations=step,
        train_seconds=round(train_seconds, 1),
        total_seconds=round(time.monotonic() - t0, 1),
        run_dir=str(run_dir),
        machine=device_description(resolve_device(cfg.train.device, "train.device")),
        beats_copy_source=bool(ours["ssim"] > copy["ssim"] and ours["l1"] < copy["l1"]),
    )
    atomic_write(out / "table.md", score_table(table))
    atomic_write(out / "metrics.json", json.dumps(report.to_dict(), indent=2) + "\n")
    return report


BUNDLED_LABELS = {"synthetic-patn": "PATN", "synthetic-apatn": "APATN"}
"""The demo's column label of each bundled model."""


def write_grid(
    path: Path,
    test_dir: Path,
    annotations: Path,
    pairs: Path,
    outputs: dict[str, Sequence[Path]],
    data: DataConfig,
    rows: int = 8,
) -> None:
    """The demo's grid: ``rows`` pairs spread over the test identities, one column per model."""
    rows_file = read_pairs(pairs)
    table = read_annotations(annotations)
    show = np.linspace(0, len(rows_file) - 1, num=min(rows, len(rows_file))).round().astype(int)
    picked = [rows_file[i] for i in show]
    # The grid draws the target poses the generators were given: joints off the image dropped.
    grid = comparison_grid(
        [read_image(test_dir / src) for src, _ in picked],
        [drop_outside(table[tgt], data.height, data.width) for _, tgt in picked],
        {label: [read_image(paths[i]) for i in show] for label, paths in outputs.items()},
        [read_image(test_dir / tgt) for _, tgt in picked],
    )
    save_png(grid, path)
