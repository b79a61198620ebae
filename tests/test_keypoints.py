"""Tests of posetransfer.keypoints.detect and `posetransfer keypoints`.

Unit tests run against a fake mediapipe module. The tests on real photos use MediaPipe and the
photos of Debian's opencv-doc package; they skip with the reason when either is absent.
"""

from __future__ import annotations

import csv
import gzip
import os
import shutil
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from posetransfer import cli
from posetransfer.errors import InputError
from posetransfer.keypoints.detect import (
    COCO_FROM_BLAZEPOSE,
    MISSING_MEDIAPIPE,
    KeypointDetector,
    annotate_images,
    landmarks_from_result,
    landmarks_to_keypoints,
    skipped_path_for,
    to_rgb_array,
)
from posetransfer.pose import MISSING, read_annotations

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")

# COCO-18 joint indices used below.
NOSE, NECK, R_SHO, L_SHO, R_HIP, L_HIP, R_KNEE, L_KNEE, R_ANK, L_ANK = (
    0,
    1,
    2,
    5,
    8,
    11,
    9,
    12,
    10,
    13,
)


# --------------------------------------------------------------------------------------------
# Fakes


def fake_landmarks(n: int = 33, visibility: float = 0.9) -> np.ndarray:
    """33 distinct landmarks (x, y, visibility) inside the unit square."""
    i = np.arange(n)
    return np.stack([0.1 + 0.02 * i, 0.05 + 0.025 * i, np.full(n, visibility)], axis=1)


def fake_result(landmarks: np.ndarray | None) -> SimpleNamespace:
    if landmarks is None:
        return SimpleNamespace(pose_landmarks=None)
    marks = [SimpleNamespace(x=x, y=y, visibility=v) for x, y, v in landmarks]
    return SimpleNamespace(pose_landmarks=SimpleNamespace(landmark=marks))


class FakePose:
    """Stands in for mediapipe.solutions.pose.Pose; returns preset landmarks."""

    landmarks: np.ndarray | None = None
    instances: list[FakePose] = []

    def __init__(self, **kwargs: object) -> None:
        self.kwargs = kwargs
        self.seen_shapes: list[tuple[int, ...]] = []
        self.closed = False
        FakePose.instances.append(self)

    def process(self, image: np.ndarray) -> SimpleNamespace:
        self.seen_shapes.append(image.shape)
        return fake_result(FakePose.landmarks)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_mediapipe(monkeypatch: pytest.MonkeyPatch) -> type[FakePose]:
    module = types.ModuleType("mediapipe")
    module.solutions = SimpleNamespace(pose=SimpleNamespace(Pose=FakePose))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mediapipe", module)
    FakePose.landmarks = fake_landmarks()
    FakePose.instances = []
    return FakePose


# --------------------------------------------------------------------------------------------
# Landmark mapping


def test_each_joint_takes_its_blazepose_landmark() -> None:
    marks = fake_landmarks()
    kps, conf = landmarks_to_keypoints(marks, height=200, width=100)
    for joint, mark in enumerate(COCO_FROM_BLAZEPOSE):
        if mark is None:
            continue
        expected = (int(np.floor(marks[mark, 1] * 200)), int(np.floor(marks[mark, 0] * 100)))
        assert tuple(kps[joint]) == expected, f"joint {joint}"
    assert kps.dtype == np.int64 and kps.shape == (18, 2)
    assert conf.shape == (18,) and np.allclose(conf, 0.9)


def test_left_right_follow_the_person_not_the_image() -> None:
    # BlazePose 11/12 are the left/right shoulders; COCO 5/2 likewise.
    kps, _ = landmarks_to_keypoints(fake_landmarks(), 200, 100)
    marks = fake_landmarks()
    assert kps[R_SHO, 1] == int(np.floor(marks[12, 0] * 100))
    assert kps[L_SHO, 1] == int(np.floor(marks[11, 0] * 100))
    assert kps[14, 1] == int(np.floor(marks[5, 0] * 100))  # right eye <- 5
    assert kps[15, 1] == int(np.floor(marks[2, 0] * 100))  # left eye <- 2


def test_neck_is_the_shoulder_midpoint() -> None:
    marks = fake_landmarks()
    marks[11, :2] = (0.60, 0.30)
    marks[12, :2] = (0.40, 0.34)
    kps, conf = landmarks_to_keypoints(marks, 100, 100)
    assert tuple(kps[NECK]) == (32, 50)
    marks[11, 2], marks[12, 2] = 0.7, 0.95
    _, conf = landmarks_to_keypoints(marks, 100, 100)
    assert conf[NECK] == pytest.approx(0.7)


