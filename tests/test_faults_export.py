"""Faults and mistakes around `export`, `pretrained export` and `app`: each ends in exit status 2
with one line naming the flag or file, or leaves intact files (and no scratch folders) behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from posetransfer import cli
from posetransfer.checkpoint import GENERATOR_FILE, MANIFEST_FILE
from posetransfer.checkpoint.bundled import PRETRAINED_DIR
from posetransfer.core.files import atomic_write, mark_output, save_image
from posetransfer.core.scratch import new_scratch_dir, pid_alive, sweep_stale
from posetransfer.errors import InputError
from test_transfer import write_untrained_checkpoint


def _error(capsys) -> str:
    """The one line a failed command printed (after any cleared progress display)."""
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert lines, "nothing printed"
    assert len([line for line in lines if "error:" in line]) == 1, err
    return lines[-1]


def _truncate(path: Path, keep: int = 1000) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _dead_pid() -> int:
    """The id of a process that has just ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def run(tiny_root, tmp_path_factory) -> Path:
    return write_untrained_checkpoint(tmp_path_factory.mktemp("runs") / "00000-tiny", tiny_root)


@pytest.fixture
def umask():
    """Set the process's umask for one test (and put the previous one back)."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------------------------
# export: outputs that would touch an input, or cannot be written


def test_export_into_the_bundled_model_folder_is_refused(capsys):
    out = PRETRAINED_DIR / "synthetic-patn" / "m.onnx"
    argv = ["export", "--checkpoint", "synthetic-patn", "--format", "onnx", "--out", str(out)]
    assert cli.main([*argv, "--no-progress"]) == 2
    line = _error(capsys)
    assert line.startswith(f"posetransfer export: error: --out '{out}': lies inside the input")
    assert "checkpoint=" in line and not out.exists()


def test_export_over_the_checkpoint_file_is_refused(tmp_path, capsys):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"the user's model")
    argv = ["export", "--checkpoint", str(model), "--format", "onnx", "--out", str(model)]
    assert cli.main(argv) == 2
    assert "is the input checkpoint=" in _error(capsys)
    assert model.read_bytes() == b"the user's model"


def test_export_into_the_calibration_root_is_refused(tiny_root, capsys):
    out = tiny_root / "m.onnx"
    argv = ["export", "--checkpoint", "synthetic-patn", "--format", "onnx", "--int8"]
    assert cli.main([*argv, "--calibration", str(tiny_root), "--out", str(out)]) == 2
    assert "lies inside the input folder calibration=" in _error(capsys)
    assert not out.exists()


def test_export_below_a_regular_file_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    out = tmp_path / "notes.txt" / "m.xml"
    argv = ["export", "--checkpoint", "synthetic-patn", "--format", "openvino", "--out", str(out)]
    assert cli.main(argv) == 2
    assert _error(capsys).endswith("notes.txt is a file, not a folder")


def test_int8_calibration_errors_name_only_flags_export_has(tmp_path, capsys):
    argv = ["export", "--checkpoint", "synthetic-patn", "--format", "onnx", "--int8"]
    out = ["--out", str(tmp_path / "m.onnx")]
    assert cli.main([*argv, "--calibration", str(tmp_path / "MISSING"), *out]) == 2
    line = _error(capsys)
    assert f"--calibration '{tmp_path / 'MISSING'}': no such folder" in line
    (tmp_path / "empty").mkdir()
    assert cli.main([*argv, "--calibration", str(tmp_path / "empty"), *out]) == 2
    line = _error(capsys)
    assert "not a dataset root in the public layout" in line and "-annotation-train.csv" in line
    assert "--annotations" not in line and "--pairs" not in line


# --------------------------------------------------------------------------------------------
# Every loader of weights, given a truncated file


def test_truncated_checkpoint_weights_are_one_line(run, tmp_path, capsys):
    copy = shutil.copytree(run, tmp_path / "run")
    weights = next(copy.glob(f"checkpoints/step-*/{GENERATOR_FILE}"))
    _truncate(weights)
    argv = ["export", "--checkpoint", str(copy), "--format", "onnx"]
    assert cli.main([*argv, "--out", str(tmp_path / "m.onnx")]) == 2
    line = _error(capsys)
    assert line.startswith("posetransfer export: error:") and GENERATOR_FILE in line
    assert "truncated or damaged" in line or "unreadable" in line


@pytest.mark.parametrize("manifest", [True, False])
def test_truncated_bundled_weights_are_one_line(tmp_path, monkeypatch, capsys, manifest):
    import posetransfer.checkpoint.bundled as bundled

    weights = shutil.copytree(PRETRAINED_DIR, tmp_path / "weights")
    _truncate(weights / "synthetic-patn" / GENERATOR_FILE)
    if not manifest:  # then the safetensors reader itself meets the cut
        (weights / "synthetic-patn" / MANIFEST_FILE).unlink()
    monkeypatch.setattr(bundled, "PRETRAINED_DIR", weights)
    argv = ["export", "--checkpoint", "synthetic-patn", "--format", "onnx"]
    assert cli.main([*argv, "--out", str(tmp_path / "m.onnx"), "--no-progress"]) == 2
    line = _error(capsys)
    assert str(weights / "synthetic-patn") in line and GENERATOR_FILE in line


def test_truncated_authors_pth_is_one_line(tmp_path, capsys):
    pth = tmp_path / "latest_net_netG.pth"
    torch.save({"model.weight": torch.zeros(4096)}, pth)
    _truncate(pth, pth.stat().st_size // 2)
    argv = ["export", "--checkpoint", str(pth), "--format", "onnx"]
    assert cli.main([*argv, "--out", str(tmp_path / "m.onnx")]) == 2
    assert _error(capsys).startswith(f"posetransfer export: error: {pth}: ")


@pytest.mark.parametrize("suffix", [".onnx", ".xml"])
def test_truncated_exported_model_is_one_line(tiny_root, tmp_path, capsys, suffix):
    pytest.importorskip("onnxruntime" if suffix == ".onnx" else "openvino")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["generated"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 128, 64])],
        [helper.make_tensor_value_info("generated", TensorProto.FLOAT, [1, 3, 128, 64])],
    )
    model = tmp_path / f"model{suffix}"
    if suffix == ".onnx":
        onnx.save(helper.make_model(graph), model)
        _truncate(model, model.stat().st_size // 2)
    else:
        model.write_text('<?xml version="1.0"?>\n<net name="cut" version="11">\n<layers>\n<la')
    argv = ["generate", "--checkpoint", str(model), "--dataset", str(tiny_root)]
    assert cli.main([*argv, "--out", str(tmp_path / "gen"), "--no-progress"]) == 2
    line = _error(capsys)
    assert line.startswith(f"posetransfer generate: error: {model}: not a loadable")


# --------------------------------------------------------------------------------------------
# pretrained export


def test_pretrained_name_must_match_the_generator_family(run, tmp_path, capsys):
    argv = ["pretrained", "export", "--checkpoint", str(run), "--name", "synthetic-apatn"]
    assert cli.main([*argv, "--command", "c", "--out-root", str(tmp_path / "m")]) == 2
    line = _error(capsys)
    assert line.startswith("posetransfer pretrained: error: --name 'synthetic-apatn': ")
    assert "patn_tiny" in line and "use synthetic-patn" in line
    assert not (tmp_path / "m").exists()


def test_pretrained_out_root_below_a_file_or_inside_the_run(run, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    argv = ["pretrained", "export", "--checkpoint", str(run), "--name", "synthetic-patn"]
    argv += ["--command", "c"]
    assert cli.main([*argv, "--out-root", str(tmp_path / "file" / "models")]) == 2
    assert _error(capsys).endswith("file is a file, not a folder")
    assert cli.main([*argv, "--out-root", str(run / "models")]) == 2
    assert "lies inside the input folder checkpoint=" in _error(capsys)
    assert not (run / "models").exists()


def test_pretrained_never_replaces_a_folder_of_other_files(run, tmp_path, capsys):
    mine = tmp_path / "models" / "synthetic-patn"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("the user's")
    argv = ["pretrained", "export", "--checkpoint", str(run), "--name", "synthetic-patn"]
    assert cli.main([*argv, "--command", "c", "--out-root", str(tmp_path / "models")]) == 2
    assert "is not a bundled model's folder" in _error(capsys)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_pretrained_writes_to_the_working_directory_unless_told(run, monkeypatch, capsys):
    import posetransfer.pretrained.export as export

    seen = []
    monkeypatch.setattr(export, "export_pretrained", lambda *a, **kw: seen.append(kw) or Path())
    argv = ["pretrained", "export", "--checkpoint", str(run), "--name", "synthetic-patn"]
    argv += ["--command", "c", "--no-progress"]
    assert cli.main(argv) == 0
    assert cli.main([*argv, "--into-package"]) == 0
    assert [kw["out_root"] for kw in seen] == [Path("pretrained"), PRETRAINED_DIR]
    assert export.DEFAULT_OUT_ROOT == Path("pretrained")
    with pytest.raises(SystemExit) as e:  # one or the other, refused by the parser
        cli.main([*argv, "--into-package", "--out-root", "x"])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_hub_folder_inside_the_model_is_refused(capsys):
    hub = PRETRAINED_DIR / "synthetic-patn" / "hub"
    argv = ["pretrained", "export", "--name", "synthetic-patn", "--hub-folder", str(hub)]
    assert cli.main(argv) == 2
    assert "--hub-folder" in _error(capsys) and not hub.exists()


# --------------------------------------------------------------------------------------------
# Files as a user expects them: modes follow the umask, no scratch folders left


@pytest.mark.parametrize(
    "mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]
)
def test_written_files_follow_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    import numpy as np

    from posetransfer.pretrained.export import write_hub_folder

    umask(mask)
    assert _mode(atomic_write(tmp_path / "a.json", "{}")) == file_mode
    assert _mode(save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "i.png")) == file_mode
    (tmp_path / "out").mkdir()
    assert _mode(mark_output(tmp_path / "out")) == file_mode
    hub = write_hub_folder("synthetic-patn", tmp_path / "hub")
    assert _mode(hub) == dir_mode
    assert {_mode(p) for p in hub.iterdir()} == {file_mode}
    assert _mode(new_scratch_dir(tmp_path / "s")) == dir_mode


@pytest.mark.slow
def test_exported_onnx_follows_the_umask_and_shows_progress(run, tmp_path, umask, capsys):
    pytest.importorskip("onnxscript")
    umask(0o022)
    out = tmp_path / "m.onnx"
    argv = ["export", "--checkpoint", str(run), "--format", "onnx", "--out", str(out)]
    assert cli.main([*argv, "--no-check"]) == 0
    assert _mode(out) == 0o644
    err = capsys.readouterr().err
    assert "1/2 loading the generator" in err and "2/2 tracing" in err and "done" in err
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no scratch folder left
    assert cli.main([*argv, "--no-check", "--no-progress"]) == 0
    assert "loading" not in capsys.readouterr().err


def test_stale_scratch_folders_are_swept_live_ones_kept(tmp_path):
    dead = tmp_path / f".export-{_dead_pid()}-abcd"
    live = tmp_path / f".export-{os.getppid()}-abcd"
    other = tmp_path / ".export-notes"
    for folder in (dead, live, other):
        folder.mkdir()
    assert not pid_alive(int(dead.name.split("-")[1]))
    assert sweep_stale(tmp_path, ".export-") == [dead]
    assert live.is_dir() and other.is_dir()
    new = new_scratch_dir(tmp_path)
    assert new.name.startswith(f".export-{os.getpid()}-")


KILLED_EXPORT = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from posetransfer import cli

    def killed(model, inputs, path, **kw):  # dies mid-write, as kill -9 would
        open(path, "wb").write(b"half an onnx file")
        os.kill(os.getpid(), signal.SIGKILL)

    torch.onnx.export = killed
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def test_killed_export_keeps_the_earlier_file_and_its_folder_is_swept(run, tmp_path):
    pytest.importorskip("onnxscript")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"the earlier export")
    argv = ["export", "--checkpoint", str(run), "--format", "onnx", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", KILLED_EXPORT, *argv, "--no-progress"])
    assert proc.wait(timeout=120) == -signal.SIGKILL
    assert out.read_bytes() == b"the earlier export"  # nothing under the final name changed
    left = [p.name for p in tmp_path.iterdir() if p != out]
    assert len(left) == 1 and left[0].startswith(f".export-{proc.pid}-")
    # The next export there (its scratch folder) sweeps the killed one's.
    shutil.rmtree(new_scratch_dir(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


# --------------------------------------------------------------------------------------------
# app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_host_that_does_not_resolve_says_so():
    pytest.importorskip("gradio")
    from posetransfer.app import launch

    with pytest.raises(InputError) as e:
        launch("not loaded", host="no-such-host.invalid", port=_free_port(), block=False)
    assert e.value.arg == "host" and "port in use" not in str(e.value)
    assert str(e.value).startswith("host='no-such-host.invalid': not a name or address")


def test_app_port_in_use_says_so():
    pytest.importorskip("gradio")
    from posetransfer.app import launch

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InputError, match=f"port={port}: 127.0.0.1:{port} is in use") as e:
            launch("not loaded", host="127.0.0.1", port=port, block=False)
    assert e.value.arg == "port"


def test_cli_app_bad_host_is_one_line_before_loading(tmp_path, capsys):
    pytest.importorskip("gradio")
    argv = ["app", "--checkpoint", str(tmp_path / "never-read"), "--host", "no-such-host.invalid"]
    assert cli.main(argv) == 2
    line = _error(capsys)
    assert line.startswith("posetransfer app: error: --host 'no-such-host.invalid': not a name")


@pytest.mark.slow
def test_app_stopped_by_sigterm_removes_its_folder_and_sweeps_stale_ones(run, tmp_path):
    pytest.importorskip("gradio")
    stale = tmp_path / f"posetransfer-app-{_dead_pid()}-abcd"
    stale.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    argv = ["app", "--checkpoint", str(run), "--port", str(_free_port()), "--device", "cpu"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "posetransfer.cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in proc.stdout:
            if line.startswith("Ctrl-C stops the server"):
                break
        else:
            pytest.fail(f"the app did not start: exit {proc.wait()}")
        assert not stale.exists()  # swept at start: its process is gone
        assert len(list(tmp_path.glob(f"posetransfer-app-{proc.pid}-*"))) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(tmp_path.glob("posetransfer-app-*"))
