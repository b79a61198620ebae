"""The body mask of mask-SSIM and the body-mask L1 loss, drawn from keypoints.

Shared by the data layer (the body-mask L1 term of the synthetic recipes) and the metrics
(mask-SSIM, mask-IS); scikit-image and scipy only.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import disk, polygon

from posetransfer.pose.joints import visible

# The 23 limbs of the mask-SSIM body mask, as 1-based joint pairs: the 19
# skeleton limbs plus hips-to-hips (9-12), hip-to-shoulder (12-6, 9-3) and ear-to-ear (17-18),
# which close the torso and the head.
MASK_LIMBS_1BASED: tuple[tuple[int, int], ...] = (
    (2, 3),
    (2, 6),
    (3, 4),
    (4, 5),
    (6, 7),
    (7, 8),
    (2, 9),
    (9, 10),
    (10, 11),
    (2, 12),
    (12, 13),
    (13, 14),
    (2, 1),
    (1, 15),
    (15, 17),
    (1, 16),
    (16, 18),
    (2, 17),
    (2, 18),
    (9, 12),
    (12, 6),
    (9, 3),
    (17, 18),
)
MASK_LIMBS: tuple[tuple[int, int], ...] = tuple((a - 1, b - 1) for a, b in MASK_LIMBS_1BASED)

MASK_HALF_WIDTH = 4.0  # half-width in pixels of the quadrilateral along each limb
MASK_JOINT_RADIUS = 4.0  # radius in pixels of the disc at each joint
MASK_CLOSING = 5  # side of the square used for the dilation and erosion


def body_mask(keypoints: np.ndarray, height: int, width: int) -> np.ndarray:
    """The body mask of mask-SSIM / mask-IS, drawn from (target) keypoints.

    For each of the 23 limbs of `MASK_LIMBS` whose two joints are visible, the quadrilateral
    of half-width 4 px around the segment between them; a disc of radius 4 at every visible
    joint; then a binary dilation followed by an erosion with a 5x5 square (a closing that
    fills the gaps between limbs). Rasterisation: scikit-image's ``polygon`` on the exact
    (unrounded) corners and ``disk`` (pixels strictly closer than the radius), i.e. a pixel is
    in when its centre is inside. The image border does not erode the mask. This reproduces
    the masks of the original evaluation code bit for bit (the tests compare with masks it
    drew).

    Args:
        keypoints: (18, 2) integer (y, x) keypoints, -1 for missing.
        height: mask height.
        width: mask width.

    Returns:
        bool array (height, width).
    """
    kps = np.asarray(keypoints)
    if kps.shape != (18, 2):
        raise ValueError(f"keypoints must be (18, 2), got shape {kps.shape}")
    kps = kps.astype(np.float64)
    vis = visible(kps)
    mask = np.zeros((height, width), dtype=bool)
    for a, b in MASK_LIMBS:
        if not (vis[a] and vis[b]):
            continue
        p0, p1 = kps[a], kps[b]
        length = float(np.hypot(*(p1 - p0)))
        if length == 0:
            continue  # both joints on one pixel: their discs cover it
        # Unit normal to the limb, scaled to the half-width.
        normal = np.array([-(p1 - p0)[1], (p1 - p0)[0]]) / length * MASK_HALF_WIDTH
        corners = np.stack([p0 + normal, p1 + normal, p1 - normal, p0 - normal])
        rr, cc = polygon(corners[:, 0], corners[:, 1], shape=(height, width))
        mask[rr, cc] = True
    for y, x in kps[vis]:
        rr, cc = disk((y, x), MASK_JOINT_RADIUS, shape=(height, width))
        mask[rr, cc] = True
    square = np.ones((MASK_CLOSING, MASK_CLOSING), dtype=bool)
    mask = ndimage.binary_dilation(mask, structure=square)
    return ndimage.binary_erosion(mask, structure=square, border_value=1)
