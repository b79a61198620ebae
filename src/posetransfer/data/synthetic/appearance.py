"""Identities: each one's fixed look (skin, hair, clothes and their texture, shoes, bag, build)."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]
_SKIN_TONES: tuple[RGB, ...] = (
    (250, 220, 195),
    (238, 196, 168),
    (222, 172, 136),
    (196, 138, 102),
    (160, 104, 72),
    (122, 78, 52),
    (90, 60, 42),
)
_HAIR_COLORS: tuple[RGB, ...] = (
    (22, 18, 16),
    (22, 18, 16),
    (48, 32, 24),
    (88, 58, 36),
    (140, 100, 62),
    (205, 175, 115),
    (160, 158, 155),
    (125, 52, 30),
)
_LOWER_COLORS: tuple[RGB, ...] = (
    (52, 72, 112),
    (34, 38, 62),
    (28, 28, 30),
    (112, 112, 118),
    (172, 152, 112),
    (205, 190, 165),
    (92, 66, 46),
)
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


def hsv(h: float, s: float, v: float) -> RGB:
    """The 0..255 RGB colour of hue ``h`` (wrapped to 0..1), saturation ``s`` and value ``v``."""
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _pick(rng: np.random.Generator, options: tuple) -> object:
    return options[int(rng.integers(len(options)))]


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Draw a random identity: clothing colours and textures, skin, hair, shoes, bag, build."""
    skin = _jitter(rng, _pick(rng, _SKIN_TONES), 8)
    grey = rng.random() < 0.25
    shirt_v = float(rng.uniform(0.15, 0.95))
    shirt = hsv(rng.random(), rng.uniform(0, 0.15) if grey else rng.uniform(0.3, 0.9), shirt_v)
    pattern = str(rng.choice(["plain", "stripes", "checks"], p=[0.6, 0.2, 0.2]))
    if rng.random() < 0.4:  # white or black on the base colour
        shirt_alt = (240, 240, 240) if shirt_v < 0.55 else (25, 25, 30)
    else:  # another colour, clearly lighter or darker
        alt_v = shirt_v - 0.45 if shirt_v > 0.55 else shirt_v + 0.45
        shirt_alt = hsv(rng.random(), rng.uniform(0.2, 0.9), alt_v)
    # Soften the texture: the second colour leans a third of the way back to the first.
    shirt_alt = tuple(int(round(a + (b - a) / 3)) for a, b in zip(shirt_alt, shirt))
    lower = str(rng.choice(["trousers", "shorts", "skirt"], p=[0.65, 0.12, 0.23]))
    if rng.random() < 0.7:
        lower_color = _jitter(rng, _pick(rng, _LOWER_COLORS), 10)
    else:
        lower_color = hsv(rng.random(), rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.85))
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
        bag_color=hsv(rng.random(), rng.uniform(0, 0.7), rng.uniform(0.1, 0.6)),
        build=float(rng.uniform(0.9, 1.12)),
    )
