"""Faults and mistakes around `posetransfer animate`: outputs that would destroy inputs, kills and
full disks while replacing an earlier video, damaged or mismatched driving inputs."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from posetransfer.cli import main
from posetransfer.errors import InputError, InputWarning
from posetransfer.keypoints.named_poses import named_pose
from posetransfer.motion.animate import AnimateOptions, animate
from posetransfer.pose import write_annotations

av = pytest.importorskip("av")

TESTS = Path(__file__).parent


# A stand-in for `PoseTransfer` (the generator paints flat frames) and a pose-file clip: the
# whole of `animate` in well under a second, here and in the subprocesses killed below.
class FakePT:
    height, width, fill, min_confidence = 32, 16, 0.9, 0.5

    def __init__(self, stop_at: int | None = None, stop=None, shade: int = 100) -> None:
        self.calls, self.stop_at, self.stop, self.shade = 0, stop_at, stop, shade

    def prepare_source(self, image):
        img = np.zeros((32, 16, 3), np.uint8)
        return SimpleNamespace(image=img, photo=img, kps=named_pose("front", 32, 16))

    def generate_batch(self, src_img, src_kps, tgt_kps):
        self.calls += 1
        if self.calls == self.stop_at:
            self.stop()
        # Frames that differ (a GIF merges equal neighbours into one frame).
        first = (self.calls - 1) * len(tgt_kps)
        return [np.full((32, 16, 3), self.shade + first + i, np.uint8) for i in range(len(tgt_kps))]


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAtReplace:
    """`os` for `posetransfer.motion.animate`, killing the process at its ``at``-th rename."""

    def __init__(self, at: int) -> None:
        self.n, self.at = 0, at

    def __getattr__(self, name: str):
        return getattr(os, name)

    def replace(self, *args) -> None:
        self.n += 1
        if self.n == self.at:
            kill()
        os.replace(*args)


def driving_csv(path: Path, n: int) -> Path:
    names = ["walking", "arms_up", "front", "wave"]
    rows = {f"f{i:03d}.jpg": named_pose(names[i % 4], 96, 64) for i in range(n)}
    return write_annotations(path, rows)


OPTIONS = AnimateOptions(height=32, batch_size=2, smooth=False)


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def _frames(path: Path) -> int:
    if path.is_dir():
        return len(list(path.glob("frame_*.png")))
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


def _report_agrees(out: Path, report: Path) -> dict | None:
    """The report beside ``out``, after checking that it describes ``out`` (None: no report)."""
    if not report.exists():
        return None
    saved = json.loads(report.read_text())
    assert out.exists(), f"{report} describes a missing {out}"
    assert saved["frames_written"] == _frames(out)
    assert saved["complete"] == (saved["frames_written"] == saved["frames_used"])
    return saved


def _cli(capsys, *argv: str) -> str:
    code = main(["animate", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def frames(tmp_path) -> Path:
    """A user's folder of driving frames and a photo."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (24, 32), (10 * i, 0, 0)).save(folder / f"frame_{i:06d}.png")
    Image.new("RGB", (24, 32), (0, 90, 0)).save(tmp_path / "photo.png")
    return folder


# --------------------------------------------------------------------------------------------
# 1 and 5: an output that is, contains or lies in an input, or below a file: refused first


@pytest.mark.parametrize(
    "out, why",
    [
        ("frames", "is the input driving="),
        ("frames/out", "lies inside the input folder driving="),
        ("frames/walk.mp4", "lies inside the input folder driving="),
        (".", "contains the input"),
        ("photo.png", "is the input source="),
        ("photo.png/walk.mp4", "photo.png is a file, not a folder"),
    ],
)
def test_an_output_over_an_input_is_refused_before_anything(
    frames, tmp_path, capsys, monkeypatch, out, why
):
    monkeypatch.chdir(tmp_path)
    before = _digest(frames)
    err = _cli(capsys, "--source", "photo.png", "--driving", "frames", "--out", out)
    assert f"posetransfer animate: error: --out '{out}': " in err and why in err
    assert _digest(frames) == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "frames",
        "photo.png",
    ]


def test_an_output_over_a_driving_video_or_pose_file_is_refused(tmp_path, capsys):
    csv = driving_csv(tmp_path / "walk.csv", 4)
    before = csv.read_bytes()
    photo = str(tmp_path / "photo.jpg")
    err = _cli(capsys, "--source", photo, "--driving", str(csv), "--out", str(csv))
    assert "--out" in err and "is the input driving=" in err
    assert csv.read_bytes() == before


