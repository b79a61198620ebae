"""Faults and mistakes around the data commands (issue 22): generate, evaluate, keypoints, pairs,
prepare, synthetic and train. Each ends in exit status 2 with a one-line message, or with intact
files and a report that says what is on disk."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_torchrun, tiny_overrides
from posetransfer.cli import main
from posetransfer.core.files import generated_name, save_image
from posetransfer.data.generated import MANIFEST, read_manifest, write_manifest
from posetransfer.pose import read_annotations, read_pairs, write_annotations

BUNDLED = "synthetic-patn"  # 128x64, like the tiny dataset: loads in well under a second


def _error(capsys) -> str:
    """The one error line the command printed on stderr (notes such as the bundled model's
    description may come before it)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1 and err.endswith(lines[0]), err
    return lines[0]


def _generate_args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "generate",
        "--checkpoint",
        BUNDLED,
        "--dataset",
        str(root),
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--no-progress",
        *extra,
    ]


def _evaluate_args(root: Path, generated: Path, out: Path, *extra: str) -> list[str]:
    return [
        "evaluate",
        "--generated",
        str(generated),
        "--dataset",
        str(root),
        "--pairs",
        str(root / "synthetic-pairs-test.csv"),
        "--metrics",
        "ssim",
        "--device",
        "cpu",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]


def _flags(overrides: list[str]) -> list[str]:
    """``section.field=value`` overrides as ``--section.field value`` arguments."""
    return [a for o in overrides for a in ("--" + o.split("=")[0], o.split("=", 1)[1])]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------------------------
# 1. Never destroy what the user gave us


def test_generate_refuses_an_out_that_is_the_image_folder(tiny_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns("train"))
    images = root / "test"
    before = _tree(images)
    assert main(_generate_args(root, images)) == 2
    line = _error(capsys)
    assert line.startswith(f"posetransfer generate: error: --out '{images}': is the input")
    assert _tree(images) == before


def test_generate_refuses_strips_in_the_output_folder(tiny_root, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(_generate_args(tiny_root, out, "--strips", str(out))) == 2
    assert _error(capsys).startswith(f"posetransfer generate: error: --strips '{out}': is the")
    assert not out.exists()


def test_generate_refuses_an_out_inside_the_dataset_folder(tiny_root, tmp_path, capsys):
    out = tiny_root / "test" / "generated"
    assert main(_generate_args(tiny_root, out)) == 2
    assert "lies inside the input folder image_dir=" in _error(capsys)
    assert not out.exists()


def test_keypoints_refuses_overlays_into_the_photo_folder(tiny_root, tmp_path, capsys):
    photos = tmp_path / "photos"
    shutil.copytree(tiny_root / "test", photos)
    before = _tree(photos)
    csv = tmp_path / "a.csv"
    assert main(["keypoints", str(photos), "--out", str(csv), "--overlays", str(photos)]) == 2
    assert _error(capsys).startswith(f"posetransfer keypoints: error: --overlays '{photos}': is")
    assert _tree(photos) == before and not csv.exists()


def test_pairs_refuses_to_overwrite_its_annotation_file(tiny_root, tmp_path, capsys):
    ann = tmp_path / "ann.csv"
    shutil.copy(tiny_root / "synthetic-annotation-test.csv", ann)
    before = ann.read_bytes()
    assert main(["pairs", "--annotations", str(ann), "--out", str(ann)]) == 2
    assert "is the input annotations=" in _error(capsys)
    assert ann.read_bytes() == before


def test_prepare_refuses_an_out_that_is_the_source(tmp_path, capsys):
    source = tmp_path / "Market-1501-v15.09.15"
    (source / "bounding_box_test").mkdir(parents=True)
    assert main(["prepare", "market", "--source", str(source), "--out", str(source)]) == 2
    line = _error(capsys)
    assert line.startswith(f"posetransfer prepare: error: --out '{source}': is the input")
    assert sorted(p.name for p in source.iterdir()) == ["bounding_box_test"]


def test_synthetic_never_clears_a_folder_of_the_users_train_and_test(tmp_path, capsys):
    out = tmp_path / "mine"
    for split in ("train", "test"):
        (out / split).mkdir(parents=True)
        (out / split / "holiday.jpg").write_bytes(b"my photo")
    before = _tree(out)
    rc = main(["synthetic", "--out", str(out), "--train-ids", "1", "--test-ids", "1"])
    assert rc == 2
    assert "holds files that are not a synthetic dataset (test, train)" in _error(capsys)
    assert _tree(out) == before


def test_synthetic_refuses_a_sheet_inside_the_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    rc = main(["synthetic", "--out", str(out), "--sheet", str(out / "sheet.png")])
    assert rc == 2
    assert f"--sheet '{out / 'sheet.png'}': lies inside --out" in _error(capsys)
    assert not out.exists()


def test_synthetic_marks_its_folder_and_reuses_it(tmp_path):
    out = tmp_path / "ds"
    small = ["--train-ids", "1", "--test-ids", "1", "--images-per-id", "2", "--no-progress"]
    assert main(["synthetic", "--out", str(out), *small]) == 0
    assert (out / ".posetransfer-output").is_file()
    # Other options replace a dataset this package wrote.
    assert main(["synthetic", "--out", str(out), *small, "--seed", "1"]) == 0
    assert json.loads((out / "synthetic.json").read_text())["config"]["seed"] == 1


# --------------------------------------------------------------------------------------------
# 2/3. generate's folder says whether it is complete; evaluate refuses an incomplete one


def test_generate_writes_a_complete_manifest(tiny_root, tmp_path):
    out = tmp_path / "gen"
    assert main(_generate_args(tiny_root, out, "--limit", "2")) == 0
    found = read_manifest(out)
    assert found["complete"] is True and found["images"] == found["pairs"] == 2
    assert found["finish"] is None


def test_generate_interrupted_says_incomplete(tiny_root, tmp_path, monkeypatch):
    import posetransfer.generate as gen_module

    real, calls = gen_module.save_png, []

    def save(image, path):
        calls.append(path)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return real(image, path)

    monkeypatch.setattr(gen_module, "save_png", save)
    out = tmp_path / "gen"
    assert main(_generate_args(tiny_root, out)) == 130
    found = read_manifest(out)
    assert found["complete"] is False and found["pairs"] == 8
    assert found["finish"].endswith(f"--out {out} --skip-existing")


def test_evaluate_refuses_an_incomplete_generate_folder(tiny_root, tmp_path, capsys):
    gen = tmp_path / "gen"
    gen.mkdir()
    request = {
        "checkpoint": BUNDLED,
        "image_dir": str(tiny_root / "test"),
        "annotations": str(tiny_root / "synthetic-annotation-test.csv"),
        "pairs": str(tiny_root / "synthetic-pairs-test.csv"),
        "limit": None,
    }
    for i in range(3):  # what the interrupted run wrote: the message counts what is on disk
        save_image(np.zeros((128, 64, 3), np.uint8), gen / f"{i}.png")
    write_manifest(gen, request, complete=False, images=3, pairs=8)
    report = tmp_path / "report.json"
    assert main(_evaluate_args(tiny_root, gen, report)) == 2
    line = _error(capsys)
    assert line.startswith(f"posetransfer evaluate: error: --generated '{gen}': incomplete")
    assert "3 of 8 images" in line
    assert f"posetransfer generate --checkpoint {BUNDLED} --dataset {tiny_root}" in line
    assert line.endswith(f"--out {gen} --skip-existing")
    assert not report.exists()


def test_evaluate_refuses_a_damaged_manifest(tiny_root, tmp_path, capsys):
    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / MANIFEST).write_text('{"complete": ')
    assert main(_evaluate_args(tiny_root, gen, tmp_path / "r.json")) == 2
    assert "unreadable manifest" in _error(capsys)