def test_neck_missing_when_one_shoulder_is_not_visible() -> None:
    marks = fake_landmarks()
    marks[12, 2] = 0.2  # right shoulder hidden
    kps, _ = landmarks_to_keypoints(marks, 100, 100, min_confidence=0.5)
    assert tuple(kps[R_SHO]) == (MISSING, MISSING)
    assert tuple(kps[NECK]) == (MISSING, MISSING)
    assert kps[L_SHO, 0] != MISSING


def test_low_visibility_joints_are_missing() -> None:
    marks = fake_landmarks()
    marks[28, 2] = 0.49  # right ankle
    kps, conf = landmarks_to_keypoints(marks, 100, 100, min_confidence=0.5)
    assert tuple(kps[R_ANK]) == (MISSING, MISSING)
    assert conf[R_ANK] == pytest.approx(0.49)
    kps_low, _ = landmarks_to_keypoints(marks, 100, 100, min_confidence=0.4)
    assert kps_low[R_ANK, 0] != MISSING


def test_joints_outside_the_image_are_missing() -> None:
    marks = fake_landmarks()
    marks[27, :2] = (0.5, 1.2)  # left ankle below the image
    marks[0, :2] = (-0.1, 0.1)  # nose left of it
    kps, _ = landmarks_to_keypoints(marks, 100, 100)
    assert tuple(kps[L_ANK]) == (MISSING, MISSING)
    assert tuple(kps[NOSE]) == (MISSING, MISSING)


def test_landmarks_from_result() -> None:
    assert landmarks_from_result(fake_result(None)) is None
    marks = landmarks_from_result(fake_result(fake_landmarks()))
    assert marks is not None and np.allclose(marks, fake_landmarks())


def test_to_rgb_array_accepts_gray_rgba_and_pil() -> None:
    gray = np.full((5, 4), 7, np.uint8)
    assert to_rgb_array(gray).shape == (5, 4, 3)
    assert to_rgb_array(np.zeros((5, 4, 4), np.uint8)).shape == (5, 4, 3)
    assert to_rgb_array(Image.new("L", (4, 5))).shape == (5, 4, 3)
    with pytest.raises(InputError, match="uint8"):
        to_rgb_array(np.zeros((5, 4, 3), np.float32))


# --------------------------------------------------------------------------------------------
# Detector (fake mediapipe)


