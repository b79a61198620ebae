"""Procedural synthetic people in the Market-1501 layout: the project's built-in dataset.

Each identity gets a fixed appearance (`sample_appearance`: skin, hair, shirt colour and texture,
trousers / shorts / skirt, shoes, maybe a bag, build). Each image poses that person with a small
3D kinematic model (`sample_skeleton`: standing, walking, arms raised or arms out; front, back or
side view), projects it orthographically, draws the body parts as filled polygons at twice the
output size over a per-image background (`render_background`), and downsamples for
anti-aliasing (`render_person`). The keypoints are the projected joints of the drawn figure.

`make_synthetic_dataset` writes the public Market-1501 layout (``train/``, ``test/``, annotation
and pairs CSVs) with held-out test identities; everything is deterministic for a seed.

Coordinates of the body model, in units of the body height (head top to soles): x to the
person's left, y down, z backwards (away from the way the person faces). Yaw 0 faces the camera,
so the person's right appears on the image's left; yaw 180 is the back view; yaw +90 faces the
image's left (left side nearest the camera).
"""

from __future__ import annotations

import colorsys
import io
import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from tqdm import tqdm

from posetransfer.data.pairs import build_pairs
from posetransfer.errors import InputError, require_dir
from posetransfer.files import atomic_write, read_image
from posetransfer.pose import (
    MISSING,
    N_JOINTS,
    draw_skeleton,
    read_annotations,
    write_annotations,
    write_pairs,
)

# Bump when the drawing changes, so that `make_synthetic_dataset` regenerates old folders.
GENERATOR_VERSION = 1

VIEWS: tuple[str, ...] = ("front", "back", "side")
ACTIONS: tuple[str, ...] = ("standing", "walking", "arms_raised", "arms_out")
_VIEW_P = (0.35, 0.3, 0.35)
_ACTION_P = (0.3, 0.4, 0.15, 0.15)

ANNOTATION_FILES = {
    "train": "synthetic-annotation-train.csv",
    "test": "synthetic-annotation-test.csv",
}
PAIRS_FILES = {"train": "synthetic-pairs-train.csv", "test": "synthetic-pairs-test.csv"}
META_FILE = "synthetic.json"
_STAGING = ".partial"

# Body proportions (units of the body height).
_HEAD_CY, _HEAD_RX, _HEAD_RY = 0.075, 0.058, 0.072
_SHOULDER_Y, _SHOULDER_X = 0.19, 0.105
_WAIST_Y, _HIP_Y, _HIP_X = 0.43, 0.52, 0.062
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.165, 0.145, 0.235, 0.225
_CHEST_DEPTH = 0.065  # half-depth of the torso, seen in side views
_R_UPPER_ARM, _R_FOREARM, _R_HAND = 0.034, 0.027, 0.022
_R_THIGH, _R_KNEE, _R_ANKLE, _R_NECK, _R_SHOE = 0.052, 0.04, 0.03, 0.03, 0.024
# Face joints in the head's frame (nose, right/left eye, right/left ear) and their outward normals.
_FACE = {
    0: ((0.0, 0.095, -0.062), (0.0, 0.0, -1.0)),
    14: ((-0.022, 0.068, -0.05), (-0.5, 0.0, -1.0)),
    15: ((0.022, 0.068, -0.05), (0.5, 0.0, -1.0)),
    16: ((-_HEAD_RX, 0.078, 0.0), (-1.0, 0.0, 0.2)),
    17: ((_HEAD_RX, 0.078, 0.0), (1.0, 0.0, 0.2)),
}
# How much a face joint's normal must point at the camera (-z) for the joint to count as seen.
_FACE_MIN_FACING = {0: -0.3, 14: 0.05, 15: 0.05, 16: -0.65, 17: -0.65}

