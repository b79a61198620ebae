"""The training losses: term weights, the image pool, the discriminator step, GAN targets."""

import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from posetransfer.config import LossConfig
from posetransfer.errors import InputError
from posetransfer.models.losses import (
    GANLoss,
    GeneratorLoss,
    ImagePool,
    PerceptualLoss,
    discriminator_step,
)

H, W = 16, 8


def vgg_file(path):
    """A VGG19-layout file holding the first two conv layers (random weights)."""
    g = torch.Generator().manual_seed(0)
    torch.save(
        {
            "features.0.weight": torch.randn(64, 3, 3, 3, generator=g),
            "features.0.bias": torch.zeros(64),
            "features.2.weight": torch.randn(64, 64, 3, 3, generator=g),
            "features.2.bias": torch.zeros(64),
        },
        path,
    )
    return path


def tiny_disc(in_channels: int) -> nn.Module:
    """A discriminator without normalisation: the same input always gives the same output."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(in_channels, 1, 3, padding=1), nn.Sigmoid())


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return {
        "src_img": torch.rand(2, 3, H, W, generator=g) * 2 - 1,
        "tgt_img": torch.rand(2, 3, H, W, generator=g) * 2 - 1,
        "tgt_pose": torch.rand(2, 18, H, W, generator=g),
    }


@pytest.fixture
def fake():
    return torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(1)) * 2 - 1


def terms_for(weights, vgg, batch, fake):
    loss = GeneratorLoss(
        LossConfig(
            lambda_gan=weights[0],
            lambda_l1=weights[1],
            lambda_perceptual=weights[2],
            vgg_weights=str(vgg),
        )
    )
    return loss(fake, batch, tiny_disc(6), tiny_disc(21))


def test_generator_loss_each_lambda_scales_exactly_its_term(tmp_path, batch, fake):
    vgg = vgg_file(tmp_path / "vgg.pth")
    unit = terms_for((1.0, 1.0, 1.0), vgg, batch, fake)
    scaled = terms_for((2.0, 3.0, 5.0), vgg, batch, fake)
    for name in ("G_gan_shape", "G_gan_app", "G_l1", "G_perceptual"):
        assert torch.equal(unit[name], scaled[name])  # the terms themselves are unweighted
    expected = (
        2.0 * (unit["G_gan_shape"] + unit["G_gan_app"]) / 2
        + 3.0 * unit["G_l1"]
        + 5.0 * unit["G_perceptual"]
    )
    assert torch.allclose(scaled["G_total"], expected)
    assert torch.equal(unit["G_l1"], F.l1_loss(fake, batch["tgt_img"]))


@pytest.mark.parametrize(
    "weights, dropped",
    [
        ((0.0, 3.0, 5.0), {"G_gan_shape", "G_gan_app"}),
        ((2.0, 0.0, 5.0), {"G_l1"}),
        ((2.0, 3.0, 0.0), {"G_perceptual"}),
    ],
)
def test_generator_loss_zero_weight_drops_its_term(tmp_path, batch, fake, weights, dropped):
    vgg = vgg_file(tmp_path / "vgg.pth")
    full = terms_for((2.0, 3.0, 5.0), vgg, batch, fake)
    terms = terms_for(weights, vgg, batch, fake)
    assert set(full) - set(terms) == dropped
    parts = {
        "gan": 2.0 * (full["G_gan_shape"] + full["G_gan_app"]) / 2,
        "l1": 3.0 * full["G_l1"],
        "perceptual": 5.0 * full["G_perceptual"],
    }
    kept = [v for (k, v), w in zip(parts.items(), weights) if w > 0]
    assert torch.allclose(terms["G_total"], sum(kept))


def test_image_pool_of_size_zero_passes_images_through():
    pool = ImagePool(0)
    images = torch.rand(4, 3, H, W)
    assert pool.query(images) is images
    assert pool.images == []


def test_full_image_pool_returns_a_mix_of_stored_and_new_images():
    pool = ImagePool(4, seed=0)
    stored = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, H, W)
    assert torch.equal(pool.query(stored), stored)  # filling up: the new images come back
    new = torch.full((16, 3, H, W), 100.0)
    out = pool.query(new)
    from_pool = int((out[:, 0, 0, 0] < 100).sum())
    assert 0 < from_pool < 16
    assert len(pool.images) == 4
    assert any(bool((img == 100).all()) for img in pool.images)  # new images went in


def test_image_pool_state_dict_round_trips_through_a_weights_only_file():
    a = ImagePool(3, seed=5)
    a.query(torch.rand(5, 3, H, W))
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b = ImagePool(1, seed=99)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    nxt = torch.rand(6, 3, H, W)
    assert b.size == 3
    assert torch.equal(a.query(nxt), b.query(nxt))
    assert all(torch.equal(x, y) for x, y in zip(a.images, b.images))


def test_discriminator_step_value_and_gradients_reach_only_the_discriminator():
    gen = nn.Conv2d(3, 3, 1)
    disc = tiny_disc(3)
    gan = GANLoss("bce")
    real = torch.rand(2, 3, H, W) * 2 - 1
    fake = gen(torch.rand(2, 3, H, W))
    parts = discriminator_step(gan, disc, real, fake, lambda_gan=4.0)

    expected_real = 0.5 * 4.0 * gan(disc(real), True)
    expected_fake = 0.5 * 4.0 * gan(disc(fake.detach()), False)
    assert torch.allclose(parts["real"], expected_real)
    assert torch.allclose(parts["fake"], expected_fake)
    assert not parts["real"].requires_grad and not parts["fake"].requires_grad

    expected = torch.autograd.grad(expected_real + expected_fake, list(disc.parameters()))
    for p, g in zip(disc.parameters(), expected):
        assert torch.allclose(p.grad, g)
    assert all(p.grad is None for p in gen.parameters())


def test_gan_loss_targets_of_bce_and_lsgan():
    p = torch.tensor([0.25, 0.75])
    bce, ls = GANLoss("bce"), GANLoss("lsgan")
    assert torch.allclose(bce(p, True), -torch.log(p).mean())
    assert torch.allclose(bce(p, False), -torch.log(1 - p).mean())
    assert torch.allclose(ls(p, True), ((p - 1) ** 2).mean())
    assert torch.allclose(ls(p, False), (p**2).mean())
    with pytest.raises(ValueError, match="bce or lsgan"):
        GANLoss("wgan")


def test_missing_vgg_weights_name_the_config_fields(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(InputError) as e:
        PerceptualLoss()
    assert "set loss.vgg_weights=PATH" in str(e.value)
    assert "loss.lambda_perceptual=0" in str(e.value)
    missing = tmp_path / "nope.pth"
    with pytest.raises(InputError) as e:
        PerceptualLoss(missing)
    assert e.value.flag_message() == f"--loss.vgg_weights {missing}: file not found"


def test_vgg_weights_saved_as_a_pickled_module_are_refused(tmp_path):
    path = tmp_path / "vgg19.pth"
    torch.save(nn.Sequential(nn.Conv2d(3, 64, 3)), path)
    with pytest.raises(
        InputError, match="vgg19.pth: the VGG19 weights file holds a pickled Python"
    ):
        PerceptualLoss(path)


# Body-mask L1 and discriminator feature matching


def test_masked_l1_is_the_mean_over_the_mask_only():
    from posetransfer.models.losses import masked_l1

    real = torch.zeros(1, 3, 4, 4)
    fake = torch.ones(1, 3, 4, 4)
    fake[..., 2:, :] = 5.0  # off the mask: must not count
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    assert masked_l1(fake, real, mask).item() == pytest.approx(1.0)
    assert masked_l1(fake, real, torch.zeros(1, 1, 4, 4)).item() == 0.0  # no joints: no term


def test_discriminator_features_end_in_its_output():
    from posetransfer.models.discriminators import appearance_discriminator

    torch.manual_seed(0)
    d = appearance_discriminator(ndf=8, n_blocks=2, norm="instance", dropout=0.0).eval()
    x = torch.randn(2, 6, 32, 16)
    inner, out = d.features(x)
    assert torch.equal(out, d(x))
    assert [f.shape[1] for f in inner] == [32, 32]  # the encoder's and the first block's


def test_feature_matching_term_pulls_the_fake_towards_the_real_features(batch, fake):
    from posetransfer.models.discriminators import appearance_discriminator, shape_discriminator

    torch.manual_seed(0)
    kw = dict(ndf=8, n_blocks=2, norm="instance", dropout=0.0, use_sigmoid=False)
    d_app, d_shape = appearance_discriminator(**kw), shape_discriminator(**kw)
    cfg = LossConfig(
        gan_mode="lsgan",
        lambda_gan=1.0,
        lambda_l1=0.0,
        lambda_perceptual=0.0,
        lambda_feature_match=2.0,
    )
    terms = GeneratorLoss(cfg)(fake, batch, d_app, d_shape)
    fm = (terms["G_fm_shape"] + terms["G_fm_app"]) / 2
    gan = (terms["G_gan_shape"] + terms["G_gan_app"]) / 2
    assert terms["G_total"].item() == pytest.approx((gan + 2.0 * fm).item(), rel=1e-5)
    same = GeneratorLoss(cfg)(batch["tgt_img"], batch, d_app, d_shape)
    assert same["G_fm_app"].item() == 0.0 and same["G_fm_shape"].item() == 0.0


def test_feature_matching_without_discriminators_is_refused():
    with pytest.raises(InputError, match="lambda_feature_match needs the discriminators"):
        LossConfig(lambda_gan=0.0, lambda_feature_match=1.0)
