"""Drawing: skeletons, sample grids and per-pair strips."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from posetransfer.core.files import save_image
from posetransfer.pose.joints import LIMB_COLORS, LIMBS, visible

# A pair strip: five panels (condition, its pose, target, its pose, generated), 2 px apart.
STRIP_PANELS = 5
STRIP_GAP = 2


def draw_skeleton(
    kps: np.ndarray,
    height: int,
    width: int,
    background: np.ndarray | Image.Image | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw the 19 limbs and the joints of ``kps`` as an RGB uint8 image (H, W, 3).

    Args:
        kps: (18, 2) (y, x) keypoints, -1 missing.
        height: output height.
        width: output width.
        background: optional image to draw over (resized to H x W); black otherwise.
        thickness: line width in pixels; defaults to about 1/40 of the image height.
    """
    if background is None:
        canvas = Image.new("RGB", (width, height))
    else:
        bg = background if isinstance(background, Image.Image) else Image.fromarray(background)
        canvas = bg.convert("RGB").resize((width, height))
    draw = ImageDraw.Draw(canvas)
    t = thickness or max(1, round(height / 40))
    kps = np.asarray(kps)
    vis = visible(kps)
    for (a, b), color in zip(LIMBS, LIMB_COLORS):
        if vis[a] and vis[b]:
            draw.line([(kps[a, 1], kps[a, 0]), (kps[b, 1], kps[b, 0])], fill=color, width=t)
    r = max(1, t)
    for i in np.flatnonzero(vis):
        y, x = kps[i]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=LIMB_COLORS[i % len(LIMB_COLORS)])
    return np.asarray(canvas)


def hstack(images: Sequence[np.ndarray], gap: int = 2, fill: int = 255) -> np.ndarray:
    """Images of one height side by side with a white gap."""
    h = images[0].shape[0]
    sep = np.full((h, gap, 3), fill, np.uint8)
    parts: list[np.ndarray] = []
    for i, im in enumerate(images):
        if i:
            parts.append(sep)
        parts.append(im)
    return np.concatenate(parts, axis=1)


def vstack(rows: Sequence[np.ndarray], gap: int = 2, fill: int = 255) -> np.ndarray:
    """Rows of images stacked with a white gap, narrower ones padded on the right."""
    w = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, w - r.shape[1]), (0, 0)), constant_values=fill) for r in rows]
    sep = np.full((gap, w, 3), fill, np.uint8)
    parts: list[np.ndarray] = []
    for i, r in enumerate(padded):
        if i:
            parts.append(sep)
        parts.append(r)
    return np.concatenate(parts, axis=0)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Save a uint8 image as PNG, atomically (see `posetransfer.core.files.atomic_open`)."""
    return save_image(image, path, format="PNG")


def sample_grid(
    src_imgs: Sequence[np.ndarray],
    tgt_kps: Sequence[np.ndarray],
    fakes: Sequence[np.ndarray],
    tgt_imgs: Sequence[np.ndarray],
    columns: int = 2,
) -> np.ndarray:
    """Rows of (condition, target pose, generated, ground truth), laid out in ``columns`` groups."""
    h, w = src_imgs[0].shape[:2]
    cells = [
        hstack([s, draw_skeleton(k, h, w), f, t])
        for s, k, f, t in zip(src_imgs, tgt_kps, fakes, tgt_imgs)
    ]
    rows_per_col = -(-len(cells) // columns)
    cols = [vstack(cells[i : i + rows_per_col]) for i in range(0, len(cells), rows_per_col)]
    hmax = max(c.shape[0] for c in cols)
    cols = [np.pad(c, ((0, hmax - c.shape[0]), (0, 0), (0, 0)), constant_values=255) for c in cols]
    return hstack(cols, gap=8)


def comparison_grid(
    src_imgs: Sequence[np.ndarray],
    tgt_kps: Sequence[np.ndarray],
    fakes: dict[str, Sequence[np.ndarray]],
    tgt_imgs: Sequence[np.ndarray],
    columns: int = 2,
) -> np.ndarray:
    """Rows of (condition, target pose, one image per model, ground truth) under a header.

    ``fakes`` maps a short column label (about 10 characters fit a 64-pixel column) to each
    model's generated images, in the order of the rows.
    """
    h, w = src_imgs[0].shape[:2]
    labels = ["condition", "target pose", *fakes, "truth"]
    header = hstack([text_strip(text, w) for text in labels])
    cells = [
        hstack([s, draw_skeleton(k, h, w), *(f[i] for f in fakes.values()), t])
        for i, (s, k, t) in enumerate(zip(src_imgs, tgt_kps, tgt_imgs))
    ]
    rows_per_col = -(-len(cells) // columns)
    cols = [
        vstack([header, *cells[i : i + rows_per_col]]) for i in range(0, len(cells), rows_per_col)
    ]
    hmax = max(c.shape[0] for c in cols)
    cols = [np.pad(c, ((0, hmax - c.shape[0]), (0, 0), (0, 0)), constant_values=255) for c in cols]
    return hstack(cols, gap=8)


def text_strip(text: str, width: int, height: int = 14) -> np.ndarray:
    """``text`` in black on white, centred in a ``height x width`` strip (PIL's default font)."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(strip)
    left, top, right, bottom = draw.textbbox((0, 0), text)
    x = max(0, (width - (right - left)) // 2)
    draw.text((x, (height - (bottom - top)) // 2 - top), text, fill="black")
    return np.asarray(strip)


def pair_strip(
    src_img: np.ndarray,
    src_kps: np.ndarray,
    tgt_img: np.ndarray,
    tgt_kps: np.ndarray,
    fake: np.ndarray,
) -> np.ndarray:
    """condition | condition pose | target | target pose | generated, as one image.

    Its size is `pair_strip_size` of the images' size.
    """
    h, w = src_img.shape[:2]
    return hstack(
        [src_img, draw_skeleton(src_kps, h, w), tgt_img, draw_skeleton(tgt_kps, h, w), fake],
        gap=STRIP_GAP,
    )


def pair_strip_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) of the `pair_strip` of images of ``height x width``."""
    return height, STRIP_PANELS * width + (STRIP_PANELS - 1) * STRIP_GAP
