"""One way to load a generator: `load_generator(spec)`, whatever and wherever the model is.

``spec`` names the model:

    "synthetic-patn"                       a bundled model (`posetransfer.pretrained`)
    "runs/00003-patn_small-synthetic"      a run folder: its newest intact checkpoint
    "runs/.../checkpoints/step-0001000"    a checkpoint folder
    "latest_net_netG.pth"                  the authors' PATN weights
    "patn.onnx", "patn.xml"                an exported model (`posetransfer export`)
    "hf://owner/name", "hf://owner/name@v1"  a Hugging Face Hub repository (at a revision)

A Hub repository holds the files of a bundled model's folder (weights, config, manifest, card)
plus a ``README.md`` model card (`posetransfer.pretrained.export.write_hub_folder` writes one).
It is read with ``huggingface_hub`` (the ``[hub]`` extra) through its cache, so a cached
snapshot loads with ``HF_HUB_OFFLINE=1``; the files are checked against the manifest like a
bundled model's. This module is the only place that turns a spec into a model: commands,
`PoseTransfer`, re-ID and the app all call it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posetransfer.checkpoint import GeneratorInfo, read_generator
from posetransfer.checkpoint.bundled import pretrained_dir
from posetransfer.checkpoint.format import GENERATOR_FILE, resolve_checkpoint, verify_checkpoint
from posetransfer.core import __version__
from posetransfer.core.device import resolve_device
from posetransfer.errors import InputError
from posetransfer.models.inference import for_inference
from posetransfer.models.original import load_original_patn
from posetransfer.runtime.exported import BACKENDS, EXPORTED_SUFFIXES, ExportedGenerator

__all__ = ["HUB_PREFIX", "HUB_REPO", "GeneratorInfo", "describe", "hub_snapshot", "load_generator"]

HUB_PREFIX = "hf://"
"""How a spec names a Hugging Face Hub repository: ``hf://owner/name[@revision]``."""
HUB_REPO = re.compile(r"[\w.-]+/[\w.-]+")
"""A Hub repository id, ``owner/name``."""
_TRUE = ("1", "on", "yes", "true")


def load_generator(
    spec: str | Path,
    *,
    device: str | torch.device = "auto",
    precision: str | None = "auto",
    backend: str = "torch",
    compile: bool = False,
) -> tuple[nn.Module, GeneratorInfo]:
    """A generator and its `GeneratorInfo` (image size, heatmap style, where it came from).

    Args:
        spec: a bundled model's name, a run or checkpoint folder, an authors' ``.pth``, an
            exported ``.onnx`` / ``.xml``, or ``hf://owner/name[@revision]`` (see the module
            docstring).
        device: "auto" (CUDA when available), "cpu", "cuda", ...; exported files run on the CPU.
        precision: "auto", "fp32", "bf16" or "fp16": the inference form
            (`posetransfer.models.for_inference`, or the exported graph's runtime), called as the
            generator. None: the plain float32 torch module as stored, in eval mode, which is
            what training's ``init_from``, export and exact float32 scoring need.
        backend: "torch", "onnxruntime" or "openvino"; for an exported file, "torch" means the
            backend its suffix implies.
        compile: torch backend only: run through ``torch.compile``.

    Returns:
        (module called as the generator, its info).

    Raises:
        InputError: naming ``spec``, ``backend``, ``precision`` or ``device`` at fault: nothing
            there, a file failing its checksum, weights that do not fit, a Hub repository not
            cached while offline, a checkpoint asked to run on onnxruntime / OpenVINO.
    """
    if backend not in BACKENDS:
        raise InputError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}", arg="backend")
    text = str(spec)
    path = Path(spec)
    if not text.startswith(HUB_PREFIX) and path.suffix in EXPORTED_SUFFIXES:
        if precision is None:
            raise InputError(
                f"{path}: an exported model has no torch module to return (precision=None); "
                "load the checkpoint it was exported from",
                arg="precision",
            )
        return _load_exported(path, backend, precision, device)
    if backend != "torch":
        fmt = "onnx" if backend == "onnxruntime" else "openvino"
        raise InputError(
            f"backend={backend!r} runs an exported model, and {text} is a checkpoint: export it "
            f"first with `posetransfer export --checkpoint {text} --format {fmt} --out "
            f"model{'.onnx' if fmt == 'onnx' else '.xml'}` and pass that file as the checkpoint",
            arg="backend",
        )
    if precision is None and compile:
        raise InputError(
            "compile=True runs the inference form; precision=None returns the stored module",
            arg="compile",
        )
    dev = resolve_device(device)
    model, info = _load_torch(spec, dev)
    if precision is None:
        return model, info
    return for_inference(model, precision, dev, compile=compile), info


def _load_torch(spec: str | Path, device: torch.device) -> tuple[nn.Module, GeneratorInfo]:
    """The stored float32 module (eval mode, on ``device``) of any spec but an exported file."""
    text = str(spec)
    if text.startswith(HUB_PREFIX):
        folder = hub_snapshot(text)
        model, info = read_generator(folder, device)
        return model, dataclasses.replace(info, source=f"{text.partition('@')[0]}@{folder.name}")
    bundled = pretrained_dir(spec)
    if bundled is not None:
        if not bundled.is_dir():
            raise InputError(
                f"bundled model {text}: not in this installation ({bundled} is missing)"
            )
        model, info = read_generator(resolve_checkpoint(bundled), device)
        return model, dataclasses.replace(info, pretrained=text)
    path = Path(spec)
    if path.is_file() and path.suffix in (".pth", ".pt"):
        return _load_authors(path, device)
    # A run folder (its newest intact checkpoint) or a checkpoint folder, checked against its
    # manifest.
    return read_generator(resolve_checkpoint(path), device)


