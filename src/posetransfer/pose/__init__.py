"""Everything about the 18-joint pose, for data, metrics, models and apps alike.

- `posetransfer.pose.joints`: the joint layout (OpenPose COCO-18), limbs, the joint rules (torso,
  at least two joints, inside the image), flipping, heatmaps.
- `posetransfer.pose.formats`: annotation CSV, pairs CSV and OpenPose JSON files.
- `posetransfer.pose.masks`: the body mask of mask-SSIM and the body-mask L1 loss.
- `posetransfer.pose.draw`: skeletons, sample grids and per-pair strips.

The names of `joints`, `formats` and `draw_skeleton` are re-exported here.
"""

from __future__ import annotations

from posetransfer.pose.draw import (
    draw_skeleton,
)
from posetransfer.pose.formats import (
    ANNOTATION_HEADER,
    PAIRS_HEADER,
    WARN_EXAMPLES,
    check_annotation_name,
    format_coords,
    read_annotations,
    read_openpose_json,
    read_pairs,
    write_annotations,
    write_pairs,
)
from posetransfer.pose.joints import (
    FLIP_PERM,
    HEAD_JOINTS,
    JOINT_NAMES,
    LIMB_COLORS,
    LIMBS,
    MIN_JOINTS,
    MISSING,
    N_JOINTS,
    TORSO_JOINTS,
    KeypointWarning,
    drop_outside,
    flip_keypoints,
    has_torso,
    in_image,
    keypoints_to_heatmaps,
    missing_torso,
    require_joints,
    require_torso,
    visible,
)

__all__ = [
    "ANNOTATION_HEADER",
    "FLIP_PERM",
    "HEAD_JOINTS",
    "JOINT_NAMES",
    "KeypointWarning",
    "LIMBS",
    "LIMB_COLORS",
    "MIN_JOINTS",
    "MISSING",
    "N_JOINTS",
    "PAIRS_HEADER",
    "TORSO_JOINTS",
    "WARN_EXAMPLES",
    "check_annotation_name",
    "draw_skeleton",
    "drop_outside",
    "flip_keypoints",
    "format_coords",
    "has_torso",
    "in_image",
    "keypoints_to_heatmaps",
    "missing_torso",
    "read_annotations",
    "read_openpose_json",
    "read_pairs",
    "require_joints",
    "require_torso",
    "visible",
    "write_annotations",
    "write_pairs",
]
