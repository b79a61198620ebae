"""Person re-identification with pose-transfer augmentation (the paper's section 5, Table 6).

- `augment`: a Market-1501 training set with a portion p of the real images kept and the rest
  generated (or K-1 generated images per real one), written in Market-1501's layout.
- `train_reid` / `evaluate_reid`: a torchreid backbone and engine (softmax, triplet, or circle
  loss from pytorch-metric-learning) trained and ranked by the Market-1501 protocol.
- `rank_metrics`: rank-1/5/10 and mAP of a distance matrix (torchreid's `evaluate_rank`).
- `run_study`: the Table 6 sweep over portions and generators, as results.jsonl, table.md and
  rank1_vs_portion.png.

See docs/reid.md. torchreid and pytorch-metric-learning come with the ``[reid]`` extra.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "ReidConfig": "config",
    "augment": "augmentation",
    "evaluate_reid": "train",
    "keep_portion": "augmentation",
    "parse_name": "posetransfer.data.market",
    "plan_augmentation": "augmentation",
    "rank_metrics": "engine",
    "read_manifest": "augmentation",
    "run_study": "study",
    "train_reid": "train",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    # Lazy, so that `posetransfer.data.market` (file names only) imports without torch.
    if name in _HOMES:
        home = _HOMES[name]
        module = home if "." in home else f"posetransfer.reid.{home}"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'posetransfer.reid' has no attribute {name!r}")
