"""The named metrics of an evaluation run: each registered with what it needs and its factory.

A metric is registered under its name (``@register_metric("fid", "FID", needs=(real_images,))``)
with its label in the report table, the inputs it needs beyond the generated and ground-truth
images, and a factory that builds its accumulator (`posetransfer.metrics.collect.Metric`) from
a `MetricContext`: the run's options and the networks, loaded once and shared (IS and mask-IS
use one Inception classifier). The runner only loops over the requested names: `setup_metric`
checks the needs and calls the factory, and a need that is not met, or weights that cannot be
found (or a damaged cached file), surfaces as `MetricUnavailable` with a message that says how
to fix it. A file the user gave that is not what the metric needs is an `InputError`.

Adding a metric is one accumulator in `collect` and one registered factory here. Importing
this module is cheap: each factory imports torch and its network code when it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posetransfer.errors import InputError
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
)
from posetransfer.metrics.weights import MetricUnavailable, how_to_get, resolve


@dataclass
class MetricContext:
    """What the metric factories build from: the options of one run and its networks."""

    device: Any  # the torch.device the networks run on
    pad: bool  # pad DeepFashion-size images to 256x256 before SSIM and IS (paper protocol)
    batch_size: int  # images per network call
    progress: bool  # show progress bars (FID's pass over the real set)
    has_annotations: bool  # target keypoints were given
    real_dir: Path | None  # real images of FID
    real_dir_hint: str  # what to say when there are none
    real_stats: Path | None  # cache of the real set's FID statistics
    keypoints: Path | None  # keypoints estimated on the generated images, for PCKh
    image_size: tuple[int, int] | None = None  # (height, width) of the images, when known
    weights: Mapping[str, Path] = field(default_factory=dict)  # explicit files by network
    networks: Mapping[str, Any] = field(default_factory=dict)  # injected, already built
    download: bool = False  # let missing weights be downloaded
    _loaded: dict[str, Any] = field(default_factory=dict, repr=False)

    def network(self, name: str, loader: Callable[[Path, Any], Any]) -> Any:
        """The injected network ``name``, or the one ``loader`` builds from its weights (once).

        Raises:
            MetricUnavailable: when the weights cannot be found, or the cached file is damaged
                (the message says how to get them).
            InputError: the file given for ``name`` (``weights``) is missing or not its weights.
        """
        if name in self.networks:
            return self.networks[name]
        if name not in self._loaded:
            given = self.weights.get(name)
            path = resolve(name, given, self.download)
            try:
                self._loaded[name] = loader(path, self.device)
            except InputError as e:
                if given is not None:
                    raise  # the user's file: a mistake to fix, not a metric to leave out
                raise MetricUnavailable(f"damaged cached file: {e}; {how_to_get(name)}") from None
        return self._loaded[name]


# A need is a check of the context: None when met, else why the metric cannot run.
Need = Callable[[MetricContext], str | None]


def annotations(ctx: MetricContext) -> str | None:
    """Need: the target keypoints (mask-SSIM, mask-IS and PCKh)."""
    return (
        None
        if ctx.has_annotations
        else "needs the target keypoints: pass --annotations CSV (annotations= in Python)"
    )


def real_images(ctx: MetricContext) -> str | None:
    """Need: a folder of real images, or a cache of their statistics (FID)."""
    if ctx.real_dir is not None or (ctx.real_stats is not None and ctx.real_stats.is_file()):
        return None
    return f"no real images: {ctx.real_dir_hint}"


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: its name, table label, needs, factory and printed precision."""

    name: str
    label: str
    build: Callable[[MetricContext], Metric]
    needs: tuple[Need, ...] = ()
    digits: int = 3


# Registration order is the order of `ALL_METRICS` (and of ``--metrics all``).
METRICS: dict[str, MetricSpec] = {}


def register_metric(
    name: str, label: str, *, needs: tuple[Need, ...] = (), digits: int = 3
) -> Callable[[Callable[[MetricContext], Metric]], Callable[[MetricContext], Metric]]:
    """Register a metric factory under ``name`` (a decorator).

    Args:
        name: the metric's name in ``metrics=`` and in the report.
        label: its row label in the report table.
        needs: checks that must pass before the factory runs (e.g. `annotations`).
        digits: decimals printed in the table.
    """

    def register(build: Callable[[MetricContext], Metric]) -> Callable[[MetricContext], Metric]:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        METRICS[name] = MetricSpec(name, label, build, needs, digits)
        return build

    return register


def setup_metric(name: str, ctx: MetricContext) -> Metric:
    """Build the accumulator of the registered metric ``name``.

    Raises:
        MetricUnavailable: a need is not met, or a network cannot be had (no weights in the
            libraries' caches, a damaged cached file, a package missing); says how to fix it.
        InputError: a file the user gave is missing or not what the metric needs (e.g. wrong
            weights, an unreadable keypoint file); the runner lets it through.
    """
    spec = METRICS[name]
    for need in spec.needs:
        why = need(ctx)
        if why is not None:
            raise MetricUnavailable(why)
    return spec.build(ctx)


# The evaluation protocols: the metrics each computes by default (``protocol=``, ``--protocol``).
# "paper" also pads DeepFashion-size images to 256x256 before SSIM and IS.
PROTOCOLS: dict[str, tuple[str, ...]] = {
    # The paper's Table 1 (mask-SSIM / mask-IS were reported for Market-1501 only).
    "paper": ("ssim", "is", "mask_ssim", "mask_is", "ds", "pckh"),
    # GFLA, NTED, PIDM, CFLD: FID against the training images, LPIPS, unpadded SSIM.
    "modern": ("ssim", "fid", "lpips"),
}


