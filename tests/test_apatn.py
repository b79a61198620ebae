"""APATN: paper parameter counts, attention paths, memory behaviour, shapes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from posetransfer.models import APATB, APATN, count_parameters, create_generator
from posetransfer.models.apatn import pose_attention


def _inputs(batch: int = 2, h: int = 32, w: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, h, w, generator=g) * 2 - 1
    src = torch.rand(batch, 18, h, w, generator=g)
    tgt = torch.rand(batch, 18, h, w, generator=g)
    return image, src, tgt


def test_one_apatb_has_the_papers_parameter_count():
    with torch.device("meta"):
        block = APATB(256, "instance")
    assert count_parameters(block) == pytest.approx(2.76e6, rel=0.02)


def test_apatn_has_the_papers_parameter_count():
    with torch.device("meta"):
        model = create_generator("apatn_fashion")
    assert len(model.blocks) == 5
    assert count_parameters(model) == pytest.approx(16.93e6, rel=0.03)


def test_blocks_are_a_module_list_of_apatbs():
    model = create_generator("apatn_tiny", n_blocks=3)
    assert isinstance(model.blocks, torch.nn.ModuleList)
    assert [type(b) for b in model.blocks] == [APATB] * 3


def test_public_class_builds_from_keyword_arguments():
    model = APATN(norm="batch", ngf=8, n_blocks=2, dropout=0.0)
    out = model(*_inputs())
    assert out.shape == (2, 3, 32, 16)
    assert isinstance(model.image_encoder[2], torch.nn.BatchNorm2d)


def test_forward_returns_one_attention_matrix_per_block_with_unit_rows():
    model = create_generator("apatn_tiny").eval()
    with torch.no_grad():
        out, attn = model(*_inputs(), return_attention=True)
    assert out.shape == (2, 3, 32, 16)
    hw = (32 // 4) * (16 // 4)
    assert [a.shape for a in attn] == [(2, hw, hw)] * 2
    for a in attn:
        torch.testing.assert_close(a.sum(-1), torch.ones(2, hw))


def test_fused_attention_matches_unscaled_softmax_reference():
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(2, 50, 8, generator=g), torch.randn(2, 50, 8, generator=g), None
    v = torch.randn(2, 50, 16, generator=g)
    reference = torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v  # no 1/sqrt(d)
    torch.testing.assert_close(pose_attention(q, k, v), reference, rtol=1e-5, atol=1e-5)


def test_explicit_and_fused_paths_give_the_same_image():
    model = create_generator("apatn_tiny", ngf=8).eval()
    inputs = _inputs()
    with torch.no_grad():
        fused = model(*inputs)
        explicit, _ = model(*inputs, return_attention=True)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)


_MEMORY_PROBE = textwrap.dedent(
    """
    import sys
    import torch
    from posetransfer.models.apatn import APATB

    dtype = getattr(torch, sys.argv[1])  # float32, or bfloat16 as the fast path runs it

    def peak_mb():
        # VmHWM, not ru_maxrss: exec keeps the parent's ru_maxrss, so a large pytest process
        # would hide this one's growth.
        with open("/proc/self/status") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        return kib / 1024

    torch.set_num_threads(1)
    torch.manual_seed(0)
    block = APATB(16, "instance", dropout=0.0).eval().to(dtype)
    codes = [torch.randn(1, 16, 96, 96, dtype=dtype) for _ in range(3)]  # HW = 9216: A, 324 MB
    with torch.no_grad():
        block(*[c[..., :8, :8] for c in codes])  # load the kernels before measuring
        base = peak_mb()
        block(*codes)
        fused = peak_mb()
        block(*codes, return_attention=True)
        explicit = peak_mb()
    print(fused - base, explicit - fused)
    """
)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.slow
def test_fused_attention_does_not_allocate_the_hw_by_hw_matrix(dtype):
    # The peak resident size is a process-wide high-water mark, so measure in a fresh
    # interpreter. bfloat16 is how `for_inference` runs it where the CPU has bf16.
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, dtype], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    fused_mb, explicit_mb = map(float, result.stdout.split())
    assert fused_mb < 60, f"fused path grew the peak by {fused_mb:.0f} MB"
    # The probe can see a materialised matrix: the explicit path must show it.
    # (in bfloat16 the matrix takes half the bytes).
    assert explicit_mb > (250 if dtype == "float32" else 120), (
        f"explicit path grew the peak by only {explicit_mb:.0f} MB"
    )


def test_without_res_the_blocks_have_no_pose_update():
    model = APATN(ngf=8, n_blocks=2, use_res=False)
    assert all(b.conv_s is None for b in model.blocks)


def test_unknown_fusion_is_rejected():
    with pytest.raises(ValueError, match="fusion"):
        APATN(ngf=8, n_blocks=1, fusion="mul")


def test_heatmaps_of_the_wrong_size_are_rejected():
    image, src, tgt = _inputs()
    with pytest.raises(ValueError, match="target_heatmaps"):
        create_generator("apatn_tiny")(image, src, tgt[:, :17])


@pytest.mark.parametrize("grad", [False, True])
def test_chunked_attention_matches_the_reference_and_its_gradients(grad):
    from posetransfer.models.apatn import chunked_attention

    g = torch.Generator().manual_seed(3)
    q, k = (torch.randn(2, 40, 8, generator=g) for _ in range(2))
    v = torch.randn(2, 40, 16, generator=g)
    for t in (q, k, v):
        t.requires_grad_(grad)
    reference = torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v
    out = chunked_attention(q, k, v, chunk=16)  # 16 + 16 + 8 rows
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
    if grad:
        upstream = torch.randn(2, 40, 16, generator=g)
        got = torch.autograd.grad(out, (q, k, v), upstream)
        want = torch.autograd.grad(reference, (q, k, v), upstream)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bf16_attention_on_the_cpu_runs_in_chunks_close_to_float32():
    g = torch.Generator().manual_seed(4)
    q, k = (0.3 * torch.randn(1, 1024, 64, generator=g) for _ in range(2))
    v = torch.randn(1, 1024, 128, generator=g)
    reference = pose_attention(q, k, v)
    low = pose_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert low.dtype == torch.bfloat16 and low.shape == reference.shape
    assert (low.float() - reference).abs().max() < 0.02


def test_bf16_attention_keeps_large_unscaled_logits_in_float32():
    """APATN's logits are unscaled: rounded to bf16 before the softmax they would move it."""
    g = torch.Generator().manual_seed(5)
    q, k = (1.2 * torch.randn(1, 512, 64, generator=g) for _ in range(2))  # logits of ~10
    v = torch.randn(1, 512, 128, generator=g)
    reference = pose_attention(q, k, v)
    low = pose_attention(q.bfloat16(), k.bfloat16(), v.bfloat16()).float()
    exact_inputs = pose_attention(q.bfloat16().float(), k.bfloat16().float(), v.bfloat16().float())
    # Only the inputs' and the weights' rounding to bf16 remain, not the scores'.
    assert (low - exact_inputs).abs().max() < 0.05
    assert (low - reference).abs().max() < 0.5
