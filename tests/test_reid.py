"""Re-ID augmentation: set arithmetic, the Market-1501 layout, ranking, training on torchreid."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from posetransfer.errors import InputError

pytest.importorskip("torchreid")
pytest.importorskip("pytorch_metric_learning")

from posetransfer.data.market import by_identity, parse_name  # noqa: E402
from posetransfer.reid import (  # noqa: E402
    ReidConfig,
    augment,
    evaluate_reid,
    keep_portion,
    plan_augmentation,
    rank_metrics,
    read_manifest,
    train_reid,
)

TORSO = np.array([[10, 10]] * 18)


def _names(n_ids: int, per_id: int) -> list[str]:
    return [
        f"{pid:04d}_c{k % 6 + 1}s1_{100 * k:06d}_00.jpg"
        for pid in range(1, n_ids + 1)
        for k in range(per_id)
    ]


def _annotations(root: Path) -> Path:
    return root / "synthetic-annotation-train.csv"


# --------------------------------------------------------------------------------------------
# The arithmetic of a set


@pytest.mark.parametrize("portion", [0.05, 0.1, 0.3, 0.5, 1.0])
def test_keep_portion_keeps_round_pn_and_one_per_identity(portion):
    groups = by_identity(_names(20, 7))
    kept = keep_portion(groups, portion, seed=3)
    assert len(kept) == max(round(portion * 140), 20)
    assert {parse_name(n)[0] for n in kept} == set(groups)
    assert len(set(kept)) == len(kept)


def test_keep_portion_at_least_one_per_identity_when_round_pn_is_fewer():
    groups = by_identity(_names(30, 4))  # round(0.1 * 120) = 12 < 30 identities
    kept = keep_portion(groups, 0.1, seed=0)
    assert len(kept) == 30 and {parse_name(n)[0] for n in kept} == set(groups)


def test_keep_portion_is_deterministic_for_a_seed():
    groups = by_identity(_names(10, 8))
    assert keep_portion(groups, 0.3, 1) == keep_portion(groups, 0.3, 1)
    assert keep_portion(groups, 0.3, 1) != keep_portion(groups, 0.3, 2)


def test_removed_images_are_replaced_from_the_same_identity_in_their_own_pose():
    names = _names(8, 6)
    groups = by_identity(names)
    plan = plan_augmentation(groups, {n: TORSO for n in names}, portion=0.3, seed=0)
    removed = sorted(set(names) - set(plan.kept))
    assert sorted(t for _, _, t in plan.generated) == removed
    for name, src, tgt in plan.generated:
        assert src in plan.kept
        assert parse_name(src)[0] == parse_name(tgt)[0] == parse_name(name)[0]
        assert parse_name(name) == parse_name(
            src
        )  # the name carries the source's person and camera


def test_random_target_poses_come_from_the_kept_set():
    names = _names(8, 6)
    plan = plan_augmentation(by_identity(names), {n: TORSO for n in names}, 0.3, 0, "random")
    assert len(plan.generated) == len(names) - len(plan.kept)
    assert {t for _, _, t in plan.generated} <= set(plan.kept)
    assert all(parse_name(s)[0] == parse_name(n)[0] for n, s, _ in plan.generated)
    assert len({n for n, _, _ in plan.generated}) == len(plan.generated)


def test_ratio_adds_k_minus_one_generated_images_per_real_one():
    names = _names(5, 4)
    plan = plan_augmentation(by_identity(names), {n: TORSO for n in names}, 1.0, 0, ratio=3)
    assert plan.kept == sorted(names) and len(plan.generated) == 2 * len(names)
    for src in names:
        targets = [t for _, s, t in plan.generated if s == src]
        assert len(targets) == 2 and src not in targets and len(set(targets)) == 2


def test_images_without_a_usable_pose_are_listed_not_dropped_silently():
    names = _names(4, 5)
    poses = {n: TORSO for n in names[1:]}
    no_torso = TORSO.copy()
    no_torso[8] = -1  # right hip
    poses[names[2]] = no_torso
    plan = plan_augmentation(by_identity(names), poses, portion=0.2, seed=0)
    reasons = {n: k for k, v in plan.left_out.items() for n in v}
    assert "no pose" in reasons[names[0]] and "no torso" in reasons[names[2]]
    assert all(
        n not in {s for _, s, _ in plan.generated} | {t for *_, t in plan.generated}
        for n in (names[0], names[2])
    )


def test_the_image_kept_for_each_person_has_a_pose_where_one_does():
    names = _names(20, 5)
    usable = {n for n in names if n.endswith("000400_00.jpg")}  # one image per person
    poses = {n: TORSO for n in usable}
    for seed in range(5):
        kept = keep_portion(by_identity(names), 0.01, seed, prefer=usable)
        assert set(kept) == usable
    plan = plan_augmentation(by_identity(names), poses, 0.2, 0, "random")
    assert len(plan.generated) == 80  # every removed image replaced from the kept posed one


def test_junk_and_distractors_never_enter_a_training_set():
    names = _names(3, 3) + ["0000_c1s1_000001_00.jpg", "-1_c2s1_000002_00.jpg"]
    groups = by_identity(names)
    assert 0 not in groups and -1 not in groups
    assert sum(len(v) for v in groups.values()) == 9


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"portion": 0.0}, "portion"),
        ({"portion": 1.5}, "portion"),
        ({"portion": 0.5, "ratio": 2}, "ratio"),
        ({"target_poses": "nearest"}, "target_poses"),
    ],
)
def test_bad_options_name_the_argument(kwargs, flag):
    with pytest.raises(InputError) as e:
        plan_augmentation(by_identity(_names(2, 2)), {}, **kwargs)
    assert flag in str(e.value)


# --------------------------------------------------------------------------------------------
# Writing a set


def test_augment_writes_a_market_folder_the_engine_parses(reid_root, tiny_generator, tmp_path):
    from torchreid.reid.data.datasets.image.market1501 import Market1501

    out = augment(
        reid_root,
        _annotations(reid_root),
        tiny_generator,
        tmp_path / "set",
        portion=0.3,
        progress=False,
    )
    rows = read_manifest(out / "manifest.csv")
    assert tuple(rows[0]) == ("name", "pid", "camid", "kind", "source", "target")
    kinds = [r["kind"] for r in rows]
    assert kinds.count("real") == max(round(0.3 * 36), 6) and kinds.count(
        "generated"
    ) == 36 - kinds.count("real")
    files = sorted(p.name for p in (out / "bounding_box_train").iterdir())
    assert files == sorted(r["name"] for r in rows)
    # torchreid's own Market-1501 reader finds the same people and cameras (its cameras from 0)
    parsed = Market1501.process_dir(None, str(out / "bounding_box_train"), relabel=False)
    by_name = {Path(p).name: (pid, cam + 1) for p, pid, cam in parsed}
    assert by_name == {r["name"]: (int(r["pid"]), int(r["camid"])) for r in rows}
    for r in rows:
        if r["kind"] == "generated":
            assert r["name"].startswith(Path(r["source"]).stem + "___")
    assert sorted(p.name for p in (out / "query").iterdir()) == sorted(
        p.name for p in (reid_root / "query").iterdir()
    )
    assert json.loads((out / "augment.json").read_text())["complete"] is True


def test_augment_is_deterministic_and_resumes(reid_root, tiny_generator, tmp_path, monkeypatch):
    import posetransfer.reid.augmentation as aug

    args = (reid_root, _annotations(reid_root), tiny_generator)
    a = augment(*args, tmp_path / "a", portion=0.3, seed=5, batch_size=4, progress=False)

    # Interrupt the second run after two batches, then run it again.
    calls = {"n": 0}
    real_write = aug.atomic_write

    def failing_write(path, data, durable=True):
        if str(path).endswith(".jpg") and "___" in str(path):
            calls["n"] += 1
            if calls["n"] > 8:
                raise KeyboardInterrupt
        return real_write(path, data, durable)

    monkeypatch.setattr(aug, "atomic_write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        augment(*args, tmp_path / "b", portion=0.3, seed=5, batch_size=4, progress=False)
    assert not (tmp_path / "b" / "manifest.csv").exists()  # nothing presented as finished
    assert json.loads((tmp_path / "b" / "augment.json").read_text())["complete"] is False
    monkeypatch.setattr(aug, "atomic_write", real_write)
    written = {
        p.name: p.stat().st_mtime_ns for p in (tmp_path / "b" / "bounding_box_train").glob("*___*")
    }
    b = augment(*args, tmp_path / "b", portion=0.3, seed=5, batch_size=4, progress=False)
    kept = {
        p.name: p.stat().st_mtime_ns
        for p in (b / "bounding_box_train").glob("*___*")
        if p.name in written
    }
    assert kept == written  # the images of the first try were not made again
    assert (a / "manifest.csv").read_text() == (b / "manifest.csv").read_text()
    for p in (a / "bounding_box_train").iterdir():
        assert p.read_bytes() == (b / "bounding_box_train" / p.name).read_bytes()
    c = augment(*args, tmp_path / "c", portion=0.3, seed=6, progress=False)
    assert (c / "manifest.csv").read_text() != (a / "manifest.csv").read_text()


def test_augment_without_a_generator_keeps_the_real_images_only(reid_root, tmp_path):
    out = augment(
        reid_root, _annotations(reid_root), None, tmp_path / "none", portion=0.5, progress=False
    )
    rows = read_manifest(out / "manifest.csv")
    assert {r["kind"] for r in rows} == {"real"} and len(rows) == 18


def test_augment_bad_inputs_say_what_is_wrong(reid_root, tiny_generator, tmp_path):
    from posetransfer.checkpoint import save_checkpoint
    from posetransfer.config import load_config
    from posetransfer.models.registry import create_generator
    from posetransfer.pose import write_annotations

    ann = _annotations(reid_root)
    no_query = tmp_path / "no_query"
    shutil.copytree(reid_root / "bounding_box_train", no_query / "bounding_box_train")
    shutil.copytree(reid_root / "bounding_box_test", no_query / "bounding_box_test")
    with pytest.raises(InputError, match=r"no images in query/"):
        augment(no_query, ann, tiny_generator, tmp_path / "o1", progress=False)

    other = tmp_path / "other.csv"
    write_annotations(other, {"9999_c1s1_000001_00.jpg": TORSO})
    with pytest.raises(InputError, match="covers none of the 36 images"):
        augment(reid_root, other, tiny_generator, tmp_path / "o2", progress=False)

    big = tmp_path / "big"
    cfg = load_config("synthetic", ["data.height=256", "data.width=176"])
    save_checkpoint(big, create_generator("patn_tiny"), "patn_tiny", {}, cfg, 1)
    with pytest.raises(InputError, match="makes 256x176 images.*128x64"):
        augment(reid_root, ann, big, tmp_path / "o3", portion=0.5, progress=False)
    assert not (tmp_path / "o3").exists()  # refused before anything was written

    augment(reid_root, ann, None, tmp_path / "o4", portion=0.5, progress=False)
    with pytest.raises(InputError, match="holds another augmented set.*portion=0.5"):
        augment(reid_root, ann, None, tmp_path / "o4", portion=0.3, progress=False)
    (tmp_path / "o5").mkdir()
    (tmp_path / "o5" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an augmented set"):
        augment(reid_root, ann, None, tmp_path / "o5", progress=False)


def test_query_split_keeps_every_valid_query():
    from posetransfer.data.synthetic import split_query_gallery

    names = ["0001_c1s1_000001_00.jpg", "0001_c1s1_000002_00.jpg", "0001_c2s1_000003_00.jpg"]
    query, gallery = split_query_gallery(names)
    assert query == ["0001_c2s1_000003_00.jpg"] and len(gallery) == 2
    assert split_query_gallery(names[:2]) == ([], names[:2])  # one camera: no query possible


def test_augment_reads_a_zip(reid_root, tmp_path):
    import zipfile

    archive = tmp_path / "Market-1501-v15.09.15.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for sub in ("bounding_box_train", "query", "bounding_box_test"):
            for p in sorted((reid_root / sub).iterdir()):
                z.write(p, f"Market-1501-v15.09.15/{sub}/{p.name}")
    out = augment(
        archive, _annotations(reid_root), None, tmp_path / "set", portion=0.5, progress=False
    )
    assert not (out / "query").is_symlink()
    assert sorted(p.name for p in (out / "query").iterdir()) == sorted(
        p.name for p in (reid_root / "query").iterdir()
    )
    assert len(read_manifest(out / "manifest.csv")) == 18


def test_synthetic_reid_layout_gives_every_query_a_match(reid_root):
    query = [p.name for p in (reid_root / "query").iterdir()]
    gallery = [parse_name(p.name) for p in (reid_root / "bounding_box_test").iterdir()]
    assert query and len(query) + len(gallery) == 4 * 6
    for name in query:
        pid, cam = parse_name(name)
        assert any(g == pid and c != cam for g, c in gallery)
    assert len(list((reid_root / "bounding_box_train").iterdir())) == 36


# --------------------------------------------------------------------------------------------
# Ranking


def test_rank_metrics_on_a_hand_worked_example():
    # Query 1 (person 1, camera 1): gallery by distance g0 (1, cam 1: same camera, left out),
    # g1 (2), g2 (1, cam 2), g3 (1, cam 3). Ranked list after removal: g1, g2, g3:
    # first match at rank 2; AP = (1/2 + 2/3) / 2.
    # Query 2 (person 2, camera 2): g1 (2, cam 1) first: rank 1, AP 1.
    distmat = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.1, 0.6, 0.7]])
    g_pids, g_cams = np.array([1, 2, 1, 1]), np.array([1, 1, 2, 3])
    m = rank_metrics(distmat, np.array([1, 2]), g_pids, np.array([1, 2]), g_cams)
    assert m["rank1"] == pytest.approx(0.5)
    assert m["rank5"] == m["rank10"] == pytest.approx(1.0)
    assert m["mAP"] == pytest.approx(((0.5 + 2 / 3) / 2 + 1.0) / 2, abs=1e-6)
    assert m["queries"] == 2


def test_rank_metrics_skips_queries_whose_only_match_is_their_own_camera():
    distmat = np.array([[0.1, 0.9], [0.2, 0.1]])
    m = rank_metrics(
        distmat, np.array([1, 2]), np.array([1, 2]), np.array([1, 1]), np.array([1, 2])
    )
    assert m["queries"] == 1 and m["rank1"] == 1.0 and m["mAP"] == 1.0


def test_rank_metrics_errors():
    with pytest.raises(InputError, match="must be"):
        rank_metrics(np.zeros((2, 3)), [1, 2], [1, 2], [1, 1], [2, 2])
    with pytest.raises(InputError, match="no query has a match"):
        rank_metrics(np.zeros((1, 1)), [1], [1], [1], [1])


# --------------------------------------------------------------------------------------------
# Training on torchreid


TINY = dict(
    backbone="osnet_x0_25",
    pretrained="none",
    steps=3,
    batch_size=8,
    height=64,
    width=32,
    save_every=2,
)


def test_train_and_evaluate_end_to_end(reid_root, tmp_path):
    r = train_reid(reid_root, tmp_path / "run", ReidConfig(**TINY), device="cpu", progress=False)
    for k in ("rank1", "rank5", "rank10", "mAP"):
        assert 0.0 <= getattr(r, k) <= 1.0
    assert r.identities == 6 and r.images == 36 and r.steps == 3
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / "state.pt").exists()
    again = evaluate_reid(tmp_path / "run", device="cpu")
    assert again.rank1 == pytest.approx(r.rank1) and again.mAP == pytest.approx(r.mAP)
    assert (
        train_reid(reid_root, tmp_path / "run", ReidConfig(**TINY), "cpu", False) == r
    )  # finished: kept


@pytest.mark.parametrize("loss", ["triplet", "circle"])
def test_metric_losses_train(reid_root, tmp_path, loss):
    cfg = ReidConfig(**{**TINY, "steps": 2}, loss=loss)
    r = train_reid(reid_root, tmp_path / loss, cfg, device="cpu", progress=False)
    assert np.isfinite(r.mAP)


def test_circle_engine_uses_pytorch_metric_learning(reid_root):
    from pytorch_metric_learning.losses import CircleLoss

    from posetransfer.reid.engine import build_engine, build_model, data_manager

    cfg = ReidConfig(**TINY, loss="circle")
    dm = data_manager(reid_root, cfg, use_gpu=False)
    model = build_model(cfg, dm.num_train_pids)
    import torch

    engine = build_engine(cfg, dm, model, torch.optim.SGD(model.parameters(), lr=0.0), False)
    assert isinstance(engine.criterion_t, CircleLoss)


def test_training_resumes_from_its_state(reid_root, tmp_path, monkeypatch):
    import torch

    import posetransfer.reid.train as tr

    cfg = ReidConfig(**{**TINY, "steps": 4})
    real_engine = tr.build_engine

    def engine_stopping_at_step_3(*args):
        engine = real_engine(*args)
        step = engine.forward_backward
        calls = {"n": 0}

        def forward_backward(batch):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return step(batch)

        engine.forward_backward = forward_backward
        return engine

    monkeypatch.setattr(tr, "build_engine", engine_stopping_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train_reid(reid_root, tmp_path / "run", cfg, "cpu", False)
    assert torch.load(tmp_path / "run" / "state.pt", weights_only=True)["step"] == 2
    monkeypatch.setattr(tr, "build_engine", real_engine)

    # Interrupted while ranking: the trained state is kept, training does not run again.
    real_eval = tr.evaluate_engine
    monkeypatch.setattr(tr, "evaluate_engine", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        train_reid(reid_root, tmp_path / "run", cfg, "cpu", False)
    assert torch.load(tmp_path / "run" / "state.pt", weights_only=True)["step"] == 4
    monkeypatch.setattr(tr, "evaluate_engine", real_eval)
    r = train_reid(reid_root, tmp_path / "run", cfg, "cpu", False)
    assert r.steps == 4 and not (tmp_path / "run" / "state.pt").exists()
    with pytest.raises(InputError, match="holds another run"):
        train_reid(reid_root, tmp_path / "run", ReidConfig(**{**TINY, "steps": 5}), "cpu", False)


def test_training_data_problems_are_named(reid_root, tmp_path):
    import zipfile

    with pytest.raises(InputError, match="training images; use a smaller batch"):
        train_reid(
            reid_root, tmp_path / "r1", ReidConfig(**{**TINY, "batch_size": 64}), "cpu", False
        )
    archive = tmp_path / "m.zip"
    zipfile.ZipFile(archive, "w").close()
    with pytest.raises(InputError, match="reid augment --no-generator"):
        train_reid(archive, tmp_path / "r2", ReidConfig(**TINY), "cpu", False)
    from posetransfer.reid.train import reid_folder

    holder = tmp_path / "holder"
    holder.mkdir()
    (holder / "Market-1501-v15.09.15").symlink_to(reid_root)
    assert reid_folder(holder) == holder / "Market-1501-v15.09.15/"


def test_weights_never_download(tmp_path, monkeypatch):
    import torch

    from posetransfer.reid.engine import build_model, imagenet_weights, load_backbone_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(InputError, match="no ImageNet weights for resnet18.*or 'none'") as e:
        imagenet_weights("resnet18")
    assert "give --pretrained the file's path" in e.value.flag_message()
    cfg = ReidConfig(backbone="resnet18", pretrained="none")
    donor = build_model(cfg, 10)
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    path = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    torch.save(
        {k: v for k, v in donor.state_dict().items() if not k.startswith("classifier")}, path
    )
    assert imagenet_weights("resnet18") == path
    model = build_model(cfg, 7)  # another number of classes: the classifier does not match
    n = load_backbone_weights(model, path)
    assert n > 50 and torch.equal(model.conv1.weight, donor.conv1.weight)
    with pytest.raises(InputError, match="match by name and shape"):
        load_backbone_weights(build_model(ReidConfig(backbone="osnet_x0_25"), 7), path)


def test_bad_reid_config_names_the_field():
    with pytest.raises(InputError, match="steps=0"):
        ReidConfig(steps=0)
    with pytest.raises(InputError, match="loss='arcface'"):
        ReidConfig(loss="arcface")
    with pytest.raises(InputError, match="multiple of 4 .the images per person"):
        ReidConfig(loss="triplet", batch_size=30)


# --------------------------------------------------------------------------------------------
# The study and the command line


def test_study_writes_results_table_and_plot_and_skips_finished_cells(
    reid_root, tiny_generator, tmp_path, monkeypatch
):
    import posetransfer.reid.study as study

    out = tmp_path / "study"
    kwargs = dict(
        portions=[0.3, 1.0],
        generators=[str(tiny_generator)],
        config=ReidConfig(**{**TINY, "steps": 1}),
        progress=False,
    )
    rows = study.run_study(reid_root, _annotations(reid_root), out, **kwargs)
    assert [r["key"] for r in rows] == ["none p=0.3 x1", "none p=1 x1", "ckpt p=0.3 x1"]
    assert rows[2]["generated"] == 36 - rows[2]["real"] and rows[0]["generated"] == 0
    table = (out / "table.md").read_text()
    assert (
        "| augmentation | p = 0.3 | p = 1 |" in table
        and "| ckpt |" in table
        and "(= none)" in table
    )
    assert (out / "rank1_vs_portion.png").stat().st_size > 1000
    assert (out / "samples.png").is_file()
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3

    monkeypatch.setattr(
        study, "train_reid", lambda *a, **k: pytest.fail("a finished cell ran again")
    )
    assert len(study.run_study(reid_root, _annotations(reid_root), out, **kwargs)) == 3
    with pytest.raises(InputError, match="holds another study"):
        study.run_study(reid_root, _annotations(reid_root), out, **{**kwargs, "seed": 1})
    other = tmp_path / "other" / "ckpt"  # same row name, another generator
    shutil.copytree(tiny_generator, other)
    with pytest.raises(InputError, match="is not the generator of row 'ckpt'"):
        study.run_study(
            reid_root, _annotations(reid_root), out, **{**kwargs, "generators": [str(other)]}
        )


def test_study_checks_every_generator_before_writing(reid_root, tmp_path):
    from posetransfer.checkpoint import save_checkpoint
    from posetransfer.config import load_config
    from posetransfer.models.registry import create_generator
    from posetransfer.reid import run_study

    big = tmp_path / "big"
    cfg = load_config("synthetic", ["data.height=256", "data.width=176"])
    save_checkpoint(big, create_generator("patn_tiny"), "patn_tiny", {}, cfg, 1)
    with pytest.raises(InputError, match="makes 256x176 images"):
        run_study(
            reid_root,
            _annotations(reid_root),
            tmp_path / "s",
            generators=[str(big)],
            config=ReidConfig(**TINY),
            progress=False,
        )
    assert not (tmp_path / "s").exists()


def test_cli_reid_errors_are_one_line(reid_root, tmp_path, capsys):
    from posetransfer.cli import main

    ann = str(_annotations(reid_root))
    code = main(
        [
            "reid",
            "augment",
            "--market",
            str(tmp_path / "missing"),
            "--annotations",
            ann,
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--market" in err and "not found" in err and "Traceback" not in err
    code = main(
        [
            "reid",
            "augment",
            "--market",
            str(reid_root),
            "--annotations",
            ann,
            "--out",
            str(tmp_path / "o"),
            "--portion",
            "0.5",
            "--ratio",
            "2",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--ratio" in err and "--portion" in err


def test_cli_synthetic_reid_and_augment(tmp_path, capsys):
    from posetransfer.cli import main

    root = tmp_path / "syn"
    assert (
        main(
            [
                "synthetic",
                "--out",
                str(root),
                "--train-ids",
                "3",
                "--test-ids",
                "2",
                "--images-per-id",
                "4",
                "--reid",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "re-ID layout" in capsys.readouterr().out
    ann = str(root / "synthetic-annotation-train.csv")
    assert (
        main(
            [
                "reid",
                "augment",
                "--market",
                str(root),
                "--annotations",
                ann,
                "--out",
                str(tmp_path / "s"),
                "--portion",
                "0.5",
                "--no-progress",
                "--sheet",
                str(tmp_path / "s.png"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "6 real + 6 generated training images of 3 people" in out and (tmp_path / "s.png").is_file()
    )
    with open(tmp_path / "s" / "manifest.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 12


def test_reid_results_are_dataclasses_whose_dict_is_the_json_file(reid_root, tmp_path):
    from posetransfer.reid.train import ReidEvaluation, ReidRun

    r = train_reid(reid_root, tmp_path / "run", ReidConfig(**TINY), device="cpu", progress=False)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved == r.to_dict() and ReidRun.from_dict(saved) == r
    scores = ["rank1", "rank5", "rank10", "rank20", "mAP", "queries"]
    run = ["config", "data", "identities", "images", "weights", "steps", "seconds", "device"]
    assert list(saved) == [*scores, *run]
    assert r.config == ReidConfig(**TINY) and saved["config"]["steps"] == 3
    with pytest.deprecated_call():
        assert r["steps"] == 3  # the dict spelling, kept for one release
    again = evaluate_reid(tmp_path / "run", device="cpu")
    assert isinstance(again, ReidEvaluation)
    assert list(again.to_dict()) == [*scores, "run", "data"] and again.queries == r.queries
