"""The body model: a small 3D kinematic figure, posed, turned and framed like a Market-1501 crop.

Coordinates of the body model, in units of the body height (head top to soles): x to the
person's left, y down, z backwards (away from the way the person faces). Yaw 0 faces the camera,
so the person's right appears on the image's left; yaw 180 is the back view; yaw +90 faces the
image's left (left side nearest the camera).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from posetransfer.pose import MISSING, N_JOINTS, drop_outside

VIEWS: tuple[str, ...] = ("front", "back", "side")
ACTIONS: tuple[str, ...] = ("standing", "walking", "arms_raised", "arms_out")
_VIEW_P = (0.35, 0.3, 0.35)
_ACTION_P = (0.3, 0.4, 0.15, 0.15)

# Body proportions (units of the body height).
HEAD_CY, HEAD_RX, HEAD_RY = 0.075, 0.058, 0.072
SHOULDER_Y, SHOULDER_X = 0.19, 0.105
WAIST_Y, HIP_Y, HIP_X = 0.43, 0.52, 0.062
UPPER_ARM, FOREARM, THIGH, SHIN = 0.165, 0.145, 0.235, 0.225
CHEST_DEPTH = 0.065  # half-depth of the torso, seen in side views
R_UPPER_ARM, R_FOREARM, R_HAND = 0.034, 0.027, 0.022
R_THIGH, R_KNEE, R_ANKLE, R_NECK, R_SHOE = 0.052, 0.04, 0.03, 0.03, 0.024
# Face joints in the head's frame (nose, right/left eye, right/left ear) and their outward normals.
_FACE = {
    0: ((0.0, 0.095, -0.062), (0.0, 0.0, -1.0)),
    14: ((-0.022, 0.068, -0.05), (-0.5, 0.0, -1.0)),
    15: ((0.022, 0.068, -0.05), (0.5, 0.0, -1.0)),
    16: ((-HEAD_RX, 0.078, 0.0), (-1.0, 0.0, 0.2)),
    17: ((HEAD_RX, 0.078, 0.0), (1.0, 0.0, 0.2)),
}
# How much a face joint's normal must point at the camera (-z) for the joint to count as seen.
_FACE_MIN_FACING = {0: -0.3, 14: 0.05, 15: 0.05, 16: -0.65, 17: -0.65}


@dataclass(frozen=True)
class Skeleton:
    """A posed figure projected into an image of ``height`` x ``width`` pixels.

    Points are (x, y, z) float pixels: x, y in the image, z the depth (larger is farther).
    """

    joints: np.ndarray  # [18, 3] in COCO-18 order
    seen: np.ndarray  # [18] bool: False for face joints turned away from the camera
    hands: np.ndarray  # [2, 3] right, left hand centres
    toes: np.ndarray  # [2, 3] right, left toe tips
    head: np.ndarray  # [3] head centre
    yaw: float  # degrees
    scale: float  # body height in pixels
    build: float
    height: int
    width: int
    view: str
    action: str

    def keypoints(self) -> np.ndarray:
        """(18, 2) int64 (y, x) keypoints, -1 for hidden face joints and joints off the image."""
        yx = np.floor(self.joints[:, [1, 0]]).astype(np.int64)
        yx[~self.seen] = MISSING
        return drop_outside(yx, self.height, self.width)


def _direction(abduction: float, flexion: float, side: int) -> np.ndarray:
    """Unit limb direction: straight down, raised sideways by ``abduction`` degrees (outwards
    for ``side`` +1 = left, -1 = right) and swung forwards by ``flexion`` degrees."""
    a, f = math.radians(abduction), math.radians(flexion)
    return np.array([side * math.sin(a) * math.cos(f), math.cos(a) * math.cos(f), -math.sin(f)])


def _arm_angles(rng: np.random.Generator, action: str, swing: float) -> tuple[float, ...]:
    """(abduction, flexion, forearm abduction, forearm flexion) of one arm, in degrees."""
    u = rng.uniform
    if action == "arms_raised":
        a = u(140, 172)
        return a, u(-5, 15), a + u(-12, 12), u(-5, 25)
    if action == "arms_out":
        a, f = u(60, 95), u(-10, 20)
        bend = u(25, 80) if rng.random() < 0.5 else u(-10, 15)
        return a, f, a + bend, f + u(0, 20)
    a, f = u(6, 16), swing + u(-6, 6)
    return a, f, a + u(-4, 6), f + u(8, 30)


def sample_skeleton(
    rng: np.random.Generator,
    height: int,
    width: int,
    view: str | None = None,
    action: str | None = None,
    build: float = 1.0,
) -> Skeleton:
    """Pose a figure and frame it in the image like a Market-1501 crop.

    Args:
        rng: random generator (the only source of randomness).
        height: image height; the figure spans about 84..91 % of it.
        width: image width; the figure is shrunk if its arms would not fit.
        view: "front", "back" or "side" (the facing direction of a side view is random);
            random if None.
        action: "standing", "walking", "arms_raised" or "arms_out"; random if None.
        build: width factor of the body (`Appearance.build`).
    """
    if view is None:
        view = VIEWS[int(rng.choice(len(VIEWS), p=_VIEW_P))]
    if action is None:
        action = ACTIONS[int(rng.choice(len(ACTIONS), p=_ACTION_P))]
    if view not in VIEWS or action not in ACTIONS:
        raise ValueError(f"unknown view {view!r} or action {action!r}")
    yaw = {"front": 0.0, "back": 180.0, "side": 90.0 * (1 if rng.random() < 0.5 else -1)}[view]
    yaw += rng.uniform(-12, 12) if view == "side" else rng.uniform(-20, 20)

    # Pose in the body frame (units of body height).
    j = np.zeros((N_JOINTS, 3))
    sx, hx = SHOULDER_X * build, HIP_X * build
    j[2], j[5] = (-sx, SHOULDER_Y, 0), (sx, SHOULDER_Y, 0)
    j[1] = (j[2] + j[5]) / 2
    j[8], j[11] = (-hx, HIP_Y, 0), (hx, HIP_Y, 0)
    walking = action == "walking" or (action != "standing" and rng.random() < 0.3)
    phase = rng.uniform(0, 2 * math.pi)
    leg_amp, arm_amp = rng.uniform(16, 28), rng.uniform(10, 24)
    one_arm = action != "walking" and action != "standing" and rng.random() < 0.3
    hands, toes = np.zeros((2, 3)), np.zeros((2, 3))
    for k, (side, (sh, el, wr), (hip, kn, an)) in enumerate(
        [(-1, (2, 3, 4), (8, 9, 10)), (1, (5, 6, 7), (11, 12, 13))]
    ):
        psi = phase + k * math.pi  # the legs are half a stride apart
        arm_action = "standing" if (one_arm and k == 0) else action
        a1, f1, a2, f2 = _arm_angles(rng, arm_action, -arm_amp * math.sin(psi) if walking else 0)
        j[el] = j[sh] + UPPER_ARM * _direction(a1, f1, side)
        forearm = _direction(a2, f2, side)
        j[wr] = j[el] + FOREARM * forearm
        hands[k] = j[wr] + 0.035 * forearm
        if walking:
            thigh_f = leg_amp * math.sin(psi) + rng.uniform(-3, 3)
            bend = 6 + 40 * max(0.0, math.cos(psi)) ** 2 + rng.uniform(0, 4)
        else:
            thigh_f, bend = rng.uniform(-5, 5), rng.uniform(0, 8)
        la = rng.uniform(1, 6) if not walking else rng.uniform(0, 3)
        j[kn] = j[hip] + THIGH * _direction(la, thigh_f, side)
        j[an] = j[kn] + SHIN * _direction(la * 0.5, thigh_f - bend, side)
        toes[k] = j[an] + (0, 0.018, -0.065)
    head = np.array([0.0, HEAD_CY, -0.008])
    seen = np.ones(N_JOINTS, dtype=bool)

    # Rotate about the vertical axis, then find which face joints face the camera.
    t = math.radians(yaw)
    rot = np.array([[math.cos(t), 0, math.sin(t)], [0, 1, 0], [-math.sin(t), 0, math.cos(t)]])
    for idx, (pos, normal) in _FACE.items():
        j[idx] = head - (0, HEAD_CY, 0) + pos
        n = rot @ np.asarray(normal)
        seen[idx] = -n[2] / np.linalg.norm(n) > _FACE_MIN_FACING[idx]
    j, hands, toes, head = j @ rot.T, hands @ rot.T, toes @ rot.T, head @ rot.T

    # Frame the figure: its bounding box fills ~88 % of the height, centred with a little jitter.
    pts = np.concatenate([j, hands, toes + (0, R_SHOE, 0)])
    top = min(pts[:, 1].min() - 0.03, head[1] - HEAD_RY - 0.015)  # hair included
    bottom = pts[:, 1].max() + 0.01
    left, right = pts[:, 0].min() - 0.035, pts[:, 0].max() + 0.035
    scale = min(rng.uniform(0.84, 0.91) * height / (bottom - top), 0.97 * width / (right - left))
    slack_y = height - (bottom - top) * scale
    y0 = slack_y / 2 + rng.uniform(-0.3, 0.3) * slack_y - top * scale
    slack_x = width - (right - left) * scale
    shift = rng.uniform(-1, 1) * min(0.35 * slack_x, 0.06 * width)
    x0 = slack_x / 2 + shift - left * scale
    offset = np.array([x0, y0, 0.0])

    def place(p: np.ndarray) -> np.ndarray:
        return p * scale + offset

    return Skeleton(
        joints=place(j),
        seen=seen,
        hands=place(hands),
        toes=place(toes),
        head=place(head),
        yaw=float(yaw),
        scale=float(scale),
        build=float(build),
        height=height,
        width=width,
        view=view,
        action=action,
    )


def sample_pose(
    rng: np.random.Generator,
    height: int,
    width: int,
    view: str | None = None,
    action: str | None = None,
) -> np.ndarray:
    """(18, 2) int64 (y, x) keypoints of a random figure; see `sample_skeleton`."""
    return sample_skeleton(rng, height, width, view, action).keypoints()