def test_missing_mediapipe_raises_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` fail
    with pytest.raises(InputError) as e:
        KeypointDetector()
    assert str(e.value) == MISSING_MEDIAPIPE


def test_small_images_are_upscaled_and_mapped_back(fake_mediapipe: type[FakePose]) -> None:
    image = np.zeros((128, 64, 3), np.uint8)
    with KeypointDetector(upscale_to=256) as detector:
        kps = detector(image)
        graph = fake_mediapipe.instances[-1]
    assert graph.seen_shapes == [(256, 128, 3)]
    assert graph.kwargs["static_image_mode"] is True and graph.kwargs["model_complexity"] == 1
    expected, _ = landmarks_to_keypoints(fake_landmarks(), 128, 64)
    np.testing.assert_array_equal(kps, expected)
    assert graph.closed


def test_large_images_are_not_resized(fake_mediapipe: type[FakePose]) -> None:
    with KeypointDetector(upscale_to=256) as detector:
        detector(np.zeros((300, 200, 3), np.uint8))
    assert fake_mediapipe.instances[-1].seen_shapes == [(300, 200, 3)]


def test_no_person_gives_all_missing_and_none(fake_mediapipe: type[FakePose]) -> None:
    fake_mediapipe.landmarks = None
    with KeypointDetector() as detector:
        assert detector.detect(np.zeros((64, 64, 3), np.uint8)) is None
        kps = detector(np.zeros((64, 64, 3), np.uint8))
    assert kps.shape == (18, 2) and np.all(kps == MISSING)


def test_detection_box_covers_the_confident_landmarks(fake_mediapipe: type[FakePose]) -> None:
    with KeypointDetector() as detector:
        det = detector.detect(np.zeros((200, 100, 3), np.uint8))
    assert det is not None and det.has_torso
    top, left, bottom, right = det.box
    ys, xs = det.landmarks[:, 0], det.landmarks[:, 1]
    assert top <= ys.min() and bottom >= ys.max() and left <= xs.min() and right >= xs.max()
    assert det.landmarks.shape == (33, 3)


def test_closed_detector_refuses_work(fake_mediapipe: type[FakePose]) -> None:
    detector = KeypointDetector()
    detector.close()
    detector.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        detector(np.zeros((8, 8, 3), np.uint8))


def test_missing_torso_is_skipped_with_its_reason(
    fake_mediapipe: type[FakePose], tmp_path: Path
) -> None:
    marks = fake_landmarks()
    marks[23, 2] = 0.1  # left hip hidden
    fake_mediapipe.landmarks = marks
    Image.new("RGB", (64, 128)).save(tmp_path / "a.png")
    report = annotate_images([tmp_path / "a.png"], tmp_path / "ann.csv", progress=False)
    assert report.annotations == {}
    assert report.skipped == [
        ("a.png", str(tmp_path / "a.png"), "torso joints not found: left_hip")
    ]


def test_annotate_writes_readable_csv(fake_mediapipe: type[FakePose], tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("b.jpg", "a.png"):
        Image.new("RGB", (64, 128)).save(images / name)
    (images / "notes.txt").write_text("not an image")
    report = annotate_images([images], tmp_path / "ann.csv", progress=False)
    read = read_annotations(tmp_path / "ann.csv", image_dir=images)
    assert list(read) == ["a.png", "b.jpg"]  # folder order is by name; .txt ignored
    np.testing.assert_array_equal(read["a.png"], report.annotations["a.png"])
    assert skipped_path_for(tmp_path / "ann.csv") == tmp_path / "ann.skipped.csv"
    assert (tmp_path / "ann.skipped.csv").read_text() == "name,path,reason\n"


def test_repeated_file_names_are_skipped(fake_mediapipe: type[FakePose], tmp_path: Path) -> None:
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        Image.new("RGB", (64, 128)).save(tmp_path / sub / "a.png")
    report = annotate_images([tmp_path / "x", tmp_path / "y"], tmp_path / "o.csv", progress=False)
    assert list(report.annotations) == ["a.png"]
    assert report.skipped[0][2].startswith("same file name as")


def test_missing_input_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.jpg"):
        annotate_images([tmp_path / "nope.jpg"], tmp_path / "o.csv", progress=False)


@pytest.mark.parametrize("bad_name", ["a:b.png", "line\nbreak.png", " lead.png"])
def test_names_an_annotation_cannot_hold_are_skipped_and_the_csv_reads_back(
    fake_mediapipe: type[FakePose], tmp_path: Path, bad_name: str
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name in (bad_name, "ok.png"):
        Image.new("RGB", (64, 128)).save(images / name, format="PNG")
    report = annotate_images([images], tmp_path / "ann.csv", progress=False)
    assert list(read_annotations(tmp_path / "ann.csv", image_dir=images)) == ["ok.png"]
    with (tmp_path / "ann.skipped.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["name"] for row in rows] == [bad_name]
    assert "cannot be written to an annotation file" in rows[0]["reason"]
    # Refused by name alone: the image was never handed to the detector.
    assert sum(len(g.seen_shapes) for g in fake_mediapipe.instances) == 1
    assert report.skipped[0][0] == bad_name


@pytest.fixture
def count_detections(fake_mediapipe: type[FakePose], monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of KeypointDetector.detect (one entry per call)."""
    calls: list[int] = []
    detect = KeypointDetector.detect

    def counted(self: KeypointDetector, image: np.ndarray) -> object:
        calls.append(1)
        return detect(self, image)

    monkeypatch.setattr(KeypointDetector, "detect", counted)
    return calls


def two_images(folder: Path) -> Path:
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (64, 128)).save(folder / name)
    return folder


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("existing_dir", "is a folder"),
        ("a_file/ann.csv", "is a file, not a folder"),
        ("ann.txt", "must end in .csv"),
    ],
)
def test_bad_out_is_reported_before_any_detection(
    count_detections: list[int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    out: str,
    message: str,
) -> None:
    images = two_images(tmp_path / "images")
    (tmp_path / "existing_dir").mkdir()
    (tmp_path / "a_file").write_text("a file where a folder is expected")
    assert cli.main(["keypoints", str(images), "--out", str(tmp_path / out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--out {tmp_path / out}: " in err and message in err
    assert count_detections == []


def test_overlays_that_is_a_file_is_reported_before_any_detection(
    count_detections: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = two_images(tmp_path / "images")
    (tmp_path / "ov").write_text("not a folder")
    argv = ["keypoints", str(images), "--out", str(tmp_path / "a.csv"), "--quiet"]
    assert cli.main(argv + ["--overlays", str(tmp_path / "ov")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--overlays {tmp_path / 'ov'}: is a file" in err
    assert count_detections == [] and not (tmp_path / "a.csv").exists()


def test_bad_min_confidence_names_the_flag(
    count_detections: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = two_images(tmp_path / "images")
    argv = ["keypoints", str(images), "--out", str(tmp_path / "a.csv"), "--min-confidence", "1.5"]
    assert cli.main(argv) == 2
    assert "--min-confidence 1.5: must be in [0, 1]" in capsys.readouterr().err
    assert count_detections == []


@pytest.mark.parametrize("mistake", ["min_confidence", "upscale_to", "no_mediapipe"])
def test_a_detector_that_cannot_start_leaves_no_overlay_folder(
    fake_mediapipe: type[FakePose], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mistake: str
) -> None:
    images = two_images(tmp_path / "images")
    kwargs: dict[str, object] = {"min_confidence": 1.5} if mistake == "min_confidence" else {}
    if mistake == "upscale_to":
        kwargs["upscale_to"] = -1
    if mistake == "no_mediapipe":
        monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` fail
    with pytest.raises(InputError):
        annotate_images(
            [images], tmp_path / "a.csv", overlays=tmp_path / "ov", progress=False, **kwargs
        )
    assert not (tmp_path / "ov").exists() and not (tmp_path / "a.csv").exists()


