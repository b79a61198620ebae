"""The demo: synthetic data -> a small PATN trained on the CPU -> held-out pairs -> metrics.

What `make demo` runs. It builds the procedural synthetic dataset, trains the ``synthetic``
config for a few minutes, generates the test pairs (identities never seen in training) and
compares the result with the baseline of copying the condition image:

    OUT/samples.png    condition | target pose | generated | ground truth, for 8 test pairs
    OUT/metrics.json   ssim, l1 and the copy-the-condition baseline's ssim_copy_source, l1_copy_source
    OUT/generated/     one PNG per test pair
    OUT/runs/          the training run (checkpoints, TensorBoard logs, sample grids)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from posetransfer.checkpoint import read_checkpoint_config, resolve_checkpoint
from posetransfer.config import load_config
from posetransfer.data.synthetic import SyntheticConfig, make_synthetic_dataset
from posetransfer.files import atomic_write, read_image
from posetransfer.generate import generate
from posetransfer.metrics import l1, ssim
from posetransfer.pose import drop_outside, read_annotations, read_pairs
from posetransfer.train import train
from posetransfer.visualize import sample_grid, save_png


def run_demo(
    out: str | Path,
    minutes: float = 8.0,
    data: str | Path | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
    synthetic: SyntheticConfig | None = None,
) -> dict:
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

    # Generate the held-out pairs.
    test_dir = cfg.data.path("test_dir")
    ann_path, pairs_path = cfg.data.path("test_annotations"), cfg.data.path("test_pairs")
    paths = generate(run_dir, test_dir, ann_path, pairs_path, out / "generated", progress=progress)

    # Compare with copying the condition image. (Generation has warned about joints annotated
    # off the images; the grid draws the target poses the generator was given, without them.)
    pairs = read_pairs(pairs_path)
    height, width = cfg.data.height, cfg.data.width
    annotations = read_annotations(ann_path)
    scores: dict[str, list[float]] = {
        k: [] for k in ("ssim", "l1", "ssim_copy_source", "l1_copy_source")
    }
    shown = []
    show = set(np.linspace(0, len(pairs) - 1, num=min(8, len(pairs))).round().astype(int).tolist())
    for i, ((src, tgt), path) in enumerate(zip(pairs, paths)):
        src_img, tgt_img = read_image(test_dir / src), read_image(test_dir / tgt)
        fake = read_image(path)
        scores["ssim"].append(ssim(fake, tgt_img))
        scores["l1"].append(l1(fake, tgt_img))
        scores["ssim_copy_source"].append(ssim(src_img, tgt_img))
        scores["l1_copy_source"].append(l1(src_img, tgt_img))
        if i in show:  # spread over the test identities
            shown.append((src_img, drop_outside(annotations[tgt], height, width), fake, tgt_img))
    save_png(sample_grid(*zip(*shown)), out / "samples.png")
    step = read_checkpoint_config(resolve_checkpoint(run_dir))[0]["step"]
    metrics = {
        **{k: round(float(np.mean(v)), 4) for k, v in scores.items()},
        "pairs": len(paths),
        "l1_scale": "mean absolute difference of uint8 RGB values (0..255)",
        "ssim_protocol": "paper (Gaussian sigma 1.5, data_range of the generated image)",
        "iterations": step,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.monotonic() - t0, 1),
        "run_dir": str(run_dir),
    }
    metrics["beats_copy_source"] = bool(
        metrics["ssim"] > metrics["ssim_copy_source"] and metrics["l1"] < metrics["l1_copy_source"]
    )
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
