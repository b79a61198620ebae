import errno

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import require_reference, tiny_overrides
from posetransfer.cli import main
from posetransfer.config import load_config
from posetransfer.core import files
from posetransfer.core.files import PART_SUFFIX
from posetransfer.core.files import generated_name as output_name
from posetransfer.data.generated import MANIFEST, read_manifest
from posetransfer.errors import InputError
from posetransfer.generate import generate
from posetransfer.pose import read_pairs
from posetransfer.train import train


@pytest.fixture(scope="module")
def tiny_run(tiny_root, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return train(
        load_config("synthetic", tiny_overrides(tiny_root, runs, **{"train.iterations": 1}))
    )


def test_output_name():
    assert output_name("0001_c1s1_01.jpg", "0001_c2s1_03.jpg") == "0001_c1s1_01___0001_c2s1_03.png"


def test_generate_writes_one_png_per_pair(tiny_root, tiny_run, tmp_path):
    pairs = read_pairs(tiny_root / "synthetic-pairs-test.csv")
    rc = main(
        [
            "generate",
            "--checkpoint",
            str(tiny_run),
            "--dataset",
            str(tiny_root),
            "--out",
            str(tmp_path / "gen"),
            "--strips",
            str(tmp_path / "strips"),
        ]
    )
    assert rc == 0
    names = sorted(p.name for p in (tmp_path / "gen").glob("*.png"))
    assert names == sorted(output_name(a, b) for a, b in pairs)
    assert read_manifest(tmp_path / "gen")["complete"] is True
    img = Image.open(tmp_path / "gen" / names[0])
    assert img.size == (64, 128) and img.mode == "RGB"
    strip = Image.open(tmp_path / "strips" / names[0])
    assert strip.height == 128 and strip.width >= 5 * 64


def test_generate_matches_the_model_and_skips_existing(tiny_root, tiny_run, tmp_path):
    from posetransfer.data.datasets import tensor_to_image
    from posetransfer.generate import dataset_for
    from posetransfer.runtime.load import load_generator

    paths = generate(
        tiny_run,
        tiny_root / "test",
        tiny_root / "synthetic-annotation-test.csv",
        tiny_root / "synthetic-pairs-test.csv",
        tmp_path,
        limit=2,
        progress=False,
        precision="fp32",  # the exact reference path
    )
    model, info = load_generator(tiny_run, device="cpu", precision=None)
    dataset = dataset_for(
        info,
        tiny_root / "test",
        tiny_root / "synthetic-annotation-test.csv",
        tiny_root / "synthetic-pairs-test.csv",
    )
    # The same batch as generate's (both pairs at once): convolutions may round differently
    # for another batch size.
    batch = {
        k: torch.stack([dataset[i][k] for i in range(2)])
        for k in ("src_img", "src_pose", "tgt_pose")
    }
    with torch.no_grad():
        fake = model(batch["src_img"], batch["src_pose"], batch["tgt_pose"])[0]
    np.testing.assert_array_equal(np.asarray(Image.open(paths[0])), tensor_to_image(fake))
    before = paths[0].stat().st_mtime_ns
    generate(
        tiny_run,
        tiny_root / "test",
        tiny_root / "synthetic-annotation-test.csv",
        tiny_root / "synthetic-pairs-test.csv",
        tmp_path,
        limit=3,
        skip_existing=True,
        progress=False,
    )
    assert paths[0].stat().st_mtime_ns == before
    assert len(list(tmp_path.glob("*.png"))) == 3


def test_generate_with_an_authors_checkpoint(tiny_root, tmp_path):
    ref = require_reference("patn_market_ngf8.pt")
    pth = tmp_path / "latest_net_netG.pth"
    torch.save(torch.load(ref, weights_only=True)["state_dict"], pth)
    paths = generate(
        pth,
        tiny_root / "test",
        tiny_root / "synthetic-annotation-test.csv",
        tiny_root / "synthetic-pairs-test.csv",
        tmp_path / "gen",
        limit=2,
        progress=False,
    )
    assert len(paths) == 2 and Image.open(paths[0]).size == (64, 128)


def test_cli_errors_are_one_line(tiny_root, tmp_path, capsys):
    rc = main(
        [
            "generate",
            "--checkpoint",
            str(tmp_path / "nope"),
            "--dataset",
            str(tiny_root),
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert (
        rc == 2
        and err.strip()
        == f"posetransfer generate: error: checkpoint not found: {tmp_path / 'nope'}"
    )


# --------------------------------------------------------------------------------------------
# Devices and arguments


def test_cuda_device_without_cuda_exits_2_with_one_line(
    tiny_root, tiny_run, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = main(
        [
            "generate",
            "--checkpoint",
            str(tiny_run),
            "--dataset",
            str(tiny_root),
            "--out",
            str(tmp_path / "gen"),
            "--device",
            "cuda",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert err == (
        "posetransfer generate: error: --device 'cuda': no CUDA device is available here; "
        "use 'cpu' or 'auto'\n"
    )


def test_bad_batch_size_names_the_argument_in_the_library_and_the_flag_in_the_cli(
    tiny_root, tiny_run, tmp_path, capsys
):
    with pytest.raises(InputError, match=r"^batch_size=0: must be at least 1$") as e:
        _generate(tiny_run, tiny_root, tmp_path, batch_size=0)
    assert e.value.arg == "batch_size"
    rc = main(
        [
            "generate",
            "--checkpoint",
            str(tiny_run),
            "--dataset",
            str(tiny_root),
            "--out",
            str(tmp_path),
            "--batch-size",
            "0",
        ]
    )
    assert rc == 2
    assert capsys.readouterr().err.strip().endswith("error: --batch-size 0: must be at least 1")


# --------------------------------------------------------------------------------------------
# A full disk, damaged outputs, resuming


def _generate(run, root, out, **kw):
    return generate(
        run,
        root / "test",
        root / "synthetic-annotation-test.csv",
        root / "synthetic-pairs-test.csv",
        out,
        progress=False,
        **kw,
    )


def _fill_disk_at_write(monkeypatch, n: int) -> None:
    """Make the n-th atomic file write (and every later one) fail with ENOSPC mid-file."""
    real = files.atomic_save
    calls = {"n": 0}

    def save(path, write, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] < n:
            return real(path, write, *args, **kwargs)

        def disk_full(f):
            f.write(b"\x89PNG\r\n\x1a\n")  # a few bytes land, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

        return real(path, disk_full, *args, **kwargs)

    monkeypatch.setattr(files, "atomic_save", save)


def test_full_disk_raises_one_error_naming_the_file_and_keeps_the_written_images(
    tiny_root, tiny_run, tmp_path, monkeypatch
):
    names = [output_name(a, b) for a, b in read_pairs(tiny_root / "synthetic-pairs-test.csv")]
    _fill_disk_at_write(monkeypatch, 3)
    with pytest.raises(InputError) as e:
        _generate(tiny_run, tiny_root, tmp_path, limit=4)
    assert str(e.value) == (
        f"{tmp_path / names[2]}: no space left on the device (disk full); nothing was replaced"
    )
    # No partial files; the manifest says the folder is incomplete.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names[:2], MANIFEST])
    assert read_manifest(tmp_path)["complete"] is False
    assert all(files.is_intact_image(tmp_path / n) for n in names[:2])


def test_skip_existing_finishes_a_run_stopped_by_a_full_disk(
    tiny_root, tiny_run, tmp_path, monkeypatch
):
    with monkeypatch.context() as m:
        _fill_disk_at_write(m, 3)
        with pytest.raises(InputError, match="disk full"):
            _generate(tiny_run, tiny_root, tmp_path, limit=4)
    result = _generate(tiny_run, tiny_root, tmp_path, limit=4, skip_existing=True)
    assert result.kept == list(result[:2]) and result.written == list(result[2:])
    assert result.damaged == []
    assert all(files.is_intact_image(p) for p in result)


def test_cli_full_disk_exits_2_with_one_line(tiny_root, tiny_run, tmp_path, capsys, monkeypatch):
    _fill_disk_at_write(monkeypatch, 1)
    rc = main(
        [
            "generate",
            "--checkpoint",
            str(tiny_run),
            "--dataset",
            str(tiny_root),
            "--out",
            str(tmp_path / "gen"),
            "--limit",
            "2",
        ]
    )
    first = output_name(*read_pairs(tiny_root / "synthetic-pairs-test.csv")[0])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"posetransfer generate: error: {tmp_path / 'gen' / first}: no space left on the "
        "device (disk full); nothing was replaced"
    )


def test_skip_existing_remakes_a_truncated_output(tiny_root, tiny_run, tmp_path):
    paths = _generate(tiny_run, tiny_root, tmp_path, limit=3)
    whole = paths[1].read_bytes()
    paths[1].write_bytes(whole[: len(whole) // 2])  # cut off like a write on a full disk
    before = paths[0].stat().st_mtime_ns
    result = _generate(tiny_run, tiny_root, tmp_path, limit=3, skip_existing=True)
    assert result.damaged == [paths[1]] and result.written == [paths[1]]
    assert result.kept == [paths[0], paths[2]] and paths[0].stat().st_mtime_ns == before
    assert paths[1].read_bytes() == whole


def test_cli_skip_existing_reports_the_damaged_files_it_remade(
    tiny_root, tiny_run, tmp_path, capsys
):
    args = [
        "generate",
        "--checkpoint",
        str(tiny_run),
        "--dataset",
        str(tiny_root),
        "--out",
        str(tmp_path),
        "--limit",
        "3",
    ]
    assert main(args) == 0
    garbage = sorted(tmp_path.glob("*.png"))[0]
    garbage.write_bytes(b"not a png")
    capsys.readouterr()
    assert main([*args, "--skip-existing"]) == 0
    out = capsys.readouterr().out
    assert f"3 images in {tmp_path}: 1 written, 2 kept" in out
    assert f"remade 1 damaged (undecodable) images: {garbage.name}" in out


def test_skip_existing_remakes_a_missing_strip(tiny_root, tiny_run, tmp_path):
    paths = _generate(tiny_run, tiny_root, tmp_path / "gen", strips_dir=tmp_path / "s", limit=2)
    (tmp_path / "s" / paths[0].name).unlink()
    result = _generate(
        tiny_run,
        tiny_root,
        tmp_path / "gen",
        strips_dir=tmp_path / "s",
        limit=2,
        skip_existing=True,
    )
    assert result.written == [paths[0]] and result.kept == [paths[1]]
    assert files.is_intact_image(tmp_path / "s" / paths[0].name)


def test_generate_clears_temporary_files_of_a_killed_run(tiny_root, tiny_run, tmp_path):
    leftover = tmp_path / f".{output_name('a.jpg', 'b.jpg')}.x1y2{PART_SUFFIX}"
    leftover.write_bytes(b"half")
    _generate(tiny_run, tiny_root, tmp_path, limit=1)
    assert not leftover.exists()


def test_skip_existing_remakes_an_output_of_the_wrong_size(tiny_root, tiny_run, tmp_path):
    paths = _generate(tiny_run, tiny_root, tmp_path, limit=2)
    # The remade image is generated alone (a batch of one), like this reference: convolutions
    # may round differently for another batch size.
    whole = _generate(tiny_run, tiny_root, tmp_path / "alone", limit=1)[0].read_bytes()
    Image.new("RGB", (32, 64)).save(paths[0])  # the size of another model
    result = _generate(tiny_run, tiny_root, tmp_path, limit=2, skip_existing=True)
    assert result.damaged == result.wrong_size == result.written == [paths[0]]
    assert result.kept == [paths[1]]
    assert paths[0].read_bytes() == whole


def test_skip_existing_remakes_a_strip_of_the_wrong_size(tiny_root, tiny_run, tmp_path):
    kw = dict(strips_dir=tmp_path / "s", limit=2)
    paths = _generate(tiny_run, tiny_root, tmp_path / "gen", **kw)
    strip = tmp_path / "s" / paths[1].name
    size = Image.open(strip).size
    Image.new("RGB", (64, 128)).save(strip)  # a lone image where the strip should be
    result = _generate(tiny_run, tiny_root, tmp_path / "gen", skip_existing=True, **kw)
    assert result.damaged == result.wrong_size == [strip]
    assert result.written == [paths[1]] and result.kept == [paths[0]]
    assert Image.open(strip).size == size == (5 * 64 + 4 * 2, 128)


def test_cli_skip_existing_reports_the_images_of_the_wrong_size_it_remade(
    tiny_root, tiny_run, tmp_path, capsys
):
    args = [
        "generate",
        "--checkpoint",
        str(tiny_run),
        "--dataset",
        str(tiny_root),
        "--out",
        str(tmp_path),
        "--limit",
        "2",
    ]
    assert main(args) == 0
    small = sorted(tmp_path.glob("*.png"))[1]
    Image.new("RGB", (32, 64)).save(small)
    capsys.readouterr()
    assert main([*args, "--skip-existing"]) == 0
    out = capsys.readouterr().out
    assert f"2 images in {tmp_path}: 1 written, 1 kept" in out
    assert f"remade 1 images of the wrong size: {small.name}" in out
    assert "undecodable" not in out
