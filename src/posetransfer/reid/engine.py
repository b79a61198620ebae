"""Re-ID training and evaluation on torchreid (deep-person-reid), with circle loss added.

torchreid provides the dataset plumbing (`ImageDataset`, `ImageDataManager`, the identity
sampler), the backbones, the engines' training steps (`ImageSoftmaxEngine`: cross-entropy with
label smoothing; `ImageTripletEngine`: triplet + cross-entropy) and the Market-1501 ranking
protocol (`evaluate_rank`). What is ours: a dataset class that reads any folder in Market-1501's
layout (so augmented sets load like the original), the circle loss of pytorch-metric-learning in
place of the triplet engine's triplet term, a step-budgeted loop that saves and resumes, weights
that never download, and results as JSON.

torchreid 0.2.5 and torch 2.14 / numpy 1.26 (what we fixed here, not in torchreid):
- ``metrics.rank`` warns at import that its Cython ranking is not built; we silence that warning
  (the Python ranking gives the same numbers).
- its CUHK03 ranking uses ``np.bool``, gone in numpy 1.24: we never ask for the CUHK03 metric.
- its Market-1501 ranking fails (ragged CMC curves) when a query has fewer than ``max_rank``
  gallery images left once its own camera's are removed: `rank_metrics` cuts the curves at the
  shortest (real Market-1501 galleries are far longer than 50).
- its engines print summaries and write TensorBoard logs from ``run()``: we call their
  ``forward_backward`` step ourselves and keep the console to one progress bar.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from posetransfer.data.market import GALLERY_DIR, JUNK_PIDS, QUERY_DIR, TRAIN_DIR, parse_name
from posetransfer.errors import InputError

DATASET_NAME = "posetransfer_market"
"""The name our Market-layout dataset class is registered under in torchreid."""


def torchreid():
    """``torchreid.reid``, imported quietly; InputError saying how to install it if absent."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Cython evaluation")
            import torchreid.reid as reid
    except ImportError as e:
        raise InputError(
            f"re-ID needs torchreid and pytorch-metric-learning ({e}); install them with "
            "`pip install 'posetransfer[reid]'`"
        ) from None
    return reid


def backbones() -> list[str]:
    """The backbone names torchreid can build."""
    return sorted(torchreid().models.__model_factory)


def check_backbone(name: str) -> str:
    names = backbones()
    if name not in names:
        small = "resnet18, resnet50, osnet_x0_25, mobilenetv2_x1_0"
        raise InputError(
            f"backbone={name!r}: not a torchreid model; e.g. {small} (all: {', '.join(names)})",
            arg="backbone",
        )
    return name


# --------------------------------------------------------------------------------------------
# Data


def list_folder(folder: Path, relabel: bool) -> list[tuple[str, int, int]]:
    """(path, person, camera from 0) of the ``.jpg`` images in a Market-layout folder, by name.

    Training folders (``relabel``) drop junk and distractors and number the people 0..N-1 in
    id order, as a classifier needs; test folders keep every id (0000 distractors stay in the
    gallery; -1 junk is dropped, as torchreid's Market-1501 reader does).
    """
    items = []
    for path in sorted(folder.glob("*.jpg")):
        pid, cam = parse_name(path.name)
        if pid == -1 or (relabel and pid in JUNK_PIDS):
            continue
        items.append((str(path), pid, cam - 1))
    if relabel:
        labels = {pid: i for i, pid in enumerate(sorted({p for _, p, _ in items}))}
        items = [(path, labels[pid], cam) for path, pid, cam in items]
    return items


def _dataset_class():
    reid = torchreid()

    class MarketFolder(reid.data.ImageDataset):
        """Any folder in Market-1501's layout: ``root`` holds the three image folders."""

        def __init__(self, root: str = "", **kwargs: Any) -> None:
            base = Path(root)
            parts = {
                d: list_folder(base / d, relabel=d == TRAIN_DIR)
                for d in (TRAIN_DIR, QUERY_DIR, GALLERY_DIR)
            }
            empty = [d for d, items in parts.items() if not items]
            if empty:
                raise InputError(
                    f"data={root!r}: no images in {', '.join(d + '/' for d in empty)}", arg="data"
                )
            kwargs.pop("market1501_500k", None)
            super().__init__(parts[TRAIN_DIR], parts[QUERY_DIR], parts[GALLERY_DIR], **kwargs)

    return MarketFolder


