"""A small library of named target poses, for demos and for transferring a person without a
second photo.

Each pose is defined once in normalised coordinates: (fy, fx) per joint as fractions of the
frame's height and width, laid out like the datasets (one person centred, head top near 5% and
soles near 95% of the height, shoulders about a third of the width apart). `named_pose` turns
one into pixel keypoints for any frame size, e.g. Market's 128x64 or DeepFashion's 256x176.
Because x is a fraction of the width, a pose is relatively wider on the wider DeepFashion frame,
as the people in that dataset are.

Conventions, as in the datasets' OpenPose annotations: left and right are the person's own
sides, so a frontal person's right shoulder is at the smaller x; a back view has the sides
swapped and no nose or eyes (the ears are kept, as OpenPose usually finds them from behind); a
profile shows only the near eye and ear. "side_left" faces the image's left edge (the person's
left side towards the camera).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from posetransfer.errors import InputError
from posetransfer.pose import FLIP_PERM, JOINT_NAMES, MISSING, N_JOINTS

Fractions = tuple[tuple[float, float] | None, ...]  # 18 (fy, fx) or None for a missing joint


def _pose(**joints: tuple[float, float] | None) -> Fractions:
    """Build an 18-joint tuple from keyword joint names (missing names -> None)."""
    unknown = set(joints) - set(JOINT_NAMES)
    if unknown:
        raise ValueError(f"unknown joints {sorted(unknown)}")
    return tuple(joints.get(name) for name in JOINT_NAMES)


def _mirror(pose: Fractions) -> Fractions:
    """The pose seen in a mirror: x -> 1 - x and left/right joints swapped."""
    return tuple(
        None if pose[j] is None else (pose[j][0], 1.0 - pose[j][1])  # type: ignore[index]
        for j in FLIP_PERM
    )


def _turn_around(pose: Fractions) -> Fractions:
    """The person turned by 180 degrees (front <-> back): x -> 1 - x, labels kept.

    Turning round moves the person's right side to the image's right, unlike `_mirror`.
    """
    return tuple(None if p is None else (p[0], 1.0 - p[1]) for p in pose)


def _replace(pose: Fractions, **joints: tuple[float, float] | None) -> Fractions:
    """A copy of ``pose`` with some joints moved (or removed with None)."""
    out = list(pose)
    for name, value in joints.items():
        out[JOINT_NAMES.index(name)] = value
    return tuple(out)


# Standing, facing the camera, arms hanging. Proportions of a ~0.9-height person.
_FRONT = _pose(
    nose=(0.12, 0.50),
    neck=(0.22, 0.50),
    right_shoulder=(0.23, 0.33),
    right_elbow=(0.38, 0.28),
    right_wrist=(0.52, 0.28),
    left_shoulder=(0.23, 0.67),
    left_elbow=(0.38, 0.72),
    left_wrist=(0.52, 0.72),
    right_hip=(0.50, 0.40),
    right_knee=(0.70, 0.40),
    right_ankle=(0.90, 0.40),
    left_hip=(0.50, 0.60),
    left_knee=(0.70, 0.60),
    left_ankle=(0.90, 0.60),
    right_eye=(0.105, 0.46),
    left_eye=(0.105, 0.54),
    right_ear=(0.115, 0.41),
    left_ear=(0.115, 0.59),
)

# Seen from behind: the same silhouette, the person's sides swapped, no face.
_BACK = _replace(_turn_around(_FRONT), nose=None, right_eye=None, left_eye=None)

# Profile facing the image's left: the left side is towards the camera.
_SIDE_LEFT = _pose(
    nose=(0.12, 0.40),
    neck=(0.22, 0.50),
    right_shoulder=(0.23, 0.47),
    right_elbow=(0.38, 0.46),
    right_wrist=(0.52, 0.44),
    left_shoulder=(0.23, 0.53),
    left_elbow=(0.38, 0.52),
    left_wrist=(0.52, 0.50),
    right_hip=(0.50, 0.48),
    right_knee=(0.70, 0.47),
    right_ankle=(0.90, 0.48),
    left_hip=(0.50, 0.52),
    left_knee=(0.70, 0.51),
    left_ankle=(0.90, 0.52),
    left_eye=(0.105, 0.43),
    left_ear=(0.115, 0.53),
)

# Walking towards the image's left, mid-stride: left leg forward, arms swinging opposite.
_WALKING_LEFT = _pose(
    nose=(0.12, 0.40),
    neck=(0.22, 0.50),
    right_shoulder=(0.23, 0.47),
    right_elbow=(0.37, 0.40),
    right_wrist=(0.49, 0.34),
    left_shoulder=(0.23, 0.53),
    left_elbow=(0.37, 0.60),
    left_wrist=(0.49, 0.66),
    right_hip=(0.50, 0.48),
    right_knee=(0.69, 0.58),
    right_ankle=(0.88, 0.70),
    left_hip=(0.50, 0.52),
    left_knee=(0.69, 0.40),
    left_ankle=(0.90, 0.30),
    left_eye=(0.105, 0.43),
    left_ear=(0.115, 0.53),
)

# Walking towards the camera: the right leg forward (lower in the image), arms swinging.
_WALKING = _replace(
    _FRONT,
    right_elbow=(0.37, 0.30),
    right_wrist=(0.50, 0.34),
    left_elbow=(0.38, 0.73),
    left_wrist=(0.52, 0.70),
    right_knee=(0.72, 0.41),
    right_ankle=(0.93, 0.42),
    left_knee=(0.69, 0.59),
    left_ankle=(0.87, 0.58),
)

_ARMS_UP = _replace(
    _FRONT,
    right_elbow=(0.12, 0.25),
    right_wrist=(0.02, 0.29),
    left_elbow=(0.12, 0.75),
    left_wrist=(0.02, 0.71),
)

# Arms spread sideways; at 128x64 the frame is too narrow for straight arms, so they reach
# the frame's sides.
_ARMS_OUT = _replace(
    _FRONT,
    right_elbow=(0.25, 0.17),
    right_wrist=(0.27, 0.03),
    left_elbow=(0.25, 0.83),
    left_wrist=(0.27, 0.97),
)

_HANDS_ON_HIPS = _replace(
    _FRONT,
    right_elbow=(0.36, 0.16),
    right_wrist=(0.48, 0.34),
    left_elbow=(0.36, 0.84),
    left_wrist=(0.48, 0.66),
)

# Waving with the right hand raised beside the head.
_WAVE = _replace(_FRONT, right_elbow=(0.22, 0.14), right_wrist=(0.06, 0.20))

_POSES: dict[str, tuple[Fractions, str]] = {
    "front": (_FRONT, "standing, facing the camera, arms down"),
    "back": (_BACK, "standing, seen from behind"),
    "side_left": (_SIDE_LEFT, "standing in profile, facing the image's left"),
    "side_right": (_mirror(_SIDE_LEFT), "standing in profile, facing the image's right"),
    "walking": (_WALKING, "walking towards the camera"),
    "walking_left": (_WALKING_LEFT, "walking towards the image's left, mid-stride"),
    "walking_right": (_mirror(_WALKING_LEFT), "walking towards the image's right, mid-stride"),
    "arms_up": (_ARMS_UP, "facing the camera, both arms raised above the head"),
    "arms_out": (_ARMS_OUT, "facing the camera, arms spread sideways"),
    "hands_on_hips": (_HANDS_ON_HIPS, "facing the camera, hands on the hips"),
    "wave": (_WAVE, "facing the camera, waving with the right hand"),
}

POSE_NAMES: tuple[str, ...] = tuple(_POSES)
POSE_DESCRIPTIONS: Mapping[str, str] = {name: desc for name, (_, desc) in _POSES.items()}


def pose_fractions(name: str) -> np.ndarray:
    """The normalised definition of a named pose: float (18, 2) (fy, fx), NaN for missing."""
    if name not in _POSES:
        raise InputError(f"unknown pose {name!r}; choose from {', '.join(POSE_NAMES)}")
    return np.array(
        [(np.nan, np.nan) if p is None else p for p in _POSES[name][0]], dtype=np.float64
    )


def named_pose(name: str, height: int = 128, width: int = 64) -> np.ndarray:
    """Pixel keypoints of a named pose for a ``height x width`` frame.

    Args:
        name: one of `POSE_NAMES` ("front", "back", "side_left", "side_right", "walking",
            "walking_left", "walking_right", "arms_up", "arms_out", "hands_on_hips", "wave").
        height: frame height (128 for Market, 256 for DeepFashion).
        width: frame width (64 for Market, 176 for DeepFashion).

    Returns:
        (18, 2) int64 (y, x) keypoints, -1 for joints the pose leaves out.

    Raises:
        InputError: for an unknown name or a non-positive size.
    """
    if height < 1 or width < 1:
        raise InputError(f"frame size must be positive, got {height}x{width}")
    frac = pose_fractions(name)
    missing = np.isnan(frac[:, 0])
    pix = np.rint(np.nan_to_num(frac) * [height, width]).astype(np.int64)
    pix = np.minimum(pix, [height - 1, width - 1])
    pix[missing] = MISSING
    assert pix.shape == (N_JOINTS, 2)
    return pix
