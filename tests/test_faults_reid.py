"""Fault cases of `posetransfer reid` (augment, train, evaluate, study): user mistakes, kills,
cut-short and mismatched files, each ending in exit 2 and one line, or intact files and a true
report; and the numbers docs/reid.md quotes, checked against the code."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

pytest.importorskip("torchreid")
pytest.importorskip("pytorch_metric_learning")

from posetransfer.cli import main  # noqa: E402
from posetransfer.errors import InputError  # noqa: E402
from posetransfer.reid import ReidConfig, augment, read_manifest, train_reid  # noqa: E402
from posetransfer.reid.augmentation import (  # noqa: E402
    MANIFEST,
    META,
    REPORT,
    check_complete_set,
)
from test_reid import TINY, _annotations  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN_FLAGS = [
    *("--backbone", TINY["backbone"], "--pretrained", "none", "--steps", "3"),
    *("--batch-size", "8", "--height", "64", "--width", "32", "--save-every", "2"),
    *("--device", "cpu"),
]


def _fails(argv: list[str], capsys) -> str:
    """Run the CLI; assert exit status 2 and one line on stderr without a traceback; the line."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def _tree(folder: Path) -> dict[str, int]:
    """Every file below ``folder`` with its size: what a refused command must leave as it was."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def _augment_argv(root: Path, out: Path) -> list:
    return ["reid", "augment", "--market", root, "--annotations", _annotations(root), "--out", out]


@pytest.fixture
def own_copy(reid_root, tmp_path) -> Path:
    """A copy of the synthetic re-ID folder that a test may damage."""
    root = tmp_path / "market"
    shutil.copytree(reid_root, root)
    return root


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# --------------------------------------------------------------------------------------------
# 1. Never destroy what the user gave us


@pytest.mark.parametrize(
    "where, why",
    [
        ("root", "is the input market_root"),
        ("root/bounding_box_train", "lies inside the input folder market_root"),
        ("root/sets/p0.5", "lies inside the input folder market_root"),
        ("annotations", "is the input annotations"),
        ("annotations_folder", "contains the input annotations"),
        ("below_file", "is a file, not a folder"),
    ],
)
def test_augment_out_against_an_input_is_refused_before_anything(
    own_copy, tmp_path, capsys, where, why
):
    ann_dir = tmp_path / "ann"
    ann_dir.mkdir()
    ann = shutil.copy(_annotations(own_copy), ann_dir / "train.csv")
    out = {
        "root": own_copy,
        "root/bounding_box_train": own_copy / "bounding_box_train",
        "root/sets/p0.5": own_copy / "sets" / "p0.5",
        "annotations": ann,
        "annotations_folder": ann_dir,
        "below_file": Path(ann) / "set",
    }[where]
    before, ann_before = _tree(own_copy), Path(ann).read_bytes()
    argv = ["reid", "augment", "--market", own_copy, "--annotations", ann, "--out", out]
    err = _fails([*argv, "--no-generator", "--portion", "0.5", "--no-progress"], capsys)
    assert err.startswith("posetransfer reid: error: --out ") and why in err
    assert _tree(own_copy) == before and Path(ann).read_bytes() == ann_before
    assert not (own_copy / "sets").exists()


def test_augment_out_that_is_or_holds_the_checkpoint_is_refused(
    reid_root, tiny_generator, tmp_path, capsys
):
    before = _tree(tiny_generator)
    for out, why in [
        (tiny_generator, "is the input checkpoint"),
        (tiny_generator / "set", "lies inside the input folder checkpoint"),
        (tiny_generator.parent, "contains the input checkpoint"),
    ]:
        argv = [*_augment_argv(reid_root, out), "--checkpoint", tiny_generator, "--no-progress"]
        assert why in _fails(argv, capsys)
    assert _tree(tiny_generator) == before


def test_augment_sheet_below_a_file_is_refused_before_the_set(reid_root, tmp_path, capsys):
    (tmp_path / "notes").write_text("mine")
    argv = [*_augment_argv(reid_root, tmp_path / "set"), "--no-generator", "--no-progress"]
    err = _fails([*argv, "--sheet", tmp_path / "notes" / "s.png"], capsys)
    assert "--sheet" in err and "is a file, not a folder" in err
    assert not (tmp_path / "set").exists()


def test_train_and_study_out_against_their_data_are_refused(own_copy, tmp_path, capsys):
    before = _tree(own_copy)
    for out in (own_copy, own_copy / "run", own_copy / "bounding_box_train"):
        err = _fails(["reid", "train", "--data", own_copy, "--out", out, *TRAIN_FLAGS], capsys)
        assert err.startswith("posetransfer reid: error: --out ") and "--data" not in err
        assert re.search(r"input (folder )?data=", err)
    below = tmp_path / "file.txt"
    below.write_text("mine")
    err = _fails(["reid", "train", "--data", own_copy, "--out", below / "r", *TRAIN_FLAGS], capsys)
    assert "is a file, not a folder" in err
    for out in (own_copy / "study", _annotations(own_copy)):
        argv = ["reid", "study", "--market", own_copy, "--annotations", _annotations(own_copy)]
        err = _fails([*argv, "--out", out, "--portions", "1.0", *TRAIN_FLAGS], capsys)
        assert err.startswith("posetransfer reid: error: --out ") and "input" in err
    assert _tree(own_copy) == before and below.read_text() == "mine"


def test_study_out_holding_a_generator_is_refused(reid_root, tiny_generator, capsys):
    argv = ["reid", "study", "--market", reid_root, "--annotations", _annotations(reid_root)]
    argv += ["--out", tiny_generator.parent, "--generators", tiny_generator]
    err = _fails([*argv, "--portions", "0.5", *TRAIN_FLAGS], capsys)
    assert "contains the input generators=" in err


def test_evaluate_json_never_replaces_the_runs_files(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    files = {"config.json": "{}", "model.safetensors": "weights", "results.json": "{}"}
    for name, text in files.items():
        (run / name).write_text(text)
    for name in files:
        err = _fails(["reid", "evaluate", "--run", run, "--json", run / name], capsys)
        assert err.startswith("posetransfer reid: error: --json ") and "is the input run=" in err
    err = _fails(["reid", "evaluate", "--run", run, "--json", run / "results.json" / "x"], capsys)
    assert "is a file, not a folder" in err
    assert {p.name: p.read_text() for p in run.iterdir()} == files


# --------------------------------------------------------------------------------------------
# 2. A report is the truth about what is on disk


def _assert_true_set(out: Path) -> None:
    """A finished set: its manifest lists exactly the training images, its report agrees."""
    meta = json.loads((out / META).read_text())
    assert meta["complete"] is True
    rows = read_manifest(out / MANIFEST)
    on_disk = sorted(p.name for p in (out / "bounding_box_train").iterdir())
    assert sorted(r["name"] for r in rows) == on_disk
    report = json.loads((out / REPORT).read_text())
    kinds = [r["kind"] for r in rows]
    assert (report["kept"], report["generated"]) == (kinds.count("real"), kinds.count("generated"))
    assert (meta["kept"], meta["generated"]) == (report["kept"], report["generated"])


def _assert_unfinished(out: Path) -> None:
    """An interrupted set says so, and no consumer takes it."""
    assert json.loads((out / META).read_text())["complete"] is False
    with pytest.raises(InputError, match="unfinished augmented set.*posetransfer reid augment"):
        check_complete_set(out)


def test_every_interruption_leaves_a_set_that_tells_the_truth(
    reid_root, tiny_generator, tmp_path, monkeypatch
):
    import posetransfer.reid.augmentation as aug

    args = (reid_root, _annotations(reid_root), tiny_generator)
    kwargs = dict(portion=0.5, seed=1, batch_size=6, progress=False)
    reference = augment(*args, tmp_path / "ref", **kwargs)
    real_write = aug.atomic_write
    calls: list[str] = []

    def counting_write(path, data, durable=True):
        calls.append(Path(path).name)
        return real_write(path, data, durable)

    monkeypatch.setattr(aug, "atomic_write", counting_write)
    augment(*args, tmp_path / "count", **kwargs)
    n = len(calls)
    assert calls[0] == META and calls[-3:] == [REPORT, MANIFEST, META]

    # Stopped at the first write, inside the images, and at each of the last three writes;
    # each time the folder says it is unfinished, then one rerun finishes it.
    for k in (1, 2, n // 2, n - 2, n - 1, n):
        out = tmp_path / f"stop{k}"
        seen = {"n": 0}

        def stopping_write(path, data, durable=True, k=k, seen=seen):
            seen["n"] += 1
            if seen["n"] == k:
                raise KeyboardInterrupt
            return real_write(path, data, durable)

        monkeypatch.setattr(aug, "atomic_write", stopping_write)
        with pytest.raises(KeyboardInterrupt):
            augment(*args, out, **kwargs)
        if k == 1:
            assert not out.exists() or not any(out.iterdir())  # nothing but an empty folder
        else:
            _assert_unfinished(out)
            assert not (out / MANIFEST).exists() or k == n
        monkeypatch.setattr(aug, "atomic_write", real_write)
        augment(*args, out, **kwargs)
        _assert_true_set(out)
        assert (out / MANIFEST).read_text() == (reference / MANIFEST).read_text()


KILLER = """
import os, signal, sys
import posetransfer.reid.augmentation as aug
real, seen = aug.atomic_write, {"n": 0}
def write(path, data, durable=True):
    if os.path.basename(str(path)) == os.environ["KILL_AT_NAME"] or "___" in str(path) and (
        os.environ["KILL_AT_NAME"] == "image"
    ):
        seen["n"] += 1
        if seen["n"] >= int(os.environ["KILL_AFTER"]):
            os.kill(os.getpid(), signal.SIGKILL)
    return real(path, data, durable)
