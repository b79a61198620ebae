"""A real full disk (issue 22): commands writing onto a small tmpfs that fills up.

Each case mounts a tmpfs of a few kilobytes in a mount namespace of its own (``unshare -rm``,
so nothing outside the test sees it and it goes away with the process), puts an earlier output
there where the case needs one, runs the command in that namespace, and copies what is left on
the tmpfs out for the assertions: exit status 2 with one line saying the disk is full, no
half-written file under the output's name, no temporary file left, and an earlier output and
its report untouched. Where mount namespaces are not allowed (some containers) the cases skip;
tests/test_faults_*.py simulate the same fault by making writes fail with ENOSPC.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_keypoints import opencv_sample

pytestmark = pytest.mark.slow


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare") or not sys.platform.startswith("linux"):
        return False
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && umount $d; rmdir $d"
    run = subprocess.run(["unshare", "-rm", "sh", "-c", probe], capture_output=True, timeout=30)
    return run.returncode == 0


needs_tmpfs = pytest.mark.skipif(
    not _can_mount_tmpfs(), reason="no mount namespaces here (unshare -rm)"
)


def run_on_small_disk(
    tmp_path: Path, size_kb: int, argv: list[str], earlier: dict[str, Path] | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run `posetransfer ARGV` with DISK (in ARGV) a tmpfs of `size_kb` KiB.

    `earlier` maps names to files copied onto the tmpfs first. Returns the finished process
    and a folder holding a copy of what the tmpfs held afterwards.
    """
    disk, after = tmp_path / "disk", tmp_path / "after"
    disk.mkdir()
    after.mkdir()
    setup = " && ".join(
        f"cp -a {shlex.quote(str(src))} {shlex.quote(str(disk / name))}"
        for name, src in (earlier or {}).items()
    )
    command = shlex.join([sys.executable, "-m", "posetransfer.cli", *argv])
    script = (
        f"mount -t tmpfs -o size={size_kb}k tmpfs {disk} && {setup or 'true'} && "
        f"{{ {command}; rc=$?; }}; cp -a {disk}/. {after}/; exit $rc"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return run, after


def _one_disk_full_line(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, run.stderr
    assert "no space left" in errors[0] or "disk full" in errors[0], errors[0]
    return errors[0]


@needs_tmpfs
def test_animate_on_a_full_disk_keeps_the_earlier_video_and_its_report(tmp_path: Path) -> None:
    photo = opencv_sample("messi5.jpg", tmp_path)
    video = opencv_sample("vtest.avi", tmp_path)
    pytest.importorskip("mediapipe", reason="mediapipe not installed (the [keypoints] extra)")
    # An earlier, complete animation (small: 2 frames), then a longer one that cannot fit.
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    small = ["--source", str(photo), "--driving", str(video), "--no-progress"]
    first = subprocess.run(
        [sys.executable, "-m", "posetransfer.cli", "animate", *small, "--duration", "0.2"]
        + ["--height", "64", "--out", str(earlier / "walk.gif")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr
    size_kb = (sum(p.stat().st_size for p in earlier.iterdir()) + 1023) // 1024 + 8
    out = tmp_path / "disk" / "walk.gif"
    argv = ["animate", *small, "--duration", "2", "--height", "256", "--out", str(out)]
    run, after = run_on_small_disk(
        tmp_path,
        size_kb,
        argv,
        earlier={"walk.gif": earlier / "walk.gif", "walk.gif.json": earlier / "walk.gif.json"},
    )
    message = _one_disk_full_line(run)
    assert "walk.gif" in message
    assert sorted(p.name for p in after.iterdir()) == ["walk.gif", "walk.gif.json"]
    assert (after / "walk.gif").read_bytes() == (earlier / "walk.gif").read_bytes()
    report = json.loads((after / "walk.gif.json").read_text())
    assert report == json.loads((earlier / "walk.gif.json").read_text())
    assert report["complete"] is True and report["frames_written"] == 2


@needs_tmpfs
def test_generate_on_a_full_disk_leaves_a_folder_its_manifest_describes(
    tmp_path: Path, tiny_root: Path
) -> None:
    from posetransfer.data.generated import MANIFEST

    out = tmp_path / "disk" / "gen"
    argv = ["generate", "--checkpoint", "synthetic-patn", "--dataset", str(tiny_root)]
    argv += ["--out", str(out), "--batch-size", "2", "--no-progress"]
    run, after = run_on_small_disk(tmp_path, 48, argv)
    _one_disk_full_line(run)
    gen = after / "gen"
    if gen.exists():  # what was written is kept, and the manifest says how far it got
        manifest = json.loads((gen / MANIFEST).read_text())
        assert manifest["complete"] is False
        images = [p for p in gen.iterdir() if p.suffix in (".jpg", ".png")]
        assert len(images) < manifest["pairs"]
        assert not [p for p in gen.iterdir() if ".part" in p.name or p.name.startswith(".")]


@needs_tmpfs
def test_keypoints_on_a_full_disk_leaves_no_half_written_csv(tmp_path: Path) -> None:
    photo = opencv_sample("messi5.jpg", tmp_path)
    pytest.importorskip("mediapipe", reason="mediapipe not installed (the [keypoints] extra)")
    images = tmp_path / "photos"
    images.mkdir()
    for i in range(3):
        shutil.copy(photo, images / f"p{i}.jpg")
    out = tmp_path / "disk" / "keypoints.csv"
    argv = ["keypoints", str(images), "--out", str(out), "--overlays"]
    argv += [str(tmp_path / "disk" / "overlays"), "--no-progress"]
    run, after = run_on_small_disk(tmp_path, 16, argv)
    _one_disk_full_line(run)
    assert (
        not (after / "keypoints.csv").exists()
        or (after / "keypoints.csv").read_text().count("\n") == 4
    )
    assert not [p for p in after.rglob("*") if ".part" in p.name or ".tmp" in p.name]


@needs_tmpfs
def test_synthetic_on_a_full_disk_removes_its_partial_files(tmp_path: Path) -> None:
    out = tmp_path / "disk" / "people"
    argv = ["synthetic", "--out", str(out), "--train-ids", "20", "--test-ids", "5"]
    run, after = run_on_small_disk(tmp_path, 40, [*argv, "--no-progress"])
    message = _one_disk_full_line(run)
    assert "not finished" in message and "run again" in message
    left = sorted(p.name for p in (after / "people").iterdir())
    assert ".partial" not in left and "synthetic.json" not in left
