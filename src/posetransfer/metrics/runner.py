"""One evaluation run over a folder of generated images: the paper's metrics and later ones.

``evaluate(...)`` reads the pairs file, finds each generated image ``<from stem>___<to stem>.png``
and its ground truth ``ROOT/<split>/<to name>``, sets up the requested metrics from the registry
(`posetransfer.metrics.registry`), streams the pairs through them in batches and returns an
`EvaluationReport`; `posetransfer.metrics.report.write_report` saves it as JSON plus a Markdown
table. Images that are missing, unreadable or of the wrong size are listed by name and left
out; the rest is still evaluated. A metric whose network weights are missing is reported as
``unavailable: <how to get them>`` while the others run; a weights file the user gave that is
missing or wrong is an `InputError`, raised before any image is evaluated.

A folder written by `posetransfer generate` whose ``generate.json`` says it is incomplete (the
run was interrupted) is refused, naming the command that finishes it.

Annotation rows placing joints outside the images (the size of the first ground-truth image)
get one `posetransfer.pose.KeypointWarning`; PCKh leaves such target joints out.

Importing this module is cheap; torch and the networks are imported when a run needs them.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posetransfer.core.device import resolve_device
from posetransfer.core.files import (
    IMAGE_SUFFIXES,
    atomic_write,
    check_output,
    generated_name,
    image_size,
)
from posetransfer.core.report import Report
from posetransfer.data.generated import check_generated
from posetransfer.errors import InputError, require_dir, require_file
from posetransfer.metrics.collect import Metric, Sample, read_rgb
from posetransfer.metrics.registry import METRICS, PROTOCOLS, MetricContext, setup_metric
from posetransfer.metrics.weights import ALIASES, WEIGHTS, MetricUnavailable

# The built-in metrics (`posetransfer.metrics.registry`), in registration order; ``metrics=``
# accepts these and any metric registered later. The protocols' metric sets (`PROTOCOLS`) live
# in the registry too.
ALL_METRICS: tuple[str, ...] = tuple(METRICS)
PROBLEM_KINDS: tuple[str, ...] = (
    "missing",
    "unreadable",
    "wrong_size",
    "missing_reference",
    "unreadable_reference",
)


def parse_metrics(metrics: str | Sequence[str] | None, protocol: str) -> tuple[str, ...]:
    """The metric names to compute: a comma list or sequence, ``all``, or the protocol's set.

    Names are those of the registry (`posetransfer.metrics.registry.METRICS`).

    Raises:
        InputError: for an unknown protocol or metric name.
    """
    if protocol not in PROTOCOLS:
        raise InputError(
            f"protocol={protocol!r}: unknown protocol; choose one of {', '.join(PROTOCOLS)}",
            arg="protocol",
        )
    if metrics is None:
        return PROTOCOLS[protocol]
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = [n.strip().lower().replace("-", "_") for n in names if n.strip()]
    if names == ["all"]:
        return tuple(METRICS)
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise InputError(
            f"metrics={metrics!r}: unknown metric(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(METRICS)} or 'all'",
            arg="metrics",
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
        f"either); pass the dataset root that contains '{split}/', or name the split "
        "(split=NAME; --split NAME on the command line)"
    )


def _reference_size(reference_dir: Path, targets: Iterable[str]) -> tuple[int, int] | None:
    """(height, width) of the first ground-truth image found (from its header), or None."""
    for tgt in targets:
        path = reference_dir / tgt
        if path.is_file():
            return image_size(path)
    return None


# --------------------------------------------------------------------------------------------
# The run


@dataclass(frozen=True)
class EvaluationReport(Report):
    """What `evaluate` measured; `to_dict` is the JSON `metrics.report.write_report` saves."""

    protocol: str
    padding: str
    """What was padded before SSIM and IS ("none" but for the paper protocol)."""
    metrics: list[str]
    generated_dir: str
    reference_dir: str
    """The folder of the ground-truth images."""
    pairs_file: str
    pairs: int
    """Pairs in the pairs file."""
    evaluated: int
    """Pairs evaluated: the others are listed in `problems`."""
    problems: dict[str, dict[str, Any]]
    """Per kind (`PROBLEM_KINDS`): ``{"count": n, "files": [...]}`` of the images left out."""
    results: dict[str, dict[str, Any]]
    """Per metric: ``{"value": ..., ...}`` or ``{"unavailable": "<why and how to fix>"}``."""
    device: str
    seconds: float
    per_pair_csv: str | None = None
    """The per-pair CSV written beside the report (``per_pair``), if any."""


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
    per_pair: str | Path | None = None,
) -> EvaluationReport:
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
        per_pair: also write this CSV: one row per evaluated pair (``pair``, ``from``, ``to``)
            with every per-pair metric that ran (SSIM, mask-SSIM, L1, body L1, LPIPS, DS,
            PCKh; an empty cell where a pair has no value, e.g. no annotation). IS and FID are
            measures of the whole set and have no column.

    Returns:
        The report (`EvaluationReport`; ``to_dict()`` for JSON): ``results`` maps each metric
        to ``{"value": ..., ...}`` or ``{"unavailable": "<why and how to fix>"}``; ``problems``
        lists the images left out.

    Raises:
        InputError: for a missing folder or file, a malformed CSV, an unknown metric, a
            ``weights`` or ``keypoints`` file that is not what its metric needs, or a generated
            folder whose ``generate.json`` says it is incomplete.
    """
    t0 = time.perf_counter()
    names = parse_metrics(metrics, protocol)
    if batch_size < 1:
        raise InputError(f"batch_size={batch_size}: must be at least 1", arg="batch_size")
    device = resolve_device(device)  # the device really used is what the report records
    if per_pair is not None:  # refused now, not after the metrics
        reads = {
            "generated_dir": generated_dir,
            "dataset_root": dataset_root,
            "annotations": annotations,
            "pairs": pairs,
            "real_dir": real_dir,
            "real_stats": real_stats,
            "keypoints": keypoints,
            **{f"weights[{k}]": v for k, v in (weights or {}).items()},
        }
        per_pair = check_output(per_pair, reads, arg="per_pair", kind="file")
    generated_dir = require_dir(generated_dir, "generated image folder")
    check_generated(generated_dir)  # a folder whose generate run was cut short is refused
    root = require_dir(dataset_root, "dataset root")
    from posetransfer.pose import read_annotations, read_pairs

    pair_list = read_pairs(pairs)
    if not pair_list:
        raise InputError(f"{pairs}: no pairs")
    reference_dir = resolve_reference_dir(root, split, (t for _, t in pair_list))
    size = _reference_size(reference_dir, (t for _, t in pair_list))
    table = read_annotations(annotations, image_size=size) if annotations is not None else None
    if real_dir is not None:
        real = require_dir(real_dir, "real image folder")
        real_hint = str(real)
    else:
        real = root / "train" if (root / "train").is_dir() else None
        real_hint = (
            f"{root / 'train'} not found; give the real images (real_dir=DIR or real_stats=NPZ; "
            "--real-dir DIR or --real-stats NPZ on the command line)"
        )
    ctx = MetricContext(
        device=device,
        pad=protocol == "paper",
        batch_size=batch_size,
        progress=progress,
        has_annotations=table is not None,
        real_dir=real,
        real_dir_hint=real_hint,
        real_stats=Path(real_stats) if real_stats is not None else None,
        keypoints=require_file(keypoints, "keypoint file") if keypoints is not None else None,
        image_size=size,
        weights=_network_keys(weights or {}, "weights", Path),
        networks=_network_keys(networks or {}, "networks", lambda v: v),
        download=download,
    )

    active: dict[str, Metric] = {}
    results: dict[str, dict[str, Any]] = {}
    problems: dict[str, list] = {kind: [] for kind in PROBLEM_KINDS}
    evaluated = 0
    pairs_seen: list[tuple[str, str, str]] = []
    try:
        # Set up each metric, or record why it cannot run (a bad file given raises).
        for name in names:
            try:
                active[name] = setup_metric(name, ctx)
            except MetricUnavailable as e:
                results[name] = {"unavailable": str(e)}

        # Stream the pairs through the metrics.
        for batch in _iter_batches(
            pair_list, generated_dir, reference_dir, table, batch_size, problems, progress
        ):
            evaluated += len(batch)
            pairs_seen += [(s.name, s.src, s.tgt) for s in batch]
            for metric in active.values():
                metric.update(batch)

        # Collect the results.
        for name, metric in active.items():
            if evaluated == 0:
                results[name] = {"unavailable": "no generated image could be evaluated"}
                continue
            try:
                results[name] = metric.result()
            except (MetricUnavailable, InputError) as e:
                results[name] = {"unavailable": str(e)}
        if per_pair is not None:
            write_per_pair(per_pair, pairs_seen, _per_pair_columns(active))
    finally:
        for metric in active.values():
            metric.close()

    return EvaluationReport(
        protocol=protocol,
        padding="DeepFashion 256x176 -> 256x256 white, before SSIM and IS" if ctx.pad else "none",
        metrics=list(names),
        generated_dir=str(generated_dir),
        reference_dir=str(reference_dir),
        pairs_file=str(pairs),
        pairs=len(pair_list),
        evaluated=evaluated,
        problems={kind: {"count": len(v), "files": v} for kind, v in problems.items()},
        results={name: results[name] for name in names},
        device=str(device),
        seconds=round(time.perf_counter() - t0, 2),
        per_pair_csv=str(per_pair) if per_pair is not None else None,
    )


def _per_pair_columns(active: Mapping[str, Metric]) -> dict[str, Mapping[str, float]]:
    """The per-pair CSV's columns: each metric's values per pair; PCKh also its joint counts,
    since its report value is their sums' ratio, not the mean of the pairs' ratios."""
    columns: dict[str, Mapping[str, float]] = {}
    for name, metric in active.items():
        columns[name] = metric.by_pair
        counts = getattr(metric, "counts_by_pair", None)
        if counts:
            columns[f"{name}_correct"] = {k: c for k, (c, _) in counts.items()}
            columns[f"{name}_total"] = {k: n for k, (_, n) in counts.items()}
    return columns


def write_per_pair(
    path: str | Path, pairs: list[tuple[str, str, str]], values: Mapping[str, Mapping[str, float]]
) -> Path:
    """The per-pair CSV: ``pair,from,to`` and one column per metric with per-pair values."""
    columns = [name for name, by_pair in values.items() if by_pair]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["pair", "from", "to", *columns])
    for name, src, tgt in pairs:
        cells = [values[c].get(name) for c in columns]
        writer.writerow([name, src, tgt, *("" if v is None else f"{v:.6g}" for v in cells)])
    path = Path(path)
    atomic_write(path, out.getvalue())
    return path