aug.atomic_write = write
from posetransfer.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name, after", [("image", 7), (MANIFEST, 1)])
def test_augment_killed_with_sigkill_is_refused_by_train_then_resumes(
    reid_root, tiny_generator, tmp_path, capsys, name, after
):
    out = tmp_path / "set"
    argv = [*_augment_argv(reid_root, out), "--checkpoint", tiny_generator, "--portion", "0.5"]
    argv = [str(a) for a in [*argv, "--batch-size", "4", "--no-progress", "--device", "cpu"]]
    env = {**os.environ, "KILL_AT_NAME": name, "KILL_AFTER": str(after), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, *argv], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    _assert_unfinished(out)
    if name == "image":
        assert not (out / MANIFEST).exists() and not (out / REPORT).exists()
        assert len(list((out / "bounding_box_train").glob("*___*"))) >= after - 1

    # reid train refuses the set, naming the command that finishes it ...
    err = _fails(["reid", "train", "--data", out, "--out", tmp_path / "run", *TRAIN_FLAGS], capsys)
    assert "--data" in err and "unfinished augmented set" in err
    assert not (tmp_path / "run").exists()
    command = shlex.split(err.split("finish it with: ", 1)[1])
    assert command[:3] == ["posetransfer", "reid", "augment"]
    # ... as does a set made from it, and that command finishes it: the set then is the truth.
    err = _fails([*_augment_argv(out, tmp_path / "s2"), "--no-generator"], capsys)
    assert "--market" in err and "unfinished augmented set" in err
    assert main([*command[1:], "--no-progress", "--device", "cpu"]) == 0
    _assert_true_set(out)
    fresh = augment(
        reid_root, _annotations(reid_root), tiny_generator, tmp_path / "fresh", 0.5, progress=False
    )
    assert (out / MANIFEST).read_text() == (fresh / MANIFEST).read_text()


