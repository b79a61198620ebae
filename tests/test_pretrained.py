"""Tests of the bundled models (posetransfer.pretrained), their export, and using them by default.

The test that matters most rebuilds the held-out synthetic set of the model cards and checks
that each shipped model reproduces the metrics its card records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from posetransfer import cli
from posetransfer.checkpoint import GENERATOR_FILE
from posetransfer.checkpoint.bundled import (
    CARD_FILE,
    PRETRAINED,
    SYNTHETIC_ONLY,
    pretrained_dir,
    read_card,
)
from posetransfer.errors import InputError
from posetransfer.photos.transfer import PoseTransfer
from posetransfer.pretrained.export import (
    HELDOUT,
    copy_baseline,
    export_pretrained,
    heldout_dataset,
    score_model,
)
from posetransfer.runtime.load import load_generator
from test_transfer import write_untrained_checkpoint

# Scores are recomputed in float32 on the CPU; another CPU's kernels may round a pixel
# differently, which moves a mean by far less than these.
TOLERANCE = {"ssim": 2e-3, "mask_ssim": 2e-3, "l1": 0.05, "mask_l1": 0.05}


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> Path:
    return heldout_dataset(tmp_path_factory.mktemp("heldout"), progress=False)


@pytest.mark.parametrize("name", PRETRAINED)
@pytest.mark.slow
def test_bundled_model_reproduces_its_card(name, heldout, tmp_path):
    card = read_card(name)
    assert card["heldout"]["synthetic"]["seed"] == HELDOUT.seed != 0  # training used seed 0
    scores = score_model(name, heldout, tmp_path / "gen", progress=False)
    for key, tol in TOLERANCE.items():
        assert scores[key] == pytest.approx(card["metrics"][key], abs=tol), key
    baseline = copy_baseline(heldout)
    assert baseline == pytest.approx(card["copy_baseline"], abs=1e-4)
    # What the bundled models are for: clearly better than copying the condition image.
    assert scores["mask_ssim"] > baseline["mask_ssim"]
    assert scores["mask_l1"] < baseline["mask_l1"]
    assert SYNTHETIC_ONLY in card["note"]


@pytest.mark.parametrize("name", PRETRAINED)
def test_bundled_model_is_float16_with_a_manifest(name):
    folder = pretrained_dir(name)
    weights = load_file(folder / GENERATOR_FILE)
    assert {v.dtype for v in weights.values() if v.is_floating_point()} == {torch.float16}
    assert (folder / "manifest.json").is_file() and (folder / CARD_FILE).is_file()
    model, info = load_generator(name, device="cpu", precision=None)
    assert info.pretrained == name and info.name == read_card(name)["generator"]["name"]
    assert next(model.parameters()).dtype == torch.float32


def test_from_pretrained_loads_the_named_model():
    pt = PoseTransfer.from_pretrained("synthetic-apatn")
    assert pt.pretrained == "synthetic-apatn" and (pt.height, pt.width) == (128, 64)


def test_from_pretrained_unknown_name_lists_the_bundled_ones():
    with pytest.raises(InputError, match="synthetic-patn, synthetic-apatn") as e:
        PoseTransfer.from_pretrained("market-patn")
    assert e.value.arg == "name"


def test_an_existing_folder_wins_over_a_bundled_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert pretrained_dir("synthetic-patn") is not None
    (tmp_path / "synthetic-patn").mkdir()
    assert pretrained_dir("synthetic-patn") is None
    with pytest.raises(InputError, match="synthetic-patn"):
        # the empty folder, not the bundled model
        load_generator("synthetic-patn", device="cpu", precision=None)


@pytest.mark.slow
def test_export_writes_float16_weights_and_a_card_that_scores_them(tiny_root, tmp_path):
    import os
    import stat

    run = write_untrained_checkpoint(tmp_path / "runs" / "00000-tiny", tiny_root)
    previous = os.umask(0o022)
    try:
        folder = export_pretrained(
            run,
            "synthetic-patn",
            "posetransfer train --config synthetic",
            out_root=tmp_path / "models",
            work_dir=tmp_path / "work",
            fid=False,
            progress=False,
        )
    finally:
        os.umask(previous)
    # Every file follows the umask (safetensors' own writer would make the weights 0600).
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {
        p.name: 0o644 for p in folder.iterdir()
    }
    assert folder == tmp_path / "models" / "synthetic-patn"
    assert not list((tmp_path / "models").glob(".*"))  # no partial folder left
    card = json.loads((folder / CARD_FILE).read_text())
    assert card["step"] == 0 and card["generator"]["name"] == "patn_tiny"
    assert card["command"] == "posetransfer train --config synthetic"
    assert set(card["metrics"]) == {"ssim", "mask_ssim", "l1", "mask_l1"}
    # The card's metrics are those of the stored float16 weights, re-scored from the folder.
    again = score_model(folder, tmp_path / "work" / "heldout", tmp_path / "gen", progress=False)
    assert again == card["metrics"]
    # float16 storage moves a generated pixel by at most a few levels.
    fp32, _ = load_generator(run, device="cpu", precision=None)
    fp16, _ = load_generator(folder, device="cpu", precision=None)
    x = torch.rand(1, 3, 128, 64) * 2 - 1
    poses = torch.rand(2, 1, 18, 128, 64)
    with torch.no_grad():
        diff = (fp32(x, poses[0], poses[1]) - fp16(x, poses[0], poses[1])).abs().max()
    assert diff < 4 / 127.5


def test_export_refuses_an_unknown_name(tiny_root, tmp_path):
    run = write_untrained_checkpoint(tmp_path / "runs" / "00000-tiny", tiny_root)
    with pytest.raises(InputError, match="name='mine'"):
        export_pretrained(run, "mine", "cmd", out_root=tmp_path / "models", fid=False)


def test_cli_generate_without_checkpoint_uses_and_names_the_bundled_model(
    heldout, tmp_path, capsys
):
    argv = ["generate", "--dataset", str(heldout), "--out", str(tmp_path / "g"), "--limit", "3"]
    assert cli.main([*argv, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "bundled model synthetic-patn" in err and "synthetic people only" in err
    assert len(list((tmp_path / "g").glob("*.png"))) == 3


def test_cli_pretrained_list_prints_every_card(capsys):
    assert cli.main(["pretrained", "list"]) == 0
    out = capsys.readouterr().out
    for name in PRETRAINED:
        assert f"{name}: " in out and read_card(name)["command"] in out


def test_init_from_loads_a_run_and_refuses_another_architecture(tiny_root, tmp_path):
    from posetransfer.models.registry import create_generator
    from posetransfer.train import init_generator

    run = write_untrained_checkpoint(tmp_path / "runs" / "00000-tiny", tiny_root)
    torch.manual_seed(5)
    fresh = create_generator("patn_tiny")
    init_generator(fresh, str(run))
    trained, _ = load_generator(run, device="cpu", precision=None)
    for (k, a), b in zip(fresh.state_dict().items(), trained.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(InputError, match="train.init_from=.*does not fit") as e:
        init_generator(create_generator("apatn_tiny"), str(run))
    assert e.value.arg == "train.init_from"
    with pytest.raises(InputError, match="train.init_from: "):
        init_generator(fresh, str(tmp_path / "nothing"))