def not_utf8_image(folder: Path) -> str:
    """Save an image under the Linux file name b"caf\\xff.png"; its name as Python holds it."""
    name = os.fsdecode(b"caf\xff.png")  # "caf\udcff.png"
    try:
        Image.new("RGB", (64, 128)).save(folder / name, format="PNG")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system does not take file names that are not UTF-8")
    return name


def test_a_file_name_that_is_not_utf8_is_skipped_and_listed_escaped(
    fake_mediapipe: type[FakePose], tmp_path: Path
) -> None:
    images = two_images(tmp_path / "images")
    name = not_utf8_image(images)
    report = annotate_images([images], tmp_path / "ann.csv", progress=False)
    assert list(read_annotations(tmp_path / "ann.csv")) == ["a.png", "b.png"]
    assert [(n, "must be valid UTF-8" in why) for n, _, why in report.skipped] == [(name, True)]
    listed = (tmp_path / "ann.skipped.csv").read_text(encoding="utf-8").splitlines()
    assert listed[1].startswith("caf\\udcff.png,")


def test_command_prints_a_name_that_is_not_utf8_escaped(
    fake_mediapipe: type[FakePose], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = two_images(tmp_path / "images")
    not_utf8_image(images)
    assert cli.main(["keypoints", str(images), "--out", str(tmp_path / "a.csv"), "--quiet"]) == 0
    assert f"skipped {images}/caf\\udcff.png: " in capsys.readouterr().out


def test_overlays_of_images_sharing_a_stem_are_both_kept(
    fake_mediapipe: type[FakePose], tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (64, 128), (255, 0, 0)).save(images / "a.jpg")
    Image.new("RGB", (64, 128), (0, 0, 255)).save(images / "a.png")
    Image.new("RGB", (64, 128)).save(images / "b.png")
    annotate_images([images], tmp_path / "ann.csv", overlays=tmp_path / "ov", progress=False)
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == [
        "a.jpg.png",
        "a.png.png",
        "b.png",
    ]


# --------------------------------------------------------------------------------------------
# Real photos (opencv-doc) and the real MediaPipe model


def opencv_sample(name: str, tmp_path: Path) -> Path:
    """Path of an opencv-doc sample (gunzipped into tmp_path if packed); skip if absent."""
    path = OPENCV_DATA / name
    if path.is_file():
        return path
    packed = path.with_name(name + ".gz")
    if packed.is_file():
        out = tmp_path / name
        with gzip.open(packed) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        return out
    pytest.skip(f"{path} not found: install Debian's opencv-doc package for real-photo tests")


@pytest.fixture(scope="module")
def detector() -> KeypointDetector:
    pytest.importorskip("mediapipe", reason="mediapipe not installed (the [keypoints] extra)")
    with KeypointDetector() as det:
        yield det


def load_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_standing_person_joints_are_ordered_top_to_bottom(
    detector: KeypointDetector, tmp_path: Path
) -> None:
    # basketball1.png: a man standing, facing the camera, full body in view, at the left.
    kps = detector(load_rgb(opencv_sample("basketball1.png", tmp_path)))
    needed = [NOSE, NECK, R_SHO, L_SHO, R_HIP, L_HIP, R_KNEE, L_KNEE, R_ANK, L_ANK]
    assert np.all(kps[needed] != MISSING)
    y = kps[:, 0]
    assert y[NOSE] < y[NECK] <= max(y[R_SHO], y[L_SHO])
    assert max(y[R_SHO], y[L_SHO]) < min(y[R_HIP], y[L_HIP])
    assert max(y[R_HIP], y[L_HIP]) < min(y[R_KNEE], y[L_KNEE])
    assert max(y[R_KNEE], y[L_KNEE]) < min(y[R_ANK], y[L_ANK])
    assert kps[:, 1][kps[:, 1] != MISSING].max() < 320  # the left-hand person, not the right


def test_frontal_view_right_shoulder_at_smaller_x(
    detector: KeypointDetector, tmp_path: Path
) -> None:
    for name in ("basketball1.png", "messi5.jpg"):
        kps = detector(load_rgb(opencv_sample(name, tmp_path)))
        assert kps[R_SHO, 1] < kps[L_SHO, 1], name
        assert kps[R_HIP, 1] < kps[L_HIP, 1], name
        assert kps[14, 1] < kps[15, 1], name  # right eye left of left eye


def test_messi_head_above_hips(detector: KeypointDetector, tmp_path: Path) -> None:
    det = detector.detect(Image.open(opencv_sample("messi5.jpg", tmp_path)))
    assert det is not None and det.has_torso
    assert det.kps[NOSE, 0] < det.kps[R_SHO, 0] < det.kps[R_HIP, 0]
    top, left, bottom, right = det.box
    assert 0 <= top < det.kps[NOSE, 0] and bottom <= 342 and 0 <= left < right <= 548


def test_small_pedestrian_from_video_at_market_size(
    detector: KeypointDetector, tmp_path: Path
) -> None:
    cv2 = pytest.importorskip("cv2")
    video = opencv_sample("vtest.avi", tmp_path)
    capture = cv2.VideoCapture(str(video))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        pytest.skip("cv2 cannot decode vtest.avi here")
    # Frame 0: a pedestrian ~80 px tall around (x 515, y 195). Crop 2:1 and shrink to Market's
    # 128x64, as blurry as the dataset's crops.
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    crop = Image.fromarray(rgb[145:245, 490:540]).resize((64, 128), Image.BICUBIC)
    kps = detector(crop)
    assert np.all(kps[[R_SHO, L_SHO, R_HIP, L_HIP]] != MISSING)
    y = kps[:, 0]
    assert y[NOSE] < min(y[R_SHO], y[L_SHO]) < max(y[R_SHO], y[L_SHO]) < min(y[R_HIP], y[L_HIP])
    assert max(y[R_ANK], y[L_ANK]) > 90  # feet near the bottom of the 128-high crop
    assert np.all(kps[kps[:, 0] != MISSING] < [128, 64])


def test_plain_texture_has_no_person(detector: KeypointDetector) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (48, 64, 3)).astype(np.uint8)
    texture = np.asarray(Image.fromarray(noise).resize((256, 192), Image.BICUBIC))
    assert detector.detect(texture) is None
    assert np.all(detector(np.full((128, 64, 3), 128, np.uint8)) == MISSING)


