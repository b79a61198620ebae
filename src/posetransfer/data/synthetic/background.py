"""Backgrounds: street-like scenes without people, different for every image."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from posetransfer.data.synthetic.appearance import hsv


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
        rgb = hsv(rng.random(), rng.uniform(0, s_max), rng.uniform(*v))
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
