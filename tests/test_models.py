import warnings

import pytest
import torch

from conftest import require_reference
from posetransfer.errors import InputError
from posetransfer.models import PATN, count_parameters, create_generator, load_original_patn
from posetransfer.models.discriminators import appearance_discriminator, shape_discriminator
from posetransfer.models.original import convert_original_state_dict
from posetransfer.pose import keypoints_to_heatmaps


def reference(name):
    path = require_reference(f"patn_{name}_ngf8.pt")
    return path, torch.load(path, weights_only=True)


def test_paper_parameter_counts():
    assert count_parameters(PATN(norm="batch")) == 41_365_763
    assert count_parameters(PATN(norm="instance")) == 41_358_019
    model = PATN(norm="batch")
    assert count_parameters(model.blocks[0]) == 2_360_832
    assert count_parameters(model.blocks[1]) == 4_720_640


def test_discriminator_parameter_counts():
    assert count_parameters(shape_discriminator(norm="batch")) == 3_977_408
    assert count_parameters(appearance_discriminator(norm="batch")) == 3_930_368


@pytest.mark.parametrize("name, legacy", [("market", False), ("fashion", True)])
def test_parity_with_the_authors_model(name, legacy):
    path, ref = reference(name)
    model = load_original_patn(path, norm=ref["config"]["norm"])
    h, w = ref["P1"].shape[2:]
    src = keypoints_to_heatmaps(ref["keypoints_P1"], h, w, legacy_uint8=legacy)
    tgt = keypoints_to_heatmaps(ref["keypoints_P2"], h, w, legacy_uint8=legacy)
    if "BP1" in ref:  # our heatmaps are the ones the authors' model was fed
        assert (src - ref["BP1"]).abs().max() < 1e-6
        assert (tgt - ref["BP2"]).abs().max() < 1e-6
    with torch.no_grad():
        out = model(ref["P1"], src, tgt)
    assert (out - ref["output"]).abs().max() < 1e-4
    assert not model.training


def test_import_handles_dataparallel_and_stray_running_stats():
    path, ref = reference("fashion")
    sd = {"module." + k: v for k, v in ref["state_dict"].items()}
    sd["module.model.stream1_down.2.running_mean"] = torch.zeros(8)  # old InstanceNorm checkpoints
    sd["module.model.stream1_down.2.running_var"] = torch.ones(8)
    model = load_original_patn(sd, norm="instance")
    h, w = ref["P1"].shape[2:]
    src = keypoints_to_heatmaps(ref["keypoints_P1"], h, w, legacy_uint8=True)
    tgt = keypoints_to_heatmaps(ref["keypoints_P2"], h, w, legacy_uint8=True)
    with torch.no_grad():
        assert (model(ref["P1"], src, tgt) - ref["output"]).abs().max() < 1e-4


def test_import_of_a_model_without_dropout_layers():
    path, ref = reference("market")
    shifted = {}
    for k, v in ref["state_dict"].items():  # rename as a no-dropout checkpoint would be laid out
        parts = k.split(".")
        if ".att." in k and int(parts[4]) >= 5:
            parts[4] = str(int(parts[4]) - 1)
        shifted[".".join(parts)] = v
    ours = convert_original_state_dict(shifted)
    assert ours.keys() == convert_original_state_dict(ref["state_dict"]).keys()


def test_import_rejects_wrong_norm_and_other_architectures(tmp_path):
    path, ref = reference("market")
    with pytest.raises(InputError, match="batch norm, but norm='instance'"):
        load_original_patn(path, norm="instance")
    d = tmp_path / "latest_net_netD_PB.pth"
    torch.save(shape_discriminator().state_dict(), d)
    with pytest.raises(InputError, match="not an authors' PATN generator"):
        load_original_patn(d)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pth: not a readable PyTorch checkpoint"):
        load_original_patn(junk)
    truncated = dict(ref["state_dict"])
    truncated.pop("model.stream1_up.7.bias")
    with pytest.raises(InputError, match="missing: decoder.7.bias"):
        load_original_patn(truncated)


