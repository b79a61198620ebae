"""Every registered generator variant: shapes, gradients, determinism, training, rebuilding."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from posetransfer.models import create_generator, list_generators

TINY = {"ngf": 4, "n_blocks": 2}
VARIANTS = list_generators()


def _batch(seed: int = 0, batch: int = 2, h: int = 32, w: int = 16):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, h, w, generator=g) * 2 - 1
    src = torch.rand(batch, 18, h, w, generator=g)
    tgt = torch.rand(batch, 18, h, w, generator=g)
    target = 0.6 + 0.3 * image.roll(h // 4, dims=2)  # learnable: a shifted, brightened copy
    return image, src, tgt, target


def test_the_ablations_of_the_paper_are_registered():
    expected = {
        "apatn_fashion",
        "apatn_market",
        "apatn_small",
        "apatn_tiny",
        "resnet5_fashion",
        "resnet9_fashion",
        "resnet13_fashion",
        "resnet9_market",
        "patn_fashion_wo_add",
        "patn_fashion_wo_cat",
        "apatn_fashion_cat2add",
        "apatn_fashion_wo_cat",
        "apatn_fashion_wo_res",
    }
    assert expected <= set(VARIANTS)


@pytest.mark.parametrize("name", VARIANTS)
def test_output_shape_range_and_gradients(name):
    torch.manual_seed(0)
    model = create_generator(name, **TINY).train()
    image, src, tgt, target = _batch()
    out = model(image, src, tgt)
    assert out.shape == image.shape
    assert torch.isfinite(out).all() and out.abs().max() <= 1
    (out - target).abs().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, f"no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", VARIANTS)
def test_eval_mode_is_deterministic(name):
    model = create_generator(name, **TINY).eval()
    image, src, tgt, _ = _batch()
    with torch.no_grad():
        torch.testing.assert_close(model(image, src, tgt), model(image, src, tgt), rtol=0, atol=0)


@pytest.mark.parametrize("name", VARIANTS)
def test_a_few_l1_steps_reduce_the_loss(name):
    torch.manual_seed(0)
    model = create_generator(name, **TINY, dropout=0.0).train()
    image, src, tgt, target = _batch(seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        loss = (model(image, src, tgt) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("name", VARIANTS)
def test_name_and_kwargs_rebuild_the_network(name, tmp_path):
    kwargs = {**TINY, "dropout": 0.25}
    model = create_generator(name, **kwargs)
    save_file(model.state_dict(), tmp_path / "weights.safetensors")
    rebuilt = create_generator(name, **kwargs)
    rebuilt.load_state_dict(load_file(tmp_path / "weights.safetensors"), strict=True)
    model.eval(), rebuilt.eval()
    image, src, tgt, _ = _batch()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(image, src, tgt), model(image, src, tgt))
