"""`bench --compare`: every path measured against eager fp32 in one run, reported as tables."""

import json

import pytest
import torch

from posetransfer.analysis.compare import count_flops, inference_paths, run_compare
from posetransfer.cli import main
from posetransfer.models import create_generator


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    run_compare(
        out,
        device="cpu",
        generators=("patn_tiny",),
        cases=((32, 16, 2),),
        repeats=1,
        warmup=0,
        compile=False,
        train_configs=("synthetic",),
        train_steps=1,
        loader_pairs=8,
        loader_size=(64, 32),
        progress=False,
    )
    return out


@pytest.mark.slow
def test_every_path_is_measured_against_eager_fp32(report):
    result = json.loads((report / "compare.json").read_text())
    assert result["complete"]
    rows = result["inference"]
    labels = [r["path"] for r in rows]
    assert labels[0] == "eager fp32" and rows[0]["speedup"] == 1.0 and rows[0]["psnr_db"] is None
    expected = [label for label, _, _ in inference_paths(torch.device("cpu"), compile=False)]
    assert labels[1:] == expected
    fp32 = rows[labels.index("fast fp32")]
    # A BatchNorm-free tiny model: fp32 is the same computation, to the bit or nearly.
    assert fp32["bit_exact"] or fp32["psnr_db"] > 100
    for r in rows:
        assert r["images_per_s"] > 0 and r["gflop_per_image"] > 0 and r["peak_mb"] > 0
        if r["path"] != "eager fp32" and not r["bit_exact"]:
            assert r["psnr_db"] >= 35
    blocks = result["blocks"]
    assert blocks[0]["precision"] == "fp32" and blocks[0]["flop_ratio"] > 1
    # The training paths, each against the plain loop, with FLOPs and the convolution peak.
    fp32 = {t["path"]: t for t in result["training"] if t["precision"] == "fp32"}
    assert list(fp32) == ["plain", "before", "train"]  # compiled only with compile=True
    for t in fp32.values():
        assert t["iterations_per_s"] > 0 and 0 <= t["data_wait_share"] < 1
        assert t["samples_per_s"] == pytest.approx(t["iterations_per_s"] * t["batch"])
        assert t["gflop_per_step"] == pytest.approx(fp32["plain"]["gflop_per_step"])
    assert fp32["plain"]["data_wait_share"] == 0 and fp32["train"]["gflop_per_step"] > 0
    peaks = {p["precision"]: p for p in result["conv_peak"]}
    assert peaks["fp32"]["gflop_per_s"] > 0
    assert fp32["plain"]["vs_plain"] == 1 and fp32["before"]["vs_before"] == 1
    train = fp32["train"]
    assert train["vs_plain"] == pytest.approx(
        train["samples_per_s"] / fp32["plain"]["samples_per_s"]
    )
    assert train["conv_peak_share"] == pytest.approx(
        train["gflop_per_s"] / peaks["fp32"]["gflop_per_s"]
    )
    loader = result["loader"][0]
    assert loader["pairs_per_s_per_core"] > 0 and not loader["body_masks"]


@pytest.mark.slow
def test_markdown_has_every_section(report):
    md = (report / "compare.md").read_text()
    for heading in ("## Inference", "## PATB against APATB", "## Training", "## Training data"):
        assert heading in md
    assert "| patn_tiny | 32x16 x2 | eager fp32 |" in md
    assert "| synthetic | 128x64 x8 | fp32 | plain eager loop, one fixed batch |" in md
    assert "Convolution peak" in md and "% of conv peak" in md


def test_flop_count_includes_the_fused_attention():
    from torch.utils.flop_counter import FlopCounterMode

    model = create_generator("apatn_tiny").eval()
    x = torch.zeros(1, 3, 32, 16), torch.zeros(1, 18, 32, 16), torch.zeros(1, 18, 32, 16)
    with torch.inference_mode(), FlopCounterMode(display=False) as plain:
        model(*x)
    # 2 blocks, 8x4 code: Q K^T and A V over 32 x 32 cells with 32-channel (padded) rows.
    attention = 2 * (2 * 32 * 32 * 32 + 2 * 32 * 32 * 32)
    assert count_flops(lambda: model(*x)) == plain.get_total_flops() + attention


def test_bad_cases_are_one_line(tmp_path, capsys):
    assert main(["bench", "--compare", "--cases", "128x64", "--out", str(tmp_path)]) == 2
    assert "--cases: expected HxWxBATCH" in capsys.readouterr().err


@pytest.mark.slow
def test_an_interrupted_run_keeps_what_it_measured(tmp_path, monkeypatch):
    import posetransfer.analysis.compare as compare

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(compare, "block_comparison", stop)
    with pytest.raises(KeyboardInterrupt):
        run_compare(
            tmp_path,
            device="cpu",
            generators=("patn_tiny",),
            cases=((32, 16, 1),),
            repeats=1,
            warmup=0,
            compile=False,
            train_configs=(),
            progress=False,
        )
    result = json.loads((tmp_path / "compare.json").read_text())
    assert not result["complete"] and result["inference"][0]["path"] == "eager fp32"
    assert "Unfinished run" in (tmp_path / "compare.md").read_text()


def test_the_plain_loop_and_the_before_path_use_torch_s_own_dropout():
    from torch import nn

    from posetransfer.analysis.train_speed import stock_dropout
    from posetransfer.models.blocks import Dropout

    model = create_generator("patn_tiny")
    assert any(isinstance(m, Dropout) for m in model.modules())
    stock_dropout(model)
    kinds = {type(m) for m in model.modules()}
    assert nn.Dropout in kinds and Dropout not in kinds
