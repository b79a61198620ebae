"""Tests of posetransfer.keypoints.framing (person framing) and .named_poses (named poses)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from posetransfer.errors import InputError
from posetransfer.keypoints.framing import (
    Frame,
    check_keypoints,
    frame_for_box,
    frame_person,
    frame_skeleton,
    person_box,
)
from posetransfer.keypoints.named_poses import (
    POSE_DESCRIPTIONS,
    POSE_NAMES,
    named_pose,
    pose_fractions,
)
from posetransfer.pose import MISSING, TORSO_JOINTS, KeypointWarning, visible

R_SHO, L_SHO, R_HIP, L_HIP, NOSE, NECK = 2, 5, 8, 11, 0, 1


def person_in_photo(height: int, width: int, top: int, left: int, size: int) -> np.ndarray:
    """Keypoints of the 'front' pose drawn ``size`` pixels tall at (top, left) in a photo."""
    kps = named_pose("front", size, size // 2)
    vis = visible(kps)
    kps[vis] += [top, left]
    return kps


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Frame


def test_keypoint_round_trip() -> None:
    kps = person_in_photo(900, 1200, top=100, left=500, size=600)
    _, framed, frame = frame_person(textured(900, 1200), kps, 128, 64)
    back = frame.invert_keypoints(framed)
    vis = visible(kps)
    assert np.all(visible(framed) == vis)
    # One frame pixel is 1 / scale source pixels; rounding twice costs at most one of them.
    assert np.abs(back[vis] - kps[vis]).max() <= np.ceil(1 / frame.scale)


def test_apply_then_invert_is_exact_when_upscaling() -> None:
    frame = Frame(scale=2.0, offset=(10.0, -5.0), size=(128, 64), source_size=(100, 50))
    kps = np.full((18, 2), MISSING, np.int64)
    kps[:4] = [[10, 0], [20, 3], [50, 20], [70, 26]]
    out = frame.apply_keypoints(kps)
    np.testing.assert_array_equal(out[:4], [[0, 10], [20, 16], [80, 50], [120, 62]])
    np.testing.assert_array_equal(frame.invert_keypoints(out), kps)


def test_joints_outside_the_frame_become_missing() -> None:
    frame = Frame(scale=1.0, offset=(0.0, 0.0), size=(10, 10), source_size=(50, 50))
    kps = np.full((18, 2), MISSING, np.int64)
    kps[0], kps[1] = (5, 5), (30, 5)
    out = frame.apply_keypoints(kps)
    assert tuple(out[0]) == (5, 5) and tuple(out[1]) == (MISSING, MISSING)
    assert tuple(frame.apply_keypoints(kps, drop_outside=False)[1]) == (30, 5)


def test_aspect_ratio_is_kept() -> None:
    # A white 60x60 square in a wide photo must stay square in the 256x176 frame.
    photo = np.zeros((400, 1000, 3), np.uint8)
    photo[170:230, 470:530] = 255
    kps = np.full((18, 2), MISSING, np.int64)
    kps[0], kps[1] = (170, 470), (229, 529)
    framed, _, frame = frame_person(photo, kps, 256, 176)
    rows = np.flatnonzero(framed[..., 0].max(axis=1) > 127)
    cols = np.flatnonzero(framed[..., 0].max(axis=0) > 127)
    assert abs(len(rows) - len(cols)) <= 1
    assert len(rows) == pytest.approx(60 * frame.scale, abs=1.5)


def test_person_spans_the_fill_fraction_and_is_centred() -> None:
    kps = person_in_photo(1000, 1000, top=200, left=300, size=500)
    _, framed, frame = frame_person(textured(1000, 1000), kps, 128, 64, fill=0.9)
    top, left, bottom, right = person_box(framed)
    assert (bottom - top) == pytest.approx(0.9 * 128, abs=2)
    assert (top + bottom) / 2 == pytest.approx(64, abs=2)
    assert (left + right) / 2 == pytest.approx(32, abs=2)


def test_wide_pose_fills_the_width_instead() -> None:
    kps = named_pose("arms_out", 200, 400)  # arms spread over a wide photo
    _, framed, _ = frame_person(textured(400, 800), kps + 100 * visible(kps)[:, None], 128, 64)
    _, left, _, right = person_box(framed)
    assert right - left == pytest.approx(0.9 * 64, abs=2)


def test_padding_with_a_colour_and_with_edges() -> None:
    red = np.zeros((260, 300, 3), np.uint8)
    red[..., 0] = 200
    # The person fills the photo's height, so the frame (person at 90%) must reach beyond it.
    kps = person_in_photo(260, 300, top=0, left=80, size=280)
    grey, _, frame = frame_person(red, kps, 128, 64, pad=(128, 128, 128))
    edge, _, _ = frame_person(red, kps, 128, 64, pad="edge")
    top, _, bottom, _ = frame.window
    assert top < 0 or bottom > 260
    assert np.any(np.all(grey == 128, axis=-1))
    assert np.all(edge[..., 0] == 200) and np.all(edge[..., 1:] == 0)


def test_bad_pad_is_an_input_error() -> None:
    kps = person_in_photo(300, 300, top=5, left=0, size=290)
    with pytest.raises(InputError, match="pad"):
        frame_person(textured(300, 300), kps, 128, 64, pad="mirror")


def test_person_cut_off_by_the_photo_stays_on_the_frame_border() -> None:
    # Upper body only: the hips sit near the bottom edge of the photo, the legs are outside.
    kps = person_in_photo(1000, 1000, top=100, left=400, size=800)
    kps[[9, 10, 12, 13]] = MISSING
    kps[visible(kps)] += [280, 0]  # hips at y 780, wrists at 796 of an 800-high photo
    frame = frame_person(textured(800, 1000), kps, 256, 176)[2]
    top, _, bottom, _ = frame.window
    assert bottom == pytest.approx(800)  # no padding below the photo
    assert top >= 0


def test_paste_back_restores_the_photo_size_and_window() -> None:
    photo = textured(300, 400)
    kps = person_in_photo(300, 400, top=40, left=150, size=200)
    framed, _, frame = frame_person(photo, kps, 128, 64)
    white = np.full_like(framed, 255)
    pasted = frame.paste_back(white, photo)
    assert pasted.shape == photo.shape and pasted.dtype == np.uint8
    top, left, bottom, right = (round(v) for v in frame.window)
    assert np.all(pasted[max(top, 0) : bottom, max(left, 0) : right] == 255)
    outside = np.ones(photo.shape[:2], bool)
    outside[max(top, 0) : bottom, max(left, 0) : right] = False
    np.testing.assert_array_equal(pasted[outside], photo[outside])


def test_paste_back_of_the_crop_is_close_to_the_photo() -> None:
    yy, xx = np.mgrid[0:300, 0:400]
    smooth = np.stack([yy * 255 // 300, xx * 255 // 400, (yy + xx) % 256], -1).astype(np.uint8)
    kps = person_in_photo(300, 400, top=40, left=150, size=200)
    framed, _, frame = frame_person(smooth, kps, 256, 176)
    pasted = frame.paste_back(framed, smooth)
    diff = np.abs(pasted.astype(int) - smooth.astype(int))[..., :2]  # skip the wrapped channel
    assert diff.mean() < 2


def test_paste_back_feather_blends_the_border() -> None:
    frame = Frame(scale=1.0, offset=(10.0, 10.0), size=(20, 20), source_size=(40, 40))
    photo = np.zeros((40, 40, 3), np.uint8)
    out = frame.paste_back(np.full((20, 20, 3), 200, np.uint8), photo, feather=4)
    assert 0 < out[10, 20, 0] < 200  # border row: blended
    assert out[20, 20, 0] == 200  # centre: the pasted image
    assert out[5, 5, 0] == 0  # outside: untouched


def test_crop_and_paste_back_check_sizes() -> None:
    frame = Frame(scale=1.0, offset=(0.0, 0.0), size=(20, 10), source_size=(40, 40))
    with pytest.raises(InputError, match="frame was made for 40x40"):
        frame.crop(np.zeros((30, 40, 3), np.uint8))
    with pytest.raises(InputError, match="expected 20x10"):
        frame.paste_back(np.zeros((10, 10, 3), np.uint8), np.zeros((40, 40, 3), np.uint8))


def test_too_few_joints_is_an_input_error() -> None:
    kps = np.full((18, 2), MISSING, np.int64)
    kps[0] = (10, 10)
    with pytest.raises(InputError, match="at least 2 joints"):
        frame_person(textured(50, 50), kps, 128, 64)


def test_frame_for_box_rejects_bad_fill() -> None:
    with pytest.raises(InputError, match="fill"):
        frame_for_box((0, 0, 10, 10), 128, 64, (100, 100), fill=1.5)


def test_bad_fill_and_pad_name_their_argument() -> None:
    kps = person_in_photo(300, 300, top=5, left=0, size=290)
    with pytest.raises(InputError, match=r"^fill=1.5: must be in \(0, 1\]$") as e:
        frame_person(textured(300, 300), kps, 128, 64, fill=1.5)
    assert e.value.arg == "fill"
    with pytest.raises(InputError, match=r"^pad='mirror': must be 'edge' or an RGB colour$") as e:
        frame_person(textured(300, 300), kps, 128, 64, pad="mirror")
    assert e.value.arg == "pad"
    with pytest.raises(InputError, match=r"^pad=\(0, 0, 300\): an RGB colour must be") as e:
        frame_person(textured(300, 300), kps, 128, 64, pad=(0, 0, 300))
    assert e.value.arg == "pad"


def test_frame_person_drops_joints_outside_the_photo_with_a_warning() -> None:
    kps = person_in_photo(400, 300, top=40, left=100, size=300)
    outside = kps.copy()
    outside[4] = (420, 150)  # right wrist below the 400-high photo
    photo = textured(400, 300)
    with pytest.warns(KeypointWarning, match=r"outside the 400x300 image.*right_wrist"):
        image, framed, frame = frame_person(photo, outside, 128, 64)
    without = kps.copy()
    without[4] = MISSING
    expected_image, expected_kps, expected_frame = frame_person(photo, without, 128, 64)
    assert frame == expected_frame and tuple(framed[4]) == (MISSING, MISSING)
    np.testing.assert_array_equal(framed, expected_kps)
    np.testing.assert_array_equal(image, expected_image)


# --------------------------------------------------------------------------------------------
# Given keypoints and framing a skeleton


def test_check_keypoints_makes_joints_outside_the_image_missing_with_a_warning() -> None:
    kps = named_pose("front", 128, 64)
    kps[4] = (130, 20)  # right wrist below a 128-high image
    kps[7] = (50, 64)  # left wrist just right of a 64-wide one
    with pytest.warns(
        KeypointWarning,
        match="outside the 128x64 image.*right_wrist \\(y=130, x=20\\).*left_wrist",
    ):
        out = check_keypoints(kps, "my pose", bounds=(128, 64))
    assert np.all(out[[4, 7]] == MISSING)
    np.testing.assert_array_equal(np.delete(out, [4, 7], 0), np.delete(kps, [4, 7], 0))


def test_check_keypoints_negative_coordinate_is_outside_even_without_bounds() -> None:
    kps = named_pose("front", 128, 64)
    kps[0] = (-5, 30)
    with pytest.warns(KeypointWarning, match="negative coordinate.*nose \\(y=-5, x=30\\)"):
        out = check_keypoints(kps)
    assert tuple(out[0]) == (MISSING, MISSING)


def test_check_keypoints_missing_joints_do_not_warn() -> None:
    kps = named_pose("front", 128, 64)
    kps[0] = (MISSING, MISSING)
    kps[1] = (MISSING, 20)  # one coordinate -1: missing as a whole, as in annotation files
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = check_keypoints(kps, bounds=(128, 64))
    assert np.all(out[[0, 1]] == MISSING)


def test_frame_skeleton_drops_joints_outside_its_image_with_a_warning() -> None:
    kps = person_in_photo(200, 100, top=20, left=20, size=160)
    outside = kps.copy()
    outside[4] = (250, 40)  # right wrist below the 200-high image
    with pytest.warns(KeypointWarning, match="right_wrist"):
        framed = frame_skeleton(outside, 128, 64, image_size=(200, 100))
    without = kps.copy()
    without[4] = MISSING
    np.testing.assert_array_equal(framed, frame_skeleton(without, 128, 64, image_size=(200, 100)))


def test_frame_skeleton_with_too_few_joints_inside_the_image_is_an_input_error() -> None:
    kps = np.full((18, 2), MISSING, np.int64)
    kps[0], kps[1] = (10, 10), (300, 10)
    with pytest.warns(KeypointWarning), pytest.raises(InputError, match="at least 2 joints"):
        frame_skeleton(kps, 128, 64, image_size=(200, 100), what="row x.jpg")


@pytest.mark.parametrize("with_size", [True, False])
def test_frame_skeleton_keeps_every_joint_inside_the_image(with_size: bool) -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(20, 1500, 2))
        kps = np.stack([rng.integers(0, h, 18), rng.integers(0, w, 18)], axis=1)
        kps[rng.random(18) < 0.3] = MISSING
        if visible(kps).sum() < 2:
            continue
        framed = frame_skeleton(kps, 128, 64, image_size=(h, w) if with_size else None)
        np.testing.assert_array_equal(visible(framed), visible(kps))


def test_frame_skeleton_without_image_size_centres_the_skeleton() -> None:
    # An OpenPose file gives no image size: the skeleton alone is framed, none of it is lost.
    base = named_pose("front", 128, 64)
    big = np.where(visible(base)[:, None], base * 4 + [50, 70], MISSING)
    framed = frame_skeleton(big, 128, 64)
    assert np.all(visible(framed) == visible(base))
    assert np.abs(framed - base)[visible(base)].max() <= 3


def test_photo_geometry_modules_import_without_torch_or_data() -> None:
    modules = ["framing", "detect", "named_poses", "targets"]
    code = (
        "import json, sys\n"
        + "".join(f"import posetransfer.keypoints.{m}\n" for m in modules)
        + "print(json.dumps(sorted(m for m in sys.modules"
        " if m == 'torch' or m.startswith(('torch.', 'posetransfer.data')))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


# --------------------------------------------------------------------------------------------
# Named poses


@pytest.mark.parametrize("size", [(128, 64), (256, 176)])
def test_named_poses_fit_the_frame_with_a_torso(size: tuple[int, int]) -> None:
    h, w = size
    for name in POSE_NAMES:
        kps = named_pose(name, h, w)
        assert kps.shape == (18, 2) and kps.dtype == np.int64, name
        vis = visible(kps)
        assert np.all(vis[list(TORSO_JOINTS)]), name
        assert np.all((kps[vis] >= 0) & (kps[vis] < [h, w])), name


def test_named_poses_are_already_framed_like_the_datasets() -> None:
    # Framing a named pose on its own frame should barely move it: scale ~1, offset ~0.
    for name in ("front", "back", "walking", "side_left"):
        kps = named_pose(name, 128, 64)
        frame = frame_for_box(person_box(kps), 128, 64, (128, 64))
        assert frame.scale == pytest.approx(1.0, abs=0.08), name
        assert abs(frame.offset[0]) < 6 and abs(frame.offset[1]) < 6, name


def test_front_and_back_have_the_sides_swapped() -> None:
    front, back = named_pose("front"), named_pose("back")
    assert front[R_SHO, 1] < front[L_SHO, 1] and front[R_HIP, 1] < front[L_HIP, 1]
    assert back[R_SHO, 1] > back[L_SHO, 1] and back[R_HIP, 1] > back[L_HIP, 1]
    assert np.all(back[[NOSE, 14, 15]] == MISSING)  # no face from behind
    assert np.all(front[[NOSE, 14, 15]] != MISSING)


def test_side_views_face_their_way_and_mirror_each_other() -> None:
    left, right = named_pose("side_left", 256, 176), named_pose("side_right", 256, 176)
    assert left[NOSE, 1] < left[NECK, 1] and right[NOSE, 1] > right[NECK, 1]
    assert left[14, 0] == MISSING and left[15, 0] != MISSING  # only the near (left) eye
    fl, fr = pose_fractions("side_left"), pose_fractions("side_right")
    np.testing.assert_allclose(fr[2, 1], 1 - fl[5, 1])  # right shoulder mirrors the left one


def test_unknown_pose_lists_the_names() -> None:
    with pytest.raises(InputError, match="front"):
        named_pose("cartwheel")
    assert set(POSE_DESCRIPTIONS) == set(POSE_NAMES)