def data_manager(data: str | Path, config, use_gpu: bool):
    """torchreid's ImageDataManager over the Market-layout folder ``data``."""
    reid = torchreid()
    datasets = reid.data.datasets
    if DATASET_NAME not in getattr(datasets, "__image_datasets"):
        reid.data.register_image_dataset(DATASET_NAME, _dataset_class())
    sampler = "RandomSampler" if config.loss == "softmax" else "RandomIdentitySampler"
    with contextlib.redirect_stdout(io.StringIO()):  # its dataset summaries
        return reid.data.ImageDataManager(
            root=str(data),
            sources=DATASET_NAME,
            height=config.height,
            width=config.width,
            transforms=["random_flip"],
            batch_size_train=config.batch_size,
            batch_size_test=config.eval_batch_size,
            workers=0,
            num_instances=config.num_instances,
            train_sampler=sampler,
            use_gpu=use_gpu,
        )


# --------------------------------------------------------------------------------------------
# Model and engine


def build_model(config, num_classes: int) -> nn.Module:
    """The torchreid backbone, never downloading: weights come from `load_backbone_weights`."""
    reid = torchreid()
    loss = "softmax" if config.loss == "softmax" else "triplet"  # "triplet": also returns features
    return reid.models.build_model(
        check_backbone(config.backbone), num_classes, loss=loss, pretrained=False, use_gpu=False
    )


def imagenet_weights(backbone: str) -> Path:
    """The ImageNet file for ``backbone`` in torch's caches; InputError listing where it looked.

    torchvision-style ResNets are looked for as ``<hub>/checkpoints/<name>-*.pth`` (torch's
    download cache), torchreid's own OSNet files as
    ``<torch home>/checkpoints/<name>_imagenet.pth``.
    """
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    home = hub.parent.parent  # <torch home>/hub -> <torch home>
    candidates = sorted(hub.glob(f"{backbone}-*.pth")) + sorted(
        hub.glob(f"{backbone}_imagenet*.pth")
    )
    candidates += sorted((home / "checkpoints").glob(f"{backbone}_imagenet*.pth"))
    if not candidates:
        raise InputError(
            f"pretrained='imagenet': no ImageNet weights for {backbone} in {hub} or "
            f"{home / 'checkpoints'} (downloads are not made); give pretrained the file's path, "
            "or 'none' to train from scratch",
            arg="pretrained",
            names=("pretrained",),
        )
    return candidates[0]


def load_backbone_weights(model: nn.Module, path: str | Path) -> int:
    """Copy the tensors of ``path`` whose names and shapes match into ``model``; their count.

    The classifier of another task (ImageNet's 1000 classes) does not match and stays as built.

    Raises:
        InputError: the file does not load, or fewer than half of the model's tensors match.
    """
    from posetransfer.core.files import load_torch_file

    state = load_torch_file(path, "backbone weights")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"pretrained={str(path)!r}: not a state dict", arg="pretrained")
    state = {k.removeprefix("module."): v for k, v in state.items() if torch.is_tensor(v)}
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(matched) < len(own) / 2:
        raise InputError(
            f"pretrained={str(path)!r}: only {len(matched)} of the model's {len(own)} tensors "
            "match by name and shape; is it a file for this backbone?",
            arg="pretrained",
        )
    model.load_state_dict(matched, strict=False)
    return len(matched)


def build_engine(config, datamanager, model: nn.Module, optimizer, use_gpu: bool):
    """torchreid's engine for the loss; "circle" is its triplet engine with CircleLoss instead."""
    reid = torchreid()
    engines = reid.engine
    if config.loss == "softmax":
        return engines.ImageSoftmaxEngine(
            datamanager, model, optimizer, use_gpu=use_gpu, label_smooth=True
        )
    engine = engines.ImageTripletEngine(
        datamanager, model, optimizer, margin=config.margin, use_gpu=use_gpu, label_smooth=True
    )
    if config.loss == "circle":
        from pytorch_metric_learning.losses import CircleLoss

        # Called as criterion(features, pids), the triplet term's signature.
        engine.criterion_t = CircleLoss(m=config.circle_m, gamma=config.circle_gamma)
    return engine


