"""Metric accumulators of the evaluation runner: each collects what it needs batch by batch.

A metric sees batches of `Sample` (one evaluated pair each) through ``update`` and reports a
dict at the end (``{"value": ..., "n": ...}`` or ``{"unavailable": ...}``) from ``result``.
torch is imported where a network metric runs, not at import time.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from posetransfer.core.files import atomic_save, list_images
from posetransfer.core.files import try_read_image as read_rgb
from posetransfer.errors import InputError
from posetransfer.metrics import image as image_metrics
from posetransfer.metrics.pckh import pckh_counts
from posetransfer.metrics.weights import MetricUnavailable
from posetransfer.pose import drop_outside, visible


@dataclass
class Sample:
    """One evaluated pair: the generated image, its ground truth and the target keypoints."""

    name: str
    src: str
    tgt: str
    fake: np.ndarray  # [H, W, 3] uint8
    real: np.ndarray  # [H, W, 3] uint8
    tgt_kps: np.ndarray | None  # [18, 2] (y, x), -1 missing; None when not annotated


def groups_by_shape(images: Sequence[np.ndarray]) -> list[list[int]]:
    """Indices of ``images`` grouped by shape, so that each group stacks into one batch."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(img.shape, []).append(i)
    return list(groups.values())


def to_tensor(images: Sequence[np.ndarray], device: Any):
    """Stack same-size uint8 (H, W, 3) images into a uint8 tensor [N, 3, H, W] on ``device``."""
    import torch

    arr = np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))  # [N, 3, H, W]
    return torch.from_numpy(arr).to(device)


# --------------------------------------------------------------------------------------------
# Metrics: each collects what it needs batch by batch and reports a dict at the end.


class Metric:
    """Base of the accumulators: ``update`` per batch, ``result`` once, ``close`` at the end.

    A metric defined per pair also keeps each pair's value in ``by_pair`` (sample name ->
    value), for the per-pair CSV; set-level metrics (IS, FID) leave it empty.
    """

    by_pair: Mapping[str, float] = MappingProxyType({})

    def update(self, batch: list[Sample]) -> None:
        raise NotImplementedError

    def result(self) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the metric holds (e.g. a MediaPipe graph)."""


def _record(by_pair: dict[str, float], batch: list[Sample], idx: list[int], values) -> None:
    """Store ``values`` (one per ``batch[i]`` for i in ``idx``) under the samples' names."""
    by_pair.update((batch[i].name, float(v)) for i, v in zip(idx, values, strict=True))


class PerPairMean(Metric):
    """Mean of a per-pair function (SSIM, mask-SSIM, L1)."""

    def __init__(self, fn: Callable[[Sample], float | None]) -> None:
        self.fn = fn
        self.values: list[float] = []
        self.by_pair: dict[str, float] = {}
        self.skipped = 0

    def update(self, batch: list[Sample]) -> None:
        for s in batch:
            v = self.fn(s)
            if v is None:
                self.skipped += 1
            else:
                self.values.append(v)
                self.by_pair[s.name] = float(v)

    def result(self) -> dict[str, Any]:
        if not self.values:
            return {"unavailable": "no pair could be evaluated"}
        out: dict[str, Any] = {"value": float(np.mean(self.values)), "n": len(self.values)}
        if self.skipped:
            out["skipped_no_annotation"] = self.skipped
        return out


def masked_pair(s: Sample) -> tuple[np.ndarray, np.ndarray] | None:
    if s.tgt_kps is None:
        return None
    mask = image_metrics.body_mask(s.tgt_kps, *s.real.shape[:2])
    return image_metrics.apply_mask(s.fake, mask), image_metrics.apply_mask(s.real, mask)


class InceptionScoreMetric(Metric):
    def __init__(self, classifier: Callable, masked: bool, pad: bool, device: Any) -> None:
        from posetransfer.metrics.inception import InceptionScoreAccumulator

        self.acc = InceptionScoreAccumulator(classifier)
        self.acc.metric.to(device)
        self.masked, self.pad, self.device = masked, pad, device
        self.skipped = 0

    def update(self, batch: list[Sample]) -> None:
        images = []
        for s in batch:
            if self.masked:
                pair = masked_pair(s)
                if pair is None:
                    self.skipped += 1
                    continue
                images.append(pair[0])
            else:
                images.append(image_metrics.pad_fashion(s.fake) if self.pad else s.fake)
        for idx in groups_by_shape(images):
            self.acc.update(to_tensor([images[i] for i in idx], self.device))

    def result(self) -> dict[str, Any]:
        if self.acc.count == 0:
            return {"unavailable": "no image could be evaluated"}
        mean, std = self.acc.compute()
        out: dict[str, Any] = {"value": mean, "std": std, "n": self.acc.count}
        out["splits"] = min(self.acc.metric.splits, self.acc.count)
        if self.skipped:
            out["skipped_no_annotation"] = self.skipped
        return out


