"""The paired dataset: condition image, target image and both poses as heatmaps.

Reads the public layout of Market-1501 and DeepFashion (and of the synthetic set, which mirrors
it): an image folder, an annotation CSV and a pairs CSV. Heatmaps are computed on the fly from the
keypoints; no precomputed heatmap files are needed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from posetransfer.core.files import read_image
from posetransfer.errors import InputError, require_dir
from posetransfer.pose import drop_outside, keypoints_to_heatmaps, read_annotations, read_pairs
from posetransfer.pose.masks import body_mask

if TYPE_CHECKING:
    from posetransfer.config import DataConfig


def image_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float [3, H, W] in [-1, 1]."""
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).permute(2, 0, 1).float() / 127.5 - 1.0


def tensor_to_image(t: torch.Tensor) -> np.ndarray:
    """float [3, H, W] in [-1, 1] -> uint8 (H, W, 3), rounded as the authors' saving code."""
    arr = ((t.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).permute(1, 2, 0).numpy()
    return np.round(arr).astype(np.uint8)


class PairDataset(Dataset):
    """Pairs (condition, target) of one person, with both poses as heatmaps.

    Each item is a dict with ``src_img``, ``tgt_img`` [3, H, W] in [-1, 1], ``src_pose``,
    ``tgt_pose`` [18, H, W] heatmaps, ``src_kps``, ``tgt_kps`` (18, 2) and ``src_name``,
    ``tgt_name``. Items are in the pairs file's order; training shuffles with a sampler.

    Joints annotated outside the H x W image are missing (-1) in both the heatmaps and the
    returned keypoints, and the annotation file gets one `posetransfer.pose.KeypointWarning`
    naming its first such rows. A joint off the image is not seen in it, so the generator should
    not be told where it is. The authors' code kept the Gaussian tail of such joints in its
    heatmaps; that differs from this only for joints outside the image.

    Args:
        image_dir: folder of the images.
        annotations: annotation CSV (``name:keypoints_y:keypoints_x``).
        pairs: pairs CSV (``from,to``).
        height: expected image height; other sizes raise InputError naming the file.
        width: expected image width.
        sigma: heatmap Gaussian sigma.
        legacy_heatmaps: the authors' uint8-truncated DeepFashion heatmaps.
        check_files: check up front that every image named in a pair exists.
        body_masks: also return ``tgt_mask`` [1, H, W], the target's body mask
            (`posetransfer.metrics.body_mask`, 1 inside) for the body-mask L1 loss.
        heatmaps: return ``src_pose`` and ``tgt_pose``. Training turns this off and renders
            them from the keypoints on its device, a batch at a time (`add_heatmaps`): 36
            float32 maps are 6.5 MB per pair at 256x176, which the loader would otherwise
            compute, collate and copy.
        cache_mb: keep up to this many MB of decoded images and body masks in memory, in each
            process that loads (the training process, or each DataLoader worker); 0 reads every
            image from disk each time. An image is in ~20 pairs of an epoch: decoding it once
            is most of what a loader does on a small CPU.
    """

    def __init__(
        self,
        image_dir: str | Path,
        annotations: str | Path,
        pairs: str | Path,
        height: int,
        width: int,
        sigma: float = 6.0,
        legacy_heatmaps: bool = False,
        check_files: bool = True,
        body_masks: bool = False,
        heatmaps: bool = True,
        cache_mb: float = 0,
    ):
        if cache_mb < 0:
            raise ValueError(f"cache_mb must be >= 0, got {cache_mb}")
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self._cache_left = int(cache_mb * 2**20)
        self.body_masks = body_masks
        self.heatmaps = heatmaps
        self.image_dir = require_dir(image_dir, "image folder")
        self.height, self.width = height, width
        self.sigma, self.legacy_heatmaps = sigma, legacy_heatmaps
        table = read_annotations(annotations, image_size=(height, width))
        self.annotations = {name: drop_outside(k, height, width) for name, k in table.items()}
        self.pairs = read_pairs(pairs, known=self.annotations)
        if not self.pairs:
            raise InputError(f"{pairs}: holds no pairs")
        if check_files:
            names = {n for pair in self.pairs for n in pair}
            missing = sorted(n for n in names if not (self.image_dir / n).is_file())
            if missing:
                raise InputError(
                    f"{pairs}: {len(missing)} image(s) named in pairs are missing from "
                    f"{self.image_dir}, e.g. {', '.join(missing[:3])}"
                )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        src_name, tgt_name = self.pairs[index]
        src_kps = self.annotations[src_name]
        tgt_kps = self.annotations[tgt_name]
        item = {
            "src_img": image_to_tensor(self._image(src_name)),
            "tgt_img": image_to_tensor(self._image(tgt_name)),
            "src_kps": torch.from_numpy(src_kps),
            "tgt_kps": torch.from_numpy(tgt_kps),
            "src_name": src_name,
            "tgt_name": tgt_name,
        }
        if self.heatmaps:
            item["src_pose"] = self._heatmaps(src_kps)
            item["tgt_pose"] = self._heatmaps(tgt_kps)
        if self.body_masks:
            mask = self._cached(
                "mask", tgt_name, lambda: body_mask(tgt_kps, self.height, self.width)
            )
            item["tgt_mask"] = torch.from_numpy(mask[None].astype(np.float32))
        return item

    def _image(self, name: str) -> np.ndarray:
        return self._cached(
            "image", name, lambda: read_image(self.image_dir / name, self.height, self.width)
        )

    def _cached(self, kind: str, name: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        """``make()``, kept while the cache has room (nothing is evicted: pairs are drawn at
        random, so any image is as likely next as another)."""
        key = (kind, name)
        value = self._cache.get(key)
        if value is None:
            value = make()
            if value.nbytes <= self._cache_left:
                value.setflags(write=False)
                self._cache[key] = value
                self._cache_left -= value.nbytes
        return value

    def _heatmaps(self, kps: np.ndarray) -> torch.Tensor:
        return keypoints_to_heatmaps(
            kps, self.height, self.width, self.sigma, legacy_uint8=self.legacy_heatmaps
        )


def split_file(root: str | Path, kind: str, split: str) -> Path:
    """The single ``*-<kind>-<split>.csv`` in a dataset root (e.g. market-pairs-test.csv).

    Args:
        root: the dataset root.
        kind: "annotation" or "pairs".
        split: "train" or "test".

    Raises:
        InputError: none or several match; it names the ``annotations`` / ``pairs`` argument to
            give instead.
    """
    root = Path(root)
    found = sorted(root.glob(f"*-{kind}-{split}.csv"))
    if len(found) != 1:
        what = "none" if not found else ", ".join(p.name for p in found)
        name = "annotations" if kind == "annotation" else "pairs"
        raise InputError(
            f"{root}: cannot pick the {kind} file of split {split!r} ({what} found); pass {name}",
            names=(name,),
        )
    return found[0]


def add_heatmaps(batch: dict, data_cfg: DataConfig) -> dict:
    """``src_pose`` and ``tgt_pose`` of a batch from its keypoints, on the keypoints' device.

    The same maps `PairDataset` would have returned (same sigma and style), computed for the
    whole batch at once where the batch is (the GPU in training).
    """
    for side in ("src", "tgt"):
        batch[f"{side}_pose"] = keypoints_to_heatmaps(
            batch[f"{side}_kps"],
            data_cfg.height,
            data_cfg.width,
            data_cfg.sigma,
            legacy_uint8=data_cfg.legacy_heatmaps,
        )
    return batch


def dataset_from_config(
    data_cfg: DataConfig,
    split: str,
    check_files: bool = True,
    body_masks: bool = False,
    heatmaps: bool = True,
    cache: bool = False,
) -> PairDataset:
    """The train or test PairDataset described by a `DataConfig`.

    Args:
        data_cfg: the data section of a run's config; its paths are relative to its root
            unless absolute.
        split: ``"train"`` or ``"test"``.
        check_files: check up front that every image named in a pair exists.
        body_masks: return the target's body mask too (see `PairDataset`).
        heatmaps: return the heatmaps (off: `add_heatmaps` makes them from a batch).
        cache: keep decoded images in memory, up to ``data_cfg.cache_mb``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, got {split!r}")
    return PairDataset(
        image_dir=data_cfg.path(f"{split}_dir"),
        annotations=data_cfg.path(f"{split}_annotations"),
        pairs=data_cfg.path(f"{split}_pairs"),
        height=data_cfg.height,
        width=data_cfg.width,
        sigma=data_cfg.sigma,
        legacy_heatmaps=data_cfg.legacy_heatmaps,
        check_files=check_files,
        body_masks=body_masks,
        heatmaps=heatmaps,
        cache_mb=data_cfg.cache_mb if cache else 0,
    )
