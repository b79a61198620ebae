"""Faults of a held-out round (issue 22): kinds nobody had listed, tried on every command.

Outputs that are devices or pipes, symbolic link loops, folders that cannot be read, numbers
that are not finite, a batch too small for its loss, a report over its own cache, an output
folder that is a file, SIGTERM mid-run, and a manifest after an interruption. Each ends in
exit status 2 with one line (or 143 for SIGTERM) and leaves the user's files as they were.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from posetransfer.cli import main

BUNDLED = "synthetic-patn"


def _fails(argv: list, capsys) -> str:
    """Run the CLI; assert exit status 2 and one error line without a traceback; the line."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert code == 2 and len(lines) == 1, err
    return lines[0]


def _generate(root: Path, out: Path, *extra) -> list:
    return ["generate", "--checkpoint", BUNDLED, "--dataset", root, "--out", out, *extra]


def _evaluate(root: Path, generated: Path, out: Path, *extra) -> list:
    pairs = root / "synthetic-pairs-test.csv"
    argv = ["evaluate", "--generated", generated, "--dataset", root, "--pairs", pairs]
    return [*argv, "--out", out, "--metrics", "ssim", *extra]


@pytest.fixture
def pipe(tmp_path) -> Path:
    """A named pipe: not a regular file, like /dev/full, and made without privileges."""
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


# --------------------------------------------------------------------------------------------
# An output that is a device or a pipe is never replaced by a file


@pytest.mark.parametrize("suffix", [".csv", ".png", ".json"])
def test_an_output_that_is_a_pipe_is_refused_by_every_kind_of_command(
    tiny_root, tmp_path, capsys, suffix
):
    out = tmp_path / f"out{suffix}"
    os.mkfifo(out)
    argv = {
        ".csv": ["pairs", "--annotations", tiny_root / "synthetic-annotation-test.csv"]
        + ["--out", out],
        ".png": [
            "transfer",
            "--source",
            tiny_root / "test" / sorted(os.listdir(tiny_root / "test"))[0],
        ]
        + ["--target-pose", "walking", "--out", out],
        ".json": ["evaluate", "--generated", tiny_root / "test", "--dataset", tiny_root]
        + ["--pairs", tiny_root / "synthetic-pairs-test.csv", "--out", out, "--metrics", "ssim"],
    }[suffix]
    err = _fails(argv, capsys)
    assert "not a regular file" in err and str(out) in err
    assert Path(out).is_fifo()


def test_atomic_writes_refuse_a_device_or_pipe(pipe):
    from posetransfer.core.files import atomic_write
    from posetransfer.errors import InputError

    with pytest.raises(InputError, match="not a regular file"):
        atomic_write(pipe, "report")
    assert pipe.is_fifo()


# --------------------------------------------------------------------------------------------
# Links that point to themselves, folders that cannot be read


def test_an_output_that_is_a_symbolic_link_loop_is_named(tiny_root, tmp_path, capsys):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    err = _fails(_generate(tiny_root, loop, "--no-progress"), capsys)
    assert "symbolic link loop" in err and "loop" in err
    pairs = tmp_path / "pairs.csv"
    pairs.symlink_to(pairs)
    err = _fails(_generate(tiny_root, tmp_path / "gen", "--pairs", pairs), capsys)
    assert "pairs.csv" in err


def test_an_operating_system_error_anywhere_is_one_line(monkeypatch, tmp_path, capsys):
    """What no check foresaw (a folder without read permission, a race) still ends in one line."""
    locked = tmp_path / "locked"

    def unreadable(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(locked))

    monkeypatch.setattr("posetransfer.data.synthetic.make_synthetic_dataset", unreadable)
    err = _fails(["synthetic", "--out", tmp_path / "x", "--no-progress"], capsys)
    assert err == f"posetransfer synthetic: error: {locked}: permission denied"


# --------------------------------------------------------------------------------------------
# Numbers that are not finite; a batch too small for its loss


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_learning_rate_that_is_not_finite_is_refused(tiny_root, tmp_path, capsys, value):
    argv = ["train", "--config", "synthetic", "--data.root", tiny_root, "--train.lr", value]
    err = _fails([*argv, "--train.runs_dir", tmp_path / "runs"], capsys)
    assert "train.lr" in err and "finite" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flag", ["--duration", "--fps", "--min-cutoff", "--start"])
def test_animate_refuses_numbers_that_are_not_finite(tmp_path, capsys, flag):
    argv = ["animate", "--source", "a.jpg", "--driving", "b.mp4", "--out", tmp_path / "o.gif"]
    with pytest.raises(SystemExit) as stop:
        main([*map(str, argv), flag, "inf"])
    assert stop.value.code == 2
    assert "expected a finite number, got 'inf'" in capsys.readouterr().err


