"""Target poses in every form a user gives them, as keypoints in the model's frame.

`target_keypoints` takes any of

- a named pose, e.g. ``"walking"`` (`posetransfer.keypoints.named_poses.POSE_NAMES`): defined in
  the frame already;
- ``"annotation.csv:NAME"``: row NAME of an annotation CSV, framed (`annotation_target`);
- a path to an OpenPose ``*.json`` file: its first person, framed (`openpose_target`);
- a photo (a path, a PIL image or a uint8 (H, W, 3) array): its person's pose, framed
  (`photo_target`);
- an (18, 2) (y, x) keypoint array: frame pixels, or with ``target_size`` the pixels of an
  image of that size, framed (`array_target`).

Keypoints of another image are brought into the frame with `frame_skeleton`, the rule that
frames source photos. Joints outside their image are treated as missing with a
`posetransfer.pose.KeypointWarning`; a pose left with fewer than two joints is an
`InputError`. Detection is passed in (``detect``), so these functions load no model themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from posetransfer.core.files import image_size, read_image, to_rgb_array
from posetransfer.errors import InputError
from posetransfer.keypoints.framing import DEFAULT_FILL, check_keypoints, frame_skeleton
from posetransfer.keypoints.named_poses import POSE_NAMES, named_pose
from posetransfer.pose import read_annotations, read_openpose_json, require_joints

if TYPE_CHECKING:
    from posetransfer.keypoints.detect import Detection

ImageInput = str | Path | np.ndarray | Image.Image
TargetPose = str | Path | np.ndarray | Image.Image

# Finds the person in a photo: (photo, how messages name it) -> Detection, or InputError.
Detect = Callable[[np.ndarray, str], "Detection"]

# Where an annotation row's image may lie, relative to the CSV (the public layout keeps
# `<root>/market-annotation-test.csv` beside `<root>/test/`).
ANNOTATION_IMAGE_DIRS = (".", "test", "train")


# --------------------------------------------------------------------------------------------
# Inputs


def read_photo(image: ImageInput, what: str = "image") -> np.ndarray:
    """A photo as uint8 (H, W, 3) RGB from a path, a PIL image or an array.

    Args:
        image: a file path, a PIL image of any mode, or a uint8 (H, W), (H, W, 3) or (H, W, 4)
            array.
        what: how error messages name an in-memory image.

    Raises:
        InputError: the file is missing or unreadable, or the array is not a uint8 image.
    """
    if isinstance(image, str | Path):
        path = Path(image)
        if path.is_dir():
            raise InputError(f"{what} is a folder, not an image file: {path}")
        return read_image(path)
    return to_rgb_array(image, what)


def split_annotation_ref(text: str) -> tuple[Path, str] | None:
    """``"annotation.csv:NAME"`` -> (csv path, NAME); None for anything else.

    Annotation files use ':' as their separator, so a name never holds one: the split is at the
    last ':'.
    """
    csv_part, sep, name = str(text).rpartition(":")
    if not sep or not csv_part.lower().endswith(".csv"):
        return None
    return Path(csv_part), name.strip()


# --------------------------------------------------------------------------------------------
# One function per kind of target


def photo_target(
    photo: np.ndarray,
    height: int,
    width: int,
    detect: Detect,
    fill: float = DEFAULT_FILL,
    what: str = "target image",
) -> np.ndarray:
    """The pose of the person in a photo, framed.

    Raises:
        InputError: ``detect``'s (no person found), or fewer than two joints found.
    """
    det = detect(photo, what)
    return frame_skeleton(det.kps, height, width, photo.shape[:2], det.box, fill, what)


def array_target(
    kps: np.ndarray | list | tuple,
    height: int,
    width: int,
    fill: float = DEFAULT_FILL,
    target_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """An (18, 2) (y, x) array: frame pixels, or with ``target_size`` an image's, framed.

    Joints outside the frame (or the ``target_size`` image) are treated as missing, with a
    warning.

    Raises:
        InputError: not an (18, 2) array of finite numbers, or fewer than two joints inside.
    """
    what = "target keypoints"
    if target_size is not None:
        h, w = (int(v) for v in target_size)
        return frame_skeleton(kps, height, width, (h, w), fill=fill, what=what)
    return require_joints(check_keypoints(kps, what, (height, width)), what)


def openpose_target(
    path: str | Path, height: int, width: int, fill: float = DEFAULT_FILL
) -> np.ndarray:
    """The first person of an OpenPose JSON file, framed (its image size is unknown: centred).

    Raises:
        InputError: missing or malformed file, or fewer than two joints.
    """
    kps = read_openpose_json(path)
    return frame_skeleton(kps, height, width, fill=fill, what=str(path))


def annotation_target(
    csv: str | Path, name: str, height: int, width: int, fill: float = DEFAULT_FILL
) -> np.ndarray:
    """Row ``name`` of an annotation CSV, framed.

    When the row's image is found beside the CSV (or in its ``test/`` or ``train/`` folder),
    its size is used: joints outside that image are treated as missing (with a warning) and a
    person cut off by its edge stays on the frame's edge.

    Raises:
        InputError: unreadable CSV, no such row, or fewer than two joints.
    """
    csv = Path(csv)
    rows = read_annotations(csv)
    if name not in rows:
        known = ", ".join(list(rows)[:3]) + (" ..." if len(rows) > 3 else "")
        raise InputError(f"{csv}: no row named {name!r} ({len(rows)} rows: {known})")
    size = None
    for sub in ANNOTATION_IMAGE_DIRS:
        if (csv.parent / sub / name).is_file():
            size = image_size(csv.parent / sub / name)
            break
    return frame_skeleton(rows[name], height, width, size, fill=fill, what=f"{csv}:{name}")


def _text_target(
    text: str, is_path: bool, height: int, width: int, detect: Detect, fill: float
) -> np.ndarray:
    """A string or path: a named pose, an annotation row, an OpenPose JSON file or a photo."""
    if not is_path and text in POSE_NAMES:
        return named_pose(text, height, width)
    ref = split_annotation_ref(text)
    if ref is not None:
        return annotation_target(*ref, height, width, fill)
    path = Path(text)
    if path.suffix.lower() == ".json":
        return openpose_target(path, height, width, fill)
    if path.is_file():
        return photo_target(read_photo(path), height, width, detect, fill, str(path))
    if path.is_dir():
        raise InputError(f"target pose is a folder, not a file: {path}")
    if is_path or path.suffix or "/" in text or "\\" in text:
        raise InputError(f"target pose file not found: {path}")
    raise InputError(
        f"unknown target pose {text!r}: not a named pose ({', '.join(POSE_NAMES)}) "
        "nor an existing file"
    )


# --------------------------------------------------------------------------------------------
# Any target


def target_keypoints(
    target_pose: TargetPose | list | tuple,
    height: int,
    width: int,
    detect: Detect,
    fill: float = DEFAULT_FILL,
    target_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Any target pose (see the module's list of forms) as (18, 2) keypoints in the frame.

    Args:
        target_pose: a pose name, ``"annotation.csv:NAME"``, an OpenPose ``.json`` path, a
            photo (path, PIL image or uint8 (H, W, 3) array) or an (18, 2) (y, x) array.
        height: frame height.
        width: frame width.
        detect: finds the person of a target photo (e.g. `PoseTransfer.detect`).
        fill: fraction of the frame height a framed person spans.
        target_size: (height, width) of the image an (18, 2) array belongs to; the skeleton
            is then framed like a photo's. Ignored for the other forms.

    Returns:
        (18, 2) int64 (y, x) keypoints in the frame, -1 for missing joints.

    Raises:
        InputError: unknown pose name (the message lists the known ones), missing or
            unreadable file, no person in a target photo, too few joints.
    """
    if isinstance(target_pose, Image.Image) or (
        isinstance(target_pose, np.ndarray) and target_pose.ndim == 3
    ):
        photo = read_photo(target_pose, "target image")
        return photo_target(photo, height, width, detect, fill, "target image")
    if isinstance(target_pose, np.ndarray | list | tuple):
        return array_target(target_pose, height, width, fill, target_size)
    if not isinstance(target_pose, str | Path):
        raise InputError(f"unsupported target pose of type {type(target_pose).__name__}")
    text = str(target_pose).strip()
    return _text_target(text, isinstance(target_pose, Path), height, width, detect, fill)
