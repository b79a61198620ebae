"""PCKh: the share of target joints that a pose estimator finds in the generated images.

Protocol: a predicted joint is right when ``|dx| < alpha * w_head`` and
``|dy| < alpha * h_head``, where the head box is the extent (max - min) of the *target's*
visible joints among nose, neck, eyes and ears. Pairs whose target has fewer than 2 of those
are skipped. The denominator is the number of visible target joints; a joint the estimator
missed counts as wrong. The evaluation runner drops target joints annotated outside the image
first (`posetransfer.pose.drop_outside`): they cannot be found in it. numpy only, so this is
cheap to import.
"""

from __future__ import annotations

import numpy as np

from posetransfer.pose import HEAD_JOINTS, visible  # head joints: nose, neck, eyes, ears


def _as_batch(kps: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(kps)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (18, 2):
        raise ValueError(f"{what} keypoints must be (N, 18, 2) or (18, 2), got {arr.shape}")
    return arr


def pckh_counts(
    predicted: np.ndarray, target: np.ndarray, alpha: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair PCKh counts.

    Args:
        predicted: (N, 18, 2) keypoints found in the generated images, (y, x), -1 missing.
        target: (N, 18, 2) keypoints of the target poses, (y, x), -1 missing.
        alpha: threshold as a fraction of the head box (0.5 for PCKh@0.5).

    Returns:
        ``(correct, total)``: two int arrays (N,); both are 0 for a skipped pair (target with
        fewer than 2 visible head joints).
    """
    pred = _as_batch(predicted, "predicted").astype(np.float64)
    tgt = _as_batch(target, "target").astype(np.float64)
    if pred.shape != tgt.shape:
        raise ValueError(f"predicted {pred.shape} and target {tgt.shape} differ in shape")
    pred_vis, tgt_vis = visible(pred), visible(tgt)  # [N, 18]

    head = tgt[:, HEAD_JOINTS]  # [N, 6, 2]
    head_vis = tgt_vis[:, HEAD_JOINTS]  # [N, 6]
    # Extent of the visible head joints; +-inf where invisible so that they drop out.
    hi = np.where(head_vis[..., None], head, -np.inf).max(axis=1)  # [N, 2]
    lo = np.where(head_vis[..., None], head, np.inf).min(axis=1)  # [N, 2]
    kept = head_vis.sum(axis=1) >= 2  # [N]
    size = np.where(kept[:, None], hi - lo, 0.0)  # [N, 2] = (h_head, w_head)

    err = np.abs(pred - tgt)  # [N, 18, 2]
    right = (err < alpha * size[:, None, :]).all(axis=2) & pred_vis & tgt_vis  # [N, 18]
    correct = np.where(kept, right.sum(axis=1), 0)
    total = np.where(kept, tgt_vis.sum(axis=1), 0)
    return correct.astype(np.int64), total.astype(np.int64)


def pckh(predicted: np.ndarray, target: np.ndarray, alpha: float = 0.5) -> tuple[int, int]:
    """PCKh over a set of pairs, as counts: PCKh = correct / total.

    Args:
        predicted: (N, 18, 2) (or (18, 2)) keypoints estimated on the generated images,
            (y, x), -1 for a joint the estimator did not find.
        target: (N, 18, 2) (or (18, 2)) target keypoints, (y, x), -1 missing.
        alpha: threshold as a fraction of the target's head box.

    Returns:
        ``(correct, total)`` summed over the pairs that are not skipped.
    """
    correct, total = pckh_counts(predicted, target, alpha)
    return int(correct.sum()), int(total.sum())