def test_a_png_folder_of_the_users_files_is_never_cleared(frames, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "frame_000000.png").write_bytes(b"my own frame")
    photo = str(tmp_path / "photo.png")
    err = _cli(capsys, "--source", photo, "--driving", str(frames), "--out", str(mine))
    assert "--out" in err and "holds files that are not animation frames" in err
    assert (mine / "frame_000000.png").read_bytes() == b"my own frame"


def test_a_png_folder_we_wrote_is_replaced_whole(tmp_path):
    csv, out = driving_csv(tmp_path / "walk.csv", 6), tmp_path / "anim"
    animate(FakePT(), "photo", csv, out, OPTIONS, progress=False)
    assert (out / ".posetransfer-output").is_file() and _frames(out) == 6
    animate(FakePT(), "photo", driving_csv(tmp_path / "b.csv", 3), out, OPTIONS, progress=False)
    assert _report_agrees(out, out / "report.json")["frames_written"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anim", "b.csv", "walk.csv"]


# --------------------------------------------------------------------------------------------
# 2: the report beside an output describes that output, after a kill, Ctrl-C or a full disk


def _kill_while_replacing(tmp_path: Path, out: Path, point: str) -> subprocess.CompletedProcess:
    """Run `animate` over ``out`` in a subprocess that SIGKILLs itself at ``point``."""
    hook = {
        "frame": "pt = FakePT(stop_at=3, stop=kill, shade=200)",  # after 4 frames written
        "report": (  # the new report written to its temporary name (into a folder's copy)
            "pt = FakePT(shade=200)\n"
            "real = m.atomic_write\n"
            "m.atomic_write = lambda *a: (real(*a), kill())"
        ),
        "rename-video": "pt = FakePT(shade=200); m.os = KillAtReplace(1)",
        "rename-report": "pt = FakePT(shade=200); m.os = KillAtReplace(2)",
    }[point]
    head = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import posetransfer.motion.animate as m
        from test_faults_motion import *
    """)
    csv = str(tmp_path / "new.csv")
    tail = f"\nanimate(pt, 'photo', driving_csv(Path({csv!r}), 10), {str(out)!r}, OPTIONS)\n"
    script = head + hook + tail
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["frame", "report", "rename-video", "rename-report"])
@pytest.mark.parametrize("name", ["walk.mp4", "walk.gif", "walk"])
def test_killed_while_replacing_the_report_still_tells_the_truth(tmp_path, point, name):
    if name == "walk" and point.startswith("rename"):
        pytest.skip("a folder holds its report and is swapped in whole")
    out = tmp_path / name
    report = out / "report.json" if name == "walk" else tmp_path / f"{name}.json"
    animate(FakePT(), "photo", driving_csv(tmp_path / "old.csv", 6), out, OPTIONS, progress=False)
    run = _kill_while_replacing(tmp_path, out, point)
    assert run.returncode == -signal.SIGKILL, run.stderr
    saved = _report_agrees(out, report)
    if point in ("frame", "report"):  # the earlier output and its report, untouched
        assert saved["frames_written"] == 6 and saved["complete"] is True
    # The next run removes the killed run's leftovers and replaces the output.
    animate(FakePT(), "photo", tmp_path / "new.csv", out, OPTIONS, progress=False)
    assert _report_agrees(out, report)["frames_written"] == 10
    assert not [p.name for p in tmp_path.iterdir() if "posetransfer-part" in p.name]


def test_ctrl_c_keeps_an_earlier_video_and_says_so(tmp_path):
    csv, out = driving_csv(tmp_path / "walk.csv", 6), tmp_path / "walk.mp4"
    animate(FakePT(), "photo", csv, out, OPTIONS, progress=False)
    before = out.read_bytes(), (tmp_path / "walk.mp4.json").read_bytes()
    with pytest.warns(InputWarning, match="stopped after 4 of 6 frames: .*walk.mp4 was left as"):
        with pytest.raises(KeyboardInterrupt):
            animate(FakePT(3, _interrupt), "photo", csv, out, OPTIONS, progress=False)
    assert (out.read_bytes(), (tmp_path / "walk.mp4.json").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.csv", "walk.mp4", "walk.mp4.json"]


def test_ctrl_c_on_a_first_run_keeps_the_frames_written(tmp_path):
    csv, out = driving_csv(tmp_path / "walk.csv", 6), tmp_path / "walk.mp4"
    with pytest.warns(InputWarning, match="holds the 4 frames written"):
        with pytest.raises(KeyboardInterrupt):
            animate(FakePT(3, _interrupt), "photo", csv, out, OPTIONS, progress=False)
    saved = _report_agrees(out, tmp_path / "walk.mp4.json")
    assert saved["frames_written"] == 4 and saved["complete"] is False


def _interrupt():
    raise KeyboardInterrupt


@pytest.mark.parametrize("name", ["walk.mp4", "walk"])
def test_a_full_disk_while_replacing_keeps_the_earlier_output_and_says_so(
    tmp_path, monkeypatch, name
):
    import posetransfer.motion.video as video

    csv, out = driving_csv(tmp_path / "walk.csv", 6), tmp_path / name
    report = out / "report.json" if name == "walk" else tmp_path / f"{name}.json"
    animate(FakePT(), "photo", csv, out, OPTIONS, progress=False)
    before = _digest(out if out.is_dir() else tmp_path)
    write = video.Writer.write

    def full(self, frame):
        if self.count == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, frame)

    monkeypatch.setattr(video.Writer, "write", full)
    with pytest.raises(InputError) as e:
        animate(FakePT(shade=7), "photo", csv, out, OPTIONS, progress=False)
    message = str(e.value)
    assert "disk full) after 3 of 6 frames" in message and "was left as it was" in message
    assert "nothing was replaced" not in message
    assert _digest(out if out.is_dir() else tmp_path) == before
    assert _report_agrees(out, report)["complete"] is True
    assert not [p.name for p in tmp_path.iterdir() if "posetransfer-part" in p.name]


# --------------------------------------------------------------------------------------------
# 4: damaged and mismatched driving inputs


def _mp4(path: Path, n: int, **options: str) -> Path:
    with av.open(str(path), "w", options=options) as c:
        s = c.add_stream("libx264", rate=10)
        s.height, s.width, s.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(n):
            img = rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def _cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def test_a_truncated_video_is_used_with_a_warning_giving_the_counts(tmp_path):
    from posetransfer.motion.video import open_clip

    cut = _cut(_mp4(tmp_path / "cut.mp4", 37, movflags="faststart"), 0.6)
    with pytest.warns(InputWarning, match=r"cut.mp4.*: \d+ of 37 frames decodable; the file looks"):
        clip = open_clip(cut)
    assert 0 < len(clip.indices) < 37


def test_a_truncated_video_of_our_own_writer_warns_too(tmp_path):
    from posetransfer.motion.video import Writer, open_clip

    path = tmp_path / "ours.mp4"
    with Writer(path, 10, (64, 48), 37) as w:
        rng = np.random.default_rng(0)
        for _ in range(37):
            w.write(rng.integers(0, 255, (64, 48, 3), dtype=np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(open_clip(path).indices) == 37  # whole: no warning
    with pytest.warns(InputWarning, match="frames decodable; the file looks truncated"):
        open_clip(_cut(path, 0.6))


def test_a_still_image_as_the_driving_video_is_refused(tmp_path):
    from posetransfer.motion.video import open_clip

    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (48, 64), (200, 10, 10)).save(photo)
    renamed = tmp_path / "dance.mp4"
    renamed.write_bytes(photo.read_bytes())
    for path in (photo, renamed):
        with pytest.raises(InputError, match=r"a still image \(JPEG picture\), not a video") as e:
            open_clip(path)
        assert e.value.arg == "driving" and "\n" not in str(e.value)


def test_an_animated_gif_is_a_video(tmp_path):
    from posetransfer.motion.video import open_clip

    frames = [Image.new("RGB", (48, 64), (30 * i, 0, 0)) for i in range(4)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100)
    assert len(open_clip(tmp_path / "a.gif").indices) == 4


def test_driving_frames_of_different_sizes_are_refused(frames, capsys):
    from posetransfer.motion.video import open_clip

    Image.new("RGB", (40, 30), 0).save(frames / "frame_000007.png")
    with pytest.raises(InputError) as e:
        open_clip(frames)
    assert str(e.value).endswith(
        "frame frame_000007.png is 30x40 (HxW) while frame_000000.png is 32x24; the frames of a "
        "clip must share one size (resize or crop them alike first)"
    )
    assert len(open_clip(frames, duration=0.12).indices) == 3  # the frames used share a size