# Materials of the label map.
_SKIN, _HAIR, _SHIRT, _LOWER, _LEGWEAR, _SHOES, _BAG = range(1, 8)


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class SyntheticConfig:
    """What `make_synthetic_dataset` writes."""

    n_train_ids: int = 100
    """Identities in ``train/`` (ids 0001 .. n_train_ids)."""
    n_test_ids: int = 20
    """Held-out identities in ``test/`` (the ids after the training ones)."""
    images_per_id: int = 12
    """Images of each identity (at least 2, so that every identity forms pairs)."""
    height: int = 128
    """Image height in pixels (Market-1501: 128)."""
    width: int = 64
    """Image width in pixels (Market-1501: 64)."""
    seed: int = 0
    """Seed of everything random: appearances, poses, backgrounds, test-pair sampling."""
    max_test_pairs: int | None = 200
    """Test pairs kept after sampling all same-identity pairs down; None keeps them all."""
    jpeg_quality: int = 92
    """JPEG quality of the written images (1..100)."""

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, rule: str) -> None:
            if not ok:
                raise InputError(f"SyntheticConfig.{name} {rule}, got {getattr(self, name)!r}")

        for name in ("n_train_ids", "n_test_ids", "images_per_id", "height", "width", "seed"):
            value = getattr(self, name)
            check(name, isinstance(value, int) and not isinstance(value, bool), "must be an int")
        check("n_train_ids", self.n_train_ids >= 1, "must be at least 1")
        check("n_test_ids", self.n_test_ids >= 1, "must be at least 1")
        if self.n_train_ids + self.n_test_ids > 9999:
            raise InputError(
                "SyntheticConfig.n_train_ids + SyntheticConfig.n_test_ids must be at most 9999 "
                f"(ids have 4 digits), got {self.n_train_ids + self.n_test_ids}"
            )
        check("images_per_id", 2 <= self.images_per_id <= 5000, "must be in 2..5000")
        check("height", 32 <= self.height <= 2048, "must be in 32..2048")
        check("width", 16 <= self.width <= 2048, "must be in 16..2048")
        check("seed", self.seed >= 0, "must be >= 0")
        mtp = self.max_test_pairs
        check(
            "max_test_pairs",
            mtp is None or (isinstance(mtp, int) and not isinstance(mtp, bool) and mtp >= 1),
            "must be a positive int or None",
        )
        check("jpeg_quality", isinstance(self.jpeg_quality, int), "must be an int")
        check("jpeg_quality", 1 <= self.jpeg_quality <= 100, "must be in 1..100")


# --------------------------------------------------------------------------------------------
# Appearance

RGB = tuple[int, int, int]
_SKIN_TONES: tuple[RGB, ...] = (
    (250, 220, 195), (238, 196, 168), (222, 172, 136), (196, 138, 102),
    (160, 104, 72), (122, 78, 52), (90, 60, 42),
)  # fmt: skip
_HAIR_COLORS: tuple[RGB, ...] = (
    (22, 18, 16), (22, 18, 16), (48, 32, 24), (88, 58, 36), (140, 100, 62),
    (205, 175, 115), (160, 158, 155), (125, 52, 30),
)  # fmt: skip
_LOWER_COLORS: tuple[RGB, ...] = (
    (52, 72, 112), (34, 38, 62), (28, 28, 30), (112, 112, 118), (172, 152, 112),
    (205, 190, 165), (92, 66, 46),
)  # fmt: skip
_SHOE_COLORS: tuple[RGB, ...] = ((25, 25, 25), (235, 235, 235), (95, 60, 35), (120, 120, 125))


@dataclass(frozen=True)
class Appearance:
    """One identity's look; every image of the identity is drawn with the same one."""

    skin: RGB
    hair: RGB
    hair_length: str  # "short", "medium" or "long"
    shirt: RGB
    shirt_alt: RGB  # second colour of a striped or checked shirt
    pattern: str  # "plain", "stripes" or "checks"
    pattern_period: float  # in body heights
    long_sleeves: bool
    lower: str  # "trousers", "shorts" or "skirt"
    lower_color: RGB
    legwear: RGB  # bare legs (skin) or tights, below shorts and skirts
    skirt_length: float  # waist to hem, in body heights
    shoes: RGB
    bag: str  # "none", "backpack" or "shoulder"
    bag_color: RGB
    build: float  # width factor of the body, about 0.9 (slim) .. 1.12 (broad)