def _load_authors(path: Path, device: torch.device) -> tuple[nn.Module, GeneratorInfo]:
    """An authors' ``latest_net_netG.pth``: the norm in the weights says the dataset.

    BatchNorm -> their Market-1501 model, 128x64; InstanceNorm -> DeepFashion, 256x176 with the
    legacy uint8 heatmaps.
    """
    model = load_original_patn(path)
    batch = isinstance(model.image_encoder[2], nn.BatchNorm2d)
    info = GeneratorInfo(
        name="patn_market" if batch else "patn_fashion",
        kwargs={"ngf": model.image_encoder[1].out_channels, "n_blocks": len(model.blocks)},
        height=128 if batch else 256,
        width=64 if batch else 176,
        legacy_heatmaps=not batch,
        source=str(path),
    )
    return model.to(device).eval(), info


def _load_exported(
    path: Path, backend: str, precision: str, device: str | torch.device
) -> tuple[nn.Module, GeneratorInfo]:
    """An exported ``.onnx`` / ``.xml`` run by onnxruntime or OpenVINO, with its stored info."""
    if backend == "torch":
        backend = EXPORTED_SUFFIXES[path.suffix]
    # Exported models run on the CPU: "auto" means the CPU for them, even beside a GPU.
    if device is not None and str(device) != "auto" and resolve_device(device).type != "cpu":
        raise InputError(
            f"device={str(device)!r}: exported models run on the CPU here; use a "
            "checkpoint with backend 'torch' on a GPU",
            arg="device",
        )
    model = ExportedGenerator(path, backend, precision)
    if model.info is None:
        raise InputError(
            f"{path}: no posetransfer metadata (image size, heatmaps): export it with "
            "`posetransfer export`",
            arg="spec",
        )
    fields = {f.name for f in dataclasses.fields(GeneratorInfo)}
    kept = {k: v for k, v in model.info.items() if k in fields}
    return model, GeneratorInfo(**{**kept, "source": str(path)})


def hub_snapshot(spec: str) -> Path:
    """The local snapshot folder of ``hf://owner/name[@revision]``, its files verified.

    Downloads through ``huggingface_hub``'s cache; with ``HF_HUB_OFFLINE`` set only the cache is
    read. ``HF_HUB_CACHE`` is read when this is called (``huggingface_hub`` reads it once, on
    import).

    Raises:
        InputError: not ``hf://owner/name``, ``huggingface_hub`` not installed, the repository
            (or revision) not on the Hub or not cached while offline, or not a posetransfer model
            (no weights, or files that fail the manifest's checksums).
    """
    repo, _, revision = spec.removeprefix(HUB_PREFIX).partition("@")
    if not HUB_REPO.fullmatch(repo) or (spec.count("@") and not revision):
        raise InputError(
            f"{spec}: a Hub model is named hf://owner/name or hf://owner/name@revision",
            arg="spec",
        )
    try:
        import huggingface_hub
        from huggingface_hub.utils import (
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:
        raise InputError(
            f"{spec}: loading from the Hugging Face Hub needs huggingface_hub: "
            "pip install 'posetransfer[hub]'",
            arg="spec",
        ) from None
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE
    get = f"hf download {repo}" + (f" --revision {revision}" if revision else "")
    cache = os.environ.get("HF_HUB_CACHE") or None  # huggingface_hub reads it on import only
    try:
        folder = huggingface_hub.snapshot_download(
            repo,
            revision=revision or None,
            cache_dir=cache,
            local_files_only=offline,
            library_name="posetransfer",
            library_version=__version__,
        )
    except RevisionNotFoundError:  # the Hub answered: the repository has no such revision
        raise InputError(
            f"{spec}: {repo} has no revision {revision!r} on the Hugging Face Hub", arg="spec"
        ) from None
    except RepositoryNotFoundError:  # or private, without a token that may read it
        raise InputError(
            f"{spec}: no repository {repo} on the Hugging Face Hub (a private one needs "
            "`hf auth login`)",
            arg="spec",
        ) from None
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
        unset = ", or unset HF_HUB_OFFLINE" if offline else ""
        raise InputError(
            f"{spec}: {repo}{'@' + revision if revision else ''} is not in the Hugging Face "
            f"Hub cache ({cache or huggingface_hub.constants.HF_HUB_CACHE}) and {why}: get it "
            f"with `{get}` while online{unset}",
            arg="spec",
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise InputError(f"{spec}: {' '.join(str(e).split())}", arg="spec") from None
    folder = Path(folder)
    if not (folder / GENERATOR_FILE).is_file():
        raise InputError(
            f"{spec}: not a posetransfer model (no {GENERATOR_FILE} in the repository)",
            arg="spec",
        )
    try:
        verified = verify_checkpoint(folder, None)  # every file the manifest lists
    except InputError as e:
        raise InputError(f"{spec}: {str(e).removeprefix(f'{folder}: ')}", arg="spec") from None
    if not verified:
        raise InputError(
            f"{spec}: no manifest.json: a Hub model holds the files of a bundled model's folder "
            "(`posetransfer pretrained export --hub-folder`)",
            arg="spec",
        )
    return folder


def describe(model: Any) -> str:
    """One line saying how a generator from `load_generator` runs, for the logs."""
    backend = getattr(model, "backend", "torch")
    precision = getattr(model, "precision", "fp32")
    requested = getattr(model, "requested", precision)
    picked = f"{precision} (auto)" if requested == "auto" else precision
    device = getattr(model, "device", "cpu")
    return f"inference: {backend} on {device}, {picked}"
