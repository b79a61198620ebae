"""Retargeting a driving pose sequence onto the source person's body (numpy only).

All arrays are (y, x) keypoints with -1 for a missing joint: driving ``(T, 18, 2)``, source
``(18, 2)``; results are float64 ``(T, 18, 2)`` (sub-pixel, so that limb lengths hold exactly).

- ``none``: the driving poses as they are.
- ``scale``: the pose normalisation of "Everybody Dance Now", for a person-centred frame: the
  driving person's body size becomes the source's and the driving ground height lands on the
  source's, both taken as moving medians over ``window`` frames, so that walking towards or away
  from the camera is taken out while jumps, crouches and strides stay; each frame's hip centre
  lands on the source's horizontally, so a person crossing the driving video stays in the
  model's frame (which, like the datasets' crops, is centred on the person).
- ``bones``: ``scale``, then each frame rebuilt from the neck outwards along the skeleton tree,
  every limb following the driving direction with the source's length. A limb the source lacks
  takes its mirror limb's length (left for right), else the scaled driving length.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

from posetransfer.errors import InputError
from posetransfer.pose import FLIP_PERM, LIMBS, MISSING, N_JOINTS

MODES: tuple[str, ...] = ("none", "scale", "bones")
DEFAULT_MODE = "bones"
DEFAULT_WINDOW = 25
"""Frames of the moving median that takes out slow changes of size and height (perspective)."""

NOSE, NECK, R_HIP, L_HIP = 0, 1, 8, 11
ANKLES = (10, 13)
# The skeleton as a tree from the neck, parents before children: the drawn limbs (whose order
# already is such a tree) without the two ear-to-shoulder lines, which would close loops.
BONES: tuple[tuple[int, int], ...] = tuple(limb for limb in LIMBS if limb not in ((2, 16), (5, 17)))
# Body-size segments: the torso, then each side's thigh and shin (pairs averaged).
_LEGS = (((8, 9), (11, 12)), ((9, 10), (12, 13)))


def check_keypoints_array(kps: np.ndarray, name: str, ndim: int) -> np.ndarray:
    """``kps`` as float64 of shape (..., 18, 2) with ``ndim`` dimensions; InputError naming it."""
    arr = np.asarray(kps, dtype=np.float64)
    if arr.ndim != ndim or arr.shape[-2:] != (N_JOINTS, 2):
        want = "(T, 18, 2)" if ndim == 3 else "(18, 2)"
        raise InputError(f"{name}: expected keypoints of shape {want}, got {arr.shape}", arg=name)
    if not np.isfinite(arr).all():
        raise InputError(
            f"{name}: NaN or infinite coordinates (use -1 for a missing joint)", arg=name
        )
    return arr


def present(kps: np.ndarray) -> np.ndarray:
    """Boolean (..., 18): the joint is there (neither coordinate is -1)."""
    return (kps[..., 0] != MISSING) & (kps[..., 1] != MISSING)


def _length(kps: np.ndarray, a: int, b: int) -> np.ndarray:
    """Length of bone a-b in each frame of (T, 18, 2); NaN where an end is missing."""
    ok = present(kps[:, a]) & present(kps[:, b])
    d = np.linalg.norm(kps[:, a] - kps[:, b], axis=-1)
    return np.where(ok, d, np.nan)


def _mid_hip(kps: np.ndarray) -> np.ndarray:
    """(T, 2) the middle of the hips (one hip where the other is missing); NaN if neither."""
    hips = kps[:, [R_HIP, L_HIP]].astype(np.float64)
    hips[~present(kps[:, [R_HIP, L_HIP]])] = np.nan
    with _quiet():
        return np.nanmean(hips, axis=1)


@contextlib.contextmanager
def _quiet():
    """Silence numpy's "mean of empty slice" warnings: NaN is the answer we want there."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def body_segments(kps: np.ndarray) -> np.ndarray:
    """(T, 3) torso (neck to mid-hip), thigh and shin lengths per frame, NaN where unseen."""
    mid = _mid_hip(kps)
    neck = np.where(present(kps[:, NECK])[:, None], kps[:, NECK], np.nan)
    torso = np.linalg.norm(neck - mid, axis=-1)
    with _quiet():
        legs = [
            np.nanmean(np.stack([_length(kps, *a), _length(kps, *b)]), axis=0) for a, b in _LEGS
        ]
    return np.stack([torso, *legs], axis=1)


