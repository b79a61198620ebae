"""Tests of the web demo's plain functions and page construction, without a browser.

The checkpoint holds untrained weights (a fresh ``patn_tiny``): the page's plumbing is tested,
not image quality. The end-to-end test in a real browser is tests/test_browser.py.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_overrides

gr = pytest.importorskip("gradio", reason="gradio not installed ([app] extra)")

from PIL import Image  # noqa: E402

from posetransfer import cli  # noqa: E402
from posetransfer.app import (  # noqa: E402
    build_app,
    click_to_frame,
    display_factor,
    joints_table,
    keypoints_from_table,
    load_source,
    move_joint,
    pose_from_file,
    pose_from_name,
    run_generate,
    skeleton_overlay,
)
from posetransfer.checkpoint import save_checkpoint  # noqa: E402
from posetransfer.config import load_config  # noqa: E402
from posetransfer.errors import InputError  # noqa: E402
from posetransfer.keypoints.named_poses import named_pose  # noqa: E402
from posetransfer.models.registry import create_generator  # noqa: E402
from posetransfer.photos.transfer import PoseTransfer  # noqa: E402
from posetransfer.pose import (  # noqa: E402
    JOINT_NAMES,
    MISSING,
    KeypointWarning,  # noqa: E402
    read_annotations,
)

MESSI = Path("/usr/share/doc/opencv-doc/examples/data/messi5.jpg")
H, W = 128, 64


@pytest.fixture(scope="module")
def pt(tiny_root, tmp_path_factory) -> PoseTransfer:
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("runs") / "00000-tiny"
    cfg = load_config("synthetic", tiny_overrides(tiny_root, run.parent))
    save_checkpoint(
        run / "checkpoints" / "step-0000000", create_generator("patn_tiny"), "patn_tiny", {}, cfg, 0
    )
    with PoseTransfer.from_checkpoint(run) as pt:
        yield pt


@pytest.fixture(scope="module")
def source(pt, tiny_root):
    """A framed synthetic test person (keypoints from its annotation: no detector needed)."""
    csv = next(tiny_root.glob("*-annotation-test.csv"))
    name, kps = next(iter(read_annotations(csv).items()))
    return pt.prepare_source(tiny_root / "test" / name, kps)


def test_build_app_from_untrained_checkpoint_gives_blocks(pt):
    assert isinstance(build_app(pt), gr.Blocks)


def test_build_app_missing_checkpoint_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="checkpoint not found"):
        build_app(tmp_path / "nope")


def test_overlay_is_enlarged_for_display(pt, source):
    f = display_factor(H)
    assert f >= 2
    assert skeleton_overlay(source.kps, source.image, H, W).shape == (H * f, W * f, 3)


def test_click_maps_display_pixels_to_frame_pixels():
    f = display_factor(H)
    assert click_to_frame([10 * f + f - 1, 20 * f], H, W) == (20, 10)
    assert click_to_frame([10_000, -5], H, W) == (0, W - 1)


def test_joint_table_roundtrip():
    kps = named_pose("back", H, W)
    assert np.array_equal(keypoints_from_table(joints_table(kps), H, W), kps)


@pytest.mark.filterwarnings("ignore::posetransfer.pose.KeypointWarning")  # tested below
def test_joint_table_outside_frame_or_empty_means_missing():
    rows = joints_table(named_pose("front", H, W))
    rows[4][1] = H + 5
    rows[7][2] = ""
    kps = keypoints_from_table(rows, H, W)
    assert (kps[4] == MISSING).all() and (kps[7] == MISSING).all()


def test_joint_table_warns_about_a_joint_placed_past_the_frame():
    rows = joints_table(named_pose("front", H, W))
    rows[4][1] = H + 5
    with pytest.warns(KeypointWarning, match=rf"joint table: .*right_wrist \(y={H + 5}, x="):
        kps = keypoints_from_table(rows, H, W)
    assert (kps[4] == MISSING).all()


def test_joint_table_removing_a_joint_with_minus_one_does_not_warn():
    rows = joints_table(named_pose("front", H, W))
    rows[4][1] = -1
    rows[5][2] = "-1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kps = keypoints_from_table(rows, H, W)
    assert (kps[[4, 5]] == MISSING).all()


def test_joint_table_bad_cell_names_the_row():
    rows = joints_table(named_pose("front", H, W))
    rows[3][2] = "abc"
    with pytest.raises(InputError, match="row 4 \\(right_elbow\\)"):
        keypoints_from_table(rows, H, W)


def test_move_joint_moves_only_that_joint():
    kps = named_pose("front", H, W)
    moved = move_joint(kps, "left_wrist", 5, 6)
    j = JOINT_NAMES.index("left_wrist")
    assert tuple(moved[j]) == (5, 6)
    assert np.array_equal(np.delete(moved, j, 0), np.delete(kps, j, 0))


def test_unknown_pose_name_lists_choices(pt):
    with pytest.raises(InputError, match="choose from front, back"):
        pose_from_name(pt, "moonwalk")


def test_pose_from_openpose_upload(pt, tmp_path):
    flat = []
    for y, x in named_pose("front", H, W) * 2:
        flat += [0, 0, 0] if y < 0 else [float(x), float(y), 1.0]
    path = tmp_path / "p_keypoints.json"
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": flat}]}))
    assert pose_from_file(pt, path).shape == (18, 2)


def test_pose_from_bad_upload_names_the_file(pt, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(InputError, match="notes.txt: not an image nor an OpenPose"):
        pose_from_file(pt, path)


def test_generate_without_source_asks_for_a_photo(pt):
    with pytest.raises(InputError, match="upload a source photo"):
        run_generate(pt, None, named_pose("front", H, W), False)


def test_generate_gives_frame_or_photo_size(pt, source):
    tgt = named_pose("arms_up", H, W)
    assert run_generate(pt, source, tgt, False).shape == (H, W, 3)
    assert run_generate(pt, source, tgt, True).shape == source.photo.shape


def test_generate_rejects_a_target_with_no_joints(pt, source):
    empty = np.full((18, 2), MISSING)
    with pytest.raises(InputError, match="at least 2 joints"):
        run_generate(pt, source, empty, False)


def test_generate_drops_target_joints_outside_the_frame_with_a_warning(pt, source):
    tgt = named_pose("arms_up", H, W)
    tgt[4] = (H + 40, 3)
    with pytest.warns(KeypointWarning, match="target pose.*right_wrist"):
        out = run_generate(pt, source, tgt, False)
    tgt[4] = MISSING
    assert np.array_equal(out, run_generate(pt, source, tgt, False))


def test_load_source_without_image_asks_for_one(pt):
    with pytest.raises(InputError, match="upload a source photo"):
        load_source(pt, None)


def test_load_source_real_photo_detects_person(pt):
    if not MESSI.is_file():
        pytest.skip(f"{MESSI} missing (Debian package opencv-doc)")
    pytest.importorskip("mediapipe", reason="mediapipe not installed ([keypoints] extra)")
    source, overlay = load_source(pt, np.asarray(Image.open(MESSI).convert("RGB")))
    assert source.image.shape == (H, W, 3)
    assert overlay.shape[0] == H * display_factor(H)


def test_load_source_no_person_says_so(pt):
    pytest.importorskip("mediapipe", reason="mediapipe not installed ([keypoints] extra)")
    with pytest.raises(InputError, match="no person found"):
        load_source(pt, np.full((300, 200, 3), 128, np.uint8))


def test_cli_app_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert cli.main(["app", "--checkpoint", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "checkpoint not found" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_cli_app_on_missing_cuda_is_one_line(tmp_path, capsys):
    assert cli.main(["app", "--checkpoint", str(tmp_path / "nope"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("posetransfer app: error: --device 'cuda': no CUDA device")
