"""Shared fixtures: a tiny synthetic dataset made once per session, tiny configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Tiny networks run fastest on one thread, and one thread per test process keeps the torchrun
# and DataLoader tests from oversubscribing a 2-core CI machine.
torch.set_num_threads(1)


REPO = Path(__file__).resolve().parents[1]


def reference_file(name: str) -> Path | None:
    """A file of the shared reference fixtures (outputs of the authors' code), if present.

    Looked for in $POSETRANSFER_SHARED/reference, then in shared/ beside or inside the checkout
    (where CI puts it), then /work/shared.
    """
    roots = (
        os.environ.get("POSETRANSFER_SHARED"),
        REPO.parent / "shared",
        REPO / "shared",
        "/work/shared",
    )
    for root in roots:
        if root and (Path(root) / "reference" / name).is_file():
            return Path(root) / "reference" / name
    return None


def require_reference(name: str) -> Path:
    """The reference file, or skip the test saying which file is missing."""
    path = reference_file(name)
    if path is None:
        pytest.skip(
            f"reference fixture shared/reference/{name} not found (set POSETRANSFER_SHARED)"
        )
    return path


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A small synthetic dataset in the public Market layout (4 train ids, 2 test ids)."""
    from posetransfer.data.synthetic import SyntheticConfig, make_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic")
    cfg = SyntheticConfig(n_train_ids=4, n_test_ids=2, images_per_id=3, max_test_pairs=8)
    return make_synthetic_dataset(root, cfg, progress=False)


def tiny_overrides(root: Path, runs: Path, **extra) -> list[str]:
    """Overrides turning the synthetic config into a seconds-long CPU run."""
    base = {
        "data.root": root,
        "data.num_workers": 0,
        "model.generator": "patn_tiny",
        "train.batch_size": 2,
        "train.iterations": 4,
        "train.decay_start": 2,
        "train.runs_dir": runs,
        "train.log_every": 2,
        "train.sample_every": 2,
        "train.checkpoint_every": 2,
        "train.progress": False,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]
