"""Everything about the 18-joint pose: layout, limbs, heatmaps, flipping, drawing and file formats.

Keypoints are integer (y, x) pairs in image coordinates, shape (18, 2) (``kps``), with -1 in
both coordinates for a missing joint. The joint order is OpenPose COCO-18 (see `JOINT_NAMES`),
which is the order of the public Market-1501 and DeepFashion annotation files.

File formats (as distributed with the public splits):
- annotation CSV: separator ``:``, header ``name:keypoints_y:keypoints_x``, each coordinate
  field a JSON list of 18 ints.
- pairs CSV: comma-separated, header ``from,to``, image file names.
- OpenPose JSON (``*_keypoints.json``): ``people[i].pose_keypoints_2d`` = 18 x (x, y, confidence).

The readers take UTF-8 with or without the byte-order mark that spreadsheet programs write, and
Unix or Windows line endings.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from posetransfer.errors import InputError, InputWarning, require_file, where
from posetransfer.files import atomic_open, atomic_write

if TYPE_CHECKING:  # torch is imported where heatmaps are made, so file formats stay light
    import torch

N_JOINTS = 18
MISSING = -1

JOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip

# The 19 limbs drawn for a skeleton, as 0-based joint-index pairs.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)  # fmt: skip

# Joint i of a horizontally flipped person is joint FLIP_PERM[i] of the original.
FLIP_PERM: tuple[int, ...] = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)

# The public splits drop images missing any of these (r-shoulder, l-shoulder, r-hip, l-hip).
TORSO_JOINTS: tuple[int, ...] = (2, 5, 8, 11)

# Joints whose extent defines the head box of PCKh (nose, neck, eyes, ears).
HEAD_JOINTS: tuple[int, ...] = (0, 1, 14, 15, 16, 17)

# One colour per limb for drawing (OpenPose-like rainbow), RGB.
LIMB_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
    (200, 200, 200),
)  # fmt: skip

ANNOTATION_HEADER = ("name", "keypoints_y", "keypoints_x")
PAIRS_HEADER = ("from", "to")

# How many offending rows a warning about a file lists before it only counts them.
WARN_EXAMPLES = 3


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


# --------------------------------------------------------------------------------------------
# Drawing


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


# --------------------------------------------------------------------------------------------
# Annotation CSV


def _read_text(path: Path, what: str) -> str:
    """The text of a UTF-8 file (a leading byte-order mark dropped); InputError if it is not."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file; save the {what} as UTF-8 CSV")
    except OSError as e:
        raise InputError(f"{path}: cannot read the {what} ({e.strerror or e})")


def _parse_coords(text: str, path: Path, row: int, column: str) -> list[int]:
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        raise InputError(f"{where(path, row)}: {column} is not a JSON list: {text.strip()[:60]!r}")
    if not isinstance(values, list):
        raise InputError(f"{where(path, row)}: {column} is not a list: {text.strip()[:60]!r}")
    if len(values) != N_JOINTS:
        raise InputError(f"{where(path, row)}: {column} has {len(values)} joints, expected 18")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or float(v) != int(v):
            raise InputError(f"{where(path, row)}: {column} holds a non-integer value {v!r}")
    return [int(v) for v in values]