# --------------------------------------------------------------------------------------------
# The metrics


@register_metric("ssim", "SSIM")
def _ssim(ctx: MetricContext) -> Metric:
    """SSIM of each pair (after the paper's DeepFashion padding when ``pad``), averaged."""
    if ctx.pad:
        pad = image_metrics.pad_fashion
        return PerPairMean(lambda s: image_metrics.ssim(pad(s.fake), pad(s.real)))
    return PerPairMean(lambda s: image_metrics.ssim(s.fake, s.real))


@register_metric("mask_ssim", "mask-SSIM", needs=(annotations,))
def _mask_ssim(ctx: MetricContext) -> Metric:
    """SSIM of each pair with both images masked by the target's body mask, averaged."""

    def masked_ssim(s: Sample) -> float | None:
        pair = masked_pair(s)
        return None if pair is None else image_metrics.ssim(*pair)

    return PerPairMean(masked_ssim)


@register_metric("l1", "L1 (0..255)", digits=2)
def _l1(ctx: MetricContext) -> Metric:
    """Mean absolute difference of each pair on the uint8 scale, averaged."""
    return PerPairMean(lambda s: image_metrics.l1(s.fake, s.real))


@register_metric("mask_l1", "body L1 (0..255)", needs=(annotations,), digits=2)
def _mask_l1(ctx: MetricContext) -> Metric:
    """L1 over the pixels of the target's body mask only (the mask of mask-SSIM), averaged."""

    def body_l1(s: Sample) -> float | None:
        if s.tgt_kps is None:
            return None
        mask = image_metrics.body_mask(s.tgt_kps, *s.real.shape[:2])
        return image_metrics.masked_l1(s.fake, s.real, mask)

    return PerPairMean(body_l1)


def _inception_score(ctx: MetricContext, masked: bool) -> Metric:
    from posetransfer.metrics.inception import load_inception_classifier

    classifier = ctx.network("inception", load_inception_classifier)
    return InceptionScoreMetric(classifier, masked=masked, pad=ctx.pad, device=ctx.device)


@register_metric("is", "IS")
def _is(ctx: MetricContext) -> Metric:
    """Inception Score of the generated images (padded like SSIM when ``pad``)."""
    return _inception_score(ctx, masked=False)


@register_metric("mask_is", "mask-IS", needs=(annotations,))
def _mask_is(ctx: MetricContext) -> Metric:
    """Inception Score of the generated images masked by the target's body mask."""
    return _inception_score(ctx, masked=True)


@register_metric("fid", "FID", needs=(real_images,), digits=2)
def _fid(ctx: MetricContext) -> Metric:
    """FID between the generated images and the real set (see `collect.FIDMetric`)."""
    from posetransfer.metrics.inception import load_fid_network

    net = ctx.network("fid", load_fid_network)
    return FIDMetric(net, ctx.real_dir, ctx.real_stats, ctx.device, ctx.batch_size, ctx.progress)


@register_metric("lpips", "LPIPS", digits=4)
def _lpips(ctx: MetricContext) -> Metric:
    """LPIPS (AlexNet, v0.1) of each pair, averaged."""
    from posetransfer.metrics.perceptual import load_lpips

    return LPIPSMetric(ctx.network("alexnet", load_lpips), ctx.device)


@register_metric("ds", "DS")
def _ds(ctx: MetricContext) -> Metric:
    """Detection score: the top person score of an SSD detector per image, averaged."""
    from posetransfer.metrics.detect import load_person_detector

    return DetectionScoreMetric(ctx.network("ssd", load_person_detector), ctx.device)


@register_metric("pckh", "PCKh", needs=(annotations,))
def _pckh(ctx: MetricContext) -> Metric:
    """PCKh@0.5 of keypoints estimated on the generated images against the target's."""
    predict, source, close = _keypoint_predictor(ctx.keypoints, ctx.networks, ctx.image_size)
    return PCKhMetric(predict, source, close=close)


def _keypoint_predictor(
    keypoints: Path | None,
    networks: Mapping[str, Any],
    image_size: tuple[int, int] | None = None,
) -> tuple[Callable[[Sample], np.ndarray | None], str, Callable[[], None] | None]:
    """(keypoints of a sample's generated image, where they come from, how to release it).

    A keypoint file placing joints off ``image_size`` gets a `KeypointWarning`.
    """
    if "keypoints" in networks:
        detect = networks["keypoints"]
        return (lambda s: np.asarray(detect(s.fake))), "injected estimator", None
    if keypoints is not None:
        from posetransfer.pose import read_annotations

        table = read_annotations(keypoints, image_size=image_size)
        by_stem = {Path(name).stem: kps for name, kps in table.items()}

        def lookup(s: Sample) -> np.ndarray | None:
            return table.get(s.name, by_stem.get(Path(s.name).stem))

        return lookup, f"keypoint file {keypoints}", None
    try:
        from posetransfer.keypoints.detect import KeypointDetector

        detector = KeypointDetector()
    except (ImportError, InputError) as e:
        raise MetricUnavailable(
            f"no pose estimator ({e}); install mediapipe (pip install 'posetransfer[keypoints]') "
            "or pass --keypoints CSV with the keypoints of the generated images "
            "(keypoints= in Python)"
        )
    close = getattr(detector, "close", None)
    return (lambda s: np.asarray(detector(s.fake))), "MediaPipe BlazePose", close
