"""Checkpoints: a directory holding weights as safetensors, ``config.yaml`` and ``train_state.pt``.

    runs/00003-patn_small-synthetic/checkpoints/step-0001000/
        generator.safetensors       the generator's state dict
        discriminators.safetensors  D_A and D_S (absent when trained without a GAN loss)
        config.yaml                 the resolved training config, plus the generator's name and
                                    keyword arguments: enough to rebuild it with no pickled code
        train_state.pt              optimisers, image pools, step, RNG states (tensors,
                                    numbers, lists and dicts only: read with
                                    ``torch.load(weights_only=True)``)
        manifest.json               size and sha256 of each file above, written last

Every checkpoint is serialised in memory, written file by file (each flushed to disk) into a
temporary directory, and renamed into place, so an interrupted or failed write (a full disk)
never leaves a half-written checkpoint; ``checkpoints/latest`` names the newest one. Loading
checks the files it reads against the manifest, so a truncated or corrupted file is an error
naming it rather than weights that load silently wrong (see `posetransfer.checkpoint.format`).
"""

from __future__ import annotations

import io
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_file
from safetensors.torch import save as to_safetensors
from torch import nn

from posetransfer.checkpoint.format import (
    CONFIG_FILE,
    DISCRIMINATORS_FILE,
    GENERATOR_FILE,
    LATEST_FILE,
    MANIFEST_FILE,
    STATE_FILE,
    CheckpointWarning,
    checkpoint_steps,
    read_saved_config,
    resolve_checkpoint,
    verify_checkpoint,
    write_manifest,
)
from posetransfer.config import Config, config_from_dict
from posetransfer.core.files import (
    atomic_write,
    disk_error,
    load_torch_file,
    remove_partial,
    swap_into_place,
    torch_file_failure,
)
from posetransfer.errors import InputError
from posetransfer.models.registry import create_generator

__all__ = [
    "CONFIG_FILE",
    "DISCRIMINATORS_FILE",
    "GENERATOR_FILE",
    "LATEST_FILE",
    "MANIFEST_FILE",
    "STATE_FILE",
    "CheckpointWarning",
    "GeneratorInfo",
    "load_weights",
    "prune_checkpoints",
    "read_checkpoint_config",
    "read_generator",
    "read_train_state",
    "remove_orphans",
    "resolve_checkpoint",
    "save_checkpoint",
    "verify_checkpoint",
]

# Temporary folders of `save_checkpoint`: ``.step-N.tmp-PID`` (being written) and
# ``.step-N.old-PID`` (the previous copy of a step being re-saved, until the new one is in place).
_ORPHAN = re.compile(r"\.(step-\d+)\.(tmp|old)-\d+")

# train_state.pt files written before RNG states were stored as tensors hold one NumPy array (the
# legacy NumPy RNG key); exactly these globals rebuild it, still under weights_only=True.
_LEGACY_NUMPY_GLOBALS = [np.ndarray(0).__reduce__()[0], np.ndarray, np.dtype, type(np.dtype("u4"))]


@dataclass(frozen=True)
class GeneratorInfo:
    """What a loaded generator expects: its name and arguments, image size and heatmap style."""

    name: str
    kwargs: dict[str, Any]
    height: int
    width: int
    sigma: float = 6.0
    legacy_heatmaps: bool = False
    step: int | None = None
    source: str = ""
    pretrained: str | None = None
    """The bundled model's name (`posetransfer.pretrained`) when it is one."""


