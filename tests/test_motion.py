"""Motion transfer: retargeting, smoothing, gap bridging, video I/O, `animate` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from posetransfer.errors import InputError
from posetransfer.keypoints.named_poses import named_pose
from posetransfer.motion import bridge_gaps, jitter, retarget, smooth
from posetransfer.motion.retarget import BONES, present

DATA = Path("/usr/share/doc/opencv-doc/examples/data")
VTEST, MESSI = DATA / "vtest.avi", DATA / "messi5.jpg"


def _clip(n: int = 8) -> np.ndarray:
    names = [
        "walking",
        "arms_up",
        "front",
        "wave",
        "arms_out",
        "walking_left",
        "hands_on_hips",
        "side_left",
    ]
    clip = np.stack([named_pose(names[i % len(names)], 300, 200) for i in range(n)]).astype(float)
    clip[:, :, 1] += np.arange(n)[:, None] * 6  # the driving person walks to the right
    return np.where(present(clip)[..., None], clip, -1.0)


def _length(kps, a, b):
    return np.linalg.norm(kps[..., a, :] - kps[..., b, :], axis=-1)


# --------------------------------------------------------------------------------------------
# Retargeting


def test_bones_keeps_every_source_limb_length():
    source = named_pose("front", 128, 64)
    out = retarget(_clip(), source, "bones")
    checked = 0
    for a, b in BONES:
        if present(source[None])[0, [a, b]].all():
            both = present(out)[:, a] & present(out)[:, b]
            assert np.abs(_length(out[both], a, b) - _length(source, a, b)).max() < 1.0
            checked += both.sum()
    assert checked > 50


def test_bones_follows_the_driving_directions():
    source, clip = named_pose("front", 128, 64), _clip()
    out, scaled = retarget(clip, source, "bones"), retarget(clip, source, "scale")
    for a, b in [(2, 3), (3, 4), (9, 10)]:
        d1, d2 = out[:, b] - out[:, a], scaled[:, b] - scaled[:, a]
        cos = (d1 * d2).sum(-1) / np.linalg.norm(d1, axis=-1) / np.linalg.norm(d2, axis=-1)
        assert cos.min() > 0.999


def test_scale_maps_body_size_and_ground_onto_the_source():
    source = named_pose("front", 128, 64)
    ok = present(source[None])[0]
    bigger = np.where(
        ok[:, None], source * 2.5 + [40.0, 90.0], -1.0
    )  # the same body, larger, elsewhere
    out = retarget(np.stack([bigger] * 5), source, "scale")
    assert np.abs(out[:, ok] - source[ok]).max() < 1e-6  # lands on the source exactly


def test_a_limb_the_source_lacks_takes_its_mirror_limbs_length():
    source = named_pose("front", 128, 64).copy()
    source[4] = -1  # right wrist missing in the photo
    out = retarget(_clip(), source, "bones")
    both = present(out)[:, 3] & present(out)[:, 4]
    assert np.allclose(_length(out[both], 3, 4), _length(source, 6, 7))


def test_missing_driving_joints_stay_missing_and_none_is_the_identity():
    clip = _clip()
    clip[2, 4] = -1
    out = retarget(clip, named_pose("front", 128, 64), "bones")
    assert (out[2, 4] == -1).all()
    assert np.array_equal(retarget(clip, named_pose("front"), "none"), clip)


def test_retarget_errors_name_the_argument():
    with pytest.raises(InputError, match="driving_kps.*shape"):
        retarget(np.zeros((18, 2)), named_pose("front"))
    with pytest.raises(InputError, match="mode='stretch'"):
        retarget(_clip(), named_pose("front"), "stretch")
    with pytest.raises(InputError, match="no body segment"):
        retarget(np.full((3, 18, 2), -1.0), named_pose("front"))


# --------------------------------------------------------------------------------------------
# Smoothing and gaps


def test_smoothing_lowers_jitter_and_keeps_missing_joints():
    rng = np.random.default_rng(0)
    base = np.stack([named_pose("front", 256, 128)] * 80).astype(float)
    base[:, :, 1] += np.linspace(0, 40, 80)[:, None]  # a slow walk
    noisy = base + rng.normal(0, 2.0, base.shape)
    noisy[40:45, 4] = -1
    out = smooth(noisy, fps=25)
    assert jitter(out) < 0.5 * jitter(noisy)
    assert (out[40:45, 4] == -1).all() and present(out)[46:, 4].all()
    assert np.abs(out[-10:] - base[-10:]).mean() < 2.0  # no lag beyond the noise


def test_smoothing_arguments_are_checked():
    with pytest.raises(InputError, match="fps=0"):
        smooth(_clip(), fps=0)
    with pytest.raises(InputError, match="beta=-1"):
        smooth(_clip(), fps=10, beta=-1)


def test_short_gaps_are_interpolated_long_ones_held():
    clip = np.stack([named_pose("front", 256, 128)] * 30).astype(float)
    clip[:, :, 1] += np.arange(30)[:, None]
    gappy = clip.copy()
    gappy[5:8] = -1  # 3 frames without a person: bridged
    gappy[15:25] = -1  # 10 frames: held
    out, counts = bridge_gaps(gappy, max_gap=5)
    assert counts["person_gaps_bridged"] == 1 and counts["person_gaps_held"] == 1
    assert np.allclose(out[5:8], clip[5:8])  # linear motion is recovered exactly
    assert np.array_equal(out[15:25], np.stack([out[14]] * 10))
    with pytest.raises(InputError, match="no frame has a person"):
        bridge_gaps(np.full((4, 18, 2), -1.0))


# --------------------------------------------------------------------------------------------
# Video files


@pytest.fixture
def av():
    return pytest.importorskip("av")


def test_mp4_writer_keeps_rate_size_and_count(av, tmp_path):
    from posetransfer.motion.video import Writer, read_video_info

    frames = [np.full((37, 22, 3), i * 8, np.uint8) for i in range(12)]
    with Writer(tmp_path / "a.mp4", 12.5, (37, 22), len(frames)) as w:
        for f in frames:
            w.write(f)
    info = read_video_info(tmp_path / "a.mp4")
    assert info["frames"] == 12 and info["fps"] == pytest.approx(12.5)
    assert (info["height"], info["width"]) == (38, 22)  # H.264 needs even sizes: padded by one


def test_an_mp4_cut_off_midway_still_plays(av, tmp_path):
    script = f"""