def read_annotations(
    path: str | Path,
    image_dir: str | Path | None = None,
    image_size: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """Read an annotation CSV (``name:keypoints_y:keypoints_x``) into ``{name: kps (18, 2)}``.

    Args:
        path: the annotation file.
        image_dir: if given, every annotated name must exist in this folder.
        image_size: if given, the (height, width) of the images: rows placing a joint off the
            image are reported in one `KeypointWarning` (the file, the count and the first
            rows). The keypoints are returned as written; see `drop_outside`.

    Raises:
        InputError: naming the file and row, for a missing header, a row without three fields,
            an empty name, a coordinate list that is not 18 integers, a repeated name, or an
            unknown image.
    """
    path = require_file(path, "annotation file")
    out: dict[str, np.ndarray] = {}
    rows: dict[str, int] = {}
    # Rows end in \n, \r\n or \r only: str.splitlines would also split names at characters
    # such as \x0c or \u2028, which write_annotations allows.
    text = _read_text(path, "annotation file")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not lines or tuple(c.strip() for c in lines[0].split(":")) != ANNOTATION_HEADER:
        raise InputError(f"{where(path, 1)}: expected the header 'name:keypoints_y:keypoints_x'")
    for row, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(":")
        if len(fields) != 3:
            raise InputError(
                f"{where(path, row)}: expected 3 ':'-separated fields, found {len(fields)}"
            )
        name = fields[0].strip()
        if not name:
            raise InputError(f"{where(path, row)}: empty image name")
        ys = _parse_coords(fields[1], path, row, "keypoints_y")
        xs = _parse_coords(fields[2], path, row, "keypoints_x")
        if name in out:
            raise InputError(f"{where(path, row)}: image {name!r} is annotated twice")
        kps = np.stack([ys, xs], axis=1).astype(np.int64)
        kps[~visible(kps)] = MISSING  # a joint is missing as a whole
        out[name], rows[name] = kps, row
    if image_dir is not None:
        image_dir = Path(image_dir)
        for name, row in rows.items():
            if not (image_dir / name).is_file():
                raise InputError(f"{where(path, row)}: image {name!r} not found in {image_dir}")
    if image_size is not None:
        _warn_outside(path, out, rows, *image_size)
    return out


def _warn_outside(
    path: Path, annotations: Mapping[str, np.ndarray], rows: Mapping[str, int], h: int, w: int
) -> None:
    """One KeypointWarning for the rows of ``path`` that place a joint off an h x w image."""
    off = {name: visible(k) & ~in_image(k, h, w) for name, k in annotations.items()}
    bad = [name for name, mask in off.items() if mask.any()]
    if not bad:
        return
    shown = []
    for name in bad[:WARN_EXAMPLES]:
        joints = ", ".join(JOINT_NAMES[j] for j in np.flatnonzero(off[name]))
        shown.append(f"row {rows[name]} ({name}: {joints})")
    more = ", ..." if len(bad) > WARN_EXAMPLES else ""
    warnings.warn(
        f"{path}: {len(bad)} row(s) place joints outside the {h}x{w} image: "
        f"{', '.join(shown)}{more}",
        KeypointWarning,
        stacklevel=3,
    )


def check_annotation_name(name: str, what: str = "image name") -> str:
    """``name`` if it can be an annotation row's name; else InputError naming ``what``.

    The annotation format separates its fields with ``:`` and its rows with newlines, so a name
    holding either (or starting or ending with spaces, which the reader strips) would not read
    back as written. Annotation files are UTF-8, so a name that is not valid UTF-8 (a Linux file
    name of undecodable bytes, which Python holds as surrogate escapes) cannot be written.
    """
    if not name or ":" in name or "\n" in name or "\r" in name or name != name.strip():
        raise InputError(
            f"{what} {name!r} cannot be written to an annotation file: names may not contain "
            "':' or line breaks, nor start or end with spaces; rename the file"
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a file name of undecodable bytes, e.g. "\udcff" on Linux
        raise InputError(
            f"{what} {name!r} cannot be written to an annotation file: names must be valid "
            "UTF-8, the encoding of annotation files; rename the file"
        ) from None
    return name


def format_coords(values: Iterable[int]) -> str:
    """One coordinate field of an annotation row: ``[1, 2, -1, ...]``."""
    return "[" + ", ".join(str(int(v)) for v in values) + "]"


def write_annotations(path: str | Path, annotations: Mapping[str, np.ndarray]) -> Path:
    """Write ``{name: kps (18, 2)}`` as an annotation CSV in the public format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [":".join(ANNOTATION_HEADER)]
    for name, kps in annotations.items():
        check_annotation_name(name)
        kps = np.asarray(kps)
        if kps.shape != (N_JOINTS, 2):
            raise ValueError(f"keypoints of {name!r} have shape {kps.shape}, expected (18, 2)")
        lines.append(f"{name}: {format_coords(kps[:, 0])}: {format_coords(kps[:, 1])}")
    return atomic_write(path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# Pairs CSV


def read_pairs(path: str | Path, known: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Read a pairs CSV (``from,to``) into a list of (condition name, target name).

    Args:
        path: the pairs file.
        known: if given, the image names allowed (e.g. the annotation file's keys); a pair
            naming any other image raises InputError with its row.
    """
    path = require_file(path, "pairs file")
    known_set = set(known) if known is not None else None
    pairs: list[tuple[str, str]] = []
    reader = csv.reader(io.StringIO(_read_text(path, "pairs file"), newline=""))
    try:
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header[-2:]) != PAIRS_HEADER:
            raise InputError(f"{where(path, 1)}: expected the header 'from,to'")
        n_cols = len(header)  # some exports carry a leading index column
        for fields in reader:
            row = reader.line_num
            if not fields or not "".join(fields).strip():
                continue
            if len(fields) != n_cols:
                raise InputError(
                    f"{where(path, row)}: expected {n_cols} fields, found {len(fields)}"
                )
            src, tgt = fields[-2].strip(), fields[-1].strip()
            if not src or not tgt:
                raise InputError(f"{where(path, row)}: empty image name")
            if known_set is not None:
                for name in (src, tgt):
                    if name not in known_set:
                        raise InputError(
                            f"{where(path, row)}: image {name!r} is not in the annotation file"
                        )
            pairs.append((src, tgt))
    except csv.Error as e:
        raise InputError(f"{where(path, reader.line_num)}: not a valid CSV row ({e})")
    return pairs


def write_pairs(path: str | Path, pairs: Iterable[tuple[str, str]]) -> Path:
    """Write (from, to) pairs as a pairs CSV with header ``from,to``.

    Raises:
        InputError: for a name that would not read back as written (empty, or starting or
            ending with spaces, which `read_pairs` strips); nothing is written then.
    """
    path = Path(path)
    pairs = [tuple(pair) for pair in pairs]
    for pair in pairs:
        for name in pair:
            if not name or name != name.strip():
                raise InputError(
                    f"image name {name!r} cannot be written to a pairs file: names may not be "
                    "empty, nor start or end with spaces; rename the file"
                )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(PAIRS_HEADER)
        writer.writerows(pairs)
    return path


# --------------------------------------------------------------------------------------------
# OpenPose JSON


def read_openpose_json(
    path: str | Path, person: int = 0, min_confidence: float = 0.05
) -> np.ndarray:
    """Read one person's COCO-18 keypoints from an OpenPose ``*_keypoints.json`` file.

    Args:
        path: the JSON file OpenPose wrote with ``--write_json`` (model COCO, 18 joints).
        person: index into ``people``.
        min_confidence: joints with a lower confidence (OpenPose writes 0 for undetected ones)
            are marked missing.

    Returns:
        (18, 2) int64 (y, x) keypoints, rounded to the nearest pixel, -1 for missing.
    """
    path = require_file(path, "OpenPose JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})")
    people = data.get("people") if isinstance(data, dict) else None
    if not people:
        raise InputError(f"{path}: no 'people' in this OpenPose file")
    if not 0 <= person < len(people):
        raise InputError(f"{path}: person {person} requested, the file has {len(people)}")
    flat = people[person].get("pose_keypoints_2d") or people[person].get("pose_keypoints")
    if flat is None:
        raise InputError(f"{path}: person {person} has no 'pose_keypoints_2d'")
    if len(flat) != N_JOINTS * 3:
        raise InputError(
            f"{path}: pose_keypoints_2d has {len(flat) // 3} joints; expected 18 (COCO model; "
            "BODY_25 output is not supported)"
        )
    arr = np.asarray(flat, dtype=np.float64).reshape(N_JOINTS, 3)
    kps = np.stack([np.round(arr[:, 1]), np.round(arr[:, 0])], axis=1).astype(np.int64)
    kps[arr[:, 2] < min_confidence] = MISSING
    return kps
