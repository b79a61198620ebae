"""`train_reid` and `evaluate_reid`: one re-ID model on one Market-layout folder, as JSON results.

A run folder holds::

    config.json      the ReidConfig, the data folder and the number of training identities
    state.pt         model, optimiser, scheduler and step, saved every ``save_every`` steps
                     (a rerun continues from it) and removed when training ends
    model.safetensors  the trained weights
    results.json     rank-1/5/10/20, mAP, the config, the data folder, the time it took
"""

from __future__ import annotations

import json
import pickle
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from posetransfer.core.files import (
    atomic_save,
    atomic_write,
    check_output,
    claim_folder,
    load_torch_file,
)
from posetransfer.core.report import Report
from posetransfer.errors import InputError
from posetransfer.reid.augmentation import check_complete_set
from posetransfer.reid.config import ReidConfig
from posetransfer.reid.engine import (
    build_engine,
    build_model,
    check_backbone,
    data_manager,
    evaluate_engine,
    imagenet_weights,
    load_backbone_weights,
    torchreid,
)

CONFIG, STATE, WEIGHTS, RESULTS = "config.json", "state.pt", "model.safetensors", "results.json"


@dataclass(frozen=True)
class ReidScores(Report):
    """Rank-k and mAP, fractions in [0, 1], by the Market-1501 protocol (`rank_metrics`)."""

    rank1: float
    rank5: float
    rank10: float
    rank20: float
    mAP: float
    queries: int
    """The queries counted: those with a match in the gallery."""


@dataclass(frozen=True)
class ReidRun(ReidScores):
    """`train_reid`'s results, as ``results.json`` holds them: the scores and what was trained."""

    config: ReidConfig
    data: str
    """The training folder (absolute)."""
    identities: int
    """People in the training folder."""
    images: int
    """Images in the training folder."""
    weights: str
    """Where the backbone's initial weights came from."""
    steps: int
    seconds: float
    """Training time (the ranking not counted), over every resumed part."""
    device: str

    @classmethod
    def from_dict(cls, d: dict) -> ReidRun:
        """The results of a ``results.json``."""
        return cls(**{**d, "config": ReidConfig.from_dict(d["config"])})


@dataclass(frozen=True)
class ReidEvaluation(ReidScores):
    """`evaluate_reid`'s results: the scores, the run ranked and the folder it ranked."""

    run: str
    data: str


def _device(device: str) -> torch.device:
    """CPU or CUDA: torchreid's engines move batches with ``.cuda()`` (the current device)."""
    from posetransfer.core.device import resolve_device

    dev = resolve_device(device)
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device={device!r}: re-ID runs on cpu or cuda", arg="device")
    if dev.type == "cuda" and dev.index is not None:
        torch.cuda.set_device(dev)
    return dev


def reid_folder(data: str | Path) -> Path:
    """The folder directly holding the three Market-1501 folders: ``data`` or one inside it.

    Raises:
        InputError: naming ``data``: a zip (make a folder of it with ``reid augment
            --no-generator``), no such folders, or an augmented set `augment` has not finished
            (`check_complete_set`).
    """
    from posetransfer.data.market import open_reid_source

    data = Path(data)
    if data.is_file():
        raise InputError(
            f"data={str(data)!r}: a file; training reads a folder. Write one from the archive "
            "with `posetransfer reid augment --no-generator --portion 1`",
            arg="data",
        )
    source = open_reid_source(data, arg="data")
    source.close()
    check_complete_set(data, arg="data")
    return data / source.base


def _rng_state() -> torch.Tensor:
    """Python's and numpy's generator states (the identity sampler's), as bytes in a tensor."""
    data = pickle.dumps((random.getstate(), np.random.get_state()))
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _set_rng_state(t: torch.Tensor) -> None:
    py, nps = pickle.loads(t.numpy().tobytes())  # our own file: plain tuples and one array
    random.setstate(py)
    np.random.set_state(nps)


def _seed(seed: int) -> None:
    random.seed(seed)  # torchreid's identity sampler draws with `random`
    np.random.seed(seed)
    torch.manual_seed(seed)


