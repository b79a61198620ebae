"""Drawing a posed, dressed figure over a background, anti-aliased, with a soft floor shadow.

The body parts are filled polygons, ellipses and capsules painted as a label map at twice the
output size, coloured per material (a striped or checked shirt per pixel), outlined where parts
meet, and averaged down so that edges are anti-aliased.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from posetransfer.data.synthetic.appearance import Appearance
from posetransfer.data.synthetic.body import (
    CHEST_DEPTH,
    HEAD_RX,
    HEAD_RY,
    HIP_X,
    R_ANKLE,
    R_FOREARM,
    R_HAND,
    R_KNEE,
    R_NECK,
    R_SHOE,
    R_THIGH,
    R_UPPER_ARM,
    SHOULDER_X,
    SHOULDER_Y,
    WAIST_Y,
    Skeleton,
)

# Materials of the label map.
_SKIN, _HAIR, _SHIRT, _LOWER, _LEGWEAR, _SHOES, _BAG = range(1, 8)


# One part of the figure: (layer, depth, material, shade, shapes). Parts are painted by layer
# (0 first: legs and whatever is well behind the torso), then from far to near, ties in order.
_Part = tuple[int, float, int, float, list]


def _capsule(p: np.ndarray, q: np.ndarray, r1: float, r2: float) -> tuple:
    return ("capsule", p[:2], q[:2], r1, r2)


def _box(center: np.ndarray, half_w: float, half_h: float) -> tuple:
    x, y = center[0], center[1]
    return (
        "poly",
        [
            (x - half_w, y - half_h),
            (x + half_w, y - half_h),
            (x + half_w, y + half_h),
            (x - half_w, y + half_h),
        ],
    )


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
        return j[1] + s * (rot @ (np.asarray(p) - (0.0, SHOULDER_Y, 0.0)))

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
        rt, rk, ra = R_THIGH * s * limb, R_KNEE * s * limb, R_ANKLE * s * limb
        add(depth, lower_mat, [_capsule(hip, knee, rt, rk), _capsule(knee, ankle, rk, ra)], 0)
        if app.lower == "shorts":
            leg = _capsule(hip, hip + 0.5 * (knee - hip), rt + 0.01 * s, rk + 0.01 * s)
            add(depth, _LOWER, [leg], 0)
        shoe = _capsule(ankle + (0, 0.012 * s, 0), toe, R_SHOE * s, 0.85 * R_SHOE * s)
        add(depth, _SHOES, [shoe], 0)

    # Pelvis, skirt and the shirt's torso.
    neck, mid_hip = j[1], (j[8] + j[11]) / 2
    waist_y = neck[1] + (WAIST_Y - SHOULDER_Y) * s

    def spine(y: float) -> float:
        a = (y - neck[1]) / max(mid_hip[1] - neck[1], 1e-6)
        return float(neck[0] + a * (mid_hip[0] - neck[0]))

    ww, wh = half_width(0.09, 0.06), half_width(HIP_X + 0.045, 0.065)
    hy, cx = mid_hip[1], mid_hip[0]
    pelvis = [
        (spine(waist_y) - ww, waist_y),
        (spine(waist_y) + ww, waist_y),
        (cx + wh, hy + 0.01 * s),
        (cx + 0.4 * wh, hy + 0.07 * s),
        (cx - 0.4 * wh, hy + 0.07 * s),
        (cx - wh, hy + 0.01 * s),
    ]
    add(0.6, _LOWER, [("poly", pelvis)], 1)
    if app.lower == "skirt":
        hem = waist_y + app.skirt_length * s
        xs = [_leg_x_at([j[h], j[k], j[a]], hem) for h, k, a in ((8, 9, 10), (11, 12, 13))]
        flare = (R_THIGH + 0.025) * s * limb
        skirt = [
            (spine(waist_y) - ww, waist_y),
            (spine(waist_y) + ww, waist_y),
            (max(xs) + flare, hem),
            (min(xs) - flare, hem),
        ]
        add(0.2, _LOWER, [("poly", skirt)], 1)
    top = neck[1]
    w_top, w_chest = half_width(SHOULDER_X + 0.012, CHEST_DEPTH), half_width(0.106, CHEST_DEPTH)
    w_waist, w_hem = half_width(0.088, 0.06), half_width(HIP_X + 0.042, 0.062)
    rows = [
        (top - 0.018 * s, 0.72 * w_top),
        (top + 0.03 * s, w_top),
        (top + 0.12 * s, w_chest),
        (waist_y, w_waist),
        (hy + 0.008 * s, w_hem),
    ]
    torso = [(spine(y) + w, y) for y, w in rows] + [(spine(y) - w, y) for y, w in rows[::-1]]
    add(0.0, _SHIRT, [("poly", torso)], 1)
    rn = R_NECK * s * b
    add(0.3, _SKIN, [_capsule(sk.head + (0, 0.04 * s, 0), neck - (0, 0.01 * s, 0), rn, rn)], 1)

    # Arms: sleeves in the shirt's material, then hands (or bare forearms).
    for (sh, el, wr), hand in (((2, 3, 4), sk.hands[0]), ((5, 6, 7), sk.hands[1])):
        depth = float(np.mean([j[sh][2], j[el][2], j[wr][2]]))
        ru, rf = R_UPPER_ARM * s * limb, R_FOREARM * s * limb
        upper, fore = _capsule(j[sh], j[el], ru, 0.85 * ru), _capsule(j[el], j[wr], rf, 0.85 * rf)
        palm = ("ellipse", hand[:2], R_HAND * s, R_HAND * s)
        if app.long_sleeves:
            add(depth, _SHIRT, [upper, fore])
            add(depth, _SKIN, [palm])
        else:
            add(depth, _SKIN, [upper, fore, palm])
            sleeve = _capsule(j[sh], j[sh] + 0.55 * (j[el] - j[sh]), ru + 0.01 * s, ru + 0.007 * s)
            add(depth, _SHIRT, [sleeve])

    # Bags.
    if app.bag == "backpack":
        pack = loc((0.0, 0.34, CHEST_DEPTH * b + 0.045))
        add(float(pack[2]), _BAG, [_box(pack, half_width(0.078, 0.05), 0.1 * s)])
        for side in (-1, 1):
            a = loc((side * 0.06 * b, 0.19, -CHEST_DEPTH * b - 0.005))
            c = loc((side * 0.085 * b, 0.4, -CHEST_DEPTH * b - 0.005))
            add(float(a[2]), _BAG, [_capsule(a, c, 0.012 * s, 0.012 * s)])
    elif app.bag == "shoulder":
        bag = loc(((HIP_X + 0.08) * b, 0.49, 0.0))
        add(float(bag[2]), _BAG, [_box(bag, half_width(0.028, 0.08), 0.065 * s)])
        for z in (-1, 1):
            a = loc((-0.09 * b, 0.185, z * (CHEST_DEPTH * b + 0.005)))
            c = loc(((HIP_X + 0.06) * b, 0.45, z * (CHEST_DEPTH * b + 0.005)))
            add(float(a[2]), _BAG, [_capsule(a, c, 0.011 * s, 0.011 * s)])

    # Head: hanging hair, skull, hair cap, face.
    hc, rx, ry = sk.head, HEAD_RX * s, HEAD_RY * s
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
        draw.polygon(
            [tuple(p + n * r1), tuple(q + n * r2), tuple(q - n * r2), tuple(p - n * r1)], fill=value
        )
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
    material_rgb = {
        _SKIN: a.skin,
        _HAIR: a.hair,
        _SHIRT: a.shirt,
        _LOWER: a.lower_color,
        _LEGWEAR: a.legwear,
        _SHOES: a.shoes,
        _BAG: a.bag_color,
    }
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
