"""`posetransfer bench`: op categories, statistics, and the report files of a tiny run."""

from __future__ import annotations

import json

import pytest
import torch

from posetransfer.analysis.bench import CATEGORIES, op_category, profile_breakdown, summarize
from posetransfer.cli import main
from posetransfer.models import list_generators

TINY_ARGS = [
    "--device",
    "cpu",
    "--repeats",
    "1",
    "--warmup",
    "0",
    "--generators",
    "patn_tiny,apatn_tiny",
    "--sizes",
    "32x16,16x16",
    "--block-size",
    "8x8",
    "--block-dim",
    "16",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    code = main(["bench", *TINY_ARGS, "--out", str(out)])
    return code, out


@pytest.mark.parametrize(
    "name, category",
    [
        ("aten::mkldnn_convolution", "conv"),
        ("aten::conv2d", "conv"),
        ("aten::cudnn_convolution", "conv"),
        ("aten::native_batch_norm", "norm"),
        ("aten::instance_norm", "norm"),
        ("aten::bmm", "matmul"),
        ("aten::matmul", "matmul"),
        ("aten::_scaled_dot_product_flash_attention_for_cpu", "matmul"),
        ("aten::_efficient_attention_forward", "matmul"),
        ("aten::_softmax", "softmax"),
        ("aten::reflection_pad2d", "other"),
        ("aten::cat", "other"),
    ],
)
def test_profiler_ops_fall_into_their_category(name, category):
    assert op_category(name) == category


def test_summary_gives_median_quartiles_and_range():
    s = summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (s["median"], s["q1"], s["q3"], s["min"], s["max"], s["n"]) == (3, 2, 4, 1, 5, 5)


def test_breakdown_puts_a_convolution_under_conv():
    conv = torch.nn.Conv2d(8, 8, 3)
    x = torch.randn(1, 8, 32, 32)
    with torch.inference_mode():
        br = profile_breakdown(lambda: conv(x), torch.device("cpu"))
    assert set(br) == set(CATEGORIES)
    assert br["conv"] > 0 and br["conv"] == max(br.values())


def test_cli_run_succeeds_and_prints_the_report(tiny_run, capsys):
    code, out = tiny_run
    assert code == 0
    assert (out / "bench.md").read_text().startswith("# posetransfer bench")


def test_json_holds_parameters_speed_and_blocks(tiny_run):
    _, out = tiny_run
    result = json.loads((out / "bench.json").read_text())
    assert set(result["parameters"]) == set(list_generators())
    assert result["parameters"]["patn_fashion"] == 41_358_019
    speed = {(r["generator"], r["height"], r["width"]) for r in result["speed"]}
    assert speed == {(g, *s) for g in ("patn_tiny", "apatn_tiny") for s in ((32, 16), (16, 16))}
    for r in result["speed"]:
        assert r["ms_per_image"]["median"] > 0
        assert r["images_per_s"] == pytest.approx(1000 / r["ms_per_image"]["median"])
    blocks = [(b["block"], b["attention"]) for b in result["blocks"]]
    assert blocks == [("PATB", None), ("APATB", "sdpa"), ("APATB", "explicit")]
    for b in result["blocks"]:
        assert b["input"] == [1, 16, 8, 8]
        assert set(b["breakdown_us"]) == set(CATEGORIES)
        assert {"median", "q1", "q3", "min", "max"} <= set(b["us"])
    explicit = result["blocks"][2]["breakdown_us"]
    assert explicit["softmax"] > 0 and explicit["matmul"] > 0


def test_markdown_has_one_row_per_measurement(tiny_run):
    _, out = tiny_run
    md = (out / "bench.md").read_text()
    assert "| patn_tiny | 32x16 |" in md and "| apatn_tiny | 16x16 |" in md
    assert "| APATB | explicit |" in md
    assert md.count("\n| resnet") == sum(n.startswith("resnet") for n in list_generators())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sizes", "32by16"], "--sizes"),
        (["--sizes", "30x16"], "divisible by 4"),
        (["--generators", "nope"], "unknown generator"),
        (["--repeats", "0"], "--repeats"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(args, message, tmp_path, capsys):
    assert main(["bench", "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_cuda_device_without_cuda_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "posetransfer bench: error: --device 'cuda': no CUDA device is available here; "
        "use 'cpu' or 'auto'\n"
    )
    assert not (tmp_path / "bench.json").exists()


def test_unknown_generator_is_named_as_the_argument():
    from posetransfer.analysis.bench import run_bench
    from posetransfer.errors import InputError

    with pytest.raises(InputError, match=r"^generators=\['nope'\]: unknown") as e:
        run_bench("unused", device="cpu", generators=["nope"], progress=False)
    assert e.value.arg == "generators"