# --------------------------------------------------------------------------------------------
# Ranking


def rank_metrics(
    distmat: np.ndarray,
    query_pids: np.ndarray,
    gallery_pids: np.ndarray,
    query_camids: np.ndarray,
    gallery_camids: np.ndarray,
) -> dict[str, float]:
    """Rank-1/5/10/20 and mAP (fractions in [0, 1]) by the Market-1501 protocol.

    torchreid's `evaluate_rank`: gallery images of the query's own person seen by the query's
    own camera are left out, and queries without a match left are not counted. When some query
    has fewer than k gallery images left (tiny galleries only), rank-k is the CMC at the last
    rank all queries have. ``queries`` is how many counted.

    Args:
        distmat: (queries, gallery) distances, smaller = more alike.
        query_pids, gallery_pids: person ids.
        query_camids, gallery_camids: camera ids.

    Raises:
        InputError: shapes that disagree, or no query with a match in the gallery.
    """
    distmat = np.asarray(distmat, dtype=np.float32)
    qp, gp, qc, gc = (
        np.asarray(a).astype(np.int64).ravel()
        for a in (query_pids, gallery_pids, query_camids, gallery_camids)
    )
    if (
        distmat.ndim != 2
        or distmat.shape != (len(qp), len(gp))
        or len(qc) != len(qp)
        or len(gc) != len(gp)
    ):
        raise InputError(
            f"distmat {tuple(distmat.shape)} must be (queries, gallery) = ({len(qp)}, {len(gp)}), "
            f"with {len(qc)} query and {len(gc)} gallery cameras",
            names=("distmat",),
        )
    reid = torchreid()
    # The queries evaluate_rank counts: a gallery image of their person from another camera.
    valid = [bool(((gp == p) & (gc != c)).any()) for p, c in zip(qp, qc)]
    if not any(valid):
        raise InputError(
            "no query has a match in the gallery (its person, seen by another camera)",
            names=("distmat",),
        )
    # torchreid stacks the per-query CMC curves cut at max_rank, which fails when a query has
    # fewer than max_rank gallery images left after removing its own camera's (small galleries
    # only): cut at the shortest among the counted queries instead.
    left = [int(len(gp) - ((gp == p) & (gc == c)).sum()) for p, c, v in zip(qp, qc, valid) if v]
    with contextlib.redirect_stdout(io.StringIO()):
        cmc, mean_ap = reid.metrics.evaluate_rank(
            distmat, qp, gp, qc, gc, max_rank=min([50, *left]), use_metric_cuhk03=False
        )
    out = {f"rank{k}": round(float(cmc[min(k, len(cmc)) - 1]), 6) for k in (1, 5, 10, 20)}
    return {**out, "mAP": round(float(mean_ap), 6), "queries": sum(valid)}


@torch.no_grad()
def features(engine, loader, device: torch.device) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """(features, pids, camids) of a test loader, through the engine's own feature extractor."""
    engine.model.eval()
    feats, pids, cams = [], [], []
    for data in loader:
        imgs, pid, cam = engine.parse_data_for_eval(data)
        feats.append(engine.extract_features(imgs.to(device)).float().cpu())
        pids += pid.tolist()
        cams += cam.tolist()
    return torch.cat(feats), np.asarray(pids), np.asarray(cams)


def evaluate_engine(engine, datamanager, device: torch.device) -> dict[str, float]:
    """Rank metrics of the engine's model on the query and gallery of its data manager."""
    reid = torchreid()
    loaders = datamanager.test_loader[DATASET_NAME]
    qf, qp, qc = features(engine, loaders["query"], device)
    gf, gp, gc = features(engine, loaders["gallery"], device)
    distmat = reid.metrics.compute_distance_matrix(qf, gf, "euclidean").numpy()
    return rank_metrics(distmat, qp, gp, qc, gc)
