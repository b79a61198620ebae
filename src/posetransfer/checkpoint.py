"""Checkpoints: a directory holding weights as safetensors, ``config.yaml`` and ``train_state.pt``.

    runs/00003-patn_small-synthetic/checkpoints/step-0001000/
        generator.safetensors       the generator's state dict
        discriminators.safetensors  D_A and D_S (absent when trained without a GAN loss)
        config.yaml                 the resolved training config, plus the generator's name and
                                    keyword arguments: enough to rebuild it with no pickled code
        train_state.pt              optimisers, schedulers, image pools, step, RNG states

Every checkpoint is written to a temporary directory and renamed into place, so an interrupted
write never leaves a half-written checkpoint; ``checkpoints/latest`` names the newest one.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from posetransfer.config import Config, config_from_dict
from posetransfer.errors import InputError
from posetransfer.files import atomic_write

GENERATOR_FILE = "generator.safetensors"
DISCRIMINATORS_FILE = "discriminators.safetensors"
CONFIG_FILE = "config.yaml"
STATE_FILE = "train_state.pt"
LATEST_FILE = "latest"


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
    config: Config | None = field(default=None, repr=False)


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
    """Write a checkpoint directory atomically and return its path."""
    ckpt_dir = Path(ckpt_dir)
    tmp = ckpt_dir.with_name(f".{ckpt_dir.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(_state_for_safetensors(generator), tmp / GENERATOR_FILE)
    if discriminators:
        sd: dict[str, torch.Tensor] = {}
        for name, d in discriminators.items():
            sd.update(_state_for_safetensors(d, prefix=f"{name}."))
        save_file(sd, tmp / DISCRIMINATORS_FILE)
    meta = {
        "generator": {"name": generator_name, "kwargs": dict(generator_kwargs)},
        "step": step,
        **cfg.to_dict(),
    }
    (tmp / CONFIG_FILE).write_text(yaml.safe_dump(meta, sort_keys=False))
    if train_state is not None:
        torch.save(train_state, tmp / STATE_FILE)
    if ckpt_dir.exists():  # re-saving the same step: swap the old one out first
        old = ckpt_dir.with_name(f".{ckpt_dir.name}.old-{os.getpid()}")
        ckpt_dir.rename(old)
        tmp.rename(ckpt_dir)
        shutil.rmtree(old)
    else:
        tmp.rename(ckpt_dir)
    atomic_write(ckpt_dir.parent / LATEST_FILE, ckpt_dir.name + "\n")
    return ckpt_dir


def prune_checkpoints(checkpoints_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest step-* checkpoints."""
    steps = sorted(p for p in checkpoints_dir.glob("step-*") if p.is_dir())
    for p in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a checkpoint directory, a run directory or its checkpoints/."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"checkpoint not found: {p}")
    if (p / GENERATOR_FILE).is_file():
        return p
    for parent in (p, p / "checkpoints"):
        latest = parent / LATEST_FILE
        if latest.is_file():
            ckpt = parent / latest.read_text().strip()
            if (ckpt / GENERATOR_FILE).is_file():
                return ckpt
    raise InputError(
        f"{p}: not a checkpoint (no {GENERATOR_FILE}) nor a run directory with checkpoints"
    )


def read_checkpoint_config(ckpt: Path) -> tuple[dict[str, Any], Config]:
    """(metadata: generator name/kwargs and step, training Config) of a checkpoint directory."""
    path = ckpt / CONFIG_FILE
    if not path.is_file():
        raise InputError(f"{ckpt}: missing {CONFIG_FILE}")
    try:
        meta = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({e})")
    gen = meta.pop("generator", None)
    step = meta.pop("step", None)
    if not isinstance(gen, dict) or "name" not in gen:
        raise InputError(f"{path}: no generator name recorded")
    return {"generator": gen, "step": step}, config_from_dict(meta, str(path))


def load_generator(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, GeneratorInfo]:
    """Load a generator in eval mode from our checkpoint or an authors' ``latest_net_netG.pth``.

    Args:
        path: a checkpoint directory, a run directory (its latest checkpoint), or a ``.pth``
            file of the authors' PATN code (norm detected from the weights; image size and
            heatmap style then follow the dataset the norm implies: BatchNorm -> Market 128x64,
            InstanceNorm -> DeepFashion 256x176 with the legacy uint8 heatmaps).
        device: where to put the model.

    Returns:
        (model, info) where info says which image size and heatmaps the model expects.
    """
    from posetransfer.models.registry import create_generator

    p = Path(path)
    if p.is_file() and p.suffix in (".pth", ".pt"):
        from posetransfer.models.original import load_original_patn

        model = load_original_patn(p)
        batch = isinstance(model.image_encoder[2], nn.BatchNorm2d)
        info = GeneratorInfo(
            name="patn_market" if batch else "patn_fashion",
            kwargs={"ngf": model.image_encoder[1].out_channels, "n_blocks": len(model.blocks)},
            height=128 if batch else 256,
            width=64 if batch else 176,
            legacy_heatmaps=not batch,
            source=str(p),
        )
        return model.to(device), info
    ckpt = resolve_checkpoint(p)
    meta, cfg = read_checkpoint_config(ckpt)
    name, kwargs = meta["generator"]["name"], meta["generator"].get("kwargs") or {}
    try:
        model = create_generator(name, **kwargs)
    except (KeyError, TypeError) as e:
        raise InputError(f"{ckpt}: cannot build generator {name!r} with {kwargs}: {e}")
    try:
        sd = load_file(ckpt / GENERATOR_FILE)
    except Exception as e:
        raise InputError(f"{ckpt / GENERATOR_FILE}: unreadable weights ({e})")
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
        config=cfg,
    )
    return model.to(device).eval(), info
