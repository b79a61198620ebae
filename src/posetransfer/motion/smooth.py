"""Temporal smoothing and jitter of keypoint sequences; filling the frames a detector missed.

`smooth` is the One Euro filter (Casiez, Roussel and Vogel, CHI 2012): a low-pass filter whose
cutoff rises with the signal's speed, so that a still joint stops trembling while a fast one
does not lag. Written here, vectorised over every joint coordinate of a (T, 18, 2) sequence:
the maintained packages implement it per scalar in Python loops. A joint that disappears
restarts its filter where it comes back.
"""

from __future__ import annotations

import numpy as np

from posetransfer.errors import InputError
from posetransfer.motion.retarget import check_keypoints_array, present
from posetransfer.pose import MISSING

DEFAULT_MIN_CUTOFF = 1.0
"""Hz: the cutoff of a still joint (lower: smoother at rest, more lag)."""
DEFAULT_BETA = 0.05
"""How fast the cutoff grows with speed (per pixel/s; higher: less lag on fast moves)."""
DEFAULT_D_CUTOFF = 1.0
"""Hz: the cutoff of the speed estimate."""
DEFAULT_MAX_GAP = 5
"""Frames: shorter runs of a missing joint (or person) are interpolated, longer ones held."""


def _alpha(cutoff: np.ndarray | float, rate: float) -> np.ndarray:
    tau = 1.0 / (2 * np.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau * rate)


def smooth(
    kps: np.ndarray,
    fps: float,
    min_cutoff: float = DEFAULT_MIN_CUTOFF,
    beta: float = DEFAULT_BETA,
    d_cutoff: float = DEFAULT_D_CUTOFF,
) -> np.ndarray:
    """One Euro filtered keypoints: (T, 18, 2) float64, -1 where the input is missing.

    Args:
        kps: (T, 18, 2) (y, x) keypoints, -1 missing.
        fps: frames per second of the sequence (the filter's cutoffs are in Hz).
        min_cutoff: cutoff frequency at rest, Hz (> 0).
        beta: speed coefficient (>= 0); 0 is a plain low-pass filter.
        d_cutoff: cutoff of the speed estimate, Hz (> 0).

    Raises:
        InputError: naming the argument for a wrong shape or a value out of range.
    """
    x = check_keypoints_array(kps, "kps", 3)
    for name, value, low in (
        ("fps", fps, 0),
        ("min_cutoff", min_cutoff, 0),
        ("d_cutoff", d_cutoff, 0),
    ):
        if not np.isfinite(value) or value <= low:
            raise InputError(f"{name}={value!r}: must be > 0", arg=name)
    if not np.isfinite(beta) or beta < 0:
        raise InputError(f"beta={beta!r}: must be >= 0", arg="beta")
    ok = present(x)
    out = np.full_like(x, float(MISSING))
    prev = np.zeros(x.shape[1:])  # filtered value, (18, 2)
    dprev = np.zeros(x.shape[1:])  # filtered speed, pixels per second
    alive = np.zeros(x.shape[1], dtype=bool)  # joints whose filter has a previous value
    a_d = _alpha(d_cutoff, fps)
    for t in range(x.shape[0]):
        cur, here = x[t], ok[t]
        speed = (cur - prev) * fps
        dhat = np.where(alive[:, None], a_d * speed + (1 - a_d) * dprev, 0.0)
        cutoff = min_cutoff + beta * np.abs(dhat)
        a = _alpha(cutoff, fps)
        filtered = np.where(alive[:, None], a * cur + (1 - a) * prev, cur)
        prev = np.where(here[:, None], filtered, prev)
        dprev = np.where(here[:, None], dhat, dprev)
        alive = here  # a missing joint restarts when it returns
        out[t] = np.where(here[:, None], filtered, float(MISSING))
    return out


def jitter(kps: np.ndarray) -> float:
    """Mean frame-to-frame joint acceleration in pixels: |p[t+1] - 2 p[t] + p[t-1]|.

    Averaged over every joint present in three consecutive frames; NaN when none is.
    """
    x = check_keypoints_array(kps, "kps", 3)
    if x.shape[0] < 3:
        return float("nan")
    ok = present(x)
    both = ok[2:] & ok[1:-1] & ok[:-2]
    acc = np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1)
    return float(acc[both].mean()) if both.any() else float("nan")


def bridge_gaps(kps: np.ndarray, max_gap: int = DEFAULT_MAX_GAP) -> tuple[np.ndarray, dict]:
    """Fill the frames a joint (or the whole person) is missing from.

    A run of at most ``max_gap`` missing frames between two frames where the joint is seen is
    interpolated linearly. Frames without any joint beyond that (a longer run, or one at either
    end of the clip) hold the nearest frame with a person. A joint missing longer while the
    person is seen stays missing (it is out of view, not lost).

    Returns:
        (filled (T, 18, 2) float64, counts): ``counts`` has ``person_gaps_bridged`` and
        ``person_gaps_held`` (runs of frames without any joint) and ``joint_gaps_bridged``.

    Raises:
        InputError: naming ``kps`` when no frame has a person.
    """
    x = check_keypoints_array(kps, "kps", 3)
    if isinstance(max_gap, bool) or not isinstance(max_gap, int) or max_gap < 0:
        raise InputError(f"max_gap={max_gap!r}: must be a whole number >= 0", arg="max_gap")
    ok = present(x)
    someone = ok.any(axis=1)
    if not someone.any():
        raise InputError("kps: no frame has a person", arg="kps")
    counts = {"person_gaps_bridged": 0, "person_gaps_held": 0, "joint_gaps_bridged": 0}
    out = x.copy()
    t = np.arange(x.shape[0])
    for j in range(x.shape[1]):  # short gaps inside the clip: linear between the two ends
        for start, stop in _runs(~ok[:, j]):
            if start > 0 and stop < len(t) and stop - start <= max_gap:
                lo, hi = start - 1, stop
                w = ((t[start:stop] - lo) / (hi - lo))[:, None]
                out[start:stop, j] = (1 - w) * x[lo, j] + w * x[hi, j]
                counts["joint_gaps_bridged"] += 1
    for start, stop in _runs(~someone):  # frames without a person: bridged above, or held
        short = start > 0 and stop < len(t) and stop - start <= max_gap
        if short and present(out[start:stop]).any(axis=1).all():
            counts["person_gaps_bridged"] += 1
            continue  # (no joint seen on both sides of the gap leaves it empty: held instead)
        counts["person_gaps_held"] += 1
        near = start - 1 if start > 0 else stop
        out[start:stop] = out[near]
    return out, counts


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a 1-D boolean array."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))
