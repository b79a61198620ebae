"""Mean SSIM, mask-SSIM, L1 and body L1 over a pairs file: the demo's and the model cards' table.

The registered metrics of these names (`posetransfer.metrics.registry`) give the same values
through `posetransfer evaluate`; this is the small, in-memory form for a list of images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from posetransfer.core.files import read_image
from posetransfer.metrics.image import PAIR_SCORES, pair_scores
from posetransfer.pose import drop_outside, read_annotations, read_pairs

SCORE_LABELS = {
    "ssim": "SSIM",
    "mask_ssim": "mask-SSIM",
    "l1": "L1",
    "mask_l1": "body L1",
}
"""Column labels of `score_table`."""


def score_pairs(
    image_dir: str | Path,
    annotations: str | Path,
    pairs: str | Path,
    images: Sequence[np.ndarray | str | Path],
) -> dict[str, float]:
    """Mean SSIM, mask-SSIM, L1 and body L1 of ``images``, one per pair of the pairs file.

    Args:
        image_dir: folder of the ground-truth (target) images.
        annotations: annotation CSV with the target keypoints (for the body masks).
        pairs: pairs CSV; ``images[i]`` is the generated target of its row ``i``.
        images: uint8 RGB arrays or image files.
    """
    image_dir = Path(image_dir)
    rows = read_pairs(pairs)
    table = read_annotations(annotations)
    if len(images) != len(rows):
        raise ValueError(f"{len(images)} images for the {len(rows)} pairs of {pairs}")
    scores: dict[str, list[float]] = {k: [] for k in PAIR_SCORES}
    for (_, tgt), fake in zip(rows, images):
        real = read_image(image_dir / tgt)
        fake = fake if isinstance(fake, np.ndarray) else read_image(fake)
        for k, v in pair_scores(fake, real, drop_outside(table[tgt], *real.shape[:2])).items():
            if v is not None:
                scores[k].append(v)
    return {k: round(float(np.mean(v)), 4) if v else float("nan") for k, v in scores.items()}


def score_copy_baseline(
    image_dir: str | Path, annotations: str | Path, pairs: str | Path
) -> dict[str, float]:
    """`score_pairs` of copying each pair's condition image: what any model must beat."""
    copies = [Path(image_dir) / src for src, _ in read_pairs(pairs)]
    return score_pairs(image_dir, annotations, pairs, copies)


def format_score(name: str, value: float) -> str:
    """A score as the tables print it: L1s with 2 decimals, SSIMs with 4."""
    return f"{value:.2f}" if name in ("l1", "mask_l1") else f"{value:.4f}"


def score_table(rows: dict[str, dict[str, float]]) -> str:
    """A Markdown table: one row per entry of ``rows``, one column per score."""
    lines = [
        "| | " + " | ".join(SCORE_LABELS.values()) + " |",
        "|---|" + "---:|" * len(SCORE_LABELS),
    ]
    for name, scores in rows.items():
        cells = [format_score(k, scores[k]) for k in SCORE_LABELS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
