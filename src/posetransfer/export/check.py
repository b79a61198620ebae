"""Fidelity of a fast or exported generator against the torch float32 model on the same inputs.

PSNR is scikit-image's, over generator outputs in [-1, 1] (data range 2): 35 dB is a mean
squared error of 1.3e-3, an RMS difference of about 4.5 grey levels out of 255.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from posetransfer.runtime.load import load_generator
from posetransfer.runtime.onnx import example_inputs


def psnr(reference: torch.Tensor, test: torch.Tensor) -> float:
    """PSNR in dB of ``test`` against ``reference``, images in [-1, 1] (inf when equal)."""
    from skimage.metrics import peak_signal_noise_ratio

    ref = reference.detach().float().cpu().numpy()
    out = test.detach().float().cpu().numpy()
    if np.array_equal(ref, out):
        return float("inf")
    return float(peak_signal_noise_ratio(ref, out, data_range=2.0))


def compare(reference: nn.Module, test: nn.Module, inputs: tuple[torch.Tensor, ...]) -> dict:
    """Max abs difference and PSNR of ``test(*inputs)`` against ``reference(*inputs)``."""
    with torch.inference_mode():
        ref = reference(*inputs).float()
        out = test(*inputs).float().to(ref.device)
    return {
        "batch": int(inputs[0].shape[0]),
        "max_abs_diff": float((ref - out).abs().max()),
        "psnr_db": psnr(ref, out),
    }


def parity(
    checkpoint: str | Path,
    exported: str | Path,
    batch: int | None = None,
    pairs_root: str | Path | None = None,
) -> dict:
    """Run an exported file (at fp32) and the checkpoint's torch model on the same inputs.

    Args:
        checkpoint: what was exported (anything `load_generator` reads).
        exported: the ``.onnx`` or ``.xml`` file.
        batch: inputs per check; default the graph's fixed batch, else 3.
        pairs_root: check on real pairs instead of random inputs: 64 test pairs of this dataset
            root, or of the synthetic people when it is "synthetic" (what an int8 model, whose
            ranges were calibrated on pairs, must be checked with).

    Returns:
        ``{"batch", "max_abs_diff", "psnr_db"}``.
    """
    model, info = load_generator(checkpoint, device="cpu", precision=None)
    fast: Any
    fast, _ = load_generator(exported, device="cpu", precision="fp32")
    n = batch or fast.batch_size or 3
    if pairs_root is None:
        inputs = example_inputs(n, info.height, info.width, getattr(model, "n_joints", 18))
        return compare(model.eval(), fast, inputs)
    root = None if str(pairs_root) == "synthetic" else pairs_root
    batches = pair_batches(info, root, "test", 64, fast.batch_size or 8)
    inputs = tuple(torch.from_numpy(np.concatenate([b[i] for b in batches])) for i in range(3))
    return compare(model.eval(), fast, inputs)


def pair_batches(
    info: Any,
    root: str | Path | None,
    split: str,
    count: int,
    batch: int = 8,
    full: bool = False,
) -> list[list[np.ndarray]]:
    """Up to ``count`` pairs of a split as input arrays, in batches, at the model's size
    (``full``: whole batches only, for a fixed-batch graph).

    ``root`` None: synthetic people, seed 0's training identities for "train" (what the bundled
    models were trained on) and the cards' held-out identities for "test".
    """
    from posetransfer.data.datasets import split_file
    from posetransfer.data.synthetic import SyntheticConfig, make_synthetic_dataset
    from posetransfer.generate import dataset_for
    from posetransfer.pretrained.export import heldout_dataset

    with tempfile.TemporaryDirectory(prefix="posetransfer-int8-") as tmp:
        if root is not None:
            base = Path(root)
        elif split == "train":
            cfg = SyntheticConfig(
                n_train_ids=24, n_test_ids=1, height=info.height, width=info.width
            )
            base = make_synthetic_dataset(Path(tmp), cfg, progress=False)
        else:
            base = heldout_dataset(Path(tmp), progress=False)
        data = dataset_for(
            info,
            base / split,
            split_file(base, "annotation", split),
            split_file(base, "pairs", split),
        )
        order = np.random.default_rng(0).permutation(len(data))[:count]
        if full:
            order = order[: max(batch, len(order) // batch * batch)]
        out = []
        for start in range(0, len(order), batch):
            items = [data[int(i)] for i in order[start : start + batch]]
            out.append(
                [
                    torch.stack([it[k] for it in items]).numpy()
                    for k in ("src_img", "src_pose", "tgt_pose")
                ]
            )
    return out
