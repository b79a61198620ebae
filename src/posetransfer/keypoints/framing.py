"""Person framing: bring a photo of any size to the model's frame around the person in it.

The datasets show one person per image, centred, spanning about 90% of the image height
(Market-1501 128x64, DeepFashion 256x176, H x W). `frame_person` reproduces that from any photo
and its keypoints: it estimates the person's full extent from the keypoints (head top above the
eyes, feet below the ankles, flesh beyond the joints), picks a window of the model's aspect ratio
around it with the person at `DEFAULT_FILL` of the window height (or width, for a wide pose),
and resamples that window to the model's size. The aspect ratio is kept exactly (one scale for
both axes); parts of the window outside the photo are padded, by default by replicating the
photo's edge pixels (`DEFAULT_PAD` = "edge"), which continues the background as the datasets'
full-frame crops do, rather than adding flat bands the models never saw; a constant RGB colour
(e.g. (128, 128, 128), or white for DeepFashion-style studio shots) can be asked for instead.
Where the photo cuts the person off (e.g. an upper-body shot), the window is aligned with that
photo edge instead of being padded past it.

The mapping is a `Frame`: ``framed = (original - offset) * scale``, with `apply_keypoints`,
`invert_keypoints`, `crop` and `paste_back` (put a generated frame back into the photo).
`frame_skeleton` applies the same rule to keypoints alone (a target pose taken from another
image).

Keypoints given by a user (`check_keypoints`) hold a joint either inside the image they belong to
or not at all: a joint with a coordinate outside the image (a negative one, or one past the
image's size when that is known) is treated as missing, with a `KeypointWarning` naming
it. A joint that is simply absent is -1 in both coordinates, as in the datasets.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from posetransfer.core.files import to_rgb_array
from posetransfer.errors import InputError
from posetransfer.pose import (
    JOINT_NAMES,
    MISSING,
    N_JOINTS,
    KeypointWarning,
    in_image,
    require_joints,
    visible,
)

DEFAULT_FILL = 0.9
DEFAULT_PAD = "edge"

PadMode = str | tuple[int, int, int]

# Person extent beyond the joints, in units of the torso length (shoulder midpoint to hip
# midpoint, ~0.3 of the body height): the head top lies ~0.65 above the shoulders, the soles
# ~0.15 below the ankles, and shoulders/hands reach ~0.15 beyond their joints.
_HEAD_ABOVE_SHOULDERS = 0.65
_ABOVE_TOP_JOINT = 0.2
_BELOW_BOTTOM_JOINT = 0.15
_BESIDE_JOINTS = 0.15


# --------------------------------------------------------------------------------------------
# Checking given keypoints


def check_keypoints(
    kps: Any, what: str = "keypoints", bounds: tuple[int, int] | None = None
) -> np.ndarray:
    """Given keypoints as (18, 2) int64 (y, x), -1 for missing joints.

    Coordinates are rounded to the nearest pixel. A joint with a -1 coordinate is missing. A
    joint outside the image (a coordinate below 0, or at or past ``bounds``) is made missing,
    and a `KeypointWarning` naming ``what`` and those joints says so.

    Args:
        kps: anything numpy turns into an (18, 2) array of numbers.
        what: how messages name the keypoints.
        bounds: (height, width) of the image the keypoints belong to, if known.

    Raises:
        InputError: for another shape, a non-numeric array, or a NaN or infinite value.
    """
    arr = np.asarray(kps)
    if arr.shape != (N_JOINTS, 2):
        raise InputError(f"{what} must be an (18, 2) array of (y, x), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise InputError(f"{what} must hold finite numbers")
    out = np.rint(arr).astype(np.int64)
    out[~visible(out)] = MISSING
    inside = np.all(out >= 0, axis=1) if bounds is None else in_image(out, *bounds)
    outside = visible(out) & ~inside
    if outside.any():
        region = (
            "joints with a negative coordinate"
            if bounds is None
            else f"joints outside the {bounds[0]}x{bounds[1]} image"
        )
        joints = ", ".join(
            f"{JOINT_NAMES[j]} (y={out[j, 0]}, x={out[j, 1]})" for j in np.flatnonzero(outside)
        )
        warnings.warn(
            f"{what}: {region}, treated as missing: {joints}", KeypointWarning, stacklevel=2
        )
        out[outside] = MISSING
    return out


@dataclass(frozen=True)
class Frame:
    """A similarity transform from a source image to the model's frame (no rotation).

    A source pixel coordinate ``p = (y, x)`` maps to ``(p - offset) * scale`` in the frame.

    Attributes:
        scale: frame pixels per source pixel (the same for both axes).
        offset: (y, x) of the frame's top-left corner in source pixel coordinates (may be
            negative or beyond the source: that part of the frame is padding).
        size: (height, width) of the frame.
        source_size: (height, width) of the source image.
    """

    scale: float
    offset: tuple[float, float]
    size: tuple[int, int]
    source_size: tuple[int, int]

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")
        if min(self.size) < 1 or min(self.source_size) < 1:
            raise ValueError(f"sizes must be positive: {self.size}, {self.source_size}")

    @property
    def window(self) -> tuple[float, float, float, float]:
        """The frame's extent in source coordinates: (top, left, bottom, right)."""
        top, left = self.offset
        return top, left, top + self.size[0] / self.scale, left + self.size[1] / self.scale

    def apply_keypoints(self, kps: np.ndarray, drop_outside: bool = True) -> np.ndarray:
        """Map source keypoints (18, 2) (y, x) into the frame (rounded; missing stay -1).

        Args:
            kps: source keypoints, -1 for missing.
            drop_outside: mark joints that land outside the frame as missing.
        """
        return _map(kps, self.offset, self.scale, self.size if drop_outside else None)

    def invert_keypoints(self, kps: np.ndarray, drop_outside: bool = True) -> np.ndarray:
        """Map frame keypoints back to the source image (rounded; missing stay -1).

        Args:
            kps: frame keypoints, -1 for missing.
            drop_outside: mark joints that land outside the source image as missing.
        """
        kps = np.asarray(kps)
        vis = visible(kps)
        # Pixel centres map to pixel centres: y_src + 0.5 = (y_frame + 0.5) / scale + top.
        src = (kps + 0.5) / self.scale + np.asarray(self.offset) - 0.5
        return _finish(src, vis, self.source_size if drop_outside else None)

    def crop(self, image: np.ndarray | Image.Image, pad: PadMode = DEFAULT_PAD) -> np.ndarray:
        """Resample the frame's window of ``image`` to the frame size.

        Args:
            image: the source image, uint8 (H, W, 3) RGB or PIL image, of size `source_size`.
            pad: "edge" (replicate the border pixels) or an RGB colour for the part of the
                window outside the image.

        Returns:
            uint8 (height, width, 3) RGB array.
        """
        src = to_rgb_array(image)
        if src.shape[:2] != self.source_size:
            raise InputError(
                f"image is {src.shape[0]}x{src.shape[1]}, the frame was made for "
                f"{self.source_size[0]}x{self.source_size[1]}"
            )
        top, left, bottom, right = self.window
        # Pad just enough for the window to lie inside the array, then let PIL resample the
        # (fractional) window box with an antialiasing filter.
        h, w = self.source_size
        y0, x0 = min(0, int(np.floor(top))), min(0, int(np.floor(left)))
        y1, x1 = max(h, int(np.ceil(bottom))), max(w, int(np.ceil(right)))
        padded = _pad(src, (-y0, y1 - h), (-x0, x1 - w), pad)
        box = (left - x0, top - y0, right - x0, bottom - y0)
        out = Image.fromarray(padded).resize((self.size[1], self.size[0]), Image.LANCZOS, box=box)
        return np.asarray(out)

    def paste_back(
        self,
        framed: np.ndarray | Image.Image,
        original: np.ndarray | Image.Image,
        feather: int = 0,
    ) -> np.ndarray:
        """Put a frame-sized image (e.g. a generated one) back into the source photo.

        The frame is resized to its window in the source and pasted over ``original``; the part
        of the window outside the photo is dropped.

        Args:
            framed: uint8 (height, width, 3) image in the frame (e.g. the generator's output).
            original: the source photo, of size `source_size`.
            feather: width in source pixels of a linear blend at the window's border, hiding
                the seam (0: hard paste).

        Returns:
            uint8 RGB array of the source size.
        """
        base = to_rgb_array(original, "original image").copy()
        gen = to_rgb_array(framed, "framed image")
        if base.shape[:2] != self.source_size:
            raise InputError(
                f"original image is {base.shape[0]}x{base.shape[1]}, the frame was made for "
                f"{self.source_size[0]}x{self.source_size[1]}"
            )
        if gen.shape[:2] != self.size:
            raise InputError(
                f"framed image is {gen.shape[0]}x{gen.shape[1]}, expected "
                f"{self.size[0]}x{self.size[1]}"
            )
        top, left, bottom, right = (round(v) for v in self.window)
        if bottom <= top or right <= left:
            return base
        resized = np.asarray(
            Image.fromarray(gen).resize((right - left, bottom - top), Image.LANCZOS)
        )
        h, w = self.source_size
        ys, xs = slice(max(top, 0), min(bottom, h)), slice(max(left, 0), min(right, w))
        if ys.start >= ys.stop or xs.start >= xs.stop:
            return base
        patch = resized[ys.start - top : ys.stop - top, xs.start - left : xs.stop - left]
        if feather > 0:
            alpha = _feather_mask(bottom - top, right - left, feather)
            alpha = alpha[ys.start - top : ys.stop - top, xs.start - left : xs.stop - left]
            region = base[ys, xs].astype(np.float32)
            blended = region + alpha[..., None] * (patch.astype(np.float32) - region)
            base[ys, xs] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        else:
            base[ys, xs] = patch
        return base


