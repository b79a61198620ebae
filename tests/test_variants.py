"""Every registered generator variant: shapes, gradients, determinism, training, rebuilding."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

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


class _RunningStatsNorm(nn.Module):
    """A BatchNorm written out with its running statistics: what eval mode has to compute."""

    def __init__(self, bn: nn.BatchNorm2d):
        super().__init__()
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias - bn.running_mean * scale
        return x * scale[:, None, None] + shift[:, None, None]


def _by_hand(model: nn.Module) -> nn.Module:
    """A copy in train mode whose BatchNorms use the running statistics and without dropout."""
    ref = copy.deepcopy(model)
    for parent in list(ref.modules()):
        for key, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, key, _RunningStatsNorm(child))
            elif isinstance(child, nn.Dropout):
                setattr(parent, key, nn.Identity())
    return ref.train()


@pytest.mark.parametrize("name", VARIANTS)
def test_eval_mode_uses_running_statistics_and_no_dropout(name):
    torch.manual_seed(0)
    model = create_generator(name, **TINY)  # dropout 0.5
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # statistics far from any batch's
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    image, src, tgt, _ = _batch()
    with torch.no_grad():
        expected = _by_hand(model)(image, src, tgt)
        out = model.eval()(image, src, tgt)
        trained = model.train()(image, src, tgt)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    assert (trained - out).abs().max() > 1e-2


@pytest.mark.parametrize("name", VARIANTS)
def test_return_attention_gives_one_layout_for_every_variant(name):
    model = create_generator(name, **TINY).eval()
    image, src, tgt, _ = _batch(h=32, w=16)
    with torch.no_grad():
        out, attention = model(image, src, tgt, return_attention=True)
    assert out.shape == image.shape
    cells = (32 // 4) * (16 // 4)
    rows = {"target": 4 * TINY["ngf"], "condition": cells, None: None}[model.attention_over]
    if rows is None:  # the ResNet baselines have no attention
        assert attention == []
        return
    # Per block [B, N, h*w]: N maps over the code cells, each in [0, 1].
    assert [a.shape for a in attention] == [(2, rows, cells)] * TINY["n_blocks"]
    assert all(a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1 for a in attention)


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
