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


def run_torchrun(argv: list[str], timeout: float, nproc: int = 2) -> tuple[int, str]:
    """Run ``posetransfer ARGV`` under torchrun with ``nproc`` CPU processes, one thread each.

    Returns (exit status, stdout and stderr together). Every process of the run is killed if it
    outlives ``timeout``, so no worker is ever left behind.
    """
    import os
    import signal
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    cmd += [str(nproc), "-m", "posetransfer.cli", *argv]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:  # never leave worker processes behind
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out


@pytest.fixture(scope="module")
def reid_root(tmp_path_factory) -> Path:
    """Synthetic people in Market-1501's re-ID layout: 6 train ids x 6 images, 4 test ids."""
    from posetransfer.data.synthetic import (
        SyntheticConfig,
        make_synthetic_dataset,
        write_reid_layout,
    )

    root = tmp_path_factory.mktemp("reid")
    cfg = SyntheticConfig(n_train_ids=6, n_test_ids=4, images_per_id=6, max_test_pairs=8)
    make_synthetic_dataset(root, cfg, progress=False)
    write_reid_layout(root)
    return root


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory) -> Path:
    from posetransfer.checkpoint import save_checkpoint
    from posetransfer.config import load_config
    from posetransfer.models.registry import create_generator

    ckpt = tmp_path_factory.mktemp("gen") / "ckpt"
    save_checkpoint(
        ckpt, create_generator("patn_tiny"), "patn_tiny", {}, load_config("synthetic"), 1
    )
    return ckpt
