"""Presets: how big an experiment is. Each is valid for every experiment.

* ``paper``: the paper's recipes (``market_patn`` / ``market_apatn``, or ``fashion_*``), sizes
  and iterations on the real datasets (``--data``, prepared by `posetransfer prepare`); for GPUs.
* ``cpu``: the synthetic people at 128x64, generators at width 16, the same number of iterations
  for every row (the paper too trains each row with the same schedule) and a time cap per row, so
  that a table of nine rows finishes on a 2-core CPU in under an hour. It shows the paper's
  comparisons and trends on data that is here, not the paper's numbers.
* ``smoke``: seconds per row, for tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posetransfer.config import Config, load_config
from posetransfer.data.synthetic import SyntheticConfig
from posetransfer.errors import InputError
from posetransfer.experiments.spec import EXTRA_METRICS, QUALITY_METRICS, Model

DATASETS = ("market", "fashion")
"""The real datasets of the ``paper`` preset."""


@dataclass(frozen=True)
class Preset:
    """Everything about an experiment's size that moves a number; recorded in its output."""

    name: str
    synthetic: SyntheticConfig | None
    """The synthetic people the rows train and test on; None: a real dataset (``--data``)."""
    recipe: str | None
    """The training config of every row (`posetransfer train --config`); None: the paper's
    recipe of the row's family and dataset (``market_patn``, ``fashion_apatn``, ...)."""
    ngf: int | None
    """Generator width (None: the paper's 64)."""
    iterations: int | None
    """Training iterations of every row (None: the recipe's)."""
    decay_start: int | None
    batch_size: int | None
    max_minutes: float | None
    """Wall-time cap of one row's training (the row stops there, with a checkpoint)."""
    metrics: tuple[str, ...]
    """What `evaluate` measures for each row."""
    eval_pairs: int | None = None
    """Only the first N test pairs (None: all)."""
    protocol: str = "paper"
    """`evaluate`'s protocol: the paper's white padding of 256x176 images before SSIM and IS."""
    speed_repeats: int = 20
    """Table 2 / Fig. 6: timed calls per measurement."""
    speed_size: tuple[int, int] = (256, 176)
    """Table 2: the image size the generators are timed at (the paper's DeepFashion)."""
    block_dim: int = 256
    block_size: tuple[int, int] = (64, 64)
    """Fig. 6: the block's code (the paper's 1x256x64x64)."""

    def describe(self) -> dict[str, Any]:
        """The preset as plain data, for the outputs."""
        d = dataclasses.asdict(self)
        d["synthetic"] = dataclasses.asdict(self.synthetic) if self.synthetic else None
        return d


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        synthetic=SyntheticConfig(n_train_ids=3, n_test_ids=2, images_per_id=3, max_test_pairs=4),
        recipe="synthetic",
        ngf=4,
        iterations=2,
        decay_start=1,
        batch_size=2,
        max_minutes=None,
        metrics=("ssim", "mask_ssim", "l1", "mask_l1"),
        speed_repeats=2,
        speed_size=(32, 32),
        block_dim=8,
        block_size=(8, 8),
    ),
    "cpu": Preset(
        name="cpu",
        synthetic=SyntheticConfig(),
        recipe="synthetic",
        ngf=16,
        iterations=600,
        decay_start=400,
        batch_size=8,
        max_minutes=10.0,
        metrics=(*QUALITY_METRICS, *EXTRA_METRICS),
        speed_repeats=5,
    ),
    "paper": Preset(
        name="paper",
        synthetic=None,
        recipe=None,
        ngf=None,
        iterations=None,
        decay_start=None,
        batch_size=None,
        max_minutes=None,
        metrics=(*QUALITY_METRICS, *EXTRA_METRICS),
        speed_repeats=100,
    ),
}


def get_preset(name: str) -> Preset:
    """The preset ``name`` (smoke, cpu, paper)."""
    if name not in PRESETS:
        raise InputError(f"preset={name!r}: choose one of {', '.join(PRESETS)}", arg="preset")
    return PRESETS[name]


def dataset_of(preset: Preset, dataset: str | None) -> str:
    """The dataset an experiment runs on: ``synthetic`` for the synthetic presets, else the
    given real one (default Market-1501)."""
    if preset.synthetic is not None:
        return "synthetic"
    dataset = dataset or "market"
    if dataset not in DATASETS:
        raise InputError(f"dataset={dataset!r}: choose one of {', '.join(DATASETS)}", arg="dataset")
    return dataset


def row_config(
    preset: Preset,
    model: Model,
    dataset: str,
    data_root: Path,
    runs_dir: Path,
    run_name: str,
    progress: bool,
    extra: list[str] | None = None,
) -> Config:
    """The training config of one row under ``preset`` (``extra``: more overrides)."""
    generator, kwargs = model.generator(dataset)
    recipe = preset.recipe or f"{dataset}_{'apatn' if model.family == 'apatn' else 'patn'}"
    overrides = [
        f"data.root={data_root}",
        f"model.generator={generator}",
        f"train.runs_dir={runs_dir}",
        f"train.run_name={run_name}",
        f"train.progress={progress}",
        *(f"model.{k}={v}" for k, v in kwargs.items()),
    ]
    if preset.ngf is not None:
        overrides.append(f"model.ngf={preset.ngf}")
    for key in ("iterations", "decay_start", "batch_size", "max_minutes"):
        value = getattr(preset, key)
        if value is not None:
            overrides.append(f"train.{key}={value}")
    if preset.iterations is not None:  # a sample grid and a checkpoint about every 5 minutes
        every = max(1, min(250, preset.iterations))
        overrides += [f"train.sample_every={every}", f"train.checkpoint_every={every}"]
        overrides.append(f"train.log_every={max(1, min(25, preset.iterations))}")
    return load_config(recipe, overrides + list(extra or []))
