"""Tests of the procedural synthetic dataset (posetransfer.data.synthetic) and its command."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posetransfer.cli import main
from posetransfer.data.pairs import person_id
from posetransfer.data.synthetic import (
    ACTIONS,
    ANNOTATION_FILES,
    META_FILE,
    PAIRS_FILES,
    VIEWS,
    SyntheticConfig,
    is_complete,
    make_contact_sheet,
    make_synthetic_dataset,
    render_background,
    render_person,
    sample_appearance,
    sample_pose,
    sample_skeleton,
)
from posetransfer.errors import InputError
from posetransfer.pose import MISSING, read_annotations, read_pairs, visible

TINY = SyntheticConfig(n_train_ids=3, n_test_ids=2, images_per_id=4, max_test_pairs=10)
MARKET_NAME = re.compile(r"^\d{4}_c[1-6]s[1-6]_\d{6}_00\.jpg$")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("syn") / "data", TINY, progress=False)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _figure(seed: int, view: str | None = None, action: str | None = None, h=128, w=64):
    rng = np.random.default_rng(seed)
    app = sample_appearance(rng)
    return sample_skeleton(rng, h, w, view, action, app.build), app


# --------------------------------------------------------------------------------------------
# Layout and files


def test_layout_and_csvs_round_trip(tiny: Path) -> None:
    for split, n_ids in (("train", TINY.n_train_ids), ("test", TINY.n_test_ids)):
        ann = read_annotations(tiny / ANNOTATION_FILES[split], image_dir=tiny / split)
        assert len(ann) == n_ids * TINY.images_per_id
        assert sorted(p.name for p in (tiny / split).glob("*.jpg")) == sorted(ann)
        assert all(MARKET_NAME.match(name) for name in ann)
        pairs = read_pairs(tiny / PAIRS_FILES[split], known=ann)
        assert pairs and all(person_id(a) == person_id(b) and a != b for a, b in pairs)
    n_test_pairs = len(read_pairs(tiny / PAIRS_FILES["test"]))
    n_train_pairs = len(read_pairs(tiny / PAIRS_FILES["train"]))
    assert n_test_pairs == TINY.max_test_pairs
    assert n_train_pairs == TINY.n_train_ids * TINY.images_per_id * (TINY.images_per_id - 1)
    meta = json.loads((tiny / META_FILE).read_text())
    assert meta["config"]["n_train_ids"] == TINY.n_train_ids
    assert not (tiny / ".partial").exists()


def test_images_have_the_configured_size(tmp_path: Path) -> None:
    cfg = SyntheticConfig(n_train_ids=1, n_test_ids=1, images_per_id=2, height=96, width=40)
    root = make_synthetic_dataset(tmp_path / "d", cfg, progress=False)
    for path in root.glob("*/*.jpg"):
        assert Image.open(path).size == (40, 96)


def test_train_and_test_identities_are_disjoint(tiny: Path) -> None:
    ids = {s: {person_id(p.name) for p in (tiny / s).glob("*.jpg")} for s in ("train", "test")}
    assert ids["train"] == {"0001", "0002", "0003"}
    assert ids["test"] == {"0004", "0005"}


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    a = make_synthetic_dataset(tmp_path / "a", TINY, progress=False)
    b = make_synthetic_dataset(tmp_path / "b", TINY, progress=False)
    assert _digest(a) == _digest(b)
    c = make_synthetic_dataset(tmp_path / "c", SyntheticConfig(**{**vars(TINY), "seed": 1}), False)
    assert _digest(c) != _digest(a)


def test_finished_dataset_is_reused(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "d", TINY, progress=False)
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    make_synthetic_dataset(root, TINY, progress=False)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamp


def test_other_config_replaces_dataset(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "d", TINY, progress=False)
    bigger = SyntheticConfig(**{**vars(TINY), "n_train_ids": 4})
    make_synthetic_dataset(root, bigger, progress=False)
    ann = read_annotations(root / ANNOTATION_FILES["train"], image_dir=root / "train")
    assert len(list((root / "train").glob("*.jpg"))) == len(ann) == 4 * TINY.images_per_id


def test_interrupted_dataset_is_rebuilt(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "d", TINY, progress=False)
    (root / META_FILE).unlink()  # what an interrupted run leaves: no synthetic.json
    next(root.glob("train/*.jpg")).unlink()
    (root / ".partial").mkdir()
    make_synthetic_dataset(root, TINY, progress=False)
    assert (root / META_FILE).is_file() and not (root / ".partial").exists()
    assert len(list((root / "train").glob("*.jpg"))) == TINY.n_train_ids * TINY.images_per_id


def test_refuses_a_folder_with_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="notes.txt"):
        make_synthetic_dataset(tmp_path, TINY, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "field, value",
    [
        ("n_train_ids", 0),
        ("images_per_id", 1),
        ("height", 8),
        ("max_test_pairs", 0),
        ("jpeg_quality", 101),
        ("seed", -1),
        ("width", 1.5),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(InputError, match=field):
        SyntheticConfig(**{field: value})


def test_contact_sheet(tiny: Path, tmp_path: Path) -> None:
    out = make_contact_sheet(tiny, tmp_path / "sheet.png", n=8, columns=4, zoom=1)
    assert Image.open(out).size == (4 * TINY.width, 2 * TINY.height)


def test_command_line_writes_dataset(tmp_path: Path, capsys) -> None:
    args = [
        "synthetic",
        "--out",
        str(tmp_path / "d"),
        "--train-ids",
        "2",
        "--test-ids",
        "1",
        "--images-per-id",
        "2",
        "--no-progress",
        "--sheet",
        str(tmp_path / "s.png"),
    ]
    assert main(args) == 0
    assert "6 images of 3 people" in capsys.readouterr().out
    assert (tmp_path / "d" / META_FILE).is_file() and (tmp_path / "s.png").is_file()


def test_command_line_names_the_bad_option(tmp_path: Path, capsys) -> None:
    assert main(["synthetic", "--out", str(tmp_path / "d"), "--images-per-id", "1"]) == 2
    assert "--images-per-id" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Poses and drawing


def test_keypoints_land_on_the_figure() -> None:
    # A pixel covered by the figure is the same over a black and a white background.
    h, w = 128, 64
    black, white = np.zeros((h, w, 3), np.uint8), np.full((h, w, 3), 255, np.uint8)
    checked = 0
    for seed in range(48):
        sk, app = _figure(seed, VIEWS[seed % 3], ACTIONS[seed // 3 % 4])
        on_black, on_white = render_person(sk, app, black), render_person(sk, app, white)
        kps = sk.keypoints()
        for j in np.flatnonzero(visible(kps)):
            if j in (16, 17):  # ears sit on the head's outline
                continue
            y, x = kps[j]
            assert np.abs(on_black[y, x].astype(int) - on_white[y, x]).max() <= 2, (seed, j)
            checked += 1
    assert checked > 48 * 12


def test_figure_fills_most_of_the_height() -> None:
    black, white = np.zeros((128, 64, 3), np.uint8), np.full((128, 64, 3), 255, np.uint8)
    for seed in range(10):
        sk, app = _figure(seed, action="standing")
        diff = render_person(sk, app, white).astype(int) - render_person(sk, app, black)
        covered = diff.max(axis=2) < 128  # mostly the figure's own colour
        rows = np.flatnonzero(covered.any(axis=1))
        assert 0.8 * 128 <= rows[-1] - rows[0] + 1 <= 0.95 * 128


def test_neck_differs_from_the_background_alone() -> None:
    for seed in range(10):
        rng = np.random.default_rng(seed)
        sk, app = _figure(seed)
        bg = render_background(rng, 128, 64)
        img = render_person(sk, app, bg)
        y, x = sk.keypoints()[1]
        assert not np.array_equal(img[y, x], bg[y, x])


def test_back_views_miss_face_joints() -> None:
    for seed in range(20):
        kps = sample_pose(np.random.default_rng(seed), 128, 64, view="back")
        assert not visible(kps)[[0, 14, 15]].any()
        assert visible(kps)[[1, 2, 5, 8, 11]].all()


def test_front_views_show_the_whole_face() -> None:
    for seed in range(20):
        kps = sample_pose(np.random.default_rng(seed), 128, 64, view="front", action="standing")
        assert visible(kps).all()


def test_side_views_hide_one_eye() -> None:
    for seed in range(20):
        kps = sample_pose(np.random.default_rng(seed), 128, 64, view="side")
        assert visible(kps)[0] and visible(kps)[[14, 15]].sum() == 1


def test_back_view_swaps_left_and_right() -> None:
    front = sample_pose(np.random.default_rng(0), 128, 64, view="front", action="standing")
    back = sample_pose(np.random.default_rng(0), 128, 64, view="back", action="standing")
    assert front[2, 1] < front[5, 1]  # the right shoulder is on the image's left
    assert back[2, 1] > back[5, 1]


def test_backgrounds_differ_within_an_identity(tiny: Path) -> None:
    names = sorted(p for p in (tiny / "train").glob("0001_*.jpg"))
    corners = [np.asarray(Image.open(p), np.float32)[:12, :8] for p in names]
    for i in range(len(corners)):
        for j in range(i + 1, len(corners)):
            assert np.abs(corners[i] - corners[j]).mean() > 3


def test_any_image_size_works() -> None:
    sk, app = _figure(3, "front", "walking", h=256, w=176)
    img = render_person(sk, app, render_background(np.random.default_rng(0), 256, 176))
    kps = sk.keypoints()
    assert img.shape == (256, 176, 3) and visible(kps).all()
    assert kps[:, 0].max() < 256 and kps[:, 1].max() < 176


def test_keypoints_of_joints_off_the_image_are_missing() -> None:
    sk, _ = _figure(0, "front", "standing")
    shifted = dataclasses.replace(sk, joints=sk.joints - (sk.width / 2, 0, 0))  # half off the left
    kps = shifted.keypoints()
    off = np.floor(shifted.joints[:, 0]) < 0
    assert off.any() and (~off).any()
    assert (kps[off] == MISSING).all()
    assert np.array_equal(kps[~off], np.floor(shifted.joints[~off][:, [1, 0]]).astype(int))


def test_two_processes_building_one_folder_both_get_the_finished_dataset(tmp_path) -> None:
    import subprocess
    import sys

    root = tmp_path / "shared"
    code = (
        "import sys\n"
        "from posetransfer.data.synthetic import SyntheticConfig, make_synthetic_dataset\n"
        "cfg = SyntheticConfig(n_train_ids=6, n_test_ids=2, images_per_id=4)\n"
        "make_synthetic_dataset(sys.argv[1], cfg, progress=False)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(root)], env=env, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    cfg = SyntheticConfig(n_train_ids=6, n_test_ids=2, images_per_id=4)
    assert is_complete(root, cfg)
    assert len(read_annotations(root / ANNOTATION_FILES["train"])) == 24
    assert not (root / ".partial").exists()
