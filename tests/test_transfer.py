"""Tests of posetransfer.photos.transfer (PoseTransfer), posetransfer.keypoints.targets (target
poses) and `posetransfer transfer`.

The checkpoints here hold untrained weights (a fresh ``patn_tiny`` saved as a checkpoint, or
the authors'-layout reference fixture): these tests check the plumbing (detection, framing,
target forms, sizes, errors), not image quality. Tests on a real photo use MediaPipe and Debian's
opencv-doc photos and skip with the reason when either is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import reference_file, tiny_overrides
from posetransfer import cli
from posetransfer.checkpoint import save_checkpoint
from posetransfer.config import load_config
from posetransfer.errors import InputError
from posetransfer.keypoints.framing import frame_skeleton
from posetransfer.keypoints.named_poses import POSE_NAMES, named_pose
from posetransfer.keypoints.targets import split_annotation_ref, target_keypoints
from posetransfer.models.registry import create_generator
from posetransfer.photos.transfer import PoseTransfer
from posetransfer.pose import MISSING, KeypointWarning, read_annotations, visible, write_annotations

MESSI = Path("/usr/share/doc/opencv-doc/examples/data/messi5.jpg")
AUTHORS_FIXTURE = reference_file("patn_market_ngf8.pt")
H, W = 128, 64


def needs_photo_and_mediapipe() -> None:
    if not MESSI.is_file():
        pytest.skip(f"{MESSI} missing (Debian package opencv-doc)")
    pytest.importorskip("mediapipe", reason="mediapipe not installed ([keypoints] extra)")


def write_untrained_checkpoint(run_dir: Path, data_root: Path) -> Path:
    """A run directory whose one checkpoint holds a freshly initialised patn_tiny."""
    torch.manual_seed(0)
    cfg = load_config("synthetic", tiny_overrides(data_root, run_dir.parent))
    model = create_generator("patn_tiny")
    save_checkpoint(run_dir / "checkpoints" / "step-0000000", model, "patn_tiny", {}, cfg, 0)
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tiny_root, tmp_path_factory) -> Path:
    return write_untrained_checkpoint(tmp_path_factory.mktemp("runs") / "00000-tiny", tiny_root)


@pytest.fixture(scope="module")
def pt(run_dir) -> PoseTransfer:
    with PoseTransfer.from_checkpoint(run_dir) as pt:
        yield pt


@pytest.fixture(scope="module")
def person(tiny_root) -> tuple[Path, np.ndarray, Path]:
    """(image path, its keypoints, annotation CSV) of a synthetic test person."""
    csv = next(tiny_root.glob("*-annotation-test.csv"))
    name, kps = next(iter(read_annotations(csv).items()))
    return tiny_root / "test" / name, kps, csv


def test_untrained_checkpoint_named_pose_gives_model_frame_size(pt, person):
    path, kps, _ = person
    out = pt(path, "walking", source_kps=kps)
    assert isinstance(out, Image.Image)
    assert out.size == (W, H)


def test_untrained_checkpoint_paste_back_keeps_photo_size(pt, person):
    path, kps, _ = person
    photo = np.full((300, 200, 3), 90, np.uint8)
    photo[100:228, 60:124] = np.asarray(Image.open(path).convert("RGB"))
    shifted = np.where(visible(kps)[:, None], kps + [100, 60], MISSING)
    result = pt.transfer(photo, "arms_up", source_kps=shifted, paste_back=True)
    assert result.image.shape == (300, 200, 3)
    assert result.generated.shape == (H, W, 3)
    # Far from the person the photo is untouched.
    assert np.array_equal(result.image[:20], photo[:20])


def test_strip_shows_four_frames(pt, person):
    path, kps, _ = person
    strip = pt.transfer(path, "front", source_kps=kps).strip()
    assert strip.shape[0] == H and strip.shape[1] == 4 * W + 3 * 2


def test_named_pose_is_used_as_defined(pt):
    assert np.array_equal(pt.target_keypoints("wave"), named_pose("wave", H, W))


def test_skeleton_of_a_bigger_image_is_framed_like_the_named_pose():
    # The "front" pose drawn 3x larger somewhere in a 1000x800 photo comes back to the frame.
    base = named_pose("front", H, W)
    big = np.where(visible(base)[:, None], base * 3 + [200, 300], MISSING)
    framed = frame_skeleton(big, H, W, image_size=(1000, 800))
    assert np.abs(framed - base)[visible(base)].max() <= 3


def test_openpose_json_target_is_framed(pt, tmp_path):
    base = named_pose("arms_out", H, W)
    big = np.where(visible(base)[:, None], base * 4 + [50, 70], MISSING)
    flat = []
    for y, x in big:
        flat += [0, 0, 0] if y == MISSING else [float(x), float(y), 0.9]
    path = tmp_path / "pose_keypoints.json"
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": flat}]}))
    assert np.array_equal(pt.target_keypoints(path), frame_skeleton(big, H, W))


def test_annotation_row_target_uses_its_image_size(pt, person):
    path, kps, csv = person
    got = pt.target_keypoints(f"{csv}:{path.name}")
    assert np.array_equal(got, frame_skeleton(kps, H, W, image_size=(H, W)))


def test_split_annotation_ref_splits_at_last_colon():
    assert split_annotation_ref("a/b.csv:img_01.jpg") == (Path("a/b.csv"), "img_01.jpg")
    assert split_annotation_ref("walking") is None
    assert split_annotation_ref("pose.json") is None


def test_array_target_is_taken_in_the_frame_unless_a_size_is_given(pt):
    kps = named_pose("front", H, W)
    assert np.array_equal(pt.target_keypoints(kps), kps)
    assert not np.array_equal(pt.target_keypoints(kps * 2, target_size=(256, 128)), kps * 2)


def test_unknown_pose_name_lists_the_known_ones(pt):
    with pytest.raises(InputError, match="unknown target pose 'dancing'") as e:
        pt.target_keypoints("dancing")
    assert all(name in str(e.value) for name in POSE_NAMES)


def test_missing_target_file_is_named(pt, tmp_path):
    with pytest.raises(InputError, match="not found.*nope.json"):
        pt.target_keypoints(tmp_path / "nope.json")


def test_unknown_annotation_row_is_named(pt, person):
    _, _, csv = person
    with pytest.raises(InputError, match="no row named 'ghost.jpg'"):
        pt.target_keypoints(f"{csv}:ghost.jpg")


def test_missing_torso_joint_is_reported(pt, person):
    path, kps, _ = person
    kps = kps.copy()
    kps[8] = MISSING  # right hip
    with pytest.raises(InputError, match="torso joints not found \\(right hip\\)"):
        pt(path, "front", source_kps=kps)


def test_unreadable_image_is_named(pt, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="broken.jpg"):
        pt(bad, "front")


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(InputError, match="checkpoint not found"):
        PoseTransfer.from_checkpoint(tmp_path / "no_such_run")


def test_no_person_found_is_reported(pt, tmp_path):
    pytest.importorskip("mediapipe", reason="mediapipe not installed ([keypoints] extra)")
    empty = tmp_path / "empty.png"
    Image.new("RGB", (200, 300), (120, 130, 140)).save(empty)
    with pytest.raises(InputError, match="empty.png: no person found"):
        pt(empty, "front")


# --------------------------------------------------------------------------------------------
# Target forms (posetransfer.keypoints.targets) and joints outside their image


def no_detector(photo: np.ndarray, what: str) -> None:
    raise AssertionError(f"nothing should be detected, got {what}")


def test_photo_target_is_framed_with_the_detection_box():
    kps = np.where(visible(named_pose("front", H, W))[:, None], named_pose("front", H, W) * 2, -1)
    box = (0, 0, 240, 120)
    seen: list[str] = []

    def detect(photo: np.ndarray, what: str) -> SimpleNamespace:
        seen.append(what)
        assert photo.shape == (300, 200, 3)
        return SimpleNamespace(kps=kps, box=box)

    got = target_keypoints(Image.new("RGB", (200, 300)), H, W, detect)
    assert seen == ["target image"]
    assert np.array_equal(got, frame_skeleton(kps, H, W, (300, 200), include_box=box))


def test_unsupported_target_type_is_an_input_error():
    with pytest.raises(InputError, match="unsupported target pose of type int"):
        target_keypoints(42, H, W, no_detector)


def test_array_target_joint_outside_the_frame_warns_and_is_missing():
    kps = named_pose("front", H, W)
    kps[4] = (H + 10, 5)  # right wrist below the frame
    with pytest.warns(KeypointWarning, match="target keypoints.*128x64.*right_wrist"):
        got = target_keypoints(kps, H, W, no_detector)
    assert tuple(got[4]) == (MISSING, MISSING)
    assert np.array_equal(np.delete(got, 4, 0), np.delete(kps, 4, 0))


def test_array_target_with_size_drops_joints_outside_that_image():
    kps = named_pose("front", 256, 128)
    kps[7] = (100, 130)  # left wrist right of the 256x128 image
    with pytest.warns(KeypointWarning, match="256x128.*left_wrist"):
        got = target_keypoints(kps, H, W, no_detector, target_size=(256, 128))
    assert tuple(got[7]) == (MISSING, MISSING) and visible(got).sum() == 17


def test_array_target_with_too_few_joints_inside_is_an_input_error():
    kps = np.full((18, 2), MISSING)
    kps[0], kps[1] = (10, 10), (500, 10)
    with pytest.warns(KeypointWarning), pytest.raises(InputError, match="at least 2 joints"):
        target_keypoints(kps, H, W, no_detector)


def test_annotation_row_joint_outside_its_image_warns_and_is_missing(tmp_path):
    (tmp_path / "test").mkdir()
    Image.new("RGB", (W, H)).save(tmp_path / "test" / "p.png")
    kps = named_pose("front", H, W)
    kps[10] = (H + 3, 25)  # right ankle below its 128x64 image
    csv = write_annotations(tmp_path / "x-annotation-test.csv", {"p.png": kps})
    with pytest.warns(KeypointWarning, match="p.png.*right_ankle"):
        got = target_keypoints(f"{csv}:p.png", H, W, no_detector)
    kps[10] = MISSING
    assert np.array_equal(got, frame_skeleton(kps, H, W, image_size=(H, W)))


def test_openpose_json_target_keeps_every_joint(tmp_path):
    # The file gives no image size: the skeleton is centred, and none of its joints is lost.
    base = named_pose("front", H, W)
    flat = []
    for y, x in np.where(visible(base)[:, None], base * 3 + [40, 90], MISSING):
        flat += [0, 0, 0] if y == MISSING else [float(x), float(y), 0.9]
    path = tmp_path / "pose_keypoints.json"
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": flat}]}))
    got = target_keypoints(path, H, W, no_detector)
    assert np.array_equal(visible(got), visible(base))
    assert np.abs(got - base)[visible(base)].max() <= 3


def test_source_keypoints_outside_the_photo_warn_and_are_missing(pt, person):
    path, kps, _ = person
    kps = kps.copy()
    kps[4] = (H + 20, 10)  # right wrist below the 128x64 photo
    with pytest.warns(KeypointWarning, match="right_wrist"):
        source = pt.prepare_source(path, kps)
    assert tuple(source.photo_kps[4]) == (MISSING, MISSING)


# --------------------------------------------------------------------------------------------
# Devices


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_pose_transfer_on_missing_cuda_is_an_input_error_naming_device(pt):
    with pytest.raises(InputError, match="^device='cuda': no CUDA device") as e:
        PoseTransfer(create_generator("patn_tiny"), pt.info, device="cuda")
    assert e.value.arg == "device"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_cli_transfer_on_missing_cuda_is_one_line(run_dir, person, tmp_path, capsys):
    path, _, _ = person
    argv = ["transfer", "--source", str(path), "--target-pose", "front"]
    argv += ["--checkpoint", str(run_dir), "--out", str(tmp_path / "o.png"), "--device", "cuda"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("posetransfer transfer: error: --device 'cuda': no CUDA device")
    assert not (tmp_path / "o.png").exists()


# --------------------------------------------------------------------------------------------
# A real photo and the authors' checkpoint layout


def test_real_photo_with_detector_gives_frame_and_pasted_sizes(pt):
    needs_photo_and_mediapipe()
    assert pt(MESSI, "arms_up").size == (W, H)
    with Image.open(MESSI) as im:
        size = im.size
    assert pt(MESSI, "walking", paste_back=True).size == size


@pytest.fixture(scope="module")
def authors_pt(tmp_path_factory) -> tuple[PoseTransfer, dict]:
    """A PoseTransfer on an authors'-layout latest_net_netG.pth, and the fixture's tensors."""
    if AUTHORS_FIXTURE is None:
        pytest.skip("reference fixture patn_market_ngf8.pt not found (set POSETRANSFER_SHARED)")
    ref = torch.load(AUTHORS_FIXTURE, map_location="cpu", weights_only=True)
    path = tmp_path_factory.mktemp("authors") / "latest_net_netG.pth"
    torch.save(ref["state_dict"], path)
    return PoseTransfer.from_checkpoint(path), ref


def test_authors_checkpoint_reproduces_its_reference_output(authors_pt):
    pt, ref = authors_pt
    assert (pt.height, pt.width) == (128, 64)
    for i in range(2):
        # The reference inputs are not exactly uint8; rounding them changes no output pixel.
        src = np.round((ref["P1"][i].permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8)
        fake = pt.generate(src, np.array(ref["keypoints_P1"][i]), np.array(ref["keypoints_P2"][i]))
        expected = np.round((ref["output"][i].permute(1, 2, 0).numpy() + 1) * 127.5)
        assert np.abs(fake.astype(np.float64) - expected).max() <= 1


def test_authors_checkpoint_runs_on_a_named_pose(authors_pt, person):
    pt, _ = authors_pt
    img, kps, _ = person
    assert pt(img, "side_left", source_kps=kps).size == (64, 128)


# --------------------------------------------------------------------------------------------
# Command line


def test_cli_writes_output_and_strip(run_dir, tmp_path, capsys):
    needs_photo_and_mediapipe()
    out, strip = tmp_path / "out.png", tmp_path / "strip.png"
    argv = ["transfer", "--source", str(MESSI), "--target-pose", "arms_up"]
    argv += ["--checkpoint", str(run_dir), "--out", str(out), "--strip", str(strip)]
    assert cli.main(argv + ["--device", "cpu"]) == 0
    assert Image.open(out).size == (W, H)
    assert Image.open(strip).size == (4 * W + 6, H)
    assert f"wrote {out}" in capsys.readouterr().out


def test_cli_missing_checkpoint_is_one_line(tmp_path, capsys):
    argv = ["transfer", "--source", "x.jpg", "--target-pose", "front"]
    argv += ["--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "o.png")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "checkpoint not found" in err


def test_cli_unreadable_source_is_one_line(run_dir, tmp_path, capsys):
    bad = tmp_path / "photo.jpg"
    bad.write_text("garbage")
    argv = ["transfer", "--source", str(bad), "--target-pose", "front"]
    argv += ["--checkpoint", str(run_dir), "--out", str(tmp_path / "o.png")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "photo.jpg" in err


def test_cli_bad_output_suffix_is_named_before_any_work(tmp_path, capsys):
    argv = ["transfer", "--source", "x.jpg", "--target-pose", "front"]
    argv += ["--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "out.xyz")]
    assert cli.main(argv) == 2
    assert "--out" in capsys.readouterr().err


def test_cli_annotation_row_outside_its_image_warns_on_one_line(run_dir, tmp_path, capsys):
    needs_photo_and_mediapipe()
    (tmp_path / "test").mkdir()
    Image.new("RGB", (W, H)).save(tmp_path / "test" / "p.png")
    kps = named_pose("front", H, W)
    kps[10] = (H + 3, 25)
    csv = write_annotations(tmp_path / "x-annotation-test.csv", {"p.png": kps})
    argv = ["transfer", "--source", str(MESSI), "--target-pose", f"{csv}:p.png"]
    argv += ["--checkpoint", str(run_dir), "--out", str(tmp_path / "o.png"), "--device", "cpu"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("posetransfer transfer: warning: ")
    assert "right_ankle" in err[0]


def test_cli_lists_poses(capsys):
    assert cli.main(["transfer", "--list-poses"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in POSE_NAMES)


def test_write_annotations_roundtrip_feeds_annotation_target(pt, tmp_path):
    kps = named_pose("hands_on_hips", H, W)
    csv = write_annotations(tmp_path / "mine-annotation.csv", {"p.jpg": kps})
    assert np.array_equal(pt.target_keypoints(f"{csv}:p.jpg"), frame_skeleton(kps, H, W))
