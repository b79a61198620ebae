"""The inference path (`for_inference`): exact in fp32, close in bf16, the caller's model kept."""

import pytest
import torch

from conftest import require_reference
from posetransfer.errors import InputError
from posetransfer.export.check import psnr
from posetransfer.models import create_generator, fold_batchnorm, for_inference, load_original_patn
from posetransfer.pose import keypoints_to_heatmaps
from posetransfer.runtime.exported import with_backend
from posetransfer.runtime.load import load_generator


def market_fixture():
    """The authors' Market PATN (BatchNorm with real running statistics) and its inputs."""
    path = require_reference("patn_market_ngf8.pt")
    ref = torch.load(path, weights_only=True)
    return load_original_patn(path, norm="batch"), (ref["P1"], ref["BP1"], ref["BP2"]), ref


def random_inputs(batch, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(batch, 3, h, w, generator=g) * 2 - 1,
        torch.rand(batch, 18, h, w, generator=g),
        torch.rand(batch, 18, h, w, generator=g),
    )


def test_batchnorm_folding_is_exact_on_the_authors_market_model():
    model, inputs, ref = market_fixture()
    folded = load_original_patn(require_reference("patn_market_ngf8.pt"), norm="batch")
    n = fold_batchnorm(folded.eval())
    assert n > 0 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        out = folded(*inputs)
    assert (out - ref["output"]).abs().max() < 1e-4  # the authors' own output


def test_fp32_path_is_the_reference_and_leaves_the_callers_model_alone():
    model, inputs, ref = market_fixture()
    model.train()
    fast = for_inference(model, "fp32", "cpu")
    assert fast.precision == "fp32" and fast.folded > 0
    assert model.training and isinstance(model.image_encoder[2], torch.nn.BatchNorm2d)
    out = fast(*inputs)
    assert out.dtype == torch.float32
    assert (out - ref["output"]).abs().max() < 1e-4


# bf16 on a CPU without native bf16 warns that it is emulated; the result is what is tested.
EMULATED_BF16 = pytest.mark.filterwarnings("ignore::posetransfer.errors.InputWarning")


@EMULATED_BF16
@pytest.mark.parametrize("name", ["synthetic-patn", "synthetic-apatn"])
def test_bf16_path_stays_above_35_db_on_the_bundled_models(name, tiny_root):
    from posetransfer.generate import dataset_for

    model, info = load_generator(name, device="cpu", precision=None)
    data = dataset_for(
        info,
        tiny_root / "test",
        tiny_root / "synthetic-annotation-test.csv",
        tiny_root / "synthetic-pairs-test.csv",
    )
    batch = [data[i] for i in range(4)]
    inputs = tuple(torch.stack([b[k] for b in batch]) for k in ("src_img", "src_pose", "tgt_pose"))
    fast = for_inference(model, "bf16", "cpu")
    with torch.no_grad():
        ref = model(*inputs)
    out = fast(*inputs)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert fast.generator.image_encoder[1].weight.dtype == torch.bfloat16
    assert psnr(ref, out) >= 35.0


@EMULATED_BF16
def test_bf16_on_the_authors_fashion_model_with_legacy_heatmaps():
    path = require_reference("patn_fashion_ngf8.pt")
    ref = torch.load(path, weights_only=True)
    model = load_original_patn(path, norm="instance")
    h, w = ref["P1"].shape[2:]
    src = keypoints_to_heatmaps(ref["keypoints_P1"], h, w, legacy_uint8=True)
    tgt = keypoints_to_heatmaps(ref["keypoints_P2"], h, w, legacy_uint8=True)
    out = for_inference(model, "bf16", "cpu")(ref["P1"], src, tgt)
    assert psnr(ref["output"], out) >= 35.0


def test_auto_resolves_for_this_device():
    from posetransfer.core.precision import native_bf16

    fast = for_inference(create_generator("patn_tiny"), "auto", "cpu")
    assert fast.requested == "auto"
    assert fast.precision == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")


def test_masks_and_attention_pass_through_in_float32():
    x = random_inputs(1, 32, 16)
    patn = for_inference(create_generator("patn_tiny"), "bf16" if _bf16() else "fp32", "cpu")
    out, masks = patn(*x, return_masks=True)
    assert out.dtype == torch.float32 and all(m.dtype == torch.float32 for m in masks)
    # The explicit maps are computed from float32 scores even when the weights are bf16.
    apatn = for_inference(create_generator("apatn_tiny"), "bf16" if _bf16() else "fp32", "cpu")
    out, attention = apatn(*x, return_attention=True)
    assert attention[0].shape == (1, 32, 32) and attention[0].dtype == torch.float32
    assert torch.allclose(attention[0].sum(-1), torch.ones(1, 32), atol=1e-5)


def _bf16():
    from posetransfer.core.precision import native_bf16

    return native_bf16(torch.device("cpu"))


def test_bad_precision_backend_and_training_are_refused():
    model = create_generator("patn_tiny")
    with pytest.raises(InputError, match=r"precision='fp16': float16 needs a CUDA"):
        for_inference(model, "fp16", "cpu")
    with pytest.raises(InputError, match=r"precision='int4'"):
        for_inference(model, "int4", "cpu")
    with pytest.raises(InputError, match=r"backend='tensorrt'"):
        with_backend(model, backend="tensorrt")
    with pytest.raises(RuntimeError, match="cannot be trained"):
        for_inference(model, "fp32").train()


@pytest.mark.slow
def test_compiled_path_matches(monkeypatch):
    pytest.importorskip("torch._inductor")
    model = create_generator("patn_tiny")
    x = random_inputs(1, 32, 16)
    fast = for_inference(model, "fp32", "cpu", compile=True)
    with torch.no_grad():
        ref = model.eval()(*x)
    assert fast.compiled
    assert (fast(*x) - ref).abs().max() < 1e-4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_paths(precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    model = create_generator("patn_tiny")
    x = random_inputs(2, 64, 32)
    with torch.no_grad():
        ref = model.eval()(*x)
    fast = for_inference(model, precision, "cuda")
    assert fast.channels_last
    out = fast(*(t.cuda() for t in x))
    assert out.dtype == torch.float32 and psnr(ref, out.cpu()) >= 35.0