# FID's sample sizes. FID fits a Gaussian to the 2048-d Inception features of each set: below
# 2048 images the covariance estimate is rank-deficient, and at any finite size the estimate is
# biased upwards by a term that shrinks roughly as 1/N, so FIDs over different numbers of images
# cannot be compared and FIDs over a few dozen images say nothing about the generator.
FID_RELIABLE_IMAGES = 2048
FID_MEANINGLESS_IMAGES = 50


def fid_sample_warning(n_generated: int, n_real: int | None = None) -> str | None:
    """The report's warning for an FID over too few images, or None from 2048 images on.

    Args:
        n_generated: generated images the FID was computed from.
        n_real: real images of the statistics, if known.
    """
    if n_generated < FID_MEANINGLESS_IMAGES:
        text = (
            f"computed from only {n_generated} generated images: an FID from fewer than "
            f"{FID_MEANINGLESS_IMAGES} images is meaningless (its small-sample bias dominates "
            "the value); do not report it"
        )
    elif n_generated < FID_RELIABLE_IMAGES:
        text = (
            f"computed from {n_generated} generated images, fewer than the "
            f"{FID_RELIABLE_IMAGES} feature dimensions: the covariance is rank-deficient and "
            "FID is biased upwards for small sets; compare it only with FIDs over the same "
            "number of images (papers use the whole test set)"
        )
    else:
        text = None
    if n_real is not None and 0 < n_real < FID_RELIABLE_IMAGES:
        real = f"the real set has only {n_real} images (fewer than {FID_RELIABLE_IMAGES})"
        text = f"{text}; {real}" if text else real
    return text