def _jitter(rng: np.random.Generator, color: RGB, amount: int) -> RGB:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def _hsv(h: float, s: float, v: float) -> RGB:
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _pick(rng: np.random.Generator, options: tuple) -> object:
    return options[int(rng.integers(len(options)))]


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Draw a random identity: clothing colours and textures, skin, hair, shoes, bag, build."""
    skin = _jitter(rng, _pick(rng, _SKIN_TONES), 8)
    grey = rng.random() < 0.25
    shirt_v = float(rng.uniform(0.15, 0.95))
    shirt = _hsv(rng.random(), rng.uniform(0, 0.15) if grey else rng.uniform(0.3, 0.9), shirt_v)
    pattern = str(rng.choice(["plain", "stripes", "checks"], p=[0.6, 0.2, 0.2]))
    if rng.random() < 0.4:  # white or black on the base colour
        shirt_alt = (240, 240, 240) if shirt_v < 0.55 else (25, 25, 30)
    else:  # another colour, clearly lighter or darker
        alt_v = shirt_v - 0.45 if shirt_v > 0.55 else shirt_v + 0.45
        shirt_alt = _hsv(rng.random(), rng.uniform(0.2, 0.9), alt_v)
    # Soften the texture: the second colour leans a third of the way back to the first.
    shirt_alt = tuple(int(round(a + (b - a) / 3)) for a, b in zip(shirt_alt, shirt))
    lower = str(rng.choice(["trousers", "shorts", "skirt"], p=[0.65, 0.12, 0.23]))
    if rng.random() < 0.7:
        lower_color = _jitter(rng, _pick(rng, _LOWER_COLORS), 10)
    else:
        lower_color = _hsv(rng.random(), rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.85))
    tights = lower == "skirt" and rng.random() < 0.35
    bag = str(rng.choice(["none", "backpack", "shoulder"], p=[0.55, 0.25, 0.2]))
    return Appearance(
        skin=skin,
        hair=_jitter(rng, _pick(rng, _HAIR_COLORS), 10),
        hair_length=str(rng.choice(["short", "medium", "long"], p=[0.45, 0.25, 0.3])),
        shirt=shirt,
        shirt_alt=shirt_alt,
        pattern=pattern,
        pattern_period=float(rng.uniform(0.04, 0.07)),
        long_sleeves=bool(rng.random() < 0.55),
        lower=lower,
        lower_color=lower_color,
        legwear=_jitter(rng, (30, 30, 35), 8) if tights else skin,
        skirt_length=float(rng.uniform(0.22, 0.34)),
        shoes=_jitter(rng, _pick(rng, _SHOE_COLORS), 10),
        bag=bag,
        bag_color=_hsv(rng.random(), rng.uniform(0, 0.7), rng.uniform(0.1, 0.6)),
        build=float(rng.uniform(0.9, 1.12)),
    )


# --------------------------------------------------------------------------------------------
# Pose


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
        inside = (yx[:, 0] >= 0) & (yx[:, 0] < self.height) & (yx[:, 1] >= 0)
        inside &= yx[:, 1] < self.width
        yx[~(inside & self.seen)] = MISSING
        return yx


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
    sx, hx = _SHOULDER_X * build, _HIP_X * build
    j[2], j[5] = (-sx, _SHOULDER_Y, 0), (sx, _SHOULDER_Y, 0)
    j[1] = (j[2] + j[5]) / 2
    j[8], j[11] = (-hx, _HIP_Y, 0), (hx, _HIP_Y, 0)
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
        j[el] = j[sh] + _UPPER_ARM * _direction(a1, f1, side)
        forearm = _direction(a2, f2, side)
        j[wr] = j[el] + _FOREARM * forearm
        hands[k] = j[wr] + 0.035 * forearm
        if walking:
            thigh_f = leg_amp * math.sin(psi) + rng.uniform(-3, 3)
            bend = 6 + 40 * max(0.0, math.cos(psi)) ** 2 + rng.uniform(0, 4)
        else:
            thigh_f, bend = rng.uniform(-5, 5), rng.uniform(0, 8)
        la = rng.uniform(1, 6) if not walking else rng.uniform(0, 3)
        j[kn] = j[hip] + _THIGH * _direction(la, thigh_f, side)
        j[an] = j[kn] + _SHIN * _direction(la * 0.5, thigh_f - bend, side)
        toes[k] = j[an] + (0, 0.018, -0.065)
    head = np.array([0.0, _HEAD_CY, -0.008])
    seen = np.ones(N_JOINTS, dtype=bool)

    # Rotate about the vertical axis, then find which face joints face the camera.
    t = math.radians(yaw)
    rot = np.array([[math.cos(t), 0, math.sin(t)], [0, 1, 0], [-math.sin(t), 0, math.cos(t)]])
    for idx, (pos, normal) in _FACE.items():
        j[idx] = head - (0, _HEAD_CY, 0) + pos
        n = rot @ np.asarray(normal)
        seen[idx] = -n[2] / np.linalg.norm(n) > _FACE_MIN_FACING[idx]
    j, hands, toes, head = j @ rot.T, hands @ rot.T, toes @ rot.T, head @ rot.T

    # Frame the figure: its bounding box fills ~88 % of the height, centred with a little jitter.
    pts = np.concatenate([j, hands, toes + (0, _R_SHOE, 0)])
    top = min(pts[:, 1].min() - 0.03, head[1] - _HEAD_RY - 0.015)  # hair included
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
        joints=place(j), seen=seen, hands=place(hands), toes=place(toes), head=place(head),
        yaw=float(yaw), scale=float(scale), build=float(build), height=height, width=width,
        view=view, action=action,
    )  # fmt: skip


def sample_pose(
    rng: np.random.Generator,
    height: int,
    width: int,
    view: str | None = None,
    action: str | None = None,
) -> np.ndarray:
    """(18, 2) int64 (y, x) keypoints of a random figure; see `sample_skeleton`."""
    return sample_skeleton(rng, height, width, view, action).keypoints()


# --------------------------------------------------------------------------------------------
# Drawing

# One part of the figure: (layer, depth, material, shade, shapes). Parts are painted by layer
# (0 first: legs and whatever is well behind the torso), then from far to near, ties in order.
_Part = tuple[int, float, int, float, list]


def _capsule(p: np.ndarray, q: np.ndarray, r1: float, r2: float) -> tuple:
    return ("capsule", p[:2], q[:2], r1, r2)


def _box(center: np.ndarray, half_w: float, half_h: float) -> tuple:
    x, y = center[0], center[1]
    return ("poly", [(x - half_w, y - half_h), (x + half_w, y - half_h),
                     (x + half_w, y + half_h), (x - half_w, y + half_h)])  # fmt: skip


def _leg_x_at(points: list[np.ndarray], y: float) -> float:
    """x where the polyline hip -> knee -> ankle crosses row y (clamped to its ends)."""
    for a, b in zip(points[:-1], points[1:]):
        if min(a[1], b[1]) <= y <= max(a[1], b[1]) and abs(b[1] - a[1]) > 1e-6:
            return float(a[0] + (y - a[1]) / (b[1] - a[1]) * (b[0] - a[0]))
    return float(points[0][0] if y < points[0][1] else points[-1][0])


def _figure_parts(sk: Skeleton, app: Appearance) -> list[_Part]:
    """The body parts of ``sk`` dressed as ``app``, in painting order."""
    s, j, b = sk.scale, sk.joints, sk.build
    t = math.radians(sk.yaw)
    rot = np.array([[math.cos(t), 0, math.sin(t)], [0, 1, 0], [-math.sin(t), 0, math.cos(t)]])
    facing = math.cos(t)  # 1 facing the camera, -1 facing away
    limb = 0.5 + 0.5 * b  # limbs thicken less than the torso with the build
    parts: list[_Part] = []

    def loc(p: tuple[float, float, float]) -> np.ndarray:
        """Image point of a body-frame point (relative to the head top, unit body height)."""
        return j[1] + s * (rot @ (np.asarray(p) - (0.0, _SHOULDER_Y, 0.0)))

    def half_width(w: float, d: float) -> float:
        return s * b * math.hypot(w * math.cos(t), d * math.sin(t))

    def add(depth: float, material: int, shapes: list, layer: int | None = None) -> None:
        if layer is None:
            layer = 0 if depth > 0.05 * s else 1
        shade = 0.8 if depth > 0.04 * s else 1.0  # the far side is in shadow
        parts.append((layer, depth, material, shade, shapes))

    # Legs and shoes, always under the pelvis and the shirt.
    lower_mat = _LOWER if app.lower == "trousers" else _LEGWEAR
    for (hip, knee, ankle), toe in zip((j[8:11], j[11:14]), sk.toes):
        depth = float(np.mean([hip[2], knee[2], ankle[2]]))
        rt, rk, ra = _R_THIGH * s * limb, _R_KNEE * s * limb, _R_ANKLE * s * limb
        add(depth, lower_mat, [_capsule(hip, knee, rt, rk), _capsule(knee, ankle, rk, ra)], 0)
        if app.lower == "shorts":
            leg = _capsule(hip, hip + 0.5 * (knee - hip), rt + 0.01 * s, rk + 0.01 * s)
            add(depth, _LOWER, [leg], 0)
        shoe = _capsule(ankle + (0, 0.012 * s, 0), toe, _R_SHOE * s, 0.85 * _R_SHOE * s)
        add(depth, _SHOES, [shoe], 0)

    # Pelvis, skirt and the shirt's torso.
    neck, mid_hip = j[1], (j[8] + j[11]) / 2
    waist_y = neck[1] + (_WAIST_Y - _SHOULDER_Y) * s

    def spine(y: float) -> float:
        a = (y - neck[1]) / max(mid_hip[1] - neck[1], 1e-6)
        return float(neck[0] + a * (mid_hip[0] - neck[0]))

    ww, wh = half_width(0.09, 0.06), half_width(_HIP_X + 0.045, 0.065)
    hy, cx = mid_hip[1], mid_hip[0]
    pelvis = [(spine(waist_y) - ww, waist_y), (spine(waist_y) + ww, waist_y),
              (cx + wh, hy + 0.01 * s), (cx + 0.4 * wh, hy + 0.07 * s),
              (cx - 0.4 * wh, hy + 0.07 * s), (cx - wh, hy + 0.01 * s)]  # fmt: skip
    add(0.6, _LOWER, [("poly", pelvis)], 1)
    if app.lower == "skirt":
        hem = waist_y + app.skirt_length * s
        xs = [_leg_x_at([j[h], j[k], j[a]], hem) for h, k, a in ((8, 9, 10), (11, 12, 13))]
        flare = (_R_THIGH + 0.025) * s * limb
        skirt = [(spine(waist_y) - ww, waist_y), (spine(waist_y) + ww, waist_y),
                 (max(xs) + flare, hem), (min(xs) - flare, hem)]  # fmt: skip
        add(0.2, _LOWER, [("poly", skirt)], 1)
    top = neck[1]
    w_top, w_chest = half_width(_SHOULDER_X + 0.012, _CHEST_DEPTH), half_width(0.106, _CHEST_DEPTH)
    w_waist, w_hem = half_width(0.088, 0.06), half_width(_HIP_X + 0.042, 0.062)
    rows = [(top - 0.018 * s, 0.72 * w_top), (top + 0.03 * s, w_top), (top + 0.12 * s, w_chest),
            (waist_y, w_waist), (hy + 0.008 * s, w_hem)]  # fmt: skip
    torso = [(spine(y) + w, y) for y, w in rows] + [(spine(y) - w, y) for y, w in rows[::-1]]
    add(0.0, _SHIRT, [("poly", torso)], 1)
    rn = _R_NECK * s * b
    add(0.3, _SKIN, [_capsule(sk.head + (0, 0.04 * s, 0), neck - (0, 0.01 * s, 0), rn, rn)], 1)

    # Arms: sleeves in the shirt's material, then hands (or bare forearms).
    for (sh, el, wr), hand in (((2, 3, 4), sk.hands[0]), ((5, 6, 7), sk.hands[1])):
        depth = float(np.mean([j[sh][2], j[el][2], j[wr][2]]))
        ru, rf = _R_UPPER_ARM * s * limb, _R_FOREARM * s * limb
        upper, fore = _capsule(j[sh], j[el], ru, 0.85 * ru), _capsule(j[el], j[wr], rf, 0.85 * rf)
        palm = ("ellipse", hand[:2], _R_HAND * s, _R_HAND * s)
        if app.long_sleeves:
            add(depth, _SHIRT, [upper, fore])
            add(depth, _SKIN, [palm])
        else:
            add(depth, _SKIN, [upper, fore, palm])
            sleeve = _capsule(j[sh], j[sh] + 0.55 * (j[el] - j[sh]), ru + 0.01 * s, ru + 0.007 * s)
            add(depth, _SHIRT, [sleeve])

    # Bags.
    if app.bag == "backpack":
        pack = loc((0.0, 0.34, _CHEST_DEPTH * b + 0.045))
        add(float(pack[2]), _BAG, [_box(pack, half_width(0.078, 0.05), 0.1 * s)])
        for side in (-1, 1):
            a = loc((side * 0.06 * b, 0.19, -_CHEST_DEPTH * b - 0.005))
            c = loc((side * 0.085 * b, 0.4, -_CHEST_DEPTH * b - 0.005))
            add(float(a[2]), _BAG, [_capsule(a, c, 0.012 * s, 0.012 * s)])
    elif app.bag == "shoulder":
        bag = loc(((_HIP_X + 0.08) * b, 0.49, 0.0))
        add(float(bag[2]), _BAG, [_box(bag, half_width(0.028, 0.08), 0.065 * s)])
        for z in (-1, 1):
            a = loc((-0.09 * b, 0.185, z * (_CHEST_DEPTH * b + 0.005)))
            c = loc(((_HIP_X + 0.06) * b, 0.45, z * (_CHEST_DEPTH * b + 0.005)))
            add(float(a[2]), _BAG, [_capsule(a, c, 0.011 * s, 0.011 * s)])

    # Head: hanging hair, skull, hair cap, face.
    hc, rx, ry = sk.head, _HEAD_RX * s, _HEAD_RY * s
    back_x = math.sin(t)  # image x of the person's back direction
    if app.hair_length != "short":
        length = 0.11 if app.hair_length == "medium" else 0.21
        a = hc + (back_x * 0.02 * s, 0, 0)
        c = hc + (back_x * 0.035 * s, length * s, 0)
        depth = -0.1 if abs(facing) < 0.5 else hc[2] + 0.05 * s * facing
        add(depth, _HAIR, [_capsule(a, c, 0.95 * rx, 0.8 * rx)], 1)
    add(-0.3, _SKIN, [("ellipse", hc[:2], rx, ry)], 1)
    grow = 1.07 if app.hair_length == "short" else 1.12
    cap = hc + (back_x * 0.012 * s, (-0.012 + 0.014 * max(0.0, -facing)) * s, 0)
    add(-0.3, _HAIR, [("ellipse", cap[:2], rx * grow, ry * (grow - 0.08))], 1)
    if facing > -0.3:
        face = hc + (-back_x * 0.02 * s, 0.02 * s, 0)
        add(-0.3, _SKIN, [("ellipse", face[:2], rx * 0.86, ry * 0.78)], 1)

    order = sorted(range(len(parts)), key=lambda i: (parts[i][0], -parts[i][1], i))
    return [parts[i] for i in order]


def _paint(draw: ImageDraw.ImageDraw, shape: tuple, value: int, k: float) -> None:
    """Paint one shape on the k-times enlarged canvas (pixel centres at k * (p + 0.5) - 0.5)."""

    def pt(p: np.ndarray | tuple) -> tuple[float, float]:
        return (k * p[0] - 0.5, k * p[1] - 0.5)

    if shape[0] == "poly":
        draw.polygon([pt(p) for p in shape[1]], fill=value)
    elif shape[0] == "ellipse":
        (x, y), rx, ry = pt(shape[1]), k * shape[2], k * shape[3]
        draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=value)
    else:  # capsule
        (p, q), r1, r2 = (
            (np.array(pt(shape[1])), np.array(pt(shape[2]))),
            k * shape[3],
            k * shape[4],
        )
        d = q - p
        n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6)
        draw.polygon([tuple(p + n * r1), tuple(q + n * r2), tuple(q - n * r2), tuple(p - n * r1)],
                     fill=value)  # fmt: skip
        for c, r in ((p, r1), (q, r2)):
            draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=value)


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Average over k x k pixel blocks (the first two axes)."""
    return sum(a[i::k, j::k] for i in range(k) for j in range(k)) / (k * k)


