"""Tests of PairDataset and dataset_from_config (posetransfer.data.datasets) on fabricated data."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.config import DataConfig
from posetransfer.data.datasets import PairDataset, dataset_from_config
from posetransfer.errors import InputError
from posetransfer.pose import (
    JOINT_NAMES,
    MISSING,
    KeypointWarning,
    keypoints_to_heatmaps,
    write_annotations,
    write_pairs,
)

H, W = 32, 16
NAMES = ("0001_a.png", "0001_b.png", "0002_a.png")


def _kps(shift: int = 0) -> np.ndarray:
    """18 distinct in-image joints, the last one missing."""
    kps = np.stack([np.arange(18) + 4 + shift, np.arange(18) % 12 + 2], axis=1).astype(np.int64)
    kps[17] = MISSING
    return kps


def _save(path: Path, h: int = H, w: int = W, seed: int = 0) -> None:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def _dataset_files(
    root: Path, kps: dict[str, np.ndarray] | None = None, pairs: list | None = None
) -> tuple[Path, Path, Path]:
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(NAMES):
        _save(images / name, seed=i)
    kps = kps if kps is not None else {n: _kps(i) for i, n in enumerate(NAMES)}
    ann = write_annotations(root / "ann.csv", kps)
    pairs_path = write_pairs(root / "pairs.csv", pairs or [(NAMES[0], NAMES[1]), NAMES[1:3]])
    return images, ann, pairs_path


def _dataset(root: Path, **kwargs) -> PairDataset:
    images, ann, pairs = _dataset_files(root)
    return PairDataset(images, ann, pairs, H, W, **kwargs)


# --------------------------------------------------------------------------------------------
# Items


def test_item_has_the_documented_keys_shapes_and_ranges(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    assert len(ds) == 2
    item = ds[0]
    keys = {"src_img", "tgt_img", "src_pose", "tgt_pose", "src_kps", "tgt_kps"}
    assert set(item) == keys | {"src_name", "tgt_name"}
    assert (item["src_name"], item["tgt_name"]) == (NAMES[0], NAMES[1])
    for key in ("src_img", "tgt_img"):
        t = item[key]
        assert t.shape == (3, H, W) and t.dtype == torch.float32
        assert t.min() >= -1 and t.max() <= 1 and t.min() < -0.9 and t.max() > 0.9
    for key in ("src_pose", "tgt_pose"):
        t = item[key]
        assert t.shape == (18, H, W) and t.dtype == torch.float32
        assert t.min() >= 0 and t.max() <= 1
    for key in ("src_kps", "tgt_kps"):
        assert item[key].shape == (18, 2) and item[key].dtype == torch.int64


def test_item_image_is_the_file_scaled_to_minus_one_one(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    pixels = np.asarray(Image.open(tmp_path / "images" / NAMES[0]), dtype=np.float32)
    expected = torch.from_numpy(pixels).permute(2, 0, 1) / 127.5 - 1
    assert torch.allclose(ds[0]["src_img"], expected)


def test_heatmaps_peak_at_the_keypoints(tmp_path: Path) -> None:
    item = _dataset(tmp_path)[1]
    for which in ("src", "tgt"):
        maps, kps = item[f"{which}_pose"], item[f"{which}_kps"].numpy()
        for j in range(17):
            y, x = np.unravel_index(int(maps[j].argmax()), (H, W))
            assert (y, x) == tuple(kps[j]), (which, JOINT_NAMES[j])
            assert maps[j, y, x] == pytest.approx(1.0)
        assert maps[17].sum() == 0  # the missing joint has an empty channel


def test_cached_items_equal_uncached_ones_and_files_are_read_once(tmp_path: Path) -> None:
    cached = _dataset(tmp_path, body_masks=True, cache_mb=1)
    plain = PairDataset(
        tmp_path / "images", tmp_path / "ann.csv", tmp_path / "pairs.csv", H, W, body_masks=True
    )
    first = [cached[i] for i in range(len(cached))]
    # Later reads come from memory: the files can go.
    for name in NAMES:
        (tmp_path / "images" / name).rename(tmp_path / name)
    again = [cached[i] for i in range(len(cached))]
    for name in NAMES:
        (tmp_path / name).rename(tmp_path / "images" / name)
    for a, b, c in zip(first, again, (plain[i] for i in range(len(plain))), strict=True):
        for key in ("src_img", "tgt_img", "tgt_mask", "src_pose", "tgt_pose"):
            assert torch.equal(a[key], b[key]) and torch.equal(a[key], c[key]), key
    # A cached item is a copy: changing it does not change the cache.
    again[0]["src_img"].fill_(0)
    assert torch.equal(cached[0]["src_img"], first[0]["src_img"])


def test_the_cache_stays_within_its_budget(tmp_path: Path) -> None:
    image_bytes = H * W * 3
    ds = _dataset(tmp_path, cache_mb=2.5 * image_bytes / 2**20)
    for i in range(len(ds)):
        ds[i]
    assert sum(v.nbytes for v in ds._cache.values()) <= 2.5 * image_bytes
    assert len(ds._cache) == 2  # of the three images, two fit
    assert not _dataset(tmp_path / "none")._cache  # cache_mb=0, the default: nothing kept
    with pytest.raises(ValueError, match="cache_mb"):
        _dataset(tmp_path / "neg", cache_mb=-1)


def test_legacy_heatmaps_are_one_pixel_per_joint(tmp_path: Path) -> None:
    item = _dataset(tmp_path, legacy_heatmaps=True)[0]
    assert item["src_pose"][:17].sum(dim=(1, 2)).tolist() == [1.0] * 17


# --------------------------------------------------------------------------------------------
# Bad input names the file


def test_pair_naming_an_unannotated_image_names_the_pairs_file(tmp_path: Path) -> None:
    images, ann, _ = _dataset_files(tmp_path)
    pairs = write_pairs(tmp_path / "other-pairs.csv", [(NAMES[0], "ghost.png")])
    with pytest.raises(InputError, match=r"other-pairs.csv, row 2: image 'ghost.png' is not in"):
        PairDataset(images, ann, pairs, H, W)


def test_missing_image_file_is_named_up_front(tmp_path: Path) -> None:
    images, ann, pairs = _dataset_files(tmp_path)
    (images / NAMES[2]).unlink()
    with pytest.raises(InputError, match=r"pairs.csv: 1 image\(s\) named in pairs are missing"):
        PairDataset(images, ann, pairs, H, W)
    with pytest.raises(InputError, match=NAMES[2]):
        PairDataset(images, ann, pairs, H, W)


def test_missing_image_file_is_named_when_read_unchecked(tmp_path: Path) -> None:
    images, ann, pairs = _dataset_files(tmp_path)
    (images / NAMES[2]).unlink()
    ds = PairDataset(images, ann, pairs, H, W, check_files=False)
    with pytest.raises(InputError, match=f"image not found: .*{NAMES[2]}"):
        ds[1]


def test_wrong_size_image_names_the_file(tmp_path: Path) -> None:
    images, ann, pairs = _dataset_files(tmp_path)
    _save(images / NAMES[1], h=H - 2)
    ds = PairDataset(images, ann, pairs, H, W)
    with pytest.raises(InputError, match=f"{NAMES[1]}: image is 30x16 \\(HxW\\), expected 32x16"):
        ds[0]


def test_truncated_image_names_the_file(tmp_path: Path) -> None:
    images, ann, pairs = _dataset_files(tmp_path)
    path = images / NAMES[0]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    ds = PairDataset(images, ann, pairs, H, W)
    with pytest.raises(InputError, match=f"{NAMES[0]}: unreadable or truncated image"):
        ds[0]


def test_empty_pairs_file_is_input_error(tmp_path: Path) -> None:
    images, ann, _ = _dataset_files(tmp_path)
    pairs = write_pairs(tmp_path / "none.csv", [])
    with pytest.raises(InputError, match="none.csv: holds no pairs"):
        PairDataset(images, ann, pairs, H, W)


# --------------------------------------------------------------------------------------------
# Joints outside the image


def _outside_files(root: Path) -> tuple[Path, Path, Path]:
    kps = {n: _kps(i) for i, n in enumerate(NAMES)}
    kps[NAMES[0]][4] = (H + 5, 3)  # right wrist below the image
    kps[NAMES[0]][7] = (6, -2)  # left wrist left of it
    return _dataset_files(root, kps)


def test_joints_outside_the_image_become_missing(tmp_path: Path) -> None:
    images, ann, pairs = _outside_files(tmp_path)
    with pytest.warns(KeypointWarning):
        ds = PairDataset(images, ann, pairs, H, W)
    item = ds[0]
    kps = item["src_kps"].numpy()
    assert kps[4].tolist() == [MISSING, MISSING] and kps[7].tolist() == [MISSING, MISSING]
    assert item["src_pose"][4].sum() == 0 and item["src_pose"][7].sum() == 0
    # Only the joints off the image change: the others are drawn as keypoints_to_heatmaps does.
    inside = [j for j in range(18) if j not in (4, 7)]
    raw = _kps(0)
    assert np.array_equal(kps[inside], raw[inside])
    expected = keypoints_to_heatmaps(raw, H, W)[inside]
    assert torch.equal(item["src_pose"][inside], expected)


def test_joints_outside_the_image_warn_once_naming_file_and_row(tmp_path: Path) -> None:
    images, ann, pairs = _outside_files(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PairDataset(images, ann, pairs, H, W)
    found = [w for w in caught if issubclass(w.category, KeypointWarning)]
    assert len(found) == 1
    message = str(found[0].message)
    assert "ann.csv: 1 row(s)" in message and "32x16" in message
    assert f"row 2 ({NAMES[0]}: right_wrist, left_wrist)" in message


# --------------------------------------------------------------------------------------------
# dataset_from_config


def test_dataset_from_config_resolves_paths_against_root(tmp_path: Path) -> None:
    images, ann, pairs = _dataset_files(tmp_path)
    cfg = DataConfig(
        root=str(tmp_path),
        train_dir=images.name,
        train_annotations=ann.name,
        train_pairs=pairs.name,
        height=H,
        width=W,
    )
    ds = dataset_from_config(cfg, "train")
    assert ds.image_dir == images and ds.pairs == [(NAMES[0], NAMES[1]), NAMES[1:3]]


def test_dataset_from_config_takes_absolute_paths_as_they_are(tmp_path: Path) -> None:
    images, ann, pairs = _dataset_files(tmp_path / "elsewhere")
    cfg = DataConfig(
        root=str(tmp_path / "root-not-used"),
        test_dir=str(images),
        test_annotations=str(ann),
        test_pairs=str(pairs),
        height=H,
        width=W,
        sigma=2.0,
    )
    ds = dataset_from_config(cfg, "test")
    assert ds.image_dir == images and (ds.height, ds.width, ds.sigma) == (H, W, 2.0)


def test_dataset_from_config_names_a_missing_root(tmp_path: Path) -> None:
    cfg = DataConfig(root=str(tmp_path / "nowhere"), height=H, width=W)
    with pytest.raises(InputError, match="nowhere"):
        dataset_from_config(cfg, "train")


def test_dataset_from_config_rejects_an_unknown_split(tmp_path: Path) -> None:
    cfg = DataConfig(root=str(tmp_path), height=H, width=W)
    with pytest.raises(ValueError, match="split must be train or test"):
        dataset_from_config(cfg, "val")


@pytest.mark.parametrize("legacy", [False, True])
def test_batch_heatmaps_equal_the_datasets(tiny_root, legacy):
    from torch.utils.data import DataLoader

    from posetransfer.config import load_config
    from posetransfer.data.datasets import add_heatmaps, dataset_from_config

    overrides = [f"data.root={tiny_root}", f"data.legacy_heatmaps={legacy}"]
    data_cfg = load_config("synthetic", overrides).data
    with_maps = dataset_from_config(data_cfg, "train")
    without = dataset_from_config(data_cfg, "train", heatmaps=False)
    assert "src_pose" not in without[0]
    batch = add_heatmaps(next(iter(DataLoader(without, batch_size=4))), data_cfg)
    expected = torch.stack([with_maps[i]["tgt_pose"] for i in range(4)])
    assert torch.equal(batch["tgt_pose"], expected)
    assert torch.equal(batch["src_pose"][1], with_maps[1]["src_pose"])