def person_box(
    kps: np.ndarray, image_size: tuple[int, int] | None = None
) -> tuple[float, float, float, float]:
    """Estimate the whole person's extent from keypoints: (top, left, bottom, right).

    The box of the visible joints is grown by fractions of the torso length (head top, soles,
    flesh beyond the joints; see the module's constants). Without a visible shoulder and hip
    the torso length is taken as a third of the joints' height (or width, if larger); it is
    never taken below a fifth of that (a torso foreshortened towards the camera).

    Args:
        kps: (18, 2) (y, x) keypoints, -1 missing; at least two must be visible.
        image_size: (height, width): clip the box to the image (the person is cut off there).

    Raises:
        InputError: when fewer than two joints are visible.
    """
    kps = np.asarray(kps)
    if kps.shape != (N_JOINTS, 2):
        raise InputError(f"keypoints must be (18, 2), got {kps.shape}")
    require_joints(kps, "keypoints (to frame a person)")
    vis = visible(kps)
    pts = kps[vis].astype(np.float64)
    top, left = pts.min(axis=0)
    bottom, right = pts.max(axis=0) + 1  # exclusive
    shoulders = [j for j in (2, 5) if vis[j]]
    hips = [j for j in (8, 11) if vis[j]]
    extent = max(bottom - top, right - left)
    shoulder_y: float | None = None
    if shoulders and hips:
        shoulder_y = float(kps[shoulders, 0].mean())
        torso = float(np.hypot(*(kps[shoulders].mean(0) - kps[hips].mean(0))))
        unit = max(torso, extent / 5)  # floor for a foreshortened torso
    else:
        unit = extent / 3
    new_top = top - _ABOVE_TOP_JOINT * unit
    if shoulder_y is not None:
        new_top = min(new_top, shoulder_y - _HEAD_ABOVE_SHOULDERS * unit)
    box = (
        new_top,
        left - _BESIDE_JOINTS * unit,
        bottom + _BELOW_BOTTOM_JOINT * unit,
        right + _BESIDE_JOINTS * unit,
    )
    if image_size is not None:
        h, w = image_size
        box = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], float(h)), min(box[3], float(w)))
    return box


