"""One evaluation run over a folder of generated images: the paper's metrics and later ones.

``evaluate(...)`` reads the pairs file, finds each generated image ``<from stem>___<to stem>.png``
and its ground truth ``ROOT/<split>/<to name>``, streams them in batches through the requested
metrics and returns a report dict; `posetransfer.metrics.report.write_report` saves it as JSON
plus a Markdown table.
Images that are missing, unreadable or of the wrong size are listed by name and left out; the
rest is still evaluated. A metric whose network weights are missing is reported as
``unavailable: <how to get them>`` while the others run.

Importing this module is cheap; torch and the networks are imported when a run needs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posetransfer.device import resolve_device
from posetransfer.errors import InputError, require_dir, require_file
from posetransfer.files import IMAGE_SUFFIXES, generated_name
from posetransfer.metrics import image as image_metrics
from posetransfer.metrics.collect import (
    DetectionScoreMetric,
    FIDMetric,
    InceptionScoreMetric,
    LPIPSMetric,
    Metric,
    PCKhMetric,
    PerPairMean,
    Sample,
    masked_pair,
    read_rgb,
)
from posetransfer.metrics.weights import ALIASES, WEIGHTS, MetricUnavailable, resolve

ALL_METRICS: tuple[str, ...] = (
    "ssim", "mask_ssim", "l1", "is", "mask_is", "fid", "lpips", "ds", "pckh",
)  # fmt: skip
PROTOCOLS: dict[str, tuple[str, ...]] = {
    # The paper's Table 1 (mask-SSIM / mask-IS were reported for Market-1501 only).
    "paper": ("ssim", "is", "mask_ssim", "mask_is", "ds", "pckh"),
    # GFLA, NTED, PIDM, CFLD: FID against the training images, LPIPS, unpadded SSIM.
    "modern": ("ssim", "fid", "lpips"),
}
PROBLEM_KINDS: tuple[str, ...] = (
    "missing", "unreadable", "wrong_size", "missing_reference", "unreadable_reference",
)  # fmt: skip


def parse_metrics(metrics: str | Sequence[str] | None, protocol: str) -> tuple[str, ...]:
    """The metric names to compute: a comma list or sequence, ``all``, or the protocol's set.

    Raises:
        InputError: for an unknown protocol or metric name.
    """
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if metrics is None:
        return PROTOCOLS[protocol]
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = [n.strip().lower().replace("-", "_") for n in names if n.strip()]
    if names == ["all"]:
        return ALL_METRICS
    unknown = [n for n in names if n not in ALL_METRICS]
    if unknown or not names:
        raise InputError(
            f"unknown metric(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(ALL_METRICS)} or 'all'"
        )
    return tuple(dict.fromkeys(names))


# --------------------------------------------------------------------------------------------
# Images


def find_generated(folder: Path, src: str, tgt: str) -> Path | None:
    """The generated image of a pair: ``<from>___<to>.png``, or the same stem as jpg/jpeg/..."""
    stem = Path(generated_name(src, tgt)).stem
    for suffix in IMAGE_SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def resolve_reference_dir(root: Path, split: str, targets: Iterable[str]) -> Path:
    """The folder of ground-truth images: ``root/split``, or ``root`` itself if it holds them.

    Raises:
        InputError: when neither holds the first target image.
    """
    candidate = root / split
    if candidate.is_dir():
        return candidate
    first = next(iter(targets), None)
    if first is not None and (root / first).is_file():
        return root
    raise InputError(
        f"no folder {candidate} with the ground-truth images (and {root} does not hold them "
        f"either); pass the dataset root that contains '{split}/', or --split NAME"
    )


# --------------------------------------------------------------------------------------------
# Setting the metrics up: load networks (or take injected ones), or say why they cannot run.


@dataclass
class _Setup:
    weights: Mapping[str, Path]  # explicit weights files by network name
    networks: Mapping[str, Any]  # injected, already-built networks by name
    device: Any
    download: bool
    _cache: dict[str, Any] = field(default_factory=dict)

    def network(self, name: str, loader: Callable[[Path, Any], Any]) -> Any:
        """An injected network, or the one loaded from the weights of ``name`` (loaded once)."""
        if name in self.networks:
            return self.networks[name]
        if name not in self._cache:
            path = resolve(name, self.weights.get(name), self.download)
            self._cache[name] = loader(path, self.device)
        return self._cache[name]


def _keypoint_predictor(
    keypoints: Path | None, networks: Mapping[str, Any]
) -> tuple[Callable[[Sample], np.ndarray | None], str, Callable[[], None] | None]:
    if "keypoints" in networks:
        detect = networks["keypoints"]
        return (lambda s: np.asarray(detect(s.fake))), "injected estimator", None
    if keypoints is not None:
        from posetransfer.pose import read_annotations

        table = read_annotations(keypoints)
        by_stem = {Path(name).stem: kps for name, kps in table.items()}

        def lookup(s: Sample) -> np.ndarray | None:
            return table.get(s.name, by_stem.get(Path(s.name).stem))

        return lookup, f"keypoint file {keypoints}", None
    try:
        from posetransfer.photos.detect import KeypointDetector

        detector = KeypointDetector()
    except (ImportError, InputError) as e:
        raise MetricUnavailable(
            f"no pose estimator ({e}); install mediapipe (pip install 'posetransfer[keypoints]') "
            "or pass --keypoints CSV with the keypoints of the generated images"
        )
    close = getattr(detector, "close", None)
    return (lambda s: np.asarray(detector(s.fake))), "MediaPipe BlazePose", close


def _make_metric(
    name: str,
    setup: _Setup,
    *,
    pad: bool,
    real_dir: Path | None,
    real_dir_hint: str,
    real_stats: Path | None,
    keypoints: Path | None,
    has_annotations: bool,
    batch_size: int,
    progress: bool,
) -> Metric:
    if name in ("mask_ssim", "mask_is", "pckh") and not has_annotations:
        raise MetricUnavailable("needs the target keypoints: pass --annotations CSV")
    if name == "ssim":
        if pad:
            return PerPairMean(
                lambda s: image_metrics.ssim(
                    image_metrics.pad_fashion(s.fake), image_metrics.pad_fashion(s.real)
                )
            )
        return PerPairMean(lambda s: image_metrics.ssim(s.fake, s.real))
    if name == "mask_ssim":

        def masked_ssim(s: Sample) -> float | None:
            pair = masked_pair(s)
            return None if pair is None else image_metrics.ssim(*pair)

        return PerPairMean(masked_ssim)
    if name == "l1":
        return PerPairMean(lambda s: image_metrics.l1(s.fake, s.real))
    if name in ("is", "mask_is"):
        from posetransfer.metrics.inception import load_inception_classifier

        classifier = setup.network("inception", load_inception_classifier)
        return InceptionScoreMetric(
            classifier, masked=name == "mask_is", pad=pad, device=setup.device
        )
    if name == "fid":
        from posetransfer.metrics.inception import load_fid_network

        have_stats = real_stats is not None and real_stats.is_file()
        if real_dir is None and not have_stats:
            raise MetricUnavailable(f"no real images: {real_dir_hint}")
        net = setup.network("fid", load_fid_network)
        return FIDMetric(net, real_dir, real_stats, setup.device, batch_size, progress)
    if name == "lpips":
        from posetransfer.metrics.perceptual import load_lpips

        model = setup.network("alexnet", load_lpips)
        return LPIPSMetric(model, setup.device)
    if name == "ds":
        from posetransfer.metrics.detect import load_person_detector

        detector = setup.network("ssd", load_person_detector)
        return DetectionScoreMetric(detector, setup.device)
    if name == "pckh":
        predict, source, close = _keypoint_predictor(keypoints, setup.networks)
        return PCKhMetric(predict, source, close=close)
    raise AssertionError(name)


# --------------------------------------------------------------------------------------------
# The run


def _iter_batches(
    pairs: Sequence[tuple[str, str]],
    generated_dir: Path,
    reference_dir: Path,
    annotations: Mapping[str, np.ndarray] | None,
    batch_size: int,
    problems: dict[str, list],
    progress: bool,
) -> Iterator[list[Sample]]:
    from tqdm import tqdm

    batch: list[Sample] = []
    for src, tgt in tqdm(pairs, desc="evaluate", unit="pair", disable=not progress):
        name = generated_name(src, tgt)
        gen_path = find_generated(generated_dir, src, tgt)
        if gen_path is None:
            problems["missing"].append(name)
            continue
        ref_path = reference_dir / tgt
        if not ref_path.is_file():
            problems["missing_reference"].append(str(ref_path))
            continue
        fake = read_rgb(gen_path)
        if fake is None:
            problems["unreadable"].append(gen_path.name)
            continue
        real = read_rgb(ref_path)
        if real is None:
            problems["unreadable_reference"].append(str(ref_path))
            continue
        if fake.shape != real.shape:
            problems["wrong_size"].append(
                {
                    "file": gen_path.name,
                    "size": list(fake.shape[:2]),
                    "expected": list(real.shape[:2]),
                }
            )
            continue
        kps = annotations.get(tgt) if annotations is not None else None
        batch.append(Sample(gen_path.name, src, tgt, fake, real, kps))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _network_keys(mapping: Mapping[str, Any], what: str, convert: Callable) -> dict[str, Any]:
    """Normalise ``{name or alias: value}`` to the network names of `weights.WEIGHTS`."""
    out = {}
    for key, value in mapping.items():
        name = "keypoints" if key == "keypoints" and what == "networks" else ALIASES.get(key)
        if name is None:
            raise InputError(f"{what}: unknown network {key!r}; known: {', '.join(WEIGHTS)}")
        out[name] = convert(value)
    return out


def evaluate(
    generated_dir: str | Path,
    dataset_root: str | Path,
    annotations: str | Path | None,
    pairs: str | Path,
    metrics: str | Sequence[str] | None = None,
    protocol: str = "modern",
    *,
    split: str = "test",
    real_dir: str | Path | None = None,
    real_stats: str | Path | None = None,
    keypoints: str | Path | None = None,
    weights: Mapping[str, str | Path] | None = None,
    networks: Mapping[str, Any] | None = None,
    device: str | None = None,
    batch_size: int = 16,
    download: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a folder of generated images against the ground truth of a pairs file.

    Args:
        generated_dir: folder of generated images named ``<from stem>___<to stem>.png``.
        dataset_root: dataset folder; ground truth is ``dataset_root/<split>/<to name>``.
        annotations: annotation CSV with the target keypoints (needed by mask-SSIM, mask-IS
            and PCKh); None to skip those.
        pairs: pairs CSV (``from,to``) listing the pairs to evaluate.
        metrics: names (see `ALL_METRICS`) as a sequence or comma list, ``"all"``, or None for
            the protocol's set (`PROTOCOLS`).
        protocol: ``"paper"`` pads DeepFashion-size (256x176) images with white to 256x256
            before SSIM and IS; ``"modern"`` pads nothing. Also picks the default metrics.
        split: folder under ``dataset_root`` holding the ground truth.
        real_dir: real images for FID; default ``dataset_root/train``.
        real_stats: ``.npz`` cache of the real set's FID statistics: read if it exists,
            written after computing them otherwise.
        keypoints: annotation-format CSV of keypoints estimated on the *generated* images
            (names: the generated file names) for PCKh; default: run the project's
            `KeypointDetector` (MediaPipe) on them.
        weights: ``{network: path}`` for ``inception``, ``fid``, ``alexnet``, ``ssd``
            (default: the libraries' caches).
        networks: already-built networks that replace loading (tests, custom setups):
            ``inception`` (uint8 [N,3,H,W] -> logits), ``fid`` (uint8 [N,3,H,W] -> features),
            ``alexnet`` (an LPIPS module), ``ssd`` (torchvision-style detector),
            ``keypoints`` (uint8 (H, W, 3) image -> (18, 2) keypoints).
        device: ``"cpu"``, ``"cuda"``...; default CUDA when available.
        batch_size: images per network call.
        download: let missing weights be downloaded into torch hub's cache (needs internet).
        progress: show tqdm progress bars.

    Returns:
        A JSON-serialisable report: ``results`` maps each metric to ``{"value": ..., ...}`` or
        ``{"unavailable": "<why and how to fix>"}``; ``problems`` lists the images left out.

    Raises:
        InputError: for a missing folder or file, a malformed CSV, an unknown metric.
    """
    t0 = time.perf_counter()
    names = parse_metrics(metrics, protocol)
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    generated_dir = require_dir(generated_dir, "generated image folder")
    root = require_dir(dataset_root, "dataset root")
    from posetransfer.pose import read_annotations, read_pairs

    pair_list = read_pairs(pairs)
    if not pair_list:
        raise InputError(f"{pairs}: no pairs")
    table = read_annotations(annotations) if annotations is not None else None
    reference_dir = resolve_reference_dir(root, split, (t for _, t in pair_list))
    if real_dir is not None:
        real = require_dir(real_dir, "real image folder (--real-dir)")
        real_hint = str(real)
    else:
        real = root / "train" if (root / "train").is_dir() else None
        real_hint = f"{root / 'train'} not found; pass --real-dir DIR (or --real-stats NPZ)"
    if keypoints is not None:
        keypoints = require_file(keypoints, "keypoint file (--keypoints)")
    device = resolve_device(device)  # the device really used is what the report records
    weight_paths = _network_keys(weights or {}, "weights", Path)
    built = _network_keys(networks or {}, "networks", lambda v: v)
    setup = _Setup(weight_paths, built, device, download)
    pad = protocol == "paper"

    # Set up each metric, or record why it cannot run.
    active: dict[str, Metric] = {}
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            active[name] = _make_metric(
                name,
                setup,
                pad=pad,
                real_dir=real,
                real_dir_hint=real_hint,
                real_stats=Path(real_stats) if real_stats is not None else None,
                keypoints=keypoints,
                has_annotations=table is not None,
                batch_size=batch_size,
                progress=progress,
            )
        except (MetricUnavailable, InputError) as e:
            results[name] = {"unavailable": str(e)}

    # Stream the pairs through the metrics.
    problems: dict[str, list] = {kind: [] for kind in PROBLEM_KINDS}
    evaluated = 0
    batches = _iter_batches(
        pair_list, generated_dir, reference_dir, table, batch_size, problems, progress
    )
    try:
        for batch in batches:
            evaluated += len(batch)
            for metric in active.values():
                metric.update(batch)
        for name, metric in active.items():
            if evaluated == 0:
                results[name] = {"unavailable": "no generated image could be evaluated"}
                continue
            try:
                results[name] = metric.result()
            except (MetricUnavailable, InputError) as e:
                results[name] = {"unavailable": str(e)}
    finally:
        for metric in active.values():
            metric.close()

    return {
        "protocol": protocol,
        "padding": "DeepFashion 256x176 -> 256x256 white, before SSIM and IS" if pad else "none",
        "metrics": list(names),
        "generated_dir": str(generated_dir),
        "reference_dir": str(reference_dir),
        "pairs_file": str(pairs),
        "pairs": len(pair_list),
        "evaluated": evaluated,
        "problems": {kind: {"count": len(v), "files": v} for kind, v in problems.items()},
        "results": {name: results[name] for name in names},
        "device": str(device),
        "seconds": round(time.perf_counter() - t0, 2),
    }