class FIDMetric(Metric):
    """FID between the generated images and a real set (a folder, or cached statistics).

    The real statistics come from ``real_stats`` when that file exists, else from the images
    of ``real_dir`` (and are then written to ``real_stats``, atomically, when it is given).
    Below `FID_RELIABLE_IMAGES` generated images the result carries a ``warning`` (see
    `fid_sample_warning`): FID is only meaningful over thousands of images.
    """

    def __init__(
        self,
        network: Callable,
        real_dir: Path | None,
        real_stats: Path | None,
        device: Any,
        batch_size: int,
        progress: bool,
    ) -> None:
        self.network, self.real_dir, self.real_stats = network, real_dir, real_stats
        self.device, self.batch_size, self.progress = device, batch_size, progress
        self.fake: list[np.ndarray] = []

    def _features(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        out = []
        with torch.no_grad():
            for idx in groups_by_shape(images):
                feats = self.network(to_tensor([images[i] for i in idx], self.device))
                out.append(feats.detach().cpu().numpy().astype(np.float64))
        return out

    def update(self, batch: list[Sample]) -> None:
        self.fake.extend(self._features([s.fake for s in batch]))

    def _cached_statistics(self, path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, TypeError) as e:
            # TypeError: a plain .npy file loads as one array, not an archive of named ones.
            raise InputError(
                f"{path}: unreadable FID statistics ({type(e).__name__}: {e}); delete the "
                "file to compute them again"
            )
        if "mu" not in arrays or "sigma" not in arrays:
            raise InputError(f"{path}: not a statistics file (no mu/sigma)")
        n = int(arrays["n"]) if "n" in arrays else -1
        return arrays["mu"], arrays["sigma"], {"real_stats": str(path), "n_real": n}

    def _real_statistics(self) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        from tqdm import tqdm

        from posetransfer.metrics.inception import feature_statistics

        if self.real_stats is not None and self.real_stats.is_file():
            return self._cached_statistics(self.real_stats)
        assert self.real_dir is not None
        paths = list_images(self.real_dir)
        feats, unreadable = [], []
        bar = tqdm(total=len(paths), desc="FID real set", unit="img", disable=not self.progress)
        for start in range(0, len(paths), self.batch_size):
            chunk = paths[start : start + self.batch_size]
            images = []
            for p in chunk:
                arr = read_rgb(p)
                if arr is None:
                    unreadable.append(p.name)
                else:
                    images.append(arr)
            if images:
                feats.extend(self._features(images))
            bar.update(len(chunk))
        bar.close()
        real = np.concatenate(feats) if feats else np.zeros((0, 1))
        if real.shape[0] < 2:
            raise MetricUnavailable(f"fewer than 2 readable real images in {self.real_dir}")
        mu, sigma = feature_statistics(real)
        info: dict[str, Any] = {"real_dir": str(self.real_dir), "n_real": int(real.shape[0])}
        if unreadable:
            info["real_unreadable"] = {"count": len(unreadable), "files": unreadable}
        if self.real_stats is not None:
            atomic_save(self.real_stats, lambda f: np.savez(f, mu=mu, sigma=sigma, n=len(real)))
            info["real_stats"] = str(self.real_stats)
        return mu, sigma, info

    def result(self) -> dict[str, Any]:
        from posetransfer.metrics.inception import feature_statistics, frechet_distance

        fake = np.concatenate(self.fake) if self.fake else np.zeros((0, 1))
        if fake.shape[0] < 2:
            return {"unavailable": "FID needs at least 2 generated images"}
        try:
            mu_r, sigma_r, info = self._real_statistics()
        except MetricUnavailable as e:
            return {"unavailable": str(e)}
        mu_f, sigma_f = feature_statistics(fake)
        if mu_r.shape != mu_f.shape:
            return {
                "unavailable": f"real statistics have {mu_r.shape[0]} features, not {mu_f.shape[0]}"
            }
        value = frechet_distance(mu_r, sigma_r, mu_f, sigma_f)
        out: dict[str, Any] = {"value": value, "n": int(fake.shape[0]), **info}
        warning = fid_sample_warning(out["n"], info["n_real"])
        if warning:
            out["warning"] = warning
        return out


class LPIPSMetric(Metric):
    def __init__(self, model: Callable, device: Any) -> None:
        self.model, self.device = model, device
        self.values: list[np.ndarray] = []
        self.by_pair: dict[str, float] = {}

    def update(self, batch: list[Sample]) -> None:
        from posetransfer.metrics.perceptual import lpips_distance

        for idx in groups_by_shape([s.fake for s in batch]):
            fake = to_tensor([batch[i].fake for i in idx], self.device)
            real = to_tensor([batch[i].real for i in idx], self.device)
            values = lpips_distance(self.model, fake, real).detach().cpu().numpy().reshape(-1)
            self.values.append(values)
            _record(self.by_pair, batch, idx, values)

    def result(self) -> dict[str, Any]:
        values = np.concatenate(self.values) if self.values else np.zeros(0)
        if values.size == 0:
            return {"unavailable": "no pair could be evaluated"}
        return {"value": float(values.mean()), "n": int(values.size)}


class DetectionScoreMetric(Metric):
    def __init__(self, detector: Callable, device: Any) -> None:
        self.detector, self.device = detector, device
        self.values: list[np.ndarray] = []
        self.by_pair: dict[str, float] = {}

    def update(self, batch: list[Sample]) -> None:
        from posetransfer.metrics.detect import top_person_scores

        for idx in groups_by_shape([s.fake for s in batch]):
            images = to_tensor([batch[i].fake for i in idx], self.device)
            values = np.asarray(top_person_scores(self.detector, images)).reshape(-1)
            self.values.append(values)
            _record(self.by_pair, batch, idx, values)

    def result(self) -> dict[str, Any]:
        values = np.concatenate(self.values) if self.values else np.zeros(0)
        if values.size == 0:
            return {"unavailable": "no image could be evaluated"}
        return {"value": float(values.mean()), "n": int(values.size)}


class PCKhMetric(Metric):
    def __init__(
        self,
        predict: Callable[[Sample], np.ndarray | None],
        source: str,
        alpha: float = 0.5,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.predict, self.source, self.alpha, self._close = predict, source, alpha, close
        self.correct = self.total = self.pairs = self.skipped = 0
        self.no_annotation = self.no_keypoints = self.no_person = 0
        self.counts_by_pair: dict[str, tuple[int, int]] = {}
        """(correct, total) joints of each pair: the report's PCKh is their sums' ratio."""

    def update(self, batch: list[Sample]) -> None:
        for s in batch:
            if s.tgt_kps is None:
                self.no_annotation += 1
                continue
            pred = self.predict(s)
            if pred is None:  # not in the keypoint file: every joint counts as missed
                self.no_keypoints += 1
                pred = np.full((18, 2), -1, dtype=np.int64)
            # A target joint off the image cannot be found in it: it does not count.
            tgt = drop_outside(s.tgt_kps, *s.real.shape[:2])
            correct, total = pckh_counts(pred, tgt, self.alpha)
            if total[0] == 0:
                self.skipped += 1
                continue
            self.pairs += 1
            self.no_person += int(not visible(pred).any())
            self.correct += int(correct[0])
            self.total += int(total[0])
            self.counts_by_pair[s.name] = (int(correct[0]), int(total[0]))

    @property
    def by_pair(self) -> dict[str, float]:
        """Each pair's share of correct joints."""
        return {name: c / n for name, (c, n) in self.counts_by_pair.items()}

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def result(self) -> dict[str, Any]:
        if self.total == 0:
            return {"unavailable": "no pair whose target has at least 2 head joints"}
        out: dict[str, Any] = {
            "value": self.correct / self.total,
            "correct": self.correct,
            "total": self.total,
            "n": self.pairs,
            "skipped_few_head_joints": self.skipped,
            "keypoints": self.source,
        }
        if self.no_keypoints:
            out["no_keypoints"] = self.no_keypoints
        if self.no_person:
            out["no_person_detected"] = self.no_person
        if self.no_person == self.pairs:
            # 0.000 then says nothing about the poses: the estimator saw no one at all.
            out["warning"] = (
                f"no person was detected in any of the {self.pairs} generated images "
                f"({self.source}): the PCKh of 0 measures the detection, not the poses"
            )
        elif self.no_person:
            out["warning"] = (
                f"no person was detected in {self.no_person} of the {self.pairs} generated "
                f"images ({self.source}); their joints count as missed"
            )
        if self.no_annotation:
            out["skipped_no_annotation"] = self.no_annotation
        return out