def render_person(
    skeleton: Skeleton, appearance: Appearance, background: np.ndarray | None = None
) -> np.ndarray:
    """Draw the figure over ``background`` (H, W, 3) uint8; mid grey if None.

    The figure is painted at twice the size and averaged down, so its edges are anti-aliased;
    pixels away from the figure (and its soft floor shadow) keep the background's exact values.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    h, w, k = skeleton.height, skeleton.width, 2
    if background is None:
        background = np.full((h, w, 3), 128, np.uint8)
    if background.shape != (h, w, 3):
        raise ValueError(f"background is {background.shape}, expected {(h, w, 3)}")
    parts = _figure_parts(skeleton, appearance)
    ids = Image.new("L", (k * w, k * h), 0)
    draw = ImageDraw.Draw(ids)
    for i, (_, _, _, _, shapes) in enumerate(parts, start=1):
        for shape in shapes:
            _paint(draw, shape, i, k)
    ids = np.asarray(ids)  # [kH, kW] part index, 0 = background

    # Colours per part; a striped or checked shirt varies per pixel, in body coordinates.
    a = appearance
    material_rgb = {_SKIN: a.skin, _HAIR: a.hair, _SHIRT: a.shirt, _LOWER: a.lower_color,
                    _LEGWEAR: a.legwear, _SHOES: a.shoes, _BAG: a.bag_color}  # fmt: skip
    part_rgb = np.zeros((len(parts) + 1, 3), np.float32)
    part_shade = np.ones(len(parts) + 1, np.float32)
    part_shirt = np.zeros(len(parts) + 1, bool)
    for i, (_, _, material, shade, _) in enumerate(parts, start=1):
        part_rgb[i], part_shade[i], part_shirt[i] = (
            material_rgb[material],
            shade,
            material == _SHIRT,
        )
    rgb = part_rgb[ids]
    if a.pattern != "plain":
        ys, xs = np.nonzero(part_shirt[ids])
        period = a.pattern_period * skeleton.scale * k
        v = (ys - k * skeleton.joints[1, 1]) / period
        on = np.floor(v) % 2
        if a.pattern == "checks":
            u = (xs - k * skeleton.joints[1, 0]) / period
            on = (np.floor(u) + np.floor(v)) % 2
        rgb[ys, xs] += on[:, None] * (np.asarray(a.shirt_alt, np.float32) - rgb[ys, xs])
    shade = part_shade[ids]
    # Outline where one part meets another, so that e.g. an arm stands out from the shirt.
    seam = np.zeros_like(ids, dtype=bool)
    seam[1:] |= (ids[1:] != ids[:-1]) & (ids[:-1] > 0)
    seam[:, 1:] |= (ids[:, 1:] != ids[:, :-1]) & (ids[:, :-1] > 0)
    shade = shade * np.where(seam & (ids > 0), 0.8, 1.0)
    rgb *= shade[..., None]

    # A soft floor shadow under the feet, then the figure's k x k averages over the background.
    bg = background.astype(np.float32)
    sc = skeleton.scale
    feet_x = float(np.mean([*skeleton.toes[:, 0], *skeleton.joints[[10, 13], 0]]))
    sole_y = max(skeleton.toes[:, 1].max(), skeleton.joints[[10, 13], 1].max()) + 0.02 * sc
    rows = np.arange(max(0, int(sole_y - 0.09 * sc)), min(h, int(sole_y + 0.09 * sc) + 1))
    if len(rows):
        dy = (rows[:, None] + 0.5 - sole_y) / (0.03 * sc)
        dx = (np.arange(w)[None, :] + 0.5 - feet_x) / (0.2 * sc)
        shadow = np.exp(-(dx**2 + dy**2))
        shadow[shadow < 0.02] = 0  # leave the background exact away from the feet
        bg[rows] *= (1 - 0.4 * shadow)[..., None]
    cover = (ids > 0).astype(np.float32)
    alpha = _block_mean(cover, k)[..., None]
    person = _block_mean(rgb * cover[..., None], k)
    out = person + (1 - alpha) * bg
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _lerp_matrix(n: int, m: int) -> np.ndarray:
    """(n, m) weights that linearly interpolate m evenly spaced samples onto n positions."""
    pos = np.linspace(0, m - 1, n)
    return np.maximum(0, 1 - np.abs(pos[:, None] - np.arange(m)[None, :])).astype(np.float32)


def render_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A street-like scene without people: wall gradient, floor, a few soft boxes, smooth noise.

    Returns:
        (H, W, 3) uint8 RGB image; two calls give different scenes.
    """
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]

    def color(s_max: float, v: tuple[float, float]) -> np.ndarray:
        rgb = _hsv(rng.random(), rng.uniform(0, s_max), rng.uniform(*v))
        return np.asarray(rgb, np.float32)

    # Wall: a tilted two-colour gradient; floor: a darker/lighter gradient below a horizon.
    tilt = rng.uniform(-0.6, 0.6)
    img = color(0.5, (0.3, 0.95)) + np.clip(y + tilt * (x - 0.5), 0, 1) * (
        color(0.5, (0.3, 0.95)) - color(0.0, (0.5, 0.5))
    ) * rng.uniform(0.3, 1.0)
    horizon = rng.uniform(0.5, 0.85) + rng.uniform(-0.08, 0.08) * (x - 0.5)
    floor = color(0.35, (0.25, 0.8)) * (1 + rng.uniform(-0.3, 0.3) * (y - horizon))
    on_floor = np.clip((y - horizon) * height / 2 + 0.5, 0, 1)
    img = img * (1 - on_floor) + floor * on_floor

    # A few soft boxes: doors, windows, cars, poles, blurred passers-by.
    for _ in range(int(rng.integers(2, 6))):
        cx, cy = rng.uniform(-0.1, 1.1), rng.uniform(0.0, 0.8)
        hw, hh = rng.uniform(0.05, 0.45), rng.uniform(0.05, 0.35)
        soft = rng.uniform(0.01, 0.06)
        inside = np.minimum(hw - np.abs(x - cx), (hh - np.abs(y - cy)) * height / width)
        mask = np.clip(inside / soft + 0.5, 0, 1) * rng.uniform(0.35, 0.9)
        img = img * (1 - mask) + color(0.8, (0.1, 0.95)) * mask

    # Smooth low-frequency noise and a little blur.
    grid = rng.normal(0, 9, (5, 4, 3)).astype(np.float32)
    smooth = _lerp_matrix(height, 5)[None] @ grid.transpose(2, 0, 1) @ _lerp_matrix(width, 4).T
    img = img + smooth.transpose(1, 2, 0)
    sigma = rng.uniform(0.4, 1.1) * height / 128
    img = ndimage.gaussian_filter(img, sigma=(sigma, sigma, 0))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# The dataset