import os, numpy as np
from posetransfer.motion.video import Writer
w = Writer({str(tmp_path / "cut.mp4")!r}, 10, (32, 32), 100)
for i in range(45):
    w.write(np.full((32, 32, 3), i * 5, np.uint8))
os._exit(1)  # killed: the writer is never closed
"""
    subprocess.run([sys.executable, "-c", script], check=False)
    from posetransfer.motion.video import read_video_info

    assert read_video_info(tmp_path / "cut.mp4")["frames"] >= 40


def test_bad_driving_inputs_say_what_is_wrong(av, tmp_path):
    from posetransfer.motion.video import open_clip

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(InputError, match="not a video PyAV can read"):
        open_clip(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="a folder without frames"):
        open_clip(tmp_path / "empty")
    with pytest.raises(InputError, match="not found"):
        open_clip(tmp_path / "missing.mp4")


def test_pose_file_inputs_csv_and_openpose(tmp_path):
    from posetransfer.motion.video import open_clip, read_poses
    from posetransfer.pose import write_annotations

    clip = _clip(6)
    rows = {f"f{i}.jpg": np.rint(k).astype(int) for i, k in enumerate(clip)}
    csv = write_annotations(tmp_path / "walk-annotation.csv", rows)
    c = open_clip(csv, every=2, fps=12)
    assert c.kind == "annotations" and c.fps == 6 and c.indices == [0, 2, 4]
    assert np.array_equal(read_poses(c), np.stack([rows["f0.jpg"], rows["f2.jpg"], rows["f4.jpg"]]))

    folder = tmp_path / "openpose"
    folder.mkdir()
    for i in (1, 2, 10):  # natural order: 1, 2, 10
        people = (
            []
            if i == 2
            else [{"pose_keypoints_2d": [float(v) for y, x in rows["f0.jpg"] for v in (x, y, 0.9)]}]
        )
        (folder / f"frame_{i}_keypoints.json").write_text(json.dumps({"people": people}))
    (folder / "report.json").write_text("{}")  # not a pose file
    c = open_clip(folder)
    assert c.kind == "openpose" and c.names == [
        "frame_1_keypoints.json",
        "frame_2_keypoints.json",
        "frame_10_keypoints.json",
    ]
    poses = read_poses(c)
    assert (poses[1] == -1).all() and np.array_equal(poses[2], rows["f0.jpg"])


def test_a_short_gap_with_no_joint_on_both_sides_is_held():
    clip = np.full((5, 18, 2), -1.0)
    clip[0, :9] = 10.0  # upper joints before the gap
    clip[4, 9:] = 20.0  # lower joints after it
    out, counts = bridge_gaps(clip, max_gap=5)
    assert counts["person_gaps_held"] == 1 and counts["person_gaps_bridged"] == 0
    assert present(out).any(axis=1).all()


def test_non_finite_keypoints_are_refused():
    bad = _clip(3)
    bad[1, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        smooth(bad, fps=10)


def test_gif_too_big_is_refused_before_any_work(tmp_path, monkeypatch):
    import posetransfer.motion.video as video

    monkeypatch.setattr(video, "GIF_LIMIT_BYTES", 1000)
    with pytest.raises(InputError, match="GIF of 10 frames.*needs"):
        video.Writer(tmp_path / "x.gif", 10, (100, 300), 10)


# --------------------------------------------------------------------------------------------
# animate, end to end on the pedestrians of opencv-doc's vtest.avi


@pytest.fixture(scope="module")
def pt():
    pytest.importorskip("mediapipe")
    pytest.importorskip("av")
    if not VTEST.is_file() or not MESSI.is_file():
        pytest.skip(f"{VTEST} or {MESSI} missing (Debian package opencv-doc)")
    from posetransfer.photos.transfer import PoseTransfer

    with PoseTransfer.from_pretrained("synthetic-patn") as p:
        yield p


def test_animate_vtest_side_by_side(pt, tmp_path):
    from posetransfer.motion.animate import AnimateOptions, animate
    from posetransfer.motion.video import read_video_info

    opts = AnimateOptions(duration=2.0, layout="side-by-side", height=128)
    report = animate(pt, MESSI, VTEST, tmp_path / "walk.mp4", opts, progress=False)
    info = read_video_info(tmp_path / "walk.mp4")
    assert report.frames_used == 20 and info["frames"] == 20 and report.complete
    assert info["fps"] == pytest.approx(10.0)
    h, w = report.size
    assert (info["height"], info["width"]) == (h + h % 2, w + w % 2) and h == 128
    assert report.frames_with_person > 0
    saved = json.loads((tmp_path / "walk.mp4.json").read_text())
    assert saved["frames_written"] == 20
    if report.jitter_px_before_smoothing is not None:
        assert report.jitter_px_after_smoothing < report.jitter_px_before_smoothing


def test_animate_every_and_gif_and_the_python_generator(pt, tmp_path):
    from PIL import Image

    from posetransfer.motion.animate import AnimateOptions, animate

    animate(
        pt, MESSI, VTEST, tmp_path / "a.gif", AnimateOptions(duration=2.0, every=4), progress=False
    )
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 5 and im.size == (128, 256)
    frames = list(pt.animate(MESSI, VTEST, duration=1.0, every=5))
    assert len(frames) == 2 and frames[0].size == (128, 256)


def test_animate_bad_inputs(pt, tmp_path):
    from posetransfer.motion.animate import AnimateOptions, prepare_animation
    from posetransfer.motion.video import Writer

    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (200, 300), (120, 120, 120)).save(blank)
    with pytest.raises(InputError, match="no person found"):
        prepare_animation(pt, blank, VTEST, AnimateOptions(duration=0.5))
    nobody = tmp_path / "nobody.mp4"
    with Writer(nobody, 10, (96, 64), 6) as w:
        for i in range(6):
            w.write(np.full((96, 64, 3), 40 * i % 255, np.uint8))
    with pytest.raises(InputError, match="no person found in any of its 6 frames"):
        prepare_animation(pt, MESSI, nobody)


def test_output_problems_are_refused_before_the_poses(pt, tmp_path, monkeypatch):
    import posetransfer.motion.animate as animate_mod
    import posetransfer.motion.track as track
    import posetransfer.motion.video as video

    monkeypatch.setattr(
        track, "PersonTracker", lambda *a, **k: pytest.fail("the poses were computed")
    )
    monkeypatch.setattr(video, "GIF_LIMIT_BYTES", 1000)
    for out, message in (
        (tmp_path / "x.gif", "GIF of 20 frames"),
        (tmp_path / "x.avi", "write .mp4, .gif"),
    ):
        with pytest.raises(InputError, match=message):
            animate_mod.animate(
                pt, MESSI, VTEST, out, animate_mod.AnimateOptions(duration=2.0), progress=False
            )
        assert not out.exists() and not out.with_name(out.name + ".json").exists()


def test_app_animate_tab(pt, tmp_path):
    from posetransfer.app.animate import run_animation

    preview, path, status = run_animation(pt, str(MESSI), str(VTEST), tmp_path, seconds=1.0)
    assert (
        path.is_file()
        and preview.shape[0] == pt.height * 2
        and status.startswith("Done: 10 frames")
    )
    with pytest.raises(InputError, match="upload a source photo and a driving video"):
        run_animation(pt, None, str(VTEST), tmp_path)


def test_cli_animate_errors_are_one_line(tmp_path, capsys):
    from posetransfer.cli import main

    code = main(
        [
            "animate",
            "--source",
            str(MESSI),
            "--driving",
            str(tmp_path / "none.mp4"),
            "--out",
            str(tmp_path / "o.mp4"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--driving" in err and "not found" in err and err.count("\n") == 1
