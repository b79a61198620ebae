"""Attention maps of PATN and APATN blocks, rendered over the images (paper Figs. 10 and 11).

* PATB masks: each block's mask M = sigmoid(s) [C, H/4, W/4] averaged over channels, upsampled
  to the image and drawn as a heat map over the target image. M lives in the target layout: it
  says where a block changes the image code.
* APATB attention: row q of a block's alignment matrix A says how much target location q draws
  from each location of the condition image. For chosen target points, or averaged over every
  location inside the target's body, the row is reshaped to H/4 x W/4, upsampled and drawn over
  the condition image.

The functions take a model and tensors, so they work on any network, trained or not: every
generator's ``return_attention=True`` gives its blocks' maps in one layout, and its
``attention_over`` says which image they lie over. `posetransfer attention` wraps them for a
checkpoint and a pair of a dataset.

The body region is a simple mask made here from the target keypoints (`keypoint_mask`: thick
limbs, joint discs and the filled torso), not the mask-SSIM protocol's mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from posetransfer.core.files import read_image, save_image
from posetransfer.data.datasets import image_to_tensor, tensor_to_image
from posetransfer.errors import InputError, require_dir
from posetransfer.models.blocks import eval_mode
from posetransfer.pose import (
    LIMBS,
    draw_skeleton,
    drop_outside,
    has_torso,
    keypoints_to_heatmaps,
    read_annotations,
    read_pairs,
    visible,
)

# Control points of the classic "jet" colour map (value -> RGB in [0, 1]).
_JET_X = np.array([0.0, 0.125, 0.375, 0.625, 0.875, 1.0])
_JET_RGB = np.array(
    [[0, 0, 0.5], [0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0], [0.5, 0, 0]], dtype=np.float64
)


def heat_colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (any shape) to jet colours: RGB uint8 of shape (..., 3)."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    rgb = np.stack([np.interp(v, _JET_X, _JET_RGB[:, c]) for c in range(3)], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


def overlay_heatmap(
    image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, normalize: bool = True
) -> np.ndarray:
    """Blend a heat map over an RGB image.

    Args:
        image: RGB uint8 (H, W, 3).
        heat: (H, W) values; stretched to [0, 1] per map when ``normalize`` (a constant map
            becomes 0), else clipped to [0, 1].
        alpha: weight of the heat colours.

    Returns:
        RGB uint8 (H, W, 3).
    """
    heat = np.asarray(heat, dtype=np.float64)
    if heat.shape != image.shape[:2]:
        raise ValueError(f"heat map {heat.shape} does not match the image {image.shape[:2]}")
    if normalize:
        lo, hi = heat.min(), heat.max()
        heat = (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)
    blend = (1 - alpha) * image.astype(np.float64) + alpha * heat_colormap(heat)
    return np.round(blend).clip(0, 255).astype(np.uint8)


def keypoint_mask(
    kps: np.ndarray, height: int, width: int, radius: int | None = None
) -> np.ndarray:
    """A rough body mask from keypoints: limbs as thick lines, discs at joints, filled torso.

    Args:
        kps: (18, 2) (y, x) keypoints, -1 missing.
        height: mask height.
        width: mask width.
        radius: half the limb width and the disc radius; about 1/32 of the height by default.

    Returns:
        bool (H, W); all False when no joint is visible.
    """
    r = radius or max(2, round(height / 32))
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    kps = np.asarray(kps)
    vis = visible(kps)
    if has_torso(kps):
        # r-shoulder, l-shoulder, l-hip, r-hip in order around the torso.
        draw.polygon([(int(kps[j, 1]), int(kps[j, 0])) for j in (2, 5, 11, 8)], fill=255)
    for a, b in LIMBS:
        if vis[a] and vis[b]:
            draw.line([(kps[a, 1], kps[a, 0]), (kps[b, 1], kps[b, 0])], fill=255, width=2 * r)
    for y, x in kps[vis]:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    return np.asarray(canvas) > 0


def network(model: nn.Module) -> nn.Module:
    """The network itself, also inside a generator prepared by `for_inference`."""
    return getattr(model, "generator", model)


def _batch1(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t if t.dim() == 4 else t.unsqueeze(0) for t in tensors]


def _upsample(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """[N, h, w] -> (N, H, W) float arrays, bilinear."""
    up = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)
    return up[:, 0].cpu().numpy()


@torch.no_grad()
def block_attention(
    model: nn.Module,
    src_img: torch.Tensor,
    src_pose: torch.Tensor,
    tgt_pose: torch.Tensor,
    queries: Sequence[np.ndarray] | None = None,
) -> tuple[torch.Tensor, list[list[np.ndarray]]]:
    """Run a generator on one pair and return its blocks' attention as image-size maps.

    Every generator's ``return_attention=True`` gives per block [B, N, h*w]: N maps over the
    h x w code cells, of the target (PATN's masks, one per channel) or of the condition image
    (APATN's alignment, one per target cell), as the network's ``attention_over`` says.

    Args:
        model: a generator (or one prepared by `for_inference`); evaluated in eval mode,
            restored afterwards.
        src_img: condition image [3, H, W] (or [1, 3, H, W]) in [-1, 1].
        src_pose: its heatmaps [18, H, W].
        tgt_pose: target heatmaps [18, H, W].
        queries: row indices per query (target cells for APATN, see `query_cells`); a query
            averages its rows. None: one query averaging every row (PATN: the channel mean).

    Returns:
        The generated image [3, H, W] and ``maps[query][block]``: float (H, W) maps,
        upsampled bilinearly.
    """
    name = type(network(model)).__name__
    if getattr(network(model), "attention_over", None) is None:
        raise InputError(f"attention maps exist for PATN and APATN generators, not {name}")
    src_img, src_pose, tgt_pose = _batch1(src_img, src_pose, tgt_pose)
    with eval_mode(model):
        fake, attention = model(src_img, src_pose, tgt_pose, return_attention=True)
    size = tuple(src_img.shape[-2:])
    h, w = _code_size(size, attention[0].shape[-1])
    maps = []
    for rows in [None] if queries is None else queries:
        picked = [a[0] if rows is None else a[0, torch.as_tensor(rows)] for a in attention]
        maps.append(list(_upsample(torch.stack([p.mean(0).view(h, w) for p in picked]), size)))
    return fake[0], maps


def patb_masks(
    model: nn.Module, src_img: torch.Tensor, src_pose: torch.Tensor, tgt_pose: torch.Tensor
) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Run a PATN on one pair and return its image and each block's channel-mean mask.

    Args:
        model: a PATN (or an ablation built on it); evaluated in eval mode, restored afterwards.
        src_img: condition image [3, H, W] (or [1, 3, H, W]) in [-1, 1].
        src_pose: its heatmaps [18, H, W].
        tgt_pose: target heatmaps [18, H, W].

    Returns:
        The generated image [3, H, W] and per block a float (H, W) map in [0, 1].
    """
    _require(model, "target", "PATB masks need a PATN generator")
    fake, maps = block_attention(model, src_img, src_pose, tgt_pose)
    return fake, maps[0]


def query_cells(
    code_size: tuple[int, int],
    image_size: tuple[int, int],
    points: Sequence[tuple[int, int]] | None = None,
    region: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Row indices of A (flattened H/4 x W/4 cells) for each query: one per point, or one region.

    Args:
        code_size: (h, w) of the block code.
        image_size: (H, W) of the image.
        points: (y, x) image pixels; each becomes the one cell holding it.
        region: bool (H, W) mask; its query is every cell at least half covered by it (any cell
            touching it if none is).

    Returns:
        A list of 1-D int arrays of flat cell indices.
    """
    (h, w), (height, width) = code_size, image_size
    queries = []
    for y, x in points or ():
        if not (0 <= y < height and 0 <= x < width):
            raise InputError(f"point (y={y}, x={x}) lies outside the {height}x{width} image")
        queries.append(np.array([(y * h // height) * w + x * w // width]))
    if region is not None:
        cover = F.adaptive_avg_pool2d(torch.from_numpy(region.astype(np.float32))[None], (h, w))[0]
        cells = np.flatnonzero(cover.numpy() >= 0.5)
        if cells.size == 0:
            cells = np.flatnonzero(cover.numpy() > 0)
        if cells.size == 0:
            raise InputError("the target body mask is empty (no visible joints): give points")
        queries.append(cells)
    return queries


@torch.no_grad()
def apatb_attention(
    model: nn.Module,
    src_img: torch.Tensor,
    src_pose: torch.Tensor,
    tgt_pose: torch.Tensor,
    queries: Sequence[np.ndarray],
) -> tuple[torch.Tensor, list[list[np.ndarray]]]:
    """Run an APATN on one pair and return where each query looks in the condition image.

    Args:
        model: an APATN (or an ablation of it); evaluated in eval mode, restored afterwards.
        src_img: condition image [3, H, W] (or [1, 3, H, W]) in [-1, 1].
        src_pose: its heatmaps [18, H, W].
        tgt_pose: target heatmaps [18, H, W].
        queries: flat cell indices per query (see `query_cells`); a query of several cells
            averages their rows.

    Returns:
        The generated image [3, H, W] and ``maps[query][block]``: a float (H, W) map over the
        condition image (the attention weights, upsampled; each map's cells sum to 1 before
        upsampling).
    """
    _require(model, "condition", "APATB attention needs an APATN generator")
    return block_attention(model, src_img, src_pose, tgt_pose, queries)


def _require(model: nn.Module, over: str, message: str) -> None:
    net = network(model)
    if getattr(net, "attention_over", None) != over:
        raise InputError(f"{message}, got {type(net).__name__}")


def _code_size(image_size: tuple[int, int], cells: int) -> tuple[int, int]:
    """(h, w) of a code of ``cells`` cells: the image halved until the counts agree."""
    height, width = image_size
    for k in range(8):
        if (height >> k) * (width >> k) == cells:
            return height >> k, width >> k
    raise ValueError(f"{cells} code cells do not fit a {height}x{width} image")


def _tile(image: np.ndarray, label: str, scale: int) -> Image.Image:
    """An image tile, enlarged by ``scale``, under a one-line label."""
    img = Image.fromarray(image).resize(
        (image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST
    )
    tile = Image.new("RGB", (img.width, img.height + 14), "white")
    tile.paste(img, (0, 14))
    ImageDraw.Draw(tile).text((2, 1), label, fill="black")
    return tile


def save_strip(tiles: Sequence[tuple[str, np.ndarray]], path: str | Path, scale: int = 1) -> Path:
    """Save labelled RGB images side by side as one PNG (atomically; the folder is created)."""
    imgs = [_tile(image, label, scale) for label, image in tiles]
    strip = Image.new("RGB", (sum(t.width + 2 for t in imgs) - 2, max(t.height for t in imgs)))
    strip.paste("white", (0, 0, strip.width, strip.height))
    x = 0
    for t in imgs:
        strip.paste(t, (x, 0))
        x += t.width + 2
    return save_image(strip, path, format="PNG")


def _mark(image: np.ndarray, y: int, x: int, radius: int) -> np.ndarray:
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline="white", width=2)
    draw.ellipse([x - 1, y - 1, x + 1, y + 1], fill="black")
    return np.asarray(canvas)


def save_attention_maps(
    model: nn.Module,
    src_img: torch.Tensor,
    src_pose: torch.Tensor,
    tgt_pose: torch.Tensor,
    out_dir: str | Path,
    tgt_img: torch.Tensor | None = None,
    tgt_kps: np.ndarray | None = None,
    points: Sequence[tuple[int, int]] | None = None,
    alpha: float = 0.5,
) -> list[Path]:
    """Render the block attention of a PATN or APATN for one pair as PNG files.

    Writes ``pair.png`` (condition, target, generated) and, for a PATN, ``patb_masks.png`` (all
    blocks' masks over the target image) plus ``patb_mask_block<k>.png``; for an APATN,
    ``apatb_point<j>.png`` per point (the target with the point marked, then each block's
    attention over the condition image) or, without points, ``apatb_body.png`` (averaged over
    the target body mask).

    Args:
        model: a PATN or APATN (registered variants included).
        src_img: condition image [3, H, W] in [-1, 1].
        src_pose: its heatmaps [18, H, W].
        tgt_pose: target heatmaps [18, H, W].
        out_dir: folder for the PNGs (created).
        tgt_img: the real target image [3, H, W], if known; the masks are drawn over it (over
            the generated image otherwise).
        tgt_kps: target keypoints (18, 2): needed for the body mask (APATN without points) and
            drawn as a skeleton when there is no target image.
        points: APATN query points as (y, x) image pixels.
        alpha: weight of the heat colours.

    Returns:
        The written paths.
    """
    out_dir = Path(out_dir)
    height, width = src_img.shape[-2:]
    scale = max(1, 256 // height)  # small (Market) images are enlarged for viewing
    cond = tensor_to_image(src_img)
    # PATN's masks lie over the target; APATN's rows (target cells) look into the condition.
    over = getattr(network(model), "attention_over", None)
    region, queries = None, None
    if over == "condition":
        if not points:
            if tgt_kps is None:
                raise InputError("APATN attention needs target keypoints or points")
            region = keypoint_mask(tgt_kps, height, width)
        code = (height // 2 ** _n_down(network(model)), width // 2 ** _n_down(network(model)))
        queries = query_cells(code, (height, width), points, region)
    fake, maps = block_attention(model, src_img, src_pose, tgt_pose, queries)
    gen = tensor_to_image(fake)
    if tgt_img is not None:
        target = tensor_to_image(tgt_img)
    elif tgt_kps is not None:
        target = draw_skeleton(tgt_kps, height, width)
    else:
        target = gen
    base = target if tgt_img is not None else gen
    pair = [("condition", cond), ("target", target), ("generated", gen)]
    paths = [save_strip(pair, out_dir / "pair.png", scale)]
    if over == "target":
        overlays = [overlay_heatmap(base, m, alpha) for m in maps[0]]
        tiles = [("target", target)] + [(f"block {k + 1}", o) for k, o in enumerate(overlays)]
        paths.append(save_strip(tiles, out_dir / "patb_masks.png", scale))
        for k, o in enumerate(overlays):
            path = out_dir / f"patb_mask_block{k + 1}.png"
            paths.append(save_strip([(f"block {k + 1}", o)], path, scale))
        return paths
    r = max(3, height // 32)
    for j, per_block in enumerate(maps):
        if region is not None:
            shown = _tint(base, region)
            name, label = "apatb_body.png", "body"
        else:
            y, x = points[j]
            shown = _mark(base, y, x, r)
            name, label = f"apatb_point{j + 1}.png", f"y={y} x={x}"
        tiles = [(label, shown)] + [
            (f"block {k + 1}", overlay_heatmap(cond, m, alpha)) for k, m in enumerate(per_block)
        ]
        paths.append(save_strip(tiles, out_dir / name, scale))
    return paths


def _tint(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    red = np.array([255.0, 0.0, 0.0])
    out = image.astype(np.float64)
    out[mask] = 0.6 * out[mask] + 0.4 * red
    return out.round().astype(np.uint8)


def _n_down(model: nn.Module) -> int:
    # Stride-2 convs of the image encoder = downsamplings between image and code.
    return sum(1 for m in model.image_encoder if isinstance(m, nn.Conv2d) and m.stride == (2, 2))


# --------------------------------------------------------------------------------------------
# One pair of a dataset


def load_pair(
    dataset_root: str | Path,
    annotations: str | Path,
    pairs: str | Path | None = None,
    index: int | None = None,
    pair: tuple[str, str] | None = None,
    split: str = "test",
    size: tuple[int, int] | None = None,
    sigma: float = 6.0,
    legacy_heatmaps: bool = False,
) -> dict:
    """Read one (condition, target) pair: by its row in a pairs CSV or by its two names.

    Images are looked up in ``ROOT/<split>/`` and then in ``ROOT/`` itself. Keypoints and
    heatmaps are those `posetransfer.data.datasets.PairDataset` gives the generator: joints
    annotated outside the image are missing, and the annotation file gets one
    `posetransfer.pose.KeypointWarning` naming its first such rows.

    Args:
        dataset_root: the dataset folder.
        annotations: annotation CSV holding both images.
        pairs: pairs CSV (needed with ``index``).
        index: 0-based pair index in the pairs file (the first pair when neither index nor
            pair is given).
        pair: (condition name, target name) instead of an index.
        split: sub-folder holding the images.
        size: expected (H, W) of the images (the generator's), if known.
        sigma: heatmap Gaussian sigma.
        legacy_heatmaps: the authors' uint8-truncated DeepFashion heatmaps.

    Returns:
        A dict with ``src_img``, ``tgt_img`` [3, H, W] in [-1, 1], ``src_pose``, ``tgt_pose``
        [18, H, W], ``src_kps``, ``tgt_kps`` (18, 2), ``src_name``, ``tgt_name``.
    """
    root = require_dir(dataset_root, "dataset folder")
    if pair is None:
        if pairs is None:
            raise InputError("pairs=None: give a pairs CSV (or pair=(FROM, TO))", arg="pairs")
        rows = read_pairs(pairs)
        index = 0 if index is None else index
        if not 0 <= index < len(rows):
            raise InputError(
                f"index={index}: out of range, {pairs} holds {len(rows)} pairs", arg="index"
            )
        pair = rows[index]
    images = []
    for name in pair:
        candidates = [root / split / name, root / name]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise InputError(f"image {name!r} not found in {root / split} nor {root}")
        images.append(read_image(path, *(size or (None, None))))
    if images[0].shape != images[1].shape:
        raise InputError(f"{pair[0]} and {pair[1]} differ in size")
    height, width = images[0].shape[:2]
    kps = read_annotations(annotations, image_size=(height, width))
    item: dict = {"src_name": pair[0], "tgt_name": pair[1]}
    for role, name, img in zip(("src", "tgt"), pair, images):
        if name not in kps:
            raise InputError(f"image {name!r} is not in the annotation file {annotations}")
        joints = drop_outside(kps[name], height, width)  # as PairDataset gives them
        item[f"{role}_img"] = image_to_tensor(img)
        item[f"{role}_kps"] = joints
        item[f"{role}_pose"] = keypoints_to_heatmaps(
            joints, height, width, sigma=sigma, legacy_uint8=legacy_heatmaps
        )
    return item
