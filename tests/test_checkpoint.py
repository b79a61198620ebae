"""Checkpoint files: the checksum manifest, finding an intact checkpoint, untrusted pickles."""

import errno
import io
import json
import os
import shutil
import warnings

import pytest
import torch

from conftest import tiny_overrides
from posetransfer import checkpoint as ckpt_mod
from posetransfer.checkpoint import (
    CheckpointWarning,
    prune_checkpoints,
    read_train_state,
    remove_orphans,
    resolve_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from posetransfer.checkpoint.format import sha256_file
from posetransfer.config import load_config
from posetransfer.core.files import PART_SUFFIX
from posetransfer.errors import InputError
from posetransfer.models.original import load_original_patn
from posetransfer.models.registry import create_generator
from posetransfer.runtime.load import load_generator


class NotPlainData:
    """A class of the test module: weights_only loading must refuse to build it."""


def write(run, step, state=None):
    cfg = load_config("synthetic", tiny_overrides(run / "data", run.parent))
    torch.manual_seed(step)
    return save_checkpoint(
        run / "checkpoints" / f"step-{step:07d}",
        create_generator("patn_tiny"),
        "patn_tiny",
        {},
        cfg,
        step,
        train_state={"step": step} if state is None else state,
    )


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_manifest_records_size_and_sha256_of_every_file(tmp_path):
    ckpt = write(tmp_path / "run", 1)
    files = json.loads((ckpt / "manifest.json").read_text())["files"]
    assert set(files) == {"generator.safetensors", "config.yaml", "train_state.pt"}
    for name, entry in files.items():
        assert entry == {"bytes": (ckpt / name).stat().st_size, "sha256": sha256_file(ckpt / name)}
    assert verify_checkpoint(ckpt, names=None) is True


def test_corrupted_generator_bytes_are_refused_not_loaded(tmp_path):
    ckpt = write(tmp_path / "run", 1)
    flip_a_byte(ckpt / "generator.safetensors")  # same size: safetensors alone would not notice
    with pytest.raises(InputError, match="generator.safetensors is damaged .*sha256"):
        load_generator(ckpt, device="cpu", precision=None)


@pytest.mark.parametrize("name", ["generator.safetensors", "config.yaml", "train_state.pt"])
def test_truncated_checkpoint_file_is_named(tmp_path, name):
    ckpt = write(tmp_path / "run", 1)
    path = ckpt / name
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(InputError, match=f"{name} is truncated or damaged"):
        verify_checkpoint(ckpt, names=None)


def test_run_falls_back_to_newest_intact_checkpoint_with_a_warning(tmp_path):
    run = tmp_path / "run"
    write(run, 1)
    bad = write(run, 2)
    flip_a_byte(bad / "generator.safetensors")
    with pytest.warns(
        CheckpointWarning, match="skipped step-0000002 .*damaged.*; using step-0000001"
    ):
        _, info = load_generator(run, device="cpu", precision=None)
    assert info.step == 1


def test_latest_naming_a_deleted_step_does_not_hide_the_others(tmp_path):
    run = tmp_path / "run"
    write(run, 1)
    write(run, 2)
    shutil.rmtree(write(run, 3))  # `latest` now names a checkpoint that is gone
    with pytest.warns(
        CheckpointWarning, match="step-0000003 .*no longer there.*using step-0000002"
    ):
        assert resolve_checkpoint(run).name == "step-0000002"


def test_latest_naming_an_older_intact_step_is_followed(tmp_path):
    run = tmp_path / "run"
    write(run, 1)
    write(run, 2)
    (run / "checkpoints" / "latest").write_text("step-0000001\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_checkpoint(run).name == "step-0000001"


def test_no_intact_checkpoint_is_one_clear_error_naming_each(tmp_path):
    run = tmp_path / "run"
    for step in (1, 2):
        flip_a_byte(write(run, step) / "config.yaml")
    with pytest.raises(InputError, match="no intact checkpoint: step-0000002 .*; step-0000001 "):
        resolve_checkpoint(run)


def test_checkpoint_without_a_manifest_still_loads(tmp_path):
    ckpt = write(tmp_path / "run", 1)
    (ckpt / "manifest.json").unlink()
    assert verify_checkpoint(ckpt, names=None) is False
    _, info = load_generator(tmp_path / "run", device="cpu", precision=None)
    assert info.step == 1


def test_failed_save_leaves_no_temporary_folder(tmp_path, monkeypatch):
    run = tmp_path / "run"
    write(run, 1)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod, "to_safetensors", broken)
    with pytest.raises(OSError):
        write(run, 2)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-0000001"]


def test_orphans_of_a_killed_save_are_cleared(tmp_path):
    run = tmp_path / "run"
    ckpts = run / "checkpoints"
    write(run, 1)
    write(run, 2)
    (ckpts / ".step-0000003.tmp-4242").mkdir()  # an unfinished write
    (ckpts / "step-0000002").rename(ckpts / ".step-0000002.old-4242")  # killed mid-swap
    (ckpts / f".latest.abc{PART_SUFFIX}").write_text("step-")
    done = remove_orphans(ckpts)
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step-0000001", "step-0000002"]
    assert "restored step-0000002 from .step-0000002.old-4242" in done
    verify_checkpoint(ckpts / "step-0000002", names=None)


def test_prune_keeps_checkpoints_of_later_steps_than_the_newest(tmp_path):
    run = tmp_path / "run"
    for step in (1, 2, 5):
        write(run, step)
    prune_checkpoints(run / "checkpoints", keep=1, newest=run / "checkpoints" / "step-0000002")
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == [
        "step-0000002",
        "step-0000005",
    ]


def test_train_state_with_python_objects_is_refused(tmp_path):
    ckpt = write(tmp_path / "run", 1, state={"step": 1, "extra": NotPlainData()})
    with pytest.raises(InputError, match="holds pickled Python objects .*NotPlainData"):
        read_train_state(ckpt)


def test_whole_pickled_module_gets_our_error(tmp_path):
    path = tmp_path / "latest_net_netG.pth"
    torch.save(create_generator("patn_tiny"), path)  # torch.save(model), not its state dict
    message = "holds a pickled module, not a state dict .*save model.state_dict\\(\\)"
    with pytest.raises(InputError, match=message):
        load_original_patn(path)
    with pytest.raises(InputError, match=message):
        load_generator(path, device="cpu", precision=None)


def test_truncated_weights_without_a_manifest_are_one_clear_error(tmp_path):
    ckpt = write(tmp_path / "run", 1)
    (ckpt / "manifest.json").unlink()
    path = ckpt / "generator.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match="generator.safetensors: unreadable weights"):
        load_generator(ckpt, device="cpu", precision=None)


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FullDiskFile(io.FileIO):
    def write(self, data):
        _no_space()


@pytest.mark.parametrize("fails", ["write", "fsync"])
def test_full_disk_during_a_save_is_one_error_naming_the_file(tmp_path, monkeypatch, fails):
    run = tmp_path / "run"
    write(run, 1)
    if fails == "write":
        monkeypatch.setattr(
            os, "fdopen", lambda fd, *a, **k: io.BufferedWriter(_FullDiskFile(fd, "w"))
        )
    else:
        monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(InputError, match="generator.safetensors: no space left on the device"):
        write(run, 2)
    monkeypatch.undo()
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step-0000001"]
    assert (ckpts / "latest").read_text() == "step-0000001\n"
    verify_checkpoint(ckpts / "step-0000001", names=None)


def test_fallback_past_a_damaged_latest_stays_on_its_branch(tmp_path):
    run = tmp_path / "run"
    for step in (1, 2, 3):  # step 3: left by a run that later resumed from step 2
        write(run, step)
    (run / "checkpoints" / "latest").write_text("step-0000002\n")
    flip_a_byte(run / "checkpoints" / "step-0000002" / "generator.safetensors")
    with pytest.warns(CheckpointWarning, match="skipped step-0000002 .*; using step-0000001$"):
        assert resolve_checkpoint(run).name == "step-0000001"


def test_fallback_goes_past_the_latest_step_only_when_nothing_before_is_intact(tmp_path):
    run = tmp_path / "run"
    for step in (1, 2, 3):
        write(run, step)
    (run / "checkpoints" / "latest").write_text("step-0000002\n")
    for step in (1, 2):
        flip_a_byte(run / "checkpoints" / f"step-{step:07d}" / "generator.safetensors")
    message = "using step-0000003, a later step than the step-0000002 that latest names"
    with pytest.warns(CheckpointWarning, match=message):
        assert resolve_checkpoint(run).name == "step-0000003"


@pytest.mark.parametrize(
    "content", [b"\x80\x00\xff binary", b"", b"../../elsewhere", b"step-0000001/../step-0000002"]
)
def test_latest_not_naming_a_step_is_ignored_with_a_warning(tmp_path, content):
    run = tmp_path / "run"
    write(run, 1)
    write(run, 2)
    (run / "checkpoints" / "latest").write_bytes(content)
    with pytest.warns(CheckpointWarning, match="skipped latest \\(it does not name a step-N"):
        assert resolve_checkpoint(run).name == "step-0000002"
