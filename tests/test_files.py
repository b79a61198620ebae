"""Tests of posetransfer.core.files (reading, atomic writes, disk-full), devices and errors."""

from __future__ import annotations

import errno
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.core import files
from posetransfer.core.device import resolve_device
from posetransfer.errors import InputError


def _png(path, h=6, w=4, value=100):
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)
    return path


def test_read_image_returns_rgb_and_checks_size(tmp_path):
    path = _png(tmp_path / "a.png")
    assert files.read_image(path).shape == (6, 4, 3)
    with pytest.raises(InputError, match=r"a\.png: image is 6x4 \(HxW\), expected 8x4"):
        files.read_image(path, 8, 4)


def test_read_image_names_a_truncated_file(tmp_path):
    path = _png(tmp_path / "t.png", 64, 64)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(InputError, match=r"t\.png: unreadable or truncated"):
        files.read_image(path)
    assert files.try_read_image(path) is None
    assert not files.is_intact_image(path)


def test_read_image_names_a_missing_file_and_a_folder(tmp_path):
    with pytest.raises(InputError, match="image not found"):
        files.read_image(tmp_path / "none.png")
    with pytest.raises(InputError, match="is a folder"):
        files.read_image(tmp_path)


def test_list_images_uses_one_suffix_list(tmp_path):
    for name in ("b.PNG", "a.jpg", "c.tiff", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in files.list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.tiff"]


def test_generated_name_joins_the_stems():
    assert files.generated_name("0001_c1.jpg", "0001_c2.jpg") == "0001_c1___0001_c2.png"


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / "out.txt"
    files.atomic_write(path, "first")
    with pytest.raises(RuntimeError), files.atomic_open(path, "w") as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "first"
    assert not list(tmp_path.glob(f".*{files.PART_SUFFIX}")), "the temporary file is removed"


def test_disk_full_is_one_message_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / "img.png"
    _png(path)
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # a durable write fails at the flush
    with pytest.raises(InputError, match=r"img\.png: no space left on the device"):
        files.atomic_write(path, b"new bytes")
    monkeypatch.setattr(Image.Image, "save", lambda *a, **k: full(None))  # an image write fails
    with pytest.raises(InputError, match=r"img\.png: no space left on the device"):
        files.save_image(np.zeros((2, 2, 3), np.uint8), path)
    assert path.read_bytes() == before, "the old file survives a failed write"
    assert not list(tmp_path.glob(f".*{files.PART_SUFFIX}"))


def test_remove_partial_clears_leftovers(tmp_path):
    (tmp_path / f".a.png.x1{files.PART_SUFFIX}").write_bytes(b"")
    (tmp_path / "keep.png").write_bytes(b"")
    assert files.remove_partial(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def test_to_rgb_array_rejects_float_arrays():
    with pytest.raises(InputError, match="photo must be a uint8 array"):
        files.to_rgb_array(np.zeros((2, 2, 3), np.float32), "photo")


def test_resolve_device_auto_and_cpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_resolve_device_names_the_argument_without_cuda():
    with pytest.raises(InputError, match=r"train\.device='cuda': no CUDA device") as e:
        resolve_device("cuda", "train.device")
    assert e.value.arg == "train.device"


def test_resolve_device_rejects_unknown_names():
    with pytest.raises(InputError, match="device='gpu0': not a torch device"):
        resolve_device("gpu0")


def test_flag_message_translates_the_argument_to_its_flag():
    e = InputError("batch_size=0: must be at least 1", arg="batch_size")
    assert e.flag_message() == "--batch-size 0: must be at least 1"
    assert InputError("train.lr=-1: bad", arg="train.lr").flag_message() == "--train.lr -1: bad"
    assert e.flag_message({"batch_size": "-b"}) == "-b 0: must be at least 1"
    assert InputError("plain message").flag_message() == "plain message"


def test_written_files_get_the_mode_of_a_plain_open(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = files.atomic_write(tmp_path / "atomic.txt", "x")
    assert (written.stat().st_mode & 0o777) == (plain.stat().st_mode & 0o777)


def test_text_is_written_as_utf8(tmp_path):
    path = files.atomic_write(tmp_path / "names.csv", "caf\u00e9\u00b7\u4eba\n")
    assert path.read_bytes() == "caf\u00e9\u00b7\u4eba\n".encode()


def test_load_torch_file_refuses_a_pickled_module(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(InputError, match=r"model\.pt: the weights file holds a pickled Python"):
        files.load_torch_file(path, "weights")
    path.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match=r"model\.pt: unreadable weights"):
        files.load_torch_file(path, "weights")
    torch.save({"w": torch.ones(2)}, path)
    assert torch.equal(files.load_torch_file(path, "weights")["w"], torch.ones(2))


def test_flag_message_translates_every_named_argument():
    e = InputError(
        "give either train_list and test_list, or split_from_annotations",
        names=("train_list", "test_list", "split_from_annotations"),
    )
    assert (
        e.flag_message() == "give either --train-list and --test-list, or --split-from-annotations"
    )
    in_a_path = InputError("out=/runs/out/x: exists", arg="out", names=("out",))
    assert in_a_path.flag_message() == "--out /runs/out/x: exists", "paths are left alone"


def test_exclusive_lock_refuses_a_second_holder_without_waiting(tmp_path):
    lock = tmp_path / "x.lock"
    with files.exclusive_lock(lock):
        with pytest.raises(files.LockHeld) as e, files.exclusive_lock(lock, wait=False):
            pass
        assert e.value.holder == str(os.getpid())
    with files.exclusive_lock(lock, wait=False):  # free again once released
        pass


# --------------------------------------------------------------------------------------------
# Outputs never replace inputs


@pytest.mark.parametrize(
    "out, why",
    [
        ("frames", "is the input"),
        ("frames/generated", "lies inside the input folder"),
        (".", "contains the input"),
    ],
)
def test_an_output_that_is_contains_or_lies_in_an_input_is_refused(tmp_path, monkeypatch, out, why):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "frame_0000.png").write_bytes(b"x")
    with pytest.raises(InputError, match=f"out='{re.escape(out)}': {why} driving='frames'") as e:
        files.check_output(out, {"driving": "frames", "unused": None})
    assert e.value.arg == "out"
    assert files.check_output("elsewhere/out.mp4", {"driving": "frames"}).name == "out.mp4"


def test_an_output_below_a_regular_file_is_refused(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(InputError, match=r"a.png is a file, not a folder"):
        files.check_output(tmp_path / "a.png" / "out" / "x.png", arg="out")


def test_only_folders_this_package_marked_are_reused(tmp_path):
    assert not files.reusable_folder(tmp_path / "new", "generated images")
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match=r"holds files that are not generated images \(holiday"):
        files.reusable_folder(tmp_path / "theirs", "generated images")
    files.mark_output(tmp_path / "ours")
    assert files.reusable_folder(tmp_path / "ours", "generated images")


@pytest.mark.parametrize("dest_left", [True, False])
def test_swap_into_place_recovers_from_a_process_killed_between_its_renames(tmp_path, dest_left):
    dead = 2**22 + 1  # above the default pid_max: no such process
    stale = tmp_path / f".model.old-{dead}"
    stale.mkdir()
    (stale / "weights").write_text("earlier")
    if dest_left:  # killed after the new folder was in place, before the old one was removed
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "weights").write_text("earlier")
    new = tmp_path / ".tmp-new"
    new.mkdir()
    (new / "weights").write_text("new")
    files.swap_into_place(new, tmp_path / "model")
    assert (tmp_path / "model" / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