_KILL_AFTER_TWO_IMAGES = textwrap.dedent(
    """
    import os, signal, sys
    import posetransfer.generate as g
    real, n = g.save_png, [0]
    def save(image, path):
        n[0] += 1
        if n[0] > 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(image, path)
    g.save_png = save
    from posetransfer.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.slow
def test_generate_killed_mid_run_then_evaluate_refuses_then_finish(tiny_root, tmp_path, capsys):
    out, report = tmp_path / "gen", tmp_path / "report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-c", _KILL_AFTER_TWO_IMAGES, *_generate_args(tiny_root, out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    found = read_manifest(out)
    assert found["complete"] is False
    assert len(list(out.glob("*.png"))) == 2
    assert main(_evaluate_args(tiny_root, out, report)) == 2
    finish = _error(capsys).split("finish it with: ")[1]
    assert finish.startswith("posetransfer generate ")
    # The command the message names finishes the folder; evaluate then runs.
    assert main(finish.split()[1:] + ["--no-progress"]) == 0
    assert read_manifest(out)["complete"] is True
    assert main(_evaluate_args(tiny_root, out, report)) == 0
    assert json.loads(report.read_text())["evaluated"] == 8


# --------------------------------------------------------------------------------------------
# 4. Annotations of another resolution


def _annotations_for_256x176(tiny_root: Path, path: Path) -> Path:
    """The tiny set's test annotations scaled to 256x176, as if written for DeepFashion."""
    table = read_annotations(tiny_root / "synthetic-annotation-test.csv")
    scale = np.array([256 / 128, 176 / 64])
    scaled = {n: np.where(k >= 0, k * scale, -1).astype(np.int64) for n, k in table.items()}
    write_annotations(path, scaled)
    return path


def test_pairs_refuses_annotations_of_another_resolution(tiny_root, tmp_path, capsys):
    ann = _annotations_for_256x176(tiny_root, tmp_path / "big-annotation.csv")
    out = tmp_path / "p.csv"
    args = ["pairs", "--annotations", str(ann), "--images", str(tiny_root / "test")]
    assert main([*args, "--out", str(out)]) == 2
    line = _error(capsys)
    assert "do not fit the 128x64 images" in line and "another size" in line
    assert not out.exists()


def test_generate_refuses_annotations_of_another_resolution(tiny_root, tmp_path, capsys):
    ann = _annotations_for_256x176(tiny_root, tmp_path / "big-annotation.csv")
    out = tmp_path / "gen"
    assert main(_generate_args(tiny_root, out, "--annotations", str(ann))) == 2
    assert "do not fit the 128x64 images" in _error(capsys)
    assert not list(out.glob("*.png"))


# --------------------------------------------------------------------------------------------
# 5. An output below a regular file


def _below_file_commands(root: Path, blocker: Path) -> dict[str, list[str]]:
    ann = str(root / "synthetic-annotation-test.csv")
    pairs = str(root / "synthetic-pairs-test.csv")
    return {
        "generate": _generate_args(root, blocker / "gen"),
        "evaluate": _evaluate_args(root, root / "test", blocker / "sub" / "r.json"),
        "keypoints": ["keypoints", str(root / "test"), "--out", str(blocker / "a.csv")],
        "pairs": ["pairs", "--annotations", ann, "--out", str(blocker / "p.csv")],
        "prepare": ["prepare", "market", "--source", pairs, "--out", str(blocker / "root")],
        "synthetic": ["synthetic", "--out", str(blocker / "ds")],
        "train": ["train", *_flags(tiny_overrides(root, blocker / "runs"))],
    }


@pytest.mark.parametrize(
    "command", ["generate", "evaluate", "keypoints", "pairs", "prepare", "synthetic", "train"]
)
def test_an_output_below_a_regular_file_is_one_line(command, tiny_root, tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine\n")
    assert main(_below_file_commands(tiny_root, blocker)[command]) == 2
    line = _error(capsys)
    assert line.startswith(f"posetransfer {command}: error: ")
    assert str(blocker) in line
    assert blocker.read_text() == "mine\n"


# --------------------------------------------------------------------------------------------
# 6. Messages that tell the truth


def test_pckh_of_nobody_detected_says_so(tiny_root, tmp_path, capsys):
    gen = tmp_path / "gen"
    gen.mkdir()
    pairs = read_pairs(tiny_root / "synthetic-pairs-test.csv")
    for src, tgt in pairs:  # the ground truth itself stands in for generated images
        shutil.copy(tiny_root / "test" / tgt, gen / generated_name(src, tgt))
    nobody = {generated_name(s, t): np.full((18, 2), -1) for s, t in pairs}
    kps = write_annotations(tmp_path / "kps.csv", nobody)
    args = _evaluate_args(tiny_root, gen, tmp_path / "r.json")
    args[args.index("ssim")] = "pckh"
    ann = str(tiny_root / "synthetic-annotation-test.csv")
    assert main([*args, "--annotations", ann, "--keypoints", str(kps)]) == 0
    out = capsys.readouterr().out
    assert "0.000 (see warning)" in out
    assert f"no person was detected in any of the {len(pairs)} generated images" in out
    result = json.loads((tmp_path / "r.json").read_text())["results"]["pckh"]
    assert result["no_person_detected"] == len(pairs)
    assert "no person was detected" in (tmp_path / "r.md").read_text()


def test_train_prints_the_precision_it_resolved(tiny_root, tmp_path, capsys):
    over = tiny_overrides(tiny_root, tmp_path, **{"train.iterations": 1, "train.precision": "auto"})
    assert main(["train", *_flags(over)]) == 0
    # auto is bf16 on a CPU with native bf16, fp32 elsewhere: the line says which it picked.
    out = capsys.readouterr().out
    assert re.search(r"^training: torch on cpu, (fp32|bf16) \(auto\)$", out, re.M), out


@pytest.mark.slow
def test_torchrun_configuration_error_is_printed_once(tiny_root, tmp_path):
    args = _flags(tiny_overrides(tiny_root, tmp_path, **{"train.batch_size": 3}))
    returncode, out = run_torchrun(["train", *args], timeout=120)
    assert returncode != 0
    assert out.count("posetransfer train: error: --train.batch_size 3: not divisible") == 1, out
    assert "posetransfer/" not in out.split("posetransfer train: error:")[1].split("\n", 1)[0]
    assert not list(tmp_path.glob("0*"))  # no run directory


def test_generate_may_write_into_its_run_folder_but_not_its_checkpoints(
    tiny_root, tmp_path, capsys
):
    from conftest import tiny_overrides
    from posetransfer.config import load_config
    from posetransfer.train import train

    run = train(
        load_config("synthetic", tiny_overrides(tiny_root, tmp_path, **{"train.iterations": 1}))
    )
    args = ["generate", "--checkpoint", str(run), "--dataset", str(tiny_root), "--no-progress"]
    assert main([*args, "--out", str(run / "generated"), "--limit", "2"]) == 0
    assert len(list((run / "generated").glob("*.png"))) == 2
    assert main([*args, "--out", str(run / "checkpoints" / "generated")]) == 2
    assert "lies inside the input folder checkpoint=" in capsys.readouterr().err