def frame_for_box(
    box: tuple[float, float, float, float],
    height: int,
    width: int,
    source_size: tuple[int, int],
    fill: float = DEFAULT_FILL,
) -> Frame:
    """The `Frame` of size ``height x width`` that centres ``box`` at ``fill`` of its height.

    If the box is relatively wider than the frame, it fills ``fill`` of the width instead. A
    box side lying on the source image's border (a person cut off by the photo) is kept on the
    frame's border rather than padded past it, when the window fits in the image that way.

    Args:
        box: (top, left, bottom, right) in source pixels.
        height: frame height (e.g. 128 or 256).
        width: frame width (e.g. 64 or 176).
        source_size: (height, width) of the source image.
        fill: fraction of the frame the box should span, in (0, 1].
    """
    if not 0 < fill <= 1:
        raise InputError(f"fill={fill!r}: must be in (0, 1]", arg="fill")
    top, left, bottom, right = box
    box_h, box_w = max(bottom - top, 1e-6), max(right - left, 1e-6)
    scale = min(fill * height / box_h, fill * width / box_w)
    win_h, win_w = height / scale, width / scale
    cy, cx = (top + bottom) / 2, (left + right) / 2
    y0 = _align(cy - win_h / 2, win_h, top, bottom, source_size[0])
    x0 = _align(cx - win_w / 2, win_w, left, right, source_size[1])
    return Frame(scale=scale, offset=(y0, x0), size=(height, width), source_size=source_size)


