"""Evaluation metrics of pose transfer: the paper's (SSIM, mask-SSIM, IS, mask-IS, DS, PCKh) and
later papers' (FID, LPIPS), plus L1, and one runner over a folder of generated images.

Every metric the runner knows is registered by name in `posetransfer.metrics.registry`
(`METRICS`, `register_metric`); `evaluate` sets up the requested ones and loops over them.

The per-image functions (`ssim`, `l1`, `body_mask`, `pckh`) and the runner import no torch;
the network-based pieces (FID, IS, LPIPS, DS) load on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from posetransfer.metrics.image import (
    MASK_LIMBS,
    apply_mask,
    body_mask,
    l1,
    masked_l1,
    pad_fashion,
    ssim,
)
from posetransfer.metrics.pckh import HEAD_JOINTS, pckh, pckh_counts
from posetransfer.metrics.registry import METRICS, MetricContext, register_metric
from posetransfer.metrics.report import format_markdown, format_table, write_report
from posetransfer.metrics.runner import ALL_METRICS, PROTOCOLS, evaluate
from posetransfer.metrics.weights import MetricUnavailable

# Heavy (torch) names, imported on first use: name -> submodule.
_LAZY: dict[str, str] = {
    "frechet_distance": "inception",
    "feature_statistics": "inception",
    "fid_from_features": "inception",
    "load_fid_network": "inception",
    "load_inception_classifier": "inception",
    "InceptionScoreAccumulator": "inception",
    "load_lpips": "perceptual",
    "lpips_distance": "perceptual",
    "load_person_detector": "detect",
    "top_person_scores": "detect",
}

__all__ = [
    "ALL_METRICS",
    "HEAD_JOINTS",
    "MASK_LIMBS",
    "METRICS",
    "PROTOCOLS",
    "MetricContext",
    "MetricUnavailable",
    "apply_mask",
    "body_mask",
    "evaluate",
    "format_markdown",
    "format_table",
    "l1",
    "masked_l1",
    "pad_fashion",
    "pckh",
    "pckh_counts",
    "register_metric",
    "ssim",
    "write_report",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"posetransfer.metrics.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'posetransfer.metrics' has no attribute {name!r}")