def _init_weights(model, config: ReidConfig) -> str:
    if config.pretrained == "none":
        return "none (trained from scratch)"
    path = (
        imagenet_weights(config.backbone)
        if config.pretrained == "imagenet"
        else Path(config.pretrained)
    )
    n = load_backbone_weights(model, path)
    return f"{path} ({n} tensors)"


def train_reid(
    data: str | Path,
    out: str | Path,
    config: ReidConfig | None = None,
    device: str = "auto",
    progress: bool = True,
) -> ReidRun:
    """Train a re-ID model on ``data`` (a Market-layout folder), evaluate it, write ``out``.

    Resumes from ``out/state.pt`` when ``out`` holds an unfinished run of the same config and
    data; a finished one is returned as it is.

    Args:
        data: a folder with ``bounding_box_train/``, ``query/`` and ``bounding_box_test/``
            (Market-1501, `augment`'s output, or ``posetransfer synthetic --reid``).
        out: the run folder.
        config: backbone, loss, weights and the training schedule (default `ReidConfig()`).
        device: "auto", "cpu", "cuda", ...
        progress: show a progress bar.

    Returns:
        The results (`ReidRun`, also ``out/results.json``): rank1, rank5, rank10, rank20, mAP,
        and the config, data, identities, images, weights, steps, seconds and device.

    Raises:
        InputError: a bad folder (or an unfinished augmented set), backbone, weights file, an
            ``out`` that is, holds or lies in ``data``, or an ``out`` of another run.
    """
    config = config or ReidConfig()
    out = check_output(out, {"data": data})
    check_backbone(config.backbone)
    data = reid_folder(data)
    record = {"config": asdict(config), "data": str(data.resolve())}
    claim_folder(out, CONFIG, record, "a run")
    if (out / RESULTS).is_file():
        return _finished_run(out / RESULTS)
    dev = _device(device)
    use_gpu = dev.type == "cuda"
    _seed(config.seed)
    dm = data_manager(data, config, use_gpu)
    _check_batches(dm, config, data)
    model = build_model(config, dm.num_train_pids)
    weights = _init_weights(model, config)
    model = model.to(dev)
    optimizer = torchreid().optim.build_optimizer(
        model, optim="adam", lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)
    engine = build_engine(config, dm, model, optimizer, use_gpu)
    record |= {
        "identities": dm.num_train_pids,
        "images": len(dm.train_loader.dataset),
        "weights": weights,
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / CONFIG, json.dumps(record, indent=2) + "\n")

    step, seconds, saved = 0, 0.0, {"step": None}
    if (out / STATE).is_file():
        step, seconds = _resume(out / STATE, model, optimizer, scheduler)
        saved["step"] = step

    def save() -> None:
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "seconds": seconds + time.monotonic() - t0,
            "torch_rng": torch.get_rng_state(),
            "rng": _rng_state(),
        }
        atomic_save(out / STATE, lambda f: torch.save(state, f))
        saved["step"] = step

    t0 = time.monotonic()
    bar = tqdm(
        total=config.steps, initial=step, desc="re-ID train", unit="step", disable=not progress
    )
    model.train()
    while step < config.steps:
        for batch in dm.train_loader:
            summary = engine.forward_backward(batch)
            scheduler.step()
            step += 1
            bar.update()
            bar.set_postfix({k: f"{v:.3f}" for k, v in summary.items()}, refresh=False)
            if step % config.save_every == 0 and step < config.steps:
                save()
            if step >= config.steps:
                break
    bar.close()
    if saved["step"] != step:
        save()  # an interrupted evaluation does not train again
    seconds += time.monotonic() - t0
    metrics = evaluate_engine(engine, dm, dev)
    _save_weights(model, out / WEIGHTS)
    results = ReidRun(
        **metrics,
        **{**record, "config": config},
        steps=step,
        seconds=round(seconds, 1),
        device=str(dev),
    )
    atomic_write(out / RESULTS, json.dumps(results.to_dict(), indent=2) + "\n")
    (out / STATE).unlink(missing_ok=True)
    return results