def frame_person(
    image: np.ndarray | Image.Image,
    kps: np.ndarray,
    height: int,
    width: int,
    fill: float = DEFAULT_FILL,
    pad: PadMode = DEFAULT_PAD,
    include_box: tuple[float, float, float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, Frame]:
    """Frame the person in a photo for the model: crop, pad and resize, keeping the aspect.

    Args:
        image: the photo, uint8 (H, W, 3) RGB or PIL image, any size.
        kps: the person's (18, 2) (y, x) keypoints in the photo (e.g. from `KeypointDetector`).
        height: frame height (128 for Market, 256 for DeepFashion).
        width: frame width (64 for Market, 176 for DeepFashion).
        fill: fraction of the frame height the person spans (0.9 as in the datasets).
        pad: "edge" or an RGB colour for the part of the frame outside the photo.
        include_box: an extra (top, left, bottom, right) the person's extent must cover, e.g.
            `Detection.box`, whose landmarks reach the hands and feet beyond the 18 joints.

    Returns:
        ``(framed image (height, width, 3) uint8, framed kps (18, 2) int64, Frame)``.

    Joints outside the photo are treated as missing, with a `KeypointWarning`
    (`check_keypoints`): the person's extent is estimated from the joints the photo shows.

    Raises:
        InputError: for malformed keypoints, fewer than two visible joints inside the photo,
            or a malformed image.
    """
    rgb = to_rgb_array(image)
    size = (rgb.shape[0], rgb.shape[1])
    kps = check_keypoints(kps, bounds=size)
    frame = frame_around(kps, height, width, size, include_box, fill)
    return frame.crop(rgb, pad), frame.apply_keypoints(kps), frame


def frame_skeleton(
    kps: np.ndarray,
    height: int,
    width: int,
    image_size: tuple[int, int] | None = None,
    include_box: tuple[float, float, float, float] | None = None,
    fill: float = DEFAULT_FILL,
    what: str = "keypoints",
) -> np.ndarray:
    """Bring keypoints of an image of any size into a ``height x width`` model frame.

    The rule is `frame_person`'s, applied to the skeleton alone: the person's estimated extent
    (`person_box`) is centred at ``fill`` of the frame height, so a target pose taken from
    another photo fills the frame the way the framed source photo does. Every joint inside the
    image lands inside the frame.

    Args:
        kps: (18, 2) (y, x) keypoints in the other image's pixels, -1 missing.
        height: frame height.
        width: frame width.
        image_size: (height, width) of the image the keypoints come from, if known: joints
            outside it are treated as missing (`check_keypoints` warns), and where that image
            cuts the person off (an upper-body shot) the frame keeps the cut on its edge, as it
            does for photos. Unknown (an OpenPose JSON file): the body is simply centred.
        include_box: an extra (top, left, bottom, right) the extent must cover (e.g. a
            detection's box).
        fill: fraction of the frame the person spans.
        what: how messages name the keypoints.

    Returns:
        (18, 2) int64 keypoints in the frame, -1 missing.

    Raises:
        InputError: for malformed keypoints or fewer than two visible joints (after dropping
            those outside the image).
    """
    kps = check_keypoints(kps, what, image_size)
    require_joints(kps, what)
    frame = frame_around(kps, height, width, image_size, include_box, fill)
    return frame.apply_keypoints(kps)


# --------------------------------------------------------------------------------------------
# Helpers


def _align(start: float, length: float, lo: float, hi: float, limit: int) -> float:
    """Shift a window [start, start + length) so a box side clipped at 0 / limit stays there."""
    if length > limit:
        return start  # the window is bigger than the image: padding is unavoidable
    if hi >= limit and start + length > limit:
        return limit - length
    if lo <= 0 and start < 0:
        return 0.0
    return start


def _map(
    kps: np.ndarray, offset: tuple[float, float], scale: float, bounds: tuple[int, int] | None
) -> np.ndarray:
    kps = np.asarray(kps)
    if kps.shape != (N_JOINTS, 2):
        raise InputError(f"keypoints must be (18, 2), got {kps.shape}")
    vis = visible(kps)
    # Pixel centres map to pixel centres: y_frame + 0.5 = (y_src + 0.5 - top) * scale.
    out = (kps + 0.5 - np.asarray(offset)) * scale - 0.5
    return _finish(out, vis, bounds)


def _finish(coords: np.ndarray, vis: np.ndarray, bounds: tuple[int, int] | None) -> np.ndarray:
    """Round mapped coordinates; joints missing before (``~vis``) or off ``bounds`` are -1."""
    out = np.rint(coords).astype(np.int64)
    keep = vis if bounds is None else vis & in_image(out, *bounds)
    out[~keep] = MISSING
    return out


def frame_around(
    kps: np.ndarray,
    height: int,
    width: int,
    image_size: tuple[int, int] | None,
    include_box: tuple[float, float, float, float] | None = None,
    fill: float = DEFAULT_FILL,
) -> Frame:
    """The Frame putting the person of ``kps`` (plus ``include_box``) in a height x width frame.

    Args:
        kps: (18, 2) (y, x) keypoints, at least two visible.
        height: frame height.
        width: frame width.
        image_size: (height, width) of the image holding the person: the person's box is
            clipped to it and a side cut off by its edge stays on the frame's edge. None (the
            image is unknown): the box is simply centred.
        include_box: an extra (top, left, bottom, right) the person's extent must cover.
        fill: fraction of the frame the person spans.
    """
    box = union_box(person_box(kps, image_size), include_box)
    # With no image there is no edge to align to: a 1x1 "source" never holds the window, so
    # `frame_for_box` centres the box without aligning it.
    return frame_for_box(box, height, width, image_size or (1, 1), fill)


def union_box(
    box: tuple[float, float, float, float], other: tuple[float, float, float, float] | None
) -> tuple[float, float, float, float]:
    """The smallest (top, left, bottom, right) box holding both; ``box`` if other is None."""
    if other is None:
        return box
    return (
        min(box[0], other[0]),
        min(box[1], other[1]),
        max(box[2], other[2]),
        max(box[3], other[3]),
    )


def _check_pad(pad: PadMode) -> PadMode:
    if isinstance(pad, str):
        if pad != "edge":
            raise InputError(f"pad={pad!r}: must be 'edge' or an RGB colour", arg="pad")
        return pad
    color = np.asarray(pad)
    if color.shape != (3,) or not np.all((color >= 0) & (color <= 255)):
        raise InputError(f"pad={pad!r}: an RGB colour must be three values in 0..255", arg="pad")
    return tuple(int(c) for c in color)  # type: ignore[return-value]


def _pad(
    image: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], pad: PadMode
) -> np.ndarray:
    pad = _check_pad(pad)
    if rows == (0, 0) and cols == (0, 0):
        return image
    widths = (rows, cols, (0, 0))
    if pad == "edge":
        return np.pad(image, widths, mode="edge")
    out = np.empty((image.shape[0] + sum(rows), image.shape[1] + sum(cols), 3), dtype=np.uint8)
    out[:] = np.asarray(pad, dtype=np.uint8)
    out[rows[0] : rows[0] + image.shape[0], cols[0] : cols[0] + image.shape[1]] = image
    return out