@pytest.mark.parametrize("name", ["patn_tiny", "patn_small"])
def test_generator_shapes_gradients_and_attention(name):
    torch.manual_seed(0)
    g = create_generator(name)
    img = torch.rand(2, 3, 32, 16) * 2 - 1
    src, tgt = torch.rand(2, 18, 32, 16), torch.rand(2, 18, 32, 16)
    out, masks = g(img, src, tgt, return_attention=True)
    assert out.shape == img.shape and out.abs().max() <= 1
    channels = g.blocks[0].image_path[1].out_channels
    assert [m.shape for m in masks] == [(2, channels, 8 * 4)] * len(g.blocks)
    assert all(0 <= m.min() and m.max() <= 1 for m in masks)
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())


@pytest.mark.parametrize("name", ["patn_tiny", "patn_small"])
def test_eval_mode_turns_dropout_off(name):
    torch.manual_seed(0)
    g = create_generator(name)  # dropout 0.5 in every block
    no_dropout = create_generator(name, dropout=0.0)
    no_dropout.load_state_dict(g.state_dict())
    img = torch.rand(2, 3, 32, 16) * 2 - 1
    src, tgt = torch.rand(2, 18, 32, 16), torch.rand(2, 18, 32, 16)
    with torch.no_grad():
        # InstanceNorm without running statistics is the same in both modes: only dropout differs.
        expected = no_dropout.train()(img, src, tgt)
        out = g.eval()(img, src, tgt)
        trained = g.train()(img, src, tgt)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert (trained - out).abs().max() > 1e-2


def test_return_masks_is_a_deprecated_alias_that_warns_once(monkeypatch):
    import posetransfer.models.patn as patn

    monkeypatch.setattr(patn, "_warned", False)
    g = create_generator("patn_tiny").eval()
    x = (torch.rand(1, 3, 32, 16), torch.rand(1, 18, 32, 16), torch.rand(1, 18, 32, 16))
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, masks = g(*x, return_masks=True)
        g(*x, return_masks=True)
        ref, attention = g(*x, return_attention=True)
    assert [(w.category, w.filename) for w in caught] == [(DeprecationWarning, __file__)]
    assert "return_attention=True" in str(caught[0].message)
    assert torch.equal(out, ref)
    assert [m.shape for m in masks] == [(1, 32, 8, 4)] * 2
    assert all(torch.equal(m.flatten(2), a) for m, a in zip(masks, attention))


def test_generator_checks_input_shapes():
    g = create_generator("patn_tiny")
    with pytest.raises(ValueError, match="source_heatmaps must be"):
        g(torch.zeros(1, 3, 32, 16), torch.zeros(1, 17, 32, 16), torch.zeros(1, 18, 32, 16))


def test_unknown_generator_name():
    with pytest.raises(KeyError, match="unknown generator 'nope'"):
        create_generator("nope")


def test_fast_cpu_dropout_is_inverted_bernoulli_dropout():
    from posetransfer.models.blocks import Dropout, dropout_layer

    torch.manual_seed(0)
    drop = dropout_layer(0.5)
    assert isinstance(drop, Dropout) and isinstance(dropout_layer(0.0), torch.nn.Identity)
    x = torch.randn(4, 64, 32, 16, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert 0.48 < kept.float().mean() < 0.52  # Bernoulli(1 - p)
    assert torch.allclose(y[kept], 2 * x[kept])  # scaled by 1 / (1 - p)
    y.sum().backward()
    assert torch.equal(x.grad, 2 * kept.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert drop(x.detach().bfloat16()).dtype == torch.bfloat16
    drop.eval()
    assert torch.equal(drop(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))


def test_fast_cpu_dropout_honours_inplace():
    from posetransfer.models.blocks import Dropout

    torch.manual_seed(0)
    x = torch.ones(2, 8, 4, 4)
    y = Dropout(0.5, inplace=True).train()(x)
    assert y is x and set(x.unique().tolist()) <= {0.0, 2.0}