# --------------------------------------------------------------------------------------------
# 3. Consumers check what they consume


def _unfinished_set(reid_root: Path, out: Path) -> Path:
    augment(reid_root, _annotations(reid_root), None, out, portion=0.5, progress=False)
    meta = json.loads((out / META).read_text())
    (out / META).write_text(json.dumps({"request": meta["request"], "complete": False}))
    (out / MANIFEST).unlink()
    return out


def test_train_study_and_evaluate_refuse_an_unfinished_set(reid_root, tmp_path, capsys):
    data = _unfinished_set(reid_root, tmp_path / "set")
    err = _fails(["reid", "train", "--data", data, "--out", tmp_path / "r", *TRAIN_FLAGS], capsys)
    assert err.startswith(f"posetransfer reid: error: --data '{data}': an unfinished augmented")
    want = (
        f"posetransfer reid augment --market {reid_root.resolve()} --annotations "
        f"{_annotations(reid_root).resolve()} --no-generator --portion 0.5 --out {data}"
    )
    assert err.endswith(f"finish it with: {want}")
    assert not (tmp_path / "r").exists()
    argv = ["reid", "study", "--market", data, "--annotations", _annotations(reid_root)]
    err = _fails([*argv, "--out", tmp_path / "st", "--portions", "1.0", *TRAIN_FLAGS], capsys)
    assert "--market" in err and want in err and not (tmp_path / "st").exists()
    run = tmp_path / "run"
    run.mkdir()
    record = {"config": asdict(ReidConfig(**TINY)), "data": str(reid_root), "identities": 6}
    (run / "config.json").write_text(json.dumps(record))
    (run / "model.safetensors").write_bytes(b"")
    err = _fails(["reid", "evaluate", "--run", run, "--data", data, "--device", "cpu"], capsys)
    assert "--data" in err and "unfinished augmented set" in err

    # Finished by the command it names, the set trains; a damaged augment.json is refused.
    main([*shlex.split(want)[1:], "--no-progress"])
    capsys.readouterr()
    assert check_complete_set(data) == data
    (data / META).write_text("{")
    err = _fails(["reid", "train", "--data", data, "--out", tmp_path / "r", *TRAIN_FLAGS], capsys)
    assert "augment.json is unreadable or damaged" in err