def test_command_annotates_people_and_reports_skips(
    detector: KeypointDetector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(opencv_sample("messi5.jpg", tmp_path), folder / "messi5.jpg")
    Image.fromarray(np.full((200, 150, 3), (90, 140, 60), np.uint8)).save(folder / "grass.png")
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    out = tmp_path / "ann.csv"
    code = cli.main(
        ["keypoints", str(folder), "--out", str(out), "--overlays", str(tmp_path / "ov"), "--quiet"]
    )
    assert code == 0
    assert list(read_annotations(out)) == ["messi5.jpg"]
    skipped = (tmp_path / "ann.skipped.csv").read_text().splitlines()
    reasons = {line.split(",")[0]: line for line in skipped[1:]}
    assert set(reasons) == {"broken.jpg", "grass.png"}
    assert "unreadable" in reasons["broken.jpg"] and "no person" in reasons["grass.png"]
    printed = capsys.readouterr().out
    assert "broken.jpg" in printed and "grass.png" in printed
    overlay = Image.open(tmp_path / "ov" / "messi5.png")
    assert overlay.size == (548, 342)
    assert not (tmp_path / "ov" / "grass.png").exists()


def test_command_reports_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["keypoints", str(tmp_path / "missing"), "--out", str(tmp_path / "a.csv")])
    assert code == 2
    assert "missing" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# MediaPipe's C++ log lines are held back; our own warnings are not

