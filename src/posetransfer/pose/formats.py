"""Keypoint and pair files, as distributed with the public splits.

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
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from posetransfer.core.files import atomic_open, atomic_write
from posetransfer.errors import InputError, require_file, where
from posetransfer.pose.joints import (
    JOINT_NAMES,
    MISSING,
    N_JOINTS,
    KeypointWarning,
    in_image,
    visible,
)

ANNOTATION_HEADER = ("name", "keypoints_y", "keypoints_x")
PAIRS_HEADER = ("from", "to")

# How many offending rows a warning about a file lists before it only counts them.
WARN_EXAMPLES = 3

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
        image_size: if given, the (height, width) of the images: annotations of another
            resolution (a coordinate 25% or more beyond the image) are refused; rows placing a
            joint just off the image are reported in one `KeypointWarning` (the file, the count
            and the first rows) and returned as written; see `drop_outside`.

    Raises:
        InputError: naming the file and row, for a missing header, a row without three fields,
            an empty name, a coordinate list that is not 18 integers, a repeated name, or an
            unknown image; naming the file, for keypoints of another resolution.
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


OTHER_RESOLUTION_FACTOR = 1.25
"""A coordinate beyond this multiple of the image side means another resolution."""


def _warn_outside(
    path: Path, annotations: Mapping[str, np.ndarray], rows: Mapping[str, int], h: int, w: int
) -> None:
    """Refuse annotations of another resolution; one KeypointWarning for a few stray joints.

    Annotations written for larger images (another resolution) place joints far beyond the
    h x w image (a quarter of its side or more): generated images would be smeared silently, so
    they are refused with the image's size and the largest coordinate found. Joints just off
    the image (an annotator's or a detector's slip) are reported in one warning and kept as
    written.
    """
    off = {name: visible(k) & ~in_image(k, h, w) for name, k in annotations.items()}
    bad = [name for name, mask in off.items() if mask.any()]
    if not bad:
        return
    seen = [k[visible(k)] for k in annotations.values()]
    seen = np.concatenate(seen) if seen else np.zeros((0, 2), np.int64)
    top_y, top_x = (int(v) for v in seen.max(axis=0))
    if top_y >= OTHER_RESOLUTION_FACTOR * h or top_x >= OTHER_RESOLUTION_FACTOR * w:
        raise InputError(
            f"{path}: the keypoints do not fit the {h}x{w} images (height x width): "
            f"{len(bad)} of {len(annotations)} rows place joints outside them, the largest "
            f"coordinates are y={top_y}, x={top_x}; were they written for images of another "
            "size?"
        )
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
