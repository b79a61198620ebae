"""`ReidConfig`: how one re-ID model is trained. Plain data: importing it loads no torch."""

from __future__ import annotations

from dataclasses import dataclass, fields

from posetransfer.errors import InputError

LOSSES: tuple[str, ...] = ("softmax", "triplet", "circle")


def check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise InputError(f"loss={loss!r}: choose one of {', '.join(LOSSES)}", arg="loss")
    return loss


@dataclass(frozen=True)
class ReidConfig:
    """How one re-ID model is trained (defaults: torchreid's Market-1501 recipe, shortened)."""

    backbone: str = "resnet50"
    """A torchreid model name: resnet50 (the paper's), or resnet18 / osnet_x0_25 on a CPU."""
    loss: str = "softmax"
    """softmax (cross-entropy with label smoothing), triplet (+ cross-entropy), circle (+ CE)."""
    pretrained: str = "imagenet"
    """"imagenet" (from torch's cache, never downloaded), "none" (from scratch) or a file."""
    steps: int = 6000
    """Optimiser steps (batches), whatever the set's size: sets of every portion get the same."""
    batch_size: int = 32
    lr: float = 3e-4
    """Adam's learning rate, decayed to 0 on a cosine over the steps."""
    weight_decay: float = 5e-4
    height: int = 256
    """Input height; torchreid's Market default is 256x128; 128x64 is Market's own size."""
    width: int = 128
    num_instances: int = 4
    """Images per person in a batch for triplet and circle losses (torchreid's identity sampler)."""
    margin: float = 0.3
    """Triplet margin."""
    circle_m: float = 0.25
    """Circle-loss relaxation margin (the circle-loss paper's re-ID value)."""
    circle_gamma: float = 128.0
    """Circle-loss scale (the circle-loss paper's re-ID value)."""
    eval_batch_size: int = 64
    seed: int = 0
    save_every: int = 500

    def __post_init__(self) -> None:
        check_loss(self.loss)
        for name in ("steps", "batch_size", "height", "width", "num_instances", "eval_batch_size", "save_every"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name}={value!r}: must be a positive whole number", arg=name)
        if self.loss != "softmax" and self.batch_size % self.num_instances:
            raise InputError(
                f"batch_size={self.batch_size}: must be a multiple of {self.num_instances} (the "
                f"images per person in a batch) for the {self.loss} loss's identity sampler",
                arg="batch_size",
            )
        for name in ("lr", "weight_decay", "margin", "circle_m", "circle_gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InputError(f"{name}={value!r}: must be a number >= 0", arg=name)

    @classmethod
    def from_dict(cls, d: dict) -> ReidConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
