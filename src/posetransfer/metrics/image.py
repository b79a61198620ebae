"""Per-image metrics of the paper's protocol: SSIM, L1, the mask-SSIM body mask, padding.

Everything here works on uint8 (H, W, 3) RGB arrays with numpy, scikit-image and scipy only,
so importing it is cheap (no torch).

The protocol follows the scripts every pose-transfer paper since PG2 used:
- SSIM with a Gaussian window (sigma 1.5), population covariance, on uint8 RGB, and
  ``data_range`` = max - min of the *generated* image (a quirk of the original scripts, kept
  because it changes the numbers).
- mask-SSIM: both images multiplied by a body mask drawn from the target keypoints.
- DeepFashion (256x176) images padded with white to 256x256 before SSIM and IS.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from posetransfer.pose.masks import (  # noqa: F401  (re-exported: the metrics use these)
    MASK_LIMBS,
    body_mask,
)

# DeepFashion's 256x176 images are the In-shop 256x256 ones cropped to columns 40..215; the
# paper's protocol pads them back with white to 256x256 before IS and SSIM.
FASHION_SIZE = (256, 176)
FASHION_PADDED_WIDTH = 256


def _check_image(image: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"{what} must be a uint8 array, got dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{what} must be (H, W, 3) RGB, got shape {arr.shape}")
    return arr


def _check_pair(generated: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gen = _check_image(generated, "generated image")
    ref = _check_image(reference, "reference image")
    if gen.shape != ref.shape:
        raise ValueError(f"image sizes differ: generated {gen.shape}, reference {ref.shape}")
    return gen, ref


def ssim(generated: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of one image pair exactly as in the paper's evaluation scripts.

    scikit-image's ``structural_similarity`` with a Gaussian window (sigma 1.5), population
    covariance, over the three RGB channels, with ``data_range`` = max - min of the generated
    image (not 255: a quirk of the original scripts that the published numbers depend on).

    Args:
        generated: uint8 (H, W, 3) RGB generated image.
        reference: uint8 (H, W, 3) RGB ground-truth target image.

    Returns:
        The mean SSIM over the image (1.0 for identical images). A constant generated image
        has a data range of 0, for which the original scripts return NaN; 255 is used instead.
    """
    gen, ref = _check_pair(generated, reference)
    data_range = float(gen.max()) - float(gen.min())
    if data_range == 0:
        data_range = 255.0
    return float(
        structural_similarity(
            gen,
            ref,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            channel_axis=-1,
            data_range=data_range,
        )
    )


def l1(generated: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference of two uint8 RGB images, on the 0..255 scale.

    Divide by 127.5 for the L1 distance of the same images mapped to [-1, 1].
    """
    gen, ref = _check_pair(generated, reference)
    return float(np.abs(gen.astype(np.float64) - ref.astype(np.float64)).mean())


def masked_l1(generated: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float | None:
    """`l1` over the pixels of a bool (H, W) mask only ("body L1"); None for an empty mask.

    Unlike L1 of two masked images, the mean is over the mask's pixels, so a thin person and a
    broad one weigh the same and the background does not dilute the score.
    """
    gen, ref = _check_pair(generated, reference)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != gen.shape[:2]:
        raise ValueError(f"mask is {mask.shape}, the images are {gen.shape[:2]}")
    if not mask.any():
        return None
    return float(np.abs(gen[mask].astype(np.float64) - ref[mask].astype(np.float64)).mean())


def apply_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Multiply a uint8 (H, W, 3) image by a bool (H, W) mask: black outside the body."""
    return np.where(np.asarray(mask, dtype=bool)[..., None], image, 0).astype(np.uint8)


def is_fashion_size(image: np.ndarray) -> bool:
    """Whether an image has DeepFashion's 256x176 size (the one the paper pads)."""
    return tuple(np.asarray(image).shape[:2]) == FASHION_SIZE


def pad_fashion(image: np.ndarray) -> np.ndarray:
    """Pad a 256x176 DeepFashion image with white to 256x256 (40 columns each side).

    This undoes the crop of the In-shop images as the paper's protocol does before IS and SSIM.
    Images of any other size are returned unchanged (Market-1501 is not padded).
    """
    arr = np.asarray(image)
    if not is_fashion_size(arr):
        return arr
    left = (FASHION_PADDED_WIDTH - arr.shape[1]) // 2
    right = FASHION_PADDED_WIDTH - arr.shape[1] - left
    return np.pad(arr, ((0, 0), (left, right), (0, 0)), constant_values=255)


PAIR_SCORES = ("ssim", "mask_ssim", "l1", "mask_l1")
"""The per-pair scores of `pair_scores`, named as the registered metrics."""


def pair_scores(
    generated: np.ndarray, reference: np.ndarray, keypoints: np.ndarray
) -> dict[str, float | None]:
    """SSIM, mask-SSIM, L1 and body L1 of one generated image against its ground truth.

    The same values the registered metrics of these names average (mask-SSIM and body L1 use
    the body mask of the target ``keypoints``; body L1 is None when the mask is empty).
    """
    mask = body_mask(keypoints, *reference.shape[:2])
    return {
        "ssim": ssim(generated, reference),
        "mask_ssim": ssim(apply_mask(generated, mask), apply_mask(reference, mask)),
        "l1": l1(generated, reference),
        "mask_l1": masked_l1(generated, reference, mask),
    }