def test_reid_losses_with_one_person_per_batch_are_refused():
    from posetransfer.errors import InputError
    from posetransfer.reid.config import ReidConfig

    with pytest.raises(InputError, match="at least two people"):
        ReidConfig(loss="triplet", batch_size=4, num_instances=4)
    with pytest.raises(InputError, match="finite"):
        ReidConfig(lr=float("nan"))
    ReidConfig(loss="triplet", batch_size=8, num_instances=4)  # two people: fine


# --------------------------------------------------------------------------------------------
# Outputs against inputs and kinds


def test_evaluate_never_writes_its_report_over_the_real_statistics(tiny_root, tmp_path, capsys):
    stats = tmp_path / "real.npz"
    stats.write_bytes(b"cached statistics")
    argv = [*_evaluate(tiny_root, tiny_root / "test", stats), "--real-stats", stats]
    err = _fails(argv, capsys)
    assert "real" in err and "is the input" in err
    assert stats.read_bytes() == b"cached statistics"


def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tiny_root, tmp_path, capsys):
    notes = tmp_path / "notes.csv"
    notes.write_text("mine")
    gen = tmp_path / "gen"
    err = _fails(_generate(tiny_root, gen, "--strips", notes, "--no-progress"), capsys)
    assert "--strips" in err and "is a file, not a folder" in err
    assert not gen.exists() and notes.read_text() == "mine"
    err = _fails(["bench", "--out", notes, "--no-progress"], capsys)
    assert "--out" in err and "is a file, not a folder" in err


def test_a_contact_sheet_is_a_png(tmp_path, capsys):
    err = _fails(["synthetic", "--out", tmp_path / "d", "--sheet", tmp_path / "s.txt"], capsys)
    assert "--sheet" in err and ".png" in err
    assert not (tmp_path / "d").exists()


def test_a_ratio_beyond_the_annotated_poses_is_capped_with_a_warning():
    import numpy as np

    from posetransfer.errors import InputWarning
    from posetransfer.reid.plan import plan_augmentation

    groups = {1: ["0001_c1s1_000001_00.jpg", "0001_c2s1_000002_00.jpg"]}
    poses = {name: np.full((18, 2), 10) for name in groups[1]}
    with pytest.warns(InputWarning, match="ratio=5"):
        plan = plan_augmentation(groups, poses, 1.0, 0, "random", 5)
    assert len(plan.generated) == 2  # one other pose for each of the two images


# --------------------------------------------------------------------------------------------
# Interruptions: the manifest counts what was reached; SIGTERM cleans up like Ctrl-C


def test_an_interrupted_generate_counts_its_images_in_the_manifest(
    tiny_root, tmp_path, monkeypatch, capsys
):
    import posetransfer.generate as gen_module

    real = gen_module.save_png
    calls = []

    def stop_after_three(image, path):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(path)
        return real(image, path)

    monkeypatch.setattr(gen_module, "save_png", stop_after_three)
    out = tmp_path / "gen"
    code = main([str(a) for a in _generate(tiny_root, out, "--batch-size", "2", "--no-progress")])
    assert code == 130
    manifest = json.loads((out / "generate.json").read_text())
    on_disk = [p for p in out.iterdir() if p.suffix in (".png", ".jpg")]
    assert manifest["complete"] is False and manifest["images"] == len(on_disk) == 3


_GENERATE_SLOWLY = """
import sys, time
import posetransfer.generate as g
from posetransfer.cli import main

real = g.save_png
def slow(image, path):
    out = real(image, path)
    print("saved", flush=True)
    time.sleep(0.3)
    return out
g.save_png = slow
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigterm_stops_generate_like_ctrl_c_with_nothing_left_over(tiny_root, tmp_path):
    out = tmp_path / "gen"
    argv = [str(a) for a in _generate(tiny_root, out, "--batch-size", "1", "--no-progress")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _GENERATE_SLOWLY, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while proc.stdout.readline().strip() != "saved" and time.monotonic() < deadline:
        pass
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped (SIGTERM)" in err and "Traceback" not in err
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    manifest = json.loads((out / "generate.json").read_text())
    on_disk = [p for p in out.iterdir() if p.suffix in (".png", ".jpg")]
    assert manifest["complete"] is False and manifest["images"] == len(on_disk) >= 1


def test_a_closed_pipe_on_stdout_ends_quietly(monkeypatch, tmp_path, capsys):
    """`posetransfer ... | head`: the reader went away; that is no error (a BrokenPipeError is
    an OSError too, and must not be reported as one)."""

    def closed(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("posetransfer.data.synthetic.make_synthetic_dataset", closed)
    monkeypatch.setattr("sys.stderr.close", lambda: None, raising=False)
    assert main(["synthetic", "--out", str(tmp_path / "x"), "--no-progress"]) == 0
    assert "error" not in capsys.readouterr().err
