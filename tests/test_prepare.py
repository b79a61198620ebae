"""Tests for posetransfer.data.prepare and the `prepare` / `pairs` commands (fabricated data)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posetransfer.cli import main
from posetransfer.core.files import PART_SUFFIX
from posetransfer.data.prepare import (
    DATASET_FILES,
    FASHION_CROP_BOX,
    check_layout,
    crop_fashion,
    flatten_fashion_name,
    make_pairs_file,
    prepare_fashion,
    prepare_market,
    read_name_list,
)
from posetransfer.errors import InputError
from posetransfer.pose import read_pairs, write_annotations, write_pairs

MARKET_TOP = "Market-1501-v15.09.15"
MARKET_TRAIN = ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c1s6_028546_01.jpg"]
MARKET_TEST = [
    "0001_c1s1_001051_00.jpg",
    "0001_c2s1_000301_00.jpg",
    "0003_c1s1_000001_00.jpg",  # annotated below but left out of the download
    "-1_c1s1_000401_03.jpg",
    "0000_c1s1_000000_01.jpg",
]


def _kps(torso: bool = True) -> np.ndarray:
    kps = np.full((18, 2), -1, dtype=np.int64)
    for j in (0, 1, 2, 5, 8, 11) if torso else (0, 1):
        kps[j] = (10 + 3 * j, 20 + j)
    return kps


def _jpeg(path: Path, h: int, w: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, "JPEG")


def _market_folder(base: Path) -> Path:
    """A tiny Market-1501 folder: one unannotated and one wrong-size image, one missing image."""
    top = base / MARKET_TOP
    for i, name in enumerate(MARKET_TRAIN + ["0009_c3s1_000001_01.jpg"]):  # last: unannotated
        _jpeg(top / "bounding_box_train" / name, 128, 64, seed=i)
    (top / "bounding_box_train" / "Thumbs.db").write_bytes(b"junk")
    for i, name in enumerate(MARKET_TEST):
        if not name.startswith("0003"):
            h = 100 if name.startswith("0001_c2") else 128  # one wrong-size image
            _jpeg(top / "bounding_box_test" / name, h, 64, seed=10 + i)
    _jpeg(top / "query" / "0001_c1s1_001051_00.jpg", 128, 64)
    return top


def _market_annotations(folder: Path) -> None:
    files = DATASET_FILES["market"]
    train = {n: _kps() for n in MARKET_TRAIN}
    test = {n: _kps() for n in MARKET_TEST if not n.startswith(("-1", "0000"))}
    write_annotations(folder / files["annotations"]["train"], train)
    write_annotations(folder / files["annotations"]["test"], test)
    write_pairs(folder / files["pairs"]["train"], [(MARKET_TRAIN[0], MARKET_TRAIN[1])])
    write_pairs(folder / files["pairs"]["test"], [(MARKET_TEST[0], MARKET_TEST[2])])


def _zip_folder(folder: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w") as z:
        for p in sorted(folder.rglob("*")):
            z.write(p, p.relative_to(folder.parent).as_posix())
    return zip_path


@pytest.fixture
def market_zip(tmp_path: Path) -> Path:
    top = _market_folder(tmp_path / "extract")
    _market_annotations(tmp_path / "ann")
    return _zip_folder(top, tmp_path / "Market-1501-v15.09.15.zip")


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------------------------
# Market-1501


def test_market_zip_layout(market_zip: Path, tmp_path: Path) -> None:
    root = tmp_path / "market"
    prepare_market(market_zip, root, annotations_dir=tmp_path / "ann", progress=False)
    assert _names(root / "train") == sorted(MARKET_TRAIN + ["0009_c3s1_000001_01.jpg"])
    assert _names(root / "test") == sorted(n for n in MARKET_TEST if not n.startswith("0003"))
    src = f"{MARKET_TOP}/bounding_box_train/{MARKET_TRAIN[0]}"
    with zipfile.ZipFile(market_zip) as z:
        assert (root / "train" / MARKET_TRAIN[0]).read_bytes() == z.read(src)
    for name in ("market-annotation-train.csv", "market-pairs-test.csv", "prepare-report.json"):
        assert (root / name).is_file()


def test_market_report_counts_problems(market_zip: Path, tmp_path: Path) -> None:
    root = tmp_path / "market"
    report = prepare_market(market_zip, root, annotations_dir=tmp_path / "ann", progress=False)
    train, test = report.splits["train"], report.splits["test"]
    assert train.unannotated == ["0009_c3s1_000001_01.jpg"]
    assert test.missing == ["0003_c1s1_000001_00.jpg"]
    assert test.wrong_size == {"0001_c2s1_000301_00.jpg": (100, 64)}
    assert test.unannotated_distractors == 2 and test.unannotated == []
    assert test.pairs == 1 and test.pairs_missing_images == 1
    assert train.written == 4 and not report.ok
    saved = json.loads((root / "prepare-report.json").read_text())
    assert saved["splits"]["test"]["missing"] == {
        "count": 1,
        "examples": ["0003_c1s1_000001_00.jpg"],
    }


def test_market_folder_source_and_default_annotation_search(tmp_path: Path) -> None:
    top = _market_folder(tmp_path / "dl")
    _market_annotations(tmp_path / "dl")  # beside the extracted folder: found via the parent
    root = tmp_path / "market"
    report = prepare_market(tmp_path / "dl", root, progress=False)
    assert _names(root / "train") == _names(top / "bounding_box_train")[:-1]  # no Thumbs.db
    assert report.files_missing == [] and len(report.files_copied) == 4


def test_market_resume_skips_existing(market_zip: Path, tmp_path: Path) -> None:
    root = tmp_path / "market"
    prepare_market(market_zip, root, progress=False)
    partial = root / "train" / f".{MARKET_TRAIN[0]}.abc{PART_SUFFIX}"
    partial.write_bytes(b"trunc")  # left by an interrupted run
    (root / "train" / MARKET_TRAIN[1]).write_bytes(b"truncated")  # wrong size: redone
    report = prepare_market(market_zip, root, progress=False)
    assert report.splits["train"].written == 1
    assert report.splits["train"].already_present == 3
    assert not partial.exists()
    assert Image.open(root / "train" / MARKET_TRAIN[1]).size == (64, 128)


def test_market_not_a_dataset_names_path(tmp_path: Path) -> None:
    other = tmp_path / "holiday-photos"
    _jpeg(other / "beach.jpg", 32, 32)
    with pytest.raises(InputError, match="holiday-photos"):
        prepare_market(other, tmp_path / "out", progress=False)
    bad_zip = tmp_path / "notes.zip"
    with zipfile.ZipFile(bad_zip, "w") as z:
        z.writestr("notes/readme.txt", "hello")
    with pytest.raises(InputError, match="notes.zip"):
        prepare_market(bad_zip, tmp_path / "out", progress=False)


# --------------------------------------------------------------------------------------------
# DeepFashion In-shop

FASHION_FILES = {
    "train": [
        "img/WOMEN/Blouses_Shirts/id_00000693/02_3_back.jpg",
        "img/WOMEN/Blouses_Shirts/id_00000693/02_1_front.jpg",
    ],
    "test": ["img/MEN/Tees_Tanks/id_00000080/01_1_front.jpg"],
    None: ["img/MEN/Tees_Tanks/id_00000080/01_7_additional.jpg"],  # in neither list
}


def _ramp_image() -> np.ndarray:
    """256x256 RGB whose red channel is the column index: the crop offset is readable."""
    arr = np.zeros((256, 256, 3), dtype=np.uint8)
    arr[..., 0] = np.arange(256, dtype=np.uint8)[None, :]
    arr[..., 1] = 128
    return arr


@pytest.fixture
def fashion_tree(tmp_path: Path) -> Path:
    base = tmp_path / "inshop"
    for rel in sum(FASHION_FILES.values(), []):
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_ramp_image()).save(base / rel, "JPEG", quality=100, subsampling=0)
    for split in ("train", "test"):
        names = [flatten_fashion_name(r) for r in FASHION_FILES[split]]
        (tmp_path / f"{split}.lst").write_text("\n".join(names) + "\n")
    return base


@pytest.mark.parametrize(
    ("relpath", "flat"),
    [
        (
            "img/WOMEN/Blouses_Shirts/id_00000693/02_3_back.jpg",
            "fashionWOMENBlouses_Shirtsid0000069302_3back.jpg",
        ),
        (
            "img/MEN/Tees_Tanks/id_00000080/01_1_front.jpg",
            "fashionMENTees_Tanksid0000008001_1front.jpg",
        ),
        (
            "img/WOMEN/Blouses_Shirts/id_00000693/02_7_additional.jpg",
            "fashionWOMENBlouses_Shirtsid0000069302_7additional.jpg",
        ),
        ("WOMEN/Dresses/id_00007979/04_4_full.jpg", "fashionWOMENDressesid0000797904_4full.jpg"),
    ],
)
def test_flatten_fashion_name(relpath: str, flat: str) -> None:
    assert flatten_fashion_name(relpath) == flat


def test_flatten_fashion_name_rejects_other_paths() -> None:
    with pytest.raises(InputError, match="holiday/beach.jpg"):
        flatten_fashion_name("holiday/beach.jpg")


def test_crop_fashion_keeps_columns_40_to_215() -> None:
    arr = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, :, None], (256, 256, 3)).copy()
    out = np.asarray(crop_fashion(Image.fromarray(arr)))
    assert FASHION_CROP_BOX == (40, 0, 216, 256)
    assert out.shape == (256, 176, 3)
    assert np.array_equal(out[0, :, 0], np.arange(40, 216))


def test_fashion_layout_names_size_and_crop(fashion_tree: Path, tmp_path: Path) -> None:
    root = tmp_path / "fashion"
    report = prepare_fashion(
        fashion_tree / "img",
        root,
        train_list=tmp_path / "train.lst",
        test_list=tmp_path / "test.lst",
        progress=False,
    )
    assert _names(root / "train") == sorted(
        [
            "fashionWOMENBlouses_Shirtsid0000069302_3back.jpg",
            "fashionWOMENBlouses_Shirtsid0000069302_1front.jpg",
        ]
    )
    assert _names(root / "test") == ["fashionMENTees_Tanksid0000008001_1front.jpg"]
    assert report.skipped == {"not_in_lists": 1}
    img = Image.open(root / "test" / "fashionMENTees_Tanksid0000008001_1front.jpg")
    assert img.size == (176, 256)
    # JPEG is lossy: the column means of the red ramp must fit 40 + column with offset 40.
    red = np.asarray(img, dtype=np.float64)[..., 0].mean(axis=0)
    slope, offset = np.polyfit(np.arange(176), red, 1)
    assert abs(slope - 1) < 0.01 and abs(offset - 40) < 0.5


def test_fashion_zip_and_annotation_check(fashion_tree: Path, tmp_path: Path) -> None:
    ann = tmp_path / "ann"
    files = DATASET_FILES["fashion"]
    train_names = [flatten_fashion_name(r) for r in FASHION_FILES["train"]]
    write_annotations(ann / files["annotations"]["train"], {n: _kps() for n in train_names})
    test_names = [flatten_fashion_name(r) for r in FASHION_FILES["test"]]
    write_annotations(ann / files["annotations"]["test"], {n: _kps() for n in test_names})
    write_pairs(ann / files["pairs"]["train"], [tuple(train_names)])
    write_pairs(ann / files["pairs"]["test"], [])
    zip_path = _zip_folder(fashion_tree / "img", tmp_path / "img.zip")
    report = prepare_fashion(
        zip_path,
        tmp_path / "fashion",
        annotations_dir=ann,
        split_from_annotations=True,
        progress=False,
    )
    assert report.ok, report.summary()
    assert report.splits["train"].images == 2 and report.splits["train"].pairs == 1


def test_fashion_resume_and_missing_listed(fashion_tree: Path, tmp_path: Path) -> None:
    lists = tmp_path / "train.lst"
    lists.write_text(lists.read_text() + "fashionWOMENDressesid0000797904_4full.jpg\n")
    kwargs = dict(train_list=lists, test_list=tmp_path / "test.lst", progress=False)
    prepare_fashion(fashion_tree, tmp_path / "fashion", **kwargs)
    report = prepare_fashion(fashion_tree, tmp_path / "fashion", **kwargs)
    assert report.splits["train"].written == 0 and report.splits["train"].already_present == 2
    assert report.splits["train"].listed_not_found == ["fashionWOMENDressesid0000797904_4full.jpg"]


def test_fashion_not_a_dataset_names_path(tmp_path: Path) -> None:
    _jpeg(tmp_path / "photos" / "a.jpg", 8, 8)
    with pytest.raises(InputError, match="photos"):
        prepare_fashion(tmp_path / "photos", tmp_path / "out", progress=False)


def test_fashion_without_lists_is_input_error(
    fashion_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputError, match="train_list"):  # the library names its arguments
        prepare_fashion(fashion_tree, tmp_path / "out", annotations_dir=fashion_tree)
    argv = ["prepare", "fashion", "--source", str(fashion_tree), "--out", str(tmp_path / "out")]
    assert main(argv + ["--annotations-dir", str(fashion_tree), "--no-progress"]) == 2
    assert "--train-list" in capsys.readouterr().err  # the command names its options


# --------------------------------------------------------------------------------------------
# Pairs and the command line


def _pairs_annotations(path: Path) -> Path:
    kps = {
        "0001_c1s1_000001_00.jpg": _kps(),
        "0001_c2s1_000001_00.jpg": _kps(),
        "0001_c3s1_000001_00.jpg": _kps(torso=False),  # dropped: no torso
        "0002_c1s1_000001_00.jpg": _kps(),
        "0002_c2s1_000001_00.jpg": _kps(),
        "0002_c3s1_000001_00.jpg": _kps(),
        "0005_c1s1_000001_00.jpg": _kps(),  # alone: no pairs
        "-1_c1s1_000001_00.jpg": _kps(),  # distractor
    }
    return write_annotations(path, kps)


def test_make_pairs_file_counts(tmp_path: Path) -> None:
    ann = _pairs_annotations(tmp_path / "ann.csv")
    summary = make_pairs_file(ann, tmp_path / "pairs.csv")
    assert (summary.kept, summary.no_torso, summary.distractors) == (6, 1, 1)
    assert summary.identities == 3 and summary.single_image_identities == 1
    assert summary.pairs == 2 + 6 == len(read_pairs(tmp_path / "pairs.csv"))


def test_make_pairs_file_drops_missing_images(tmp_path: Path) -> None:
    ann = _pairs_annotations(tmp_path / "ann.csv")
    images = tmp_path / "images"
    for name in ("0002_c1s1_000001_00.jpg", "0002_c2s1_000001_00.jpg"):
        _jpeg(images / name, 128, 64)  # the size the annotations fit (others are refused)
    summary = make_pairs_file(ann, tmp_path / "pairs.csv", images_dir=images)
    assert summary.missing_images == 4 and summary.pairs == 2


def test_cli_pairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ann = _pairs_annotations(tmp_path / "ann.csv")
    out = tmp_path / "pairs.csv"
    argv = ["pairs", "--annotations", str(ann), "--out", str(out), "--max-pairs", "3"]
    assert main(argv + ["--seed", "1"]) == 0
    pairs = read_pairs(out)
    assert len(pairs) == 3 and all(a.split("_")[0] == b.split("_")[0] for a, b in pairs)
    assert "3 identities" in capsys.readouterr().out


def test_cli_prepare_market_and_check(market_zip: Path, tmp_path: Path) -> None:
    root = tmp_path / "market"
    argv = ["prepare", "market", "--source", str(market_zip), "--out", str(root)]
    assert main(argv + ["--annotations-dir", str(tmp_path / "ann"), "--no-progress"]) == 0
    assert main(["prepare", "market", "--out", str(root), "--check", "--no-progress"]) == 0
    assert check_layout(root, "market").splits["test"].missing == ["0003_c1s1_000001_00.jpg"]


def test_cli_prepare_bad_source_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    argv = ["prepare", "market", "--source", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "empty" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Text files from spreadsheets, resumed work, argument errors


def test_read_name_list_accepts_byte_order_mark_and_windows_line_endings(tmp_path: Path) -> None:
    lst = tmp_path / "train.lst"
    lst.write_bytes(b"\xef\xbb\xbffashionA01_1front.jpg\r\nfashionB02_2back.jpg\r\n\r\n")
    assert read_name_list(lst) == ["fashionA01_1front.jpg", "fashionB02_2back.jpg"]


def test_fashion_lists_saved_by_a_spreadsheet_select_the_same_images(
    fashion_tree: Path, tmp_path: Path
) -> None:
    for split in ("train", "test"):
        lst = tmp_path / f"{split}.lst"
        lst.write_bytes(b"\xef\xbb\xbf" + lst.read_text().replace("\n", "\r\n").encode())
    report = prepare_fashion(
        fashion_tree,
        tmp_path / "fashion",
        train_list=tmp_path / "train.lst",
        test_list=tmp_path / "test.lst",
        progress=False,
    )
    assert report.splits["train"].written == 2 and report.splits["test"].written == 1
    assert report.splits["train"].listed_not_found == []


def test_market_annotations_with_byte_order_mark_check_clean(
    market_zip: Path, tmp_path: Path
) -> None:
    ann = tmp_path / "ann"
    for path in ann.iterdir():  # re-save every CSV as a spreadsheet program would
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    report = prepare_market(market_zip, tmp_path / "market", annotations_dir=ann, progress=False)
    assert report.splits["train"].annotated == 3 and report.splits["test"].pairs == 1
    assert report.splits["test"].missing == ["0003_c1s1_000001_00.jpg"]


def test_check_layout_reports_keypoints_off_the_image(market_zip: Path, tmp_path: Path) -> None:
    root = tmp_path / "market"
    prepare_market(market_zip, root, annotations_dir=tmp_path / "ann", progress=False)
    kps = _kps()
    kps[0] = (140, 10)  # below a 128x64 image
    write_annotations(root / "market-annotation-train.csv", {n: kps for n in MARKET_TRAIN})
    report = check_layout(root, "market")
    off = [w for w in report.warnings if "outside the 128x64 image" in w]
    assert len(off) == 1 and "market-annotation-train.csv: 3 row(s)" in off[0]
    assert f"row 2 ({MARKET_TRAIN[0]}: nose)" in off[0]


def test_fashion_resume_redoes_a_truncated_output(fashion_tree: Path, tmp_path: Path) -> None:
    kwargs = dict(train_list=tmp_path / "train.lst", test_list=tmp_path / "test.lst")
    root = tmp_path / "fashion"
    prepare_fashion(fashion_tree, root, progress=False, **kwargs)
    out = root / "test" / "fashionMENTees_Tanksid0000008001_1front.jpg"
    out.write_bytes(out.read_bytes()[:2000])  # the header survives, the pixels do not
    report = prepare_fashion(fashion_tree, root, progress=False, **kwargs)
    assert report.splits["test"].written == 1 and report.splits["train"].already_present == 2
    assert np.asarray(Image.open(out)).shape == (256, 176, 3)


def test_cli_prepare_names_the_jpeg_quality_option(
    fashion_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["prepare", "fashion", "--source", str(fashion_tree), "--out", str(tmp_path / "o")]
    assert main(argv + ["--jpeg-quality", "0"]) == 2
    assert "--jpeg-quality 0: must be in 1..100" in capsys.readouterr().err


def test_make_pairs_file_names_max_pairs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ann = _pairs_annotations(tmp_path / "ann.csv")
    with pytest.raises(InputError, match="max_pairs=0: must be at least 1"):
        make_pairs_file(ann, tmp_path / "pairs.csv", max_pairs=0)
    argv = ["pairs", "--annotations", str(ann), "--out", str(tmp_path / "p.csv")]
    assert main(argv + ["--max-pairs", "0"]) == 2
    assert "--max-pairs 0: must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()
