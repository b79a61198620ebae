"""Export to ONNX / OpenVINO: parity with torch on the reference fixtures, batches, CLI, errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import require_reference
from posetransfer.cli import main
from posetransfer.errors import InputError
from posetransfer.export import export_generator
from posetransfer.pose import keypoints_to_heatmaps
from posetransfer.runtime.exported import ExportedGenerator
from posetransfer.runtime.load import load_generator

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytest.importorskip("onnxscript")


def fixture_case(name):
    """(checkpoint path, inputs, the authors' model output) of a reference fixture."""
    path = require_reference(f"patn_{name}_ngf8.pt")
    ref = torch.load(path, weights_only=True)
    if "BP1" in ref:
        src, tgt = ref["BP1"], ref["BP2"]
    else:  # fashion: the legacy uint8-truncated heatmaps, rebuilt from the keypoints
        h, w = ref["P1"].shape[2:]
        src = keypoints_to_heatmaps(ref["keypoints_P1"], h, w, legacy_uint8=True)
        tgt = keypoints_to_heatmaps(ref["keypoints_P2"], h, w, legacy_uint8=True)
    return path, (ref["P1"], src, tgt), ref["output"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each model exported once: PATN BatchNorm, PATN InstanceNorm (legacy heatmaps), APATN."""
    out = tmp_path_factory.mktemp("export")
    files = {}
    for name in ("market", "fashion"):
        path, _, _ = fixture_case(name)
        files[name] = export_generator(path, "onnx", out / f"{name}.onnx")
    files["apatn"] = export_generator("synthetic-apatn", "openvino", out / "apatn.xml")
    return files


@pytest.mark.parametrize("name", ["market", "fashion"])
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.slow
def test_exported_patn_matches_the_authors_output(exported, name, backend):
    _, inputs, expected = fixture_case(name)
    model, info = load_generator(exported[name], backend=backend, precision="fp32")
    assert model.backend == backend and info.legacy_heatmaps == (name == "fashion")
    out = model(*inputs)
    assert out.dtype == torch.float32
    assert (out - expected).abs().max() <= 1e-3


@pytest.mark.slow
def test_exported_apatn_matches_torch_with_any_batch(exported):
    from posetransfer.runtime.onnx import example_inputs

    torch_model, info = load_generator("synthetic-apatn", device="cpu", precision=None)
    model, exported_info = load_generator(exported["apatn"], precision="fp32")
    assert model.backend == "openvino" and exported_info.name == "apatn_small"
    for batch in (1, 3):  # one dynamic graph serves both
        inputs = example_inputs(batch, info.height, info.width)
        with torch.no_grad():
            ref = torch_model(*inputs)
        assert (model(*inputs) - ref).abs().max() <= 1e-3


@pytest.mark.slow
def test_fixed_batch_graph_runs_any_number_of_inputs(tmp_path):
    from posetransfer.runtime.onnx import example_inputs

    path = export_generator("synthetic-patn", "onnx", tmp_path / "b2.onnx", batch_size=2)
    model = ExportedGenerator(path, "onnxruntime")
    assert model.batch_size == 2
    torch_model, info = load_generator("synthetic-patn", device="cpu", precision=None)
    inputs = example_inputs(5, info.height, info.width)  # 2 + 2 + 1 padded
    with torch.no_grad():
        ref = torch_model(*inputs)
    assert (model(*inputs) - ref).abs().max() <= 1e-3


@pytest.mark.slow
def test_wrong_resolution_and_extra_outputs_are_clear_errors(exported):
    model, _ = load_generator(exported["market"], precision="fp32")
    x = torch.zeros(1, 3, 64, 32)
    hm = torch.zeros(1, 18, 64, 32)
    with pytest.raises(InputError, match=r"exported for 128x64 images, got 64x32"):
        model(x, hm, hm)
    with pytest.raises(InputError, match=r"source_heatmaps: .* takes \[B, 18, 128, 64\]"):
        model(torch.zeros(2, 3, 128, 64), torch.zeros(1, 18, 128, 64), torch.zeros(2, 18, 128, 64))
    with pytest.raises(InputError, match="return_masks"):
        model(torch.zeros(1, 3, 128, 64), *[torch.zeros(1, 18, 128, 64)] * 2, return_masks=True)


def test_a_checkpoint_on_an_exported_backend_says_how_to_export(tiny_run_dir):
    with pytest.raises(InputError, match=r"posetransfer export --checkpoint .* --format onnx"):
        load_generator(tiny_run_dir, backend="onnxruntime")


@pytest.fixture(scope="module")
def tiny_run_dir(tiny_root, tmp_path_factory):
    from conftest import tiny_overrides
    from posetransfer.config import load_config
    from posetransfer.train import train

    runs = tmp_path_factory.mktemp("runs")
    return train(
        load_config("synthetic", tiny_overrides(tiny_root, runs, **{"train.iterations": 1}))
    )


@pytest.mark.slow
def test_missing_package_says_how_to_install(monkeypatch, exported):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a)
    )
    with pytest.raises(InputError, match=r"pip install 'posetransfer\[export\]'"):
        load_generator(exported["market"], backend="onnxruntime")


@pytest.mark.slow
def test_onnxruntime_refuses_bf16_and_openvino_fp16(exported):
    with pytest.raises(InputError, match="fp32 only"):
        load_generator(exported["market"], backend="onnxruntime", precision="bf16")
    with pytest.raises(InputError, match="precision='fp16': float16 needs a CUDA"):
        load_generator(exported["apatn"], precision="fp16")


@pytest.mark.slow
def test_exported_models_take_auto_as_the_cpu(exported):
    model, _ = load_generator(exported["market"], device="auto", precision="fp32")
    assert model.device.type == "cpu"


@pytest.mark.slow
def test_openvino_export_creates_its_folder(tmp_path):
    out = export_generator("synthetic-patn", "openvino", tmp_path / "new" / "deep" / "m.xml")
    assert out.is_file() and out.with_suffix(".bin").is_file()


def test_bad_format_and_suffix(tmp_path):
    with pytest.raises(InputError, match="format='tflite'"):
        export_generator("synthetic-patn", "tflite", tmp_path / "m.tflite")
    with pytest.raises(InputError, match=r"\.xml file"):
        export_generator("synthetic-patn", "openvino", tmp_path / "m.onnx")


@pytest.mark.slow
def test_cli_export_then_generate_with_onnxruntime(tiny_root, tmp_path, capsys):
    onnx = tmp_path / "patn.onnx"
    assert (
        main(["export", "--checkpoint", "synthetic-patn", "--format", "onnx", "--out", str(onnx)])
        == 0
    )
    out = capsys.readouterr().out
    assert "max abs difference" in out and onnx.is_file()
    gen = tmp_path / "gen"
    argv = ["generate", "--checkpoint", str(onnx), "--backend", "onnxruntime"]
    argv += ["--dataset", str(tiny_root), "--out", str(gen), "--limit", "3", "--no-progress"]
    assert main(argv) == 0
    assert "onnxruntime on cpu, fp32" in capsys.readouterr().out
    images = sorted(gen.glob("*.png"))
    assert len(images) == 3 and np.asarray(Image.open(images[0])).shape == (128, 64, 3)


def test_cli_backend_without_an_exported_model_is_one_line(tiny_root, tmp_path, capsys):
    argv = [
        "generate",
        "--backend",
        "openvino",
        "--dataset",
        str(tiny_root),
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after "using the bundled model"
    assert last.startswith("posetransfer generate: error: --backend 'openvino' runs an exported")
    assert "posetransfer export --checkpoint synthetic-patn --format openvino" in last


@pytest.mark.slow
def test_int8_export_keeps_30_db_on_held_out_pairs(tmp_path):
    from posetransfer.export.check import parity

    out = export_generator(
        "synthetic-patn", "onnx", tmp_path / "int8.onnx", int8=True, calibration_pairs=32
    )
    model, info = load_generator(out)
    assert model.precision == "int8" and info.name == "patn_small"
    fp32_size = export_generator("synthetic-patn", "onnx", tmp_path / "fp32.onnx").stat().st_size
    assert out.stat().st_size < fp32_size / 2
    assert parity("synthetic-patn", out, pairs_root="synthetic")["psnr_db"] >= 30


def test_int8_is_onnx_only(tmp_path):
    with pytest.raises(InputError, match="int8: quantised models are ONNX"):
        export_generator("synthetic-patn", "openvino", tmp_path / "m.xml", int8=True)


@pytest.mark.slow
def test_pose_transfer_runs_an_exported_model(exported):
    from posetransfer.photos.transfer import PoseTransfer

    _, inputs, _ = fixture_case("market")
    ref = torch.load(require_reference("patn_market_ngf8.pt"), weights_only=True)
    pt = PoseTransfer.from_checkpoint(exported["market"], precision="fp32")
    assert pt.model.backend == "onnxruntime" and (pt.height, pt.width) == (128, 64)
    src = np.asarray(((inputs[0][0].permute(1, 2, 0) + 1) * 127.5).round().byte())
    kps = [np.asarray(ref[k][0]) for k in ("keypoints_P1", "keypoints_P2")]
    out = pt.generate(src, *kps)
    assert out.shape == (128, 64, 3) and out.dtype == np.uint8