def _state_for_safetensors(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(
    ckpt_dir: str | Path,
    generator: nn.Module,
    generator_name: str,
    generator_kwargs: dict[str, Any],
    cfg: Config,
    step: int,
    discriminators: dict[str, nn.Module] | None = None,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically and return its path.

    Every file is serialised in memory first, then written (and flushed to disk) into a temporary
    folder beside ``ckpt_dir``, the manifest last; the folder is then renamed into place and
    ``latest`` updated. A failed write removes the temporary folder and leaves every existing
    checkpoint as it was.

    Raises:
        InputError: a write failed, naming the file; a full disk says so.
    """
    ckpt_dir = Path(ckpt_dir)
    contents = {GENERATOR_FILE: to_safetensors(_state_for_safetensors(generator))}
    if discriminators:
        sd: dict[str, torch.Tensor] = {}
        for name, d in discriminators.items():
            sd.update(_state_for_safetensors(d, prefix=f"{name}."))
        contents[DISCRIMINATORS_FILE] = to_safetensors(sd)
    meta = {
        "generator": {"name": generator_name, "kwargs": dict(generator_kwargs)},
        "step": step,
        **cfg.to_dict(),
    }
    contents[CONFIG_FILE] = yaml.safe_dump(meta, sort_keys=False).encode()
    if train_state is not None:
        buffer = io.BytesIO()
        torch.save(train_state, buffer)
        contents[STATE_FILE] = buffer.getvalue()

    tmp = ckpt_dir.with_name(f".{ckpt_dir.name}.tmp-{os.getpid()}")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for name, data in contents.items():
            atomic_write(tmp / name, data)
        write_manifest(tmp, contents)
        swap_into_place(tmp, ckpt_dir)
    except OSError as e:
        raise disk_error(ckpt_dir, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # left only by a failed write
    atomic_write(ckpt_dir.parent / LATEST_FILE, ckpt_dir.name + "\n")
    return ckpt_dir


def prune_checkpoints(checkpoints_dir: Path, keep: int, newest: Path | None = None) -> None:
    """Delete all but the ``keep`` newest step-* checkpoints up to ``newest``.

    Checkpoints of later steps than ``newest`` (the one just written) are left alone: they are
    damaged ones a resumed run skipped, or those of a run resumed from an earlier step, which
    training replaces when it gets there.
    """
    steps = checkpoint_steps(checkpoints_dir)
    if newest is not None:
        limit = int(newest.name.split("-")[1])
        steps = [p for p in steps if int(p.name.split("-")[1]) <= limit]
    for p in steps[keep:]:
        shutil.rmtree(p, ignore_errors=True)


def remove_orphans(checkpoints_dir: Path) -> list[str]:
    """Clear what a killed `save_checkpoint` left in a checkpoints folder; what was done.

    A ``.step-N.tmp-PID`` folder is an unfinished write and is deleted. A ``.step-N.old-PID``
    folder is the previous copy of a step being re-saved: it goes back in place when the process
    died before the new copy arrived, and is deleted otherwise. Only call this while holding the
    run's lock, so that no other process is writing there.
    """
    done: list[str] = []
    if not checkpoints_dir.is_dir():
        return done
    for p in sorted(checkpoints_dir.iterdir()):
        m = _ORPHAN.fullmatch(p.name)
        if m is None or not p.is_dir():
            continue
        target = checkpoints_dir / m.group(1)
        if m.group(2) == "old" and not target.exists():
            p.rename(target)
            done.append(f"restored {target.name} from {p.name}")
        else:
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed {p.name}")
    if remove_partial(checkpoints_dir):
        done.append(f"removed unfinished {LATEST_FILE} updates")
    return done


def read_checkpoint_config(ckpt: Path) -> tuple[dict[str, Any], Config]:
    """(metadata: generator name/kwargs and step, training Config) of a checkpoint directory."""
    meta = read_saved_config(ckpt)
    gen = meta.pop("generator", None)
    step = meta.pop("step", None)
    path = ckpt / CONFIG_FILE
    if not isinstance(gen, dict) or "name" not in gen:
        raise InputError(f"{path}: no generator name recorded")
    return {"generator": gen, "step": step}, config_from_dict(meta, str(path))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; InputError naming it when it cannot be read."""
    try:
        return load_file(path)
    except FileNotFoundError:
        raise InputError(f"{path}: missing") from None
    except Exception as e:  # safetensors raises its own error type for a damaged file
        raise InputError(f"{path}: unreadable weights ({' '.join(str(e).split())})") from None


def read_train_state(ckpt: Path) -> dict[str, Any]:
    """A checkpoint's ``train_state.pt``, read with ``torch.load(weights_only=True)``.

    Raises:
        InputError: the file is missing, unreadable, or holds anything but tensors and plain
            Python values.
    """
    path = ckpt / STATE_FILE
    if not path.is_file():
        raise InputError(f"{ckpt}: no {STATE_FILE}: a checkpoint for inference only, not resumable")
    try:
        state = load_torch_file(path, "training state")
    except InputError as first:
        if torch_file_failure(first)[0] is None:  # damaged: no allowed class would help
            raise
        try:  # perhaps a file of an earlier version (see above)
            with torch.serialization.safe_globals(_LEGACY_NUMPY_GLOBALS):
                state = load_torch_file(path, "training state")
        except InputError as e:
            refused, _ = torch_file_failure(e)
            if refused is None:
                raise
            raise InputError(
                f"{path}: unreadable training state (it holds pickled Python objects "
                f"({refused}), which are never loaded)"
            ) from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise InputError(f"{path}: not a training state (no step recorded)")
    return state


def read_generator(
    ckpt: Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, GeneratorInfo]:
    """The generator stored in one checkpoint folder, float32 in eval mode, and its info.

    Finding that folder (a run's newest intact checkpoint, a bundled model, a Hub repository)
    is `posetransfer.runtime.load.load_generator`'s work; this reads the folder it found.

    Args:
        ckpt: a checkpoint folder, already checked against its manifest (`resolve_checkpoint`).
        device: where to put the model.

    Returns:
        (model, info) where info says which image size and heatmaps the model expects.

    Raises:
        InputError: a file is unreadable, or the weights do not fit the recorded generator.
    """
    meta, cfg = read_checkpoint_config(ckpt)
    name, kwargs = meta["generator"]["name"], meta["generator"].get("kwargs") or {}
    try:
        model = create_generator(name, **kwargs)
    except (KeyError, TypeError) as e:
        raise InputError(f"{ckpt}: cannot build generator {name!r} with {kwargs}: {e}")
    sd = load_weights(ckpt / GENERATOR_FILE)
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise InputError(
            f"{ckpt / GENERATOR_FILE}: weights do not fit generator {name!r} "
            f"({str(e).splitlines()[0]}): a checkpoint of another architecture?"
        )
    info = GeneratorInfo(
        name=name,
        kwargs=kwargs,
        height=cfg.data.height,
        width=cfg.data.width,
        sigma=cfg.data.sigma,
        legacy_heatmaps=cfg.data.legacy_heatmaps,
        step=meta["step"],
        source=str(ckpt),
    )
    return model.to(device).eval(), info