def _ground(kps: np.ndarray, leg: float) -> np.ndarray:
    """(T,) ground height: the lower ankle, else mid-hip + a leg, else the lowest joint."""
    ankles = kps[:, list(ANKLES), 0].astype(np.float64)
    ankles[~present(kps[:, list(ANKLES)])] = np.nan
    with _quiet():
        ground = np.nanmax(ankles, axis=1)
        lowest = np.nanmax(np.where(present(kps), kps[..., 0], np.nan), axis=1)
    fallback = _mid_hip(kps)[:, 0] + leg
    ground = np.where(np.isnan(ground), fallback, ground)
    return np.where(np.isnan(ground), lowest, ground)


def _moving_median(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving median along axis 0, ignoring NaN, edges padded with the edge values."""
    lo, hi = (window - 1) // 2, window // 2
    padded = np.concatenate([np.repeat(x[:1], lo, 0), x, np.repeat(x[-1:], hi, 0)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    with _quiet():
        return np.nanmedian(windows, axis=-1)


def _similarity(
    driving: np.ndarray, source: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scales (T,), driving anchors (T, 2), source anchor): out = (d - a_d[t]) * s[t] + a_s.

    The driving body size and ground height follow the moving median over ``window`` frames:
    slow changes (walking towards or away from the camera) are taken out, fast ones (a jump, a
    crouch, a stride) stay in the motion.
    """
    segs = body_segments(driving)
    with _quiet():
        d_seg = np.nanmedian(segs, axis=0)
    s_seg = body_segments(source[None])[0]
    both = ~np.isnan(d_seg) & ~np.isnan(s_seg)
    if not both.any():
        raise InputError(
            "driving_kps, source_kps: no body segment (neck to hips, thighs, shins) is seen in "
            "both; retargeting needs the torso or a leg of both people (or use mode 'none')",
            names=("driving_kps", "source_kps"),
        )
    local = _moving_median(segs, window)  # (T, 3)
    local = np.where(np.isnan(local), d_seg, local)[:, both]
    scales = s_seg[both].sum() / local.sum(axis=1)
    d_leg = float(np.nansum(d_seg[1:])) if not np.isnan(d_seg[1:]).all() else float(d_seg[0])
    s_leg = (
        float(np.nansum(s_seg[1:]))
        if not np.isnan(s_seg[1:]).all()
        else d_leg * float(np.median(scales))
    )
    with _quiet():
        ground = _moving_median(_ground(driving, d_leg), window)
        ground = np.where(np.isnan(ground), np.nanmedian(ground), ground)
        a_d = np.stack([ground, _centre_x(driving)], axis=1)
        a_s = np.array([_ground(source[None], s_leg)[0], _centre_x(source[None])[0]])
    return scales, a_d, a_s


def _centre_x(kps: np.ndarray) -> np.ndarray:
    """(T,) each frame's horizontal centre: the mid-hip, else the mean of the joints seen."""
    with _quiet():
        joints = np.nanmean(np.where(present(kps), kps[..., 1], np.nan), axis=1)
        x = np.where(np.isnan(_mid_hip(kps)[:, 1]), joints, _mid_hip(kps)[:, 1])
        return np.where(np.isnan(x), np.nanmedian(x), x)


def _bone_lengths(source: np.ndarray, fallback: np.ndarray) -> dict[tuple[int, int], float]:
    """Each bone's length: the source's, its mirror bone's, else ``fallback`` (per bone)."""
    src = source[None]
    lengths = {}
    for i, (a, b) in enumerate(BONES):
        length = _length(src, a, b)[0]
        if np.isnan(length):
            length = _length(src, FLIP_PERM[a], FLIP_PERM[b])[0]
        lengths[(a, b)] = float(fallback[i]) if np.isnan(length) else float(length)
    return lengths


def retarget(
    driving_kps: np.ndarray,
    source_kps: np.ndarray,
    mode: str = DEFAULT_MODE,
    window: int = DEFAULT_WINDOW,
) -> np.ndarray:
    """The driving motion on the source person's body: (T, 18, 2) float64, -1 where missing.

    Args:
        driving_kps: (T, 18, 2) (y, x) keypoints of the driving frames, -1 missing.
        source_kps: (18, 2) keypoints of the source person, in the frame the result is wanted in.
        mode: "none", "scale" or "bones" (see the module docstring).
        window: frames over which the driving body size and ground height are taken (a moving
            median): changes slower than that (perspective) are removed, faster ones kept.

    Raises:
        InputError: naming the argument: wrong shapes, an unknown mode, or no body segment seen
            in both people.
    """
    driving = check_keypoints_array(driving_kps, "driving_kps", 3)
    source = check_keypoints_array(source_kps, "source_kps", 2)
    if mode not in MODES:
        raise InputError(f"mode={mode!r}: choose one of {', '.join(MODES)}", arg="mode")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise InputError(f"window={window!r}: must be a whole number >= 1", arg="window")
    if mode == "none":
        return driving.copy()
    scales, a_d, a_s = _similarity(driving, source, window)
    ok = present(driving)
    placed = (driving - a_d[:, None]) * scales[:, None, None] + a_s
    out = np.where(ok[..., None], placed, float(MISSING))
    if mode == "scale":
        return out
    with _quiet():
        fallback = np.nanmedian(np.stack([_length(out, a, b) for a, b in BONES], axis=1), axis=0)
    lengths = _bone_lengths(source, fallback)
    rebuilt = out.copy()
    for a, b in BONES:
        both = ok[:, a] & ok[:, b]
        direction = out[:, b] - out[:, a]
        norm = np.linalg.norm(direction, axis=-1, keepdims=True)
        unit = np.divide(direction, norm, out=np.zeros_like(direction), where=norm > 0)
        # The parent's rebuilt position plus the source's length along the driving direction.
        placed = rebuilt[:, a] + unit * lengths[(a, b)]
        rebuilt[:, b] = np.where(both[:, None], placed, rebuilt[:, b])
    return rebuilt


def frame_clip(kps: np.ndarray, height: int, width: int, fill: float = 0.9) -> np.ndarray:
    """One similarity for a whole clip placing it in a height x width frame ("none" mode).

    The clip's median body extent (top joint to ground) spans ``fill`` of the frame height, each
    frame's hip centre is centred horizontally and the clip's ground sits at the lower margin.
    """
    kps = check_keypoints_array(kps, "kps", 3)
    ok = present(kps)
    with _quiet():
        seg = np.nanmedian(body_segments(kps), axis=0)
        leg = (
            float(np.nansum(seg[1:]))
            if not np.isnan(seg[1:]).all()
            else float(np.nan_to_num(seg[0]))
        )
        ground = _ground(kps, leg)
        top = np.nanmin(np.where(ok, kps[..., 0], np.nan), axis=1)
        extent = float(np.nanmedian(ground - top))
        a_d = np.stack([np.full(len(kps), np.nanmedian(ground)), _centre_x(kps)], axis=1)
    if not np.isfinite(extent) or extent <= 0:
        raise InputError("kps: no frame shows a person tall enough to frame", arg="kps")
    scale = fill * height / extent
    a_s = np.array([height * (1 + fill) / 2, width / 2])
    return np.where(ok[..., None], (kps - a_d[:, None]) * scale + a_s, float(MISSING))