def _finished_run(path: Path) -> ReidRun:
    """The results of a finished run; InputError naming the file if it is damaged."""
    try:
        return ReidRun.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(
            f"{path}: unreadable or damaged results ({type(e).__name__}); delete it to train "
            "the run again"
        ) from None


def _resume(path: Path, model, optimizer, scheduler) -> tuple[int, float]:
    """Load a training state into the model, optimiser, scheduler and random generators.

    Raises:
        InputError: naming the file: damaged or cut short, or of another model.

    Returns:
        (step, training seconds so far).
    """
    try:
        state = load_torch_file(path, "re-ID training state")
    except InputError as e:
        raise InputError(f"{e}; delete it to train from the start") from None
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, seconds = int(state["step"]), float(state["seconds"])
        torch.set_rng_state(state["torch_rng"])
        _set_rng_state(state["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise InputError(
            f"{path}: a training state this run cannot continue from ({type(e).__name__}: "
            f"{first}); delete it to train from the start"
        ) from None
    return step, seconds


def _check_batches(dm, config: ReidConfig, data: Path) -> None:
    """InputError when the training folder cannot fill one batch (training would never step)."""
    n_images, n_ids = len(dm.train_loader.dataset), dm.num_train_pids
    if config.loss == "softmax" and n_images < config.batch_size:
        raise InputError(
            f"batch_size={config.batch_size}: {data} has only {n_images} training images; "
            "use a smaller batch",
            arg="batch_size",
        )
    per_batch = config.batch_size // config.num_instances
    if config.loss != "softmax" and n_ids < per_batch:
        raise InputError(
            f"batch_size={config.batch_size}: the {config.loss} loss draws {per_batch} people per "
            f"batch and {data} has {n_ids}; use a smaller batch",
            arg="batch_size",
        )


def _load_weights(model, path: Path) -> None:
    """Load a run's ``model.safetensors``; InputError naming it if damaged or of another model."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(path)
    except Exception as e:  # safetensors raises its own error type for a cut-short file
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise InputError(
            f"{path}: unreadable re-ID weights, damaged or cut short ({type(e).__name__}: "
            f"{first}); to train it again, delete {RESULTS} and {WEIGHTS} from "
            f"{path.parent} and rerun `posetransfer reid train`"
        ) from None
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise InputError(
            f"{path}: weights of another model than the run's {CONFIG} describes ({first})"
        ) from None


def _save_weights(model, path: Path) -> None:
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, save(tensors))


def evaluate_reid(
    run: str | Path, data: str | Path | None = None, device: str = "auto"
) -> ReidEvaluation:
    """Rank metrics of a trained run (`train_reid`'s folder) on a Market-layout folder.

    Args:
        run: the run folder (``config.json`` and ``model.safetensors``).
        data: the folder whose ``query/`` and ``bounding_box_test/`` are ranked; default the
            run's own data.
        device: "auto", "cpu", "cuda", ...

    Returns:
        `ReidEvaluation`: rank1, rank5, rank10, rank20, mAP, queries, and the run and data
        folders.

    Raises:
        InputError: naming the run or the file at fault: no ``config.json`` or a damaged one,
            no ``model.safetensors``, or one that is cut short or of another model.
    """
    run = Path(run)
    try:
        record = json.loads((run / CONFIG).read_text())
        config = ReidConfig.from_dict(record["config"])
        identities = int(record["identities"])
        trained_on = record["data"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(
            f"run={str(run)!r}: no readable {CONFIG}; not a re-ID run folder", arg="run"
        ) from None
    if not (run / WEIGHTS).is_file():
        raise InputError(f"run={str(run)!r}: no {WEIGHTS}; training did not finish", arg="run")
    data = reid_folder(data if data is not None else trained_on)
    dev = _device(device)
    dm = data_manager(data, config, dev.type == "cuda")
    model = build_model(config, identities)
    _load_weights(model, run / WEIGHTS)
    model = model.to(dev)
    unused = torch.optim.SGD(model.parameters(), lr=0.0)  # the engine wants one; ranking only
    engine = build_engine(config, dm, model, unused, dev.type == "cuda")
    scores = evaluate_engine(engine, dm, dev)
    return ReidEvaluation(**scores, run=str(run), data=str(data.resolve()))