def _feather_mask(height: int, width: int, feather: int) -> np.ndarray:
    """Alpha (H, W) rising linearly from ~0 at the border to 1 at ``feather`` pixels inside."""
    ramp_y = np.minimum(np.arange(height) + 1, np.arange(height)[::-1] + 1) / (feather + 1)
    ramp_x = np.minimum(np.arange(width) + 1, np.arange(width)[::-1] + 1) / (feather + 1)
    return np.clip(np.minimum(ramp_y[:, None], ramp_x[None, :]), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Source:
    """A source photo made ready for the model.

    Attributes:
        photo: the original photo, uint8 (H, W, 3).
        image: the person framed to the model's size, uint8 (height, width, 3).
        kps: the person's keypoints in the frame, (18, 2) int64.
        frame: the mapping from the photo to the frame.
        photo_kps: the person's keypoints in the photo.
    """

    photo: np.ndarray
    image: np.ndarray
    kps: np.ndarray
    frame: Frame
    photo_kps: np.ndarray

    def paste_back(self, generated: np.ndarray) -> np.ndarray:
        """The photo with a generated frame pasted into the person's window.

        About two frame pixels are blended at the window's border to hide the seam.
        """
        feather = max(1, round(2 / self.frame.scale))
        return self.frame.paste_back(generated, self.photo, feather=feather)