def test_a_folder_without_augment_json_is_a_whole_set(reid_root):
    assert check_complete_set(reid_root) == reid_root


# --------------------------------------------------------------------------------------------
# 4. Damaged or mismatched input


def test_annotations_for_another_resolution_are_refused(reid_root, tmp_path, capsys):
    from posetransfer.pose import read_annotations, write_annotations

    # The synthetic people are 128x64; these keypoints were written for 256x176 images.
    poses = read_annotations(_annotations(reid_root))
    scaled = {}
    for name, kps in poses.items():
        big = kps.copy()
        seen = (kps >= 0).all(axis=1)
        big[seen, 0] = kps[seen, 0] * 2
        big[seen, 1] = (kps[seen, 1] * 176) // 64
        scaled[name] = big
    ann = write_annotations(tmp_path / "big.csv", scaled)
    out = tmp_path / "set"
    argv = ["reid", "augment", "--market", reid_root, "--annotations", ann, "--out", out]
    err = _fails([*argv, "--no-generator", "--no-progress"], capsys)
    assert str(ann) in err and "do not fit the 128x64 images" in err
    assert re.search(r"largest coordinates are y=\d+, x=\d+", err)
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# 5. No traceback: cut-short weights


@pytest.fixture(scope="module")
def trained_run(reid_root, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("reidrun") / "run"
    train_reid(reid_root, run, ReidConfig(**TINY), device="cpu", progress=False)
    return run


def test_evaluate_with_cut_short_weights_names_the_file(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    weights = run / "model.safetensors"
    for keep in (0.5, 0.0001):
        shutil.copy(trained_run / "model.safetensors", weights)
        _truncate(weights, keep)
        err = _fails(["reid", "evaluate", "--run", run, "--device", "cpu"], capsys)
        assert str(weights) in err and "cut short" in err

    # Weights of another backbone: named too.
    from safetensors.torch import save_file
    from torch import zeros

    save_file({"fc.weight": zeros(2, 2)}, weights)
    err = _fails(["reid", "evaluate", "--run", run, "--device", "cpu"], capsys)
    assert str(weights) in err and "another model" in err


def test_a_damaged_config_or_results_of_a_run_is_named(trained_run, reid_root, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    _truncate(run / "results.json")
    err = _fails(["reid", "train", "--data", reid_root, "--out", run, *TRAIN_FLAGS], capsys)
    assert str(run / "results.json") in err and "damaged" in err
    _truncate(run / "config.json")
    err = _fails(["reid", "evaluate", "--run", run, "--device", "cpu"], capsys)
    assert "--run" in err and "config.json" in err


def test_a_cut_short_training_state_is_named(reid_root, tmp_path, monkeypatch, capsys):
    import posetransfer.reid.train as tr

    run = tmp_path / "run"
    real_engine = tr.build_engine

    def engine_stopping_at_step_3(*args):
        engine = real_engine(*args)
        step, calls = engine.forward_backward, {"n": 0}

        def forward_backward(batch):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return step(batch)

        engine.forward_backward = forward_backward
        return engine

    monkeypatch.setattr(tr, "build_engine", engine_stopping_at_step_3)
    cfg = ReidConfig(**{**TINY, "steps": 4})
    with pytest.raises(KeyboardInterrupt):
        train_reid(reid_root, run, cfg, "cpu", False)
    monkeypatch.setattr(tr, "build_engine", real_engine)
    _truncate(run / "state.pt")
    flags = [*TRAIN_FLAGS, "--steps", "4", "--save-every", "2"]
    err = _fails(["reid", "train", "--data", reid_root, "--out", run, *flags], capsys)
    assert str(run / "state.pt") in err and "re-ID training state" in err
    assert not (run / "model.safetensors").exists()


def test_cut_short_backbone_weights_are_named(reid_root, tmp_path, capsys):
    import torch

    from posetransfer.reid.engine import build_model

    path = tmp_path / "osnet.pth"
    torch.save(build_model(ReidConfig(**TINY), 10).state_dict(), path)
    _truncate(path)
    flags = [a if a != "none" else str(path) for a in TRAIN_FLAGS]
    err = _fails(["reid", "train", "--data", reid_root, "--out", tmp_path / "r", *flags], capsys)
    assert str(path) in err and "unreadable backbone weights" in err


def test_a_cut_short_generator_is_named(reid_root, tiny_generator, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_generator, ckpt)
    weights = next(ckpt.rglob("*.safetensors"))
    _truncate(weights)
    argv = [*_augment_argv(reid_root, tmp_path / "set"), "--checkpoint", ckpt, "--portion", "0.5"]
    err = _fails([*argv, "--no-progress", "--device", "cpu"], capsys)
    assert str(ckpt) in err
    assert not (tmp_path / "set").exists()


# --------------------------------------------------------------------------------------------
# Docs: the numbers docs/reid.md quotes are the code's


def test_reid_doc_numbers_are_the_codes():
    doc = " ".join((ROOT / "docs" / "reid.md").read_text().split())  # one line
    cfg = ReidConfig()
    circle = re.search(r"circle loss \(m ([\d.]+), gamma ([\d.]+)", doc)
    assert circle and (float(circle[1]), float(circle[2])) == (cfg.circle_m, cfg.circle_gamma)
    triplet = re.search(r"triplet \(margin ([\d.]+)\).*?\((\d+) per person\)", doc)
    assert triplet and float(triplet[1]) == cfg.margin and int(triplet[2]) == cfg.num_instances
    adam = re.search(r"lr ([\d.e-]+) on a cosine to 0, weight decay ([\d.e-]+)", doc)
    assert adam and (float(adam[1]), float(adam[2])) == (cfg.lr, cfg.weight_decay)
    every = re.search(r"`state\.pt` every (\d+) steps", doc)
    assert every and int(every[1]) == cfg.save_every

    # The CPU study: the synthetic people and the generator's schedule it describes.
    from posetransfer.config import load_config
    from posetransfer.data.synthetic import SyntheticConfig

    people = SyntheticConfig()
    study = re.search(r"(\d+) training people, ([\d,]+) training images", doc)
    assert study and int(study[1]) == people.n_train_ids
    assert int(study[2].replace(",", "")) == people.n_train_ids * people.images_per_id
    split = re.search(r"--test-ids (\d+)`.*?(\d+) queries and (\d+) gallery", doc)
    assert split and int(split[2]) + int(split[3]) == int(split[1]) * people.images_per_id
    iters = re.search(r"the `synthetic` config, (\d+) iterations", doc)
    assert iters and int(iters[1]) == load_config("synthetic").train.iterations


def test_every_public_reid_name_resolves():
    import posetransfer.reid as reid

    for name in reid.__all__:
        assert getattr(reid, name) is not None, name


def test_reid_doc_examples_use_ratio_only_with_portion_one():
    """A documented command (or its comment) with --ratio K > 1 keeps every real image."""
    for path in sorted((ROOT / "docs").glob("*.md")):
        for line in path.read_text().replace("\\\n", " ").splitlines():
            ratio = re.search(r"--ratio (\d+)", line)
            portion = re.search(r"--portion ([\d.]+)", line)
            if ratio and int(ratio[1]) > 1 and portion:
                assert float(portion[1]) == 1.0, f"{path.name}: {line.strip()}"