NOISE_MARKS = (
    "inference_feedback_manager",
    "landmark_projection_calculator",
    "W0000",
    "absl::InitializeLog",
    "TensorFlow Lite",
)

DETECT_TWICE = """
import sys
import numpy as np
from PIL import Image
from posetransfer.keypoints.detect import KeypointDetector
from posetransfer.keypoints.framing import check_keypoints

photo = np.asarray(Image.open(sys.argv[1]).convert("RGB"))
for video in (False, True):
    with KeypointDetector(video=video) as detect:
        kps = [detect(photo) for _ in range(2)][-1]
print("found", int((kps[:, 0] >= 0).sum()))
kps[0] = (photo.shape[0] + 5, 10)  # the nose below the photo: one KeypointWarning per call site
for _ in range(3):
    check_keypoints(kps, "photo keypoints", bounds=photo.shape[:2])
"""


FILTER_PROBE = """
import os, sys
from posetransfer.core.logs import filtered_stderr

with filtered_stderr():
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
    os.write(2, b"W0000 00:00:1796388800.537956    9965 inference_feedback_manager.cc:114] ")
    os.write(2, b"Feedback manager ... Disabling support for feedback tensors.\\n")
    with filtered_stderr():  # nested: restored once, by the outer block
        os.write(2, b"E0000 00:00:1.5  9965 graph.cc:1] a real error\\n")
    os.write(2, b"\\r 50%|#####     | 1/2")  # a progress bar's frame: no newline
    sys.stdin.readline()  # the block stays open until the test has seen the frame
os.write(2, b"\\nafter\\n")
"""


def test_filtered_stderr_drops_cpp_log_lines_and_passes_the_rest_on_at_once() -> None:
    """In a process of its own: pytest's capturing re-points file descriptor 2 per test."""
    import subprocess
    import threading

    proc = subprocess.Popen(
        [sys.executable, "-c", FILTER_PROBE],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stderr is not None
    seen = b""
    timer = threading.Timer(20, proc.kill)  # a frame held back would hang here: fail instead
    timer.start()
    try:
        while b"1/2" not in seen:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        seen += proc.stderr.read()
        proc.wait()
    finally:
        timer.cancel()
    assert proc.returncode == 0, seen
    assert seen.decode() == (
        "E0000 00:00:1.5  9965 graph.cc:1] a real error\n\r 50%|#####     | 1/2\nafter\n"
    )


@pytest.mark.slow
def test_detection_prints_no_mediapipe_log_lines_and_our_warning_once(tmp_path: Path) -> None:
    import subprocess

    pytest.importorskip("mediapipe", reason="mediapipe not installed (the [keypoints] extra)")
    photo = opencv_sample("messi5.jpg", tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", DETECT_TWICE, str(photo)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("found ") and int(run.stdout.split()[1]) >= 10
    assert not [line for line in run.stderr.splitlines() if any(m in line for m in NOISE_MARKS)]
    assert run.stderr.count("KeypointWarning: photo keypoints: joints outside") == 1, run.stderr


@pytest.mark.slow
def test_animate_with_progress_bars_prints_no_mediapipe_log_lines(tmp_path: Path) -> None:
    """The tracking graph logs from its own threads; none of it reaches the terminal."""
    import subprocess

    pytest.importorskip("mediapipe", reason="mediapipe not installed (the [keypoints] extra)")
    photo = opencv_sample("messi5.jpg", tmp_path)
    video = opencv_sample("vtest.avi", tmp_path)
    out = tmp_path / "a.gif"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = ["animate", "--source", photo, "--driving", video, "--duration", "0.5", "--out", out]
    run = subprocess.run(
        [sys.executable, "-m", "posetransfer.cli", *map(str, argv), "--progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert out.is_file()
    assert not [line for line in run.stderr.splitlines() if any(m in line for m in NOISE_MARKS)]
    assert "%|" in run.stderr  # the progress bars themselves still came through
