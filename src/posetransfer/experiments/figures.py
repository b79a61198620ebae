"""The paper's figures from an experiment's finished rows.

* ``grid`` (Fig. 4, 5, 7, 8, 9): condition, target pose, each row's generated image, target, on
  the same test pairs, picked for the largest pose change between condition and target.
* ``attention`` (Fig. 10, 11): the attention of every block of a PATN or APATN row on a few of
  those pairs (`posetransfer.analysis.attention`).
* ``failures`` (Fig. 12): the worst pairs of each row by a per-pair metric, each with its scores.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posetransfer.analysis.attention import load_pair, save_attention_maps
from posetransfer.config import DataConfig
from posetransfer.core.files import generated_name, read_image
from posetransfer.errors import InputError
from posetransfer.pose import drop_outside, read_annotations, read_pairs, visible
from posetransfer.pose.draw import (
    comparison_grid,
    draw_skeleton,
    hstack,
    save_png,
    text_strip,
    vstack,
)
from posetransfer.runtime.load import load_generator

LOWER_IS_BETTER = ("l1", "mask_l1", "lpips")
"""Per-pair metrics whose worst pairs are the highest."""


def short_label(row: str, limit: int = 11) -> str:
    """A row label that fits a 64-pixel column: "PATB w/o add" -> "PATB -add", "APATB cat -> add"
    -> "APATB c>add"."""
    text = row.replace(" blocks", "").replace(" block", "").replace(",", "")
    text = text.replace("w/o ", "-").replace("cat -> add", "c>add").replace("Real data", "real")
    return text if len(text) <= limit else text[: limit - 1] + "."


def pose_change(src: np.ndarray, tgt: np.ndarray, height: int) -> float:
    """Mean distance between the joints visible in both poses, in image heights (0 if none)."""
    both = visible(src) & visible(tgt)
    if not both.any():
        return 0.0
    return float(np.linalg.norm(src[both] - tgt[both], axis=1).mean() / height)


def pick_pairs(pairs: Path, annotations: Path, size: tuple[int, int], n: int) -> list[int]:
    """Indices of the ``n`` pairs with the largest pose change (ties: the earlier pair)."""
    rows = read_pairs(pairs)
    table = read_annotations(annotations)
    change = [pose_change(table[s], table[t], size[0]) for s, t in rows]
    order = sorted(range(len(rows)), key=lambda i: (-change[i], i))
    return sorted(order[:n])


def draw_grid(
    path: Path,
    records: Sequence[dict[str, Any]],
    data: DataConfig,
    pairs: Path,
    n_pairs: int,
) -> Path | None:
    """The comparison grid of the finished ``records``; None when none is finished."""
    records = [r for r in records if r.get("generated_dir")]
    if not records:
        return None
    size = (data.height, data.width)
    test_dir, annotations = data.path("test_dir"), data.path("test_annotations")
    rows = read_pairs(pairs)
    picked = [rows[i] for i in pick_pairs(pairs, annotations, size, n_pairs)]
    table = read_annotations(annotations)
    fakes = {
        short_label(r["row"]): [
            read_image(Path(r["generated_dir"]) / generated_name(s, t), *size) for s, t in picked
        ]
        for r in records
    }
    grid = comparison_grid(
        [read_image(test_dir / s, *size) for s, _ in picked],
        [drop_outside(table[t], *size) for _, t in picked],
        fakes,
        [read_image(test_dir / t, *size) for _, t in picked],
        columns=1 if len(records) > 3 else 2,
    )
    return save_png(grid, path)


def draw_attention(
    folder: Path,
    record: dict[str, Any],
    data: DataConfig,
    pairs: Path,
    n_pairs: int,
) -> list[Path]:
    """Every block's attention of one trained row on the pairs of the grid."""
    run = record.get("training", {}).get("run_dir")
    if run is None:
        raise InputError(f"row {record['row']!r} has no trained generator to show")
    model, _ = load_generator(run, device="cpu", precision=None)
    size = (data.height, data.width)
    written = []
    for i in pick_pairs(pairs, data.path("test_annotations"), size, n_pairs):
        item = load_pair(data.root, data.path("test_annotations"), pairs, index=i, size=size)
        written += save_attention_maps(
            model,
            item["src_img"],
            item["src_pose"],
            item["tgt_pose"],
            folder / f"pair-{i:04d}",
            tgt_img=item["tgt_img"],
            tgt_kps=item["tgt_kps"],
        )
    return written


def worst_pairs(per_pair_csv: Path, metric: str, n: int) -> list[dict[str, str]]:
    """The ``n`` rows of a per-pair CSV with the worst ``metric`` (pairs without it skipped)."""
    with open(per_pair_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and metric not in rows[0]:
        known = ", ".join(k for k in rows[0] if k not in ("pair", "from", "to"))
        raise InputError(f"metric={metric!r}: not in {per_pair_csv}; it has {known}", arg="metric")
    scored = [r for r in rows if r.get(metric) not in (None, "")]
    sign = -1 if metric in LOWER_IS_BETTER else 1
    return sorted(scored, key=lambda r: sign * float(r[metric]))[:n]


def _scores(row: dict[str, str], names: Sequence[str]) -> str:
    parts = []
    for name in names:
        value = row.get(name, "")
        if value not in ("", None) and not math.isnan(float(value)):
            parts.append(f"{name} {float(value):.2f}")
    return ", ".join(parts)


def draw_failures(
    path: Path,
    records: Sequence[dict[str, Any]],
    data: DataConfig,
    metric: str,
    n_pairs: int,
) -> Path | None:
    """Per row, its worst pairs: condition | target pose | generated | target, scores below."""
    size = (data.height, data.width)
    test_dir, annotations = data.path("test_dir"), data.path("test_annotations")
    table = read_annotations(annotations)
    blocks = []
    for r in records:
        csv_path = Path(r.get("per_pair_csv") or "")
        if not csv_path.is_file():
            continue
        worst = worst_pairs(csv_path, metric, n_pairs)
        strips = []
        for p in worst:
            s, t = p["from"], p["to"]
            fake = read_image(Path(r["generated_dir"]) / generated_name(s, t), *size)
            tiles = [
                read_image(test_dir / s, *size),
                draw_skeleton(drop_outside(table[t], *size), *size),
                fake,
                read_image(test_dir / t, *size),
            ]
            strip = hstack(tiles)
            names = [metric] + [m for m in ("ssim", "mask_ssim", "l1") if m != metric]
            strips.append(vstack([strip, text_strip(_scores(p, names), strip.shape[1])], gap=0))
        if strips:
            title = text_strip(f"{r['row']}: worst {len(strips)} by {metric}", strips[0].shape[1])
            blocks.append(vstack([title, *strips]))
    if not blocks:
        return None
    return save_png(hstack(blocks, gap=12), path)
