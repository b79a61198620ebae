"""The 18-joint pose: joint layout, limbs, the joint rules, flipping and heatmaps.

Keypoints are integer (y, x) pairs in image coordinates, shape (18, 2) (``kps``), with -1 in
both coordinates for a missing joint. The joint order is OpenPose COCO-18 (see `JOINT_NAMES`),
which is the order of the public Market-1501 and DeepFashion annotation files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from posetransfer.errors import InputError, InputWarning

if TYPE_CHECKING:  # torch is imported where heatmaps are made, so file formats stay light
    import torch

N_JOINTS = 18
MISSING = -1

JOINT_NAMES: tuple[str, ...] = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)

# The 19 limbs drawn for a skeleton, as 0-based joint-index pairs.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2),
    (1, 5),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 0),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
    (2, 16),
    (5, 17),
)

# Joint i of a horizontally flipped person is joint FLIP_PERM[i] of the original.
FLIP_PERM: tuple[int, ...] = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)

# The public splits drop images missing any of these (r-shoulder, l-shoulder, r-hip, l-hip).
TORSO_JOINTS: tuple[int, ...] = (2, 5, 8, 11)

# Joints whose extent defines the head box of PCKh (nose, neck, eyes, ears).
HEAD_JOINTS: tuple[int, ...] = (0, 1, 14, 15, 16, 17)

# One colour per limb for drawing (OpenPose-like rainbow), RGB.
LIMB_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0),
    (255, 85, 0),
    (255, 170, 0),
    (255, 255, 0),
    (170, 255, 0),
    (85, 255, 0),
    (0, 255, 0),
    (0, 255, 85),
    (0, 255, 170),
    (0, 255, 255),
    (0, 170, 255),
    (0, 85, 255),
    (0, 0, 255),
    (85, 0, 255),
    (170, 0, 255),
    (255, 0, 255),
    (255, 0, 170),
    (255, 0, 85),
    (200, 200, 200),
)


class KeypointWarning(InputWarning):
    """Keypoints that can be used but are probably wrong, e.g. joints placed off the image.

    A `UserWarning`; the command line prints it on one line, as it prints errors.
    """


# --------------------------------------------------------------------------------------------
# Keypoint arrays


def visible(kps: np.ndarray) -> np.ndarray:
    """Boolean mask of the joints present in ``kps`` (..., 18, 2)."""
    kps = np.asarray(kps)
    return (kps[..., 0] != MISSING) & (kps[..., 1] != MISSING)


def has_torso(kps: np.ndarray) -> bool:
    """Whether both shoulders and both hips are present (the public splits' pairing rule)."""
    return bool(visible(kps)[list(TORSO_JOINTS)].all())


def missing_torso(kps: np.ndarray) -> list[str]:
    """Names of the torso joints missing from ``kps``, e.g. ``["left_hip"]``."""
    vis = visible(kps)
    return [JOINT_NAMES[j] for j in TORSO_JOINTS if not vis[j]]


def require_torso(kps: np.ndarray, what: str) -> np.ndarray:
    """``kps`` if both shoulders and both hips are present; else InputError naming ``what``."""
    lost = [name.replace("_", " ") for name in missing_torso(kps)]
    if lost:
        raise InputError(
            f"{what}: torso joints not found ({', '.join(lost)}); the model needs both "
            "shoulders and both hips in view"
        )
    return kps


MIN_JOINTS = 2  # fewer visible joints give no extent: nothing to frame or to draw a pose from


def require_joints(kps: np.ndarray, what: str, minimum: int = MIN_JOINTS) -> np.ndarray:
    """``kps`` if at least ``minimum`` joints are visible; else InputError naming ``what``."""
    n = int(visible(kps).sum())
    if n < minimum:
        raise InputError(f"{what}: only {n} visible joint(s); needs at least {minimum} joints")
    return kps


def in_image(kps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean mask of the joints of ``kps`` (..., 18, 2) present inside a height x width image."""
    kps = np.asarray(kps)
    y, x = kps[..., 0], kps[..., 1]
    return visible(kps) & (y >= 0) & (y < height) & (x >= 0) & (x < width)


def drop_outside(kps: np.ndarray, height: int, width: int) -> np.ndarray:
    """A copy of ``kps`` keeping only the joints inside the image; the others become missing (-1).

    A joint off the image is not seen in it, so a model conditioned on the image should not be
    told where it is. `keypoints_to_heatmaps` alone still draws such a joint's Gaussian tail.
    """
    out = np.array(kps, copy=True)
    out[~in_image(out, height, width)] = MISSING
    return out


def flip_keypoints(kps: np.ndarray, width: int) -> np.ndarray:
    """Keypoints of the horizontally mirrored image: x -> width - 1 - x, left and right swapped."""
    kps = np.asarray(kps)
    out = kps[..., FLIP_PERM, :].copy()
    vis = visible(out)
    out[..., 1] = np.where(vis, width - 1 - out[..., 1], MISSING)
    return out


def keypoints_to_heatmaps(
    keypoints: np.ndarray | torch.Tensor | Sequence,
    height: int,
    width: int,
    sigma: float = 6.0,
    legacy_uint8: bool = False,
) -> torch.Tensor:
    """Render keypoints as one Gaussian heatmap channel per joint.

    Channel i is ``exp(-((y - y_i)^2 + (x - x_i)^2) / (2 sigma^2))``, all zeros where joint i is
    missing (-1). Joints outside the image still contribute their Gaussian tail, as in the
    authors' code; `drop_outside` removes them first where that is not wanted.

    Args:
        keypoints: (18, 2) or (B, 18, 2) integer (y, x) coordinates, -1 for missing; a torch
            tensor is rendered on its own device.
        height: heatmap height in pixels.
        width: heatmap width in pixels.
        sigma: Gaussian standard deviation in pixels (6 in the paper).
        legacy_uint8: reproduce the authors' DeepFashion heatmaps, which were stored as uint8:
            every value below 1 truncates to 0, leaving a single 1 at each joint's pixel. Their
            released DeepFashion checkpoint was trained on these.

    Returns:
        float32 tensor (18, H, W) or (B, 18, H, W).
    """
    import torch

    if torch.is_tensor(keypoints):  # computed where the tensor is (e.g. a batch on the GPU)
        kps = keypoints.to(torch.float32)
    else:
        kps = torch.as_tensor(np.asarray(keypoints), dtype=torch.float32)
    device = kps.device
    single = kps.dim() == 2
    if single:
        kps = kps.unsqueeze(0)
    if kps.dim() != 3 or kps.shape[-2:] != (N_JOINTS, 2):
        raise ValueError(f"keypoints must be (18, 2) or (B, 18, 2), got {tuple(kps.shape)}")
    present = (kps[..., 0] != MISSING) & (kps[..., 1] != MISSING)  # [B, 18]
    if legacy_uint8:
        # Truncation keeps only exp(0) = 1, i.e. the joint's own pixel when it lies in the image.
        maps = torch.zeros(kps.shape[0], N_JOINTS, height, width, device=device)
        y, x = kps[..., 0].long(), kps[..., 1].long()
        inside = present & (y >= 0) & (y < height) & (x >= 0) & (x < width)  # [B, 18]
        b, j = inside.nonzero(as_tuple=True)
        maps[b, j, y[b, j], x[b, j]] = 1.0
    else:
        ys = torch.arange(height, dtype=torch.float32, device=device).view(1, 1, height, 1)
        xs = torch.arange(width, dtype=torch.float32, device=device).view(1, 1, 1, width)
        dy2 = (ys - kps[..., 0, None, None]) ** 2  # [B, 18, H, 1]
        dx2 = (xs - kps[..., 1, None, None]) ** 2  # [B, 18, 1, W]
        # The Gaussian is separable: exp(-(dy2 + dx2) / c) = exp(-dy2 / c) * exp(-dx2 / c), so
        # H + W exponentials per joint and one product, not H * W exponentials (26x faster at
        # 256x176; equal to within float rounding). Missing joints zero their row factor.
        gy = torch.exp(-dy2 / (2 * sigma**2)) * present[..., None, None]
        maps = gy * torch.exp(-dx2 / (2 * sigma**2))
    return maps[0] if single else maps