def _rng(seed: int, pid: int, k: int) -> np.random.Generator:
    """Generator of identity ``pid``: k = 0 for its appearance, k >= 1 for its k-th image.

    Independent of the image size and of the other identities, so a person looks the same
    whatever else the config asks for.
    """
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(pid, k)))


def _camera(rng: np.random.Generator, img: np.ndarray, quality: int) -> bytes:
    """Mild camera effects (white balance, sensor noise) and JPEG encoding."""
    gains = rng.uniform(0.95, 1.05, 3).astype(np.float32)
    noise = rng.normal(0, rng.uniform(1.0, 3.0), img.shape).astype(np.float32)
    out = np.clip(np.round(img * gains + noise), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def make_image(
    config: SyntheticConfig, appearance: Appearance, pid: int, k: int
) -> tuple[str, bytes, np.ndarray]:
    """Image ``k`` (0-based) of identity ``pid``: its Market-style name, JPEG bytes and keypoints."""
    rng = _rng(config.seed, pid, k + 1)
    cam, seq = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    frame = 100 * k + int(rng.integers(1, 100))  # increasing, so names are unique per identity
    name = f"{pid:04d}_c{cam}s{seq}_{frame:06d}_00.jpg"
    skeleton = sample_skeleton(rng, config.height, config.width, build=appearance.build)
    background = render_background(rng, config.height, config.width)
    img = render_person(skeleton, appearance, background)
    return name, _camera(rng, img, config.jpeg_quality), skeleton.keypoints()


def _metadata(config: SyntheticConfig) -> dict:
    return {
        "generator": "posetransfer.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "config": asdict(config),
    }


def _own_names() -> set[str]:
    files = {*ANNOTATION_FILES.values(), *PAIRS_FILES.values(), META_FILE, META_FILE + ".tmp"}
    return files | {"train", "test", _STAGING}


def is_complete(root: str | Path, config: SyntheticConfig) -> bool:
    """Whether ``root`` holds a finished dataset written by this generator with ``config``."""
    root = Path(root)
    try:
        meta = json.loads((root / META_FILE).read_text())
    except (OSError, ValueError):
        return False
    expected = _metadata(config)
    if not isinstance(meta, dict) or any(meta.get(key) != v for key, v in expected.items()):
        return False
    counts = {"train": config.n_train_ids, "test": config.n_test_ids}
    for split, n_ids in counts.items():
        folder = root / split
        if not folder.is_dir() or len(list(folder.glob("*.jpg"))) != n_ids * config.images_per_id:
            return False
        if (
            not (root / ANNOTATION_FILES[split]).is_file()
            or not (root / PAIRS_FILES[split]).is_file()
        ):
            return False
    return True


def make_synthetic_dataset(
    root: str | Path, config: SyntheticConfig = SyntheticConfig(), progress: bool = True
) -> Path:
    """Write the synthetic dataset in the public Market-1501 layout, or reuse a finished one.

    Writes ``root/train/*.jpg``, ``root/test/*.jpg`` (held-out identities),
    ``synthetic-annotation-{train,test}.csv``, ``synthetic-pairs-{train,test}.csv`` (all ordered
    same-identity pairs; the test pairs sampled down to ``config.max_test_pairs``) and last
    ``synthetic.json`` (the config). Files are built in ``root/.partial`` and moved in at the
    end, so an interrupted run leaves no ``synthetic.json`` and the next call starts again.

    Args:
        root: output folder; created if needed. It may hold a previous synthetic dataset
            (which is replaced unless it was made with the same config) but nothing else.
        config: sizes, seed and image format.
        progress: show a tqdm progress bar.

    Returns:
        ``root``.

    Raises:
        InputError: ``root`` is a file or holds files that are not from this generator.
    """
    root = Path(root)
    if is_complete(root, config):
        return root
    if root.exists():
        require_dir(root, "output folder")
        foreign = sorted(p.name for p in root.iterdir() if p.name not in _own_names())
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise InputError(
                f"output folder {root} holds files that are not a synthetic dataset ({shown}); "
                "choose a new or empty folder"
            )
    root.mkdir(parents=True, exist_ok=True)
    (root / META_FILE).unlink(missing_ok=True)
    staging = root / _STAGING
    shutil.rmtree(staging, ignore_errors=True)

    first_test = config.n_train_ids + 1
    splits = {
        "train": range(1, first_test),
        "test": range(first_test, first_test + config.n_test_ids),
    }
    total = (config.n_train_ids + config.n_test_ids) * config.images_per_id
    with tqdm(total=total, desc="synthetic people", unit="img", disable=not progress) as bar:
        for split, pids in splits.items():
            folder = staging / split
            folder.mkdir(parents=True)
            annotations: dict[str, np.ndarray] = {}
            for pid in pids:
                appearance = sample_appearance(_rng(config.seed, pid, 0))
                for k in range(config.images_per_id):
                    name, data, kps = make_image(config, appearance, pid, k)
                    (folder / name).write_bytes(data)
                    annotations[name] = kps
                    bar.update()
            annotations = dict(sorted(annotations.items()))
            write_annotations(staging / ANNOTATION_FILES[split], annotations)
            max_pairs = config.max_test_pairs if split == "test" else None
            pairs = build_pairs(annotations, max_pairs=max_pairs, seed=config.seed)
            write_pairs(staging / PAIRS_FILES[split], pairs)

    # Move into place; synthetic.json goes last, so only a finished dataset carries one.
    for name in ["train", "test", *ANNOTATION_FILES.values(), *PAIRS_FILES.values()]:
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        (staging / name).rename(target)
    staging.rmdir()
    atomic_write(root / META_FILE, json.dumps(_metadata(config), indent=2) + "\n")
    return root


def make_contact_sheet(
    root: str | Path, out: str | Path, n: int = 32, columns: int = 8, zoom: int = 2
) -> Path:
    """Save a PNG grid of ``n`` dataset images, skeletons drawn over every second one.

    Args:
        root: a dataset written by `make_synthetic_dataset`.
        out: the PNG to write.
        n: images shown, spread evenly over the train and test images.
        columns: images per row.
        zoom: nearest-neighbour enlargement, so that 128 x 64 images are easy to inspect.
    """
    root = Path(root)
    items = []
    for split in ("train", "test"):
        ann = read_annotations(root / ANNOTATION_FILES[split], image_dir=root / split)
        items += [(root / split / name, kps) for name, kps in ann.items()]
    if not items:
        raise InputError(f"{root}: the dataset has no images")
    picks = np.linspace(0, len(items) - 1, min(n, len(items))).round().astype(int)
    tiles = []
    for i, index in enumerate(picks):
        path, kps = items[index]
        img = read_image(path)
        if i % 2:
            img = draw_skeleton(kps, img.shape[0], img.shape[1], background=img, thickness=1)
        tiles.append(img)
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[r : r + columns], axis=1) for r in range(0, len(tiles), columns)]
    sheet = Image.fromarray(np.concatenate(rows, axis=0))
    sheet = sheet.resize((sheet.width * zoom, sheet.height * zoom), Image.NEAREST)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
