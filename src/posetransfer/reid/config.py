"""`ReidConfig`: how one re-ID model is trained. Plain data: importing it loads no torch."""

from __future__ import annotations

import math
from dataclasses import dataclass

from posetransfer.core.options import from_dict, option
from posetransfer.errors import InputError

LOSSES: tuple[str, ...] = ("softmax", "triplet", "circle")
TARGET_POSES: tuple[str, ...] = ("removed", "random")
"""The pose of each generated image of an augmented set (`reid.augment`): the removed image's,
or a random kept image's (the paper's starred rows). Here, not in `reid.augmentation` (which
imports torch), so that ``reid augment --help`` lists them without torch."""


def check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise InputError(f"loss={loss!r}: choose one of {', '.join(LOSSES)}", arg="loss")
    return loss


@dataclass(frozen=True)
class ReidConfig:
    """How one re-ID model is trained (defaults: torchreid's Market-1501 recipe, shortened)."""

    backbone: str = option(
        "resnet50",
        help="torchreid model: resnet50 (the paper's), or resnet18 / osnet_x0_25 on a CPU",
    )
    loss: str = option(
        "softmax",
        help="softmax: cross-entropy with label smoothing; triplet or circle "
        "(pytorch-metric-learning), each + cross-entropy",
        choices=LOSSES,
    )
    pretrained: str = option(
        "imagenet",
        help="imagenet: from torch's cache, never downloaded; none: from scratch; "
        "or a weights file",
        metavar="imagenet|none|PATH",
    )
    steps: int = option(
        6000,
        help="optimiser steps (batches), whatever the set's size: sets of every portion get "
        "the same",
        minimum=1,
    )
    batch_size: int = option(32, help="re-ID batch", minimum=1)
    lr: float = option(3e-4, help="Adam learning rate, decayed to 0 on a cosine over the steps")
    weight_decay: float = option(5e-4, help="Adam weight decay")
    height: int = option(
        256,
        help="input height; torchreid's Market default is 256x128; 128x64 is Market's own size",
        minimum=1,
    )
    width: int = option(128, help="input width", minimum=1)
    num_instances: int = option(
        4,
        help="images per person in a batch for the triplet and circle losses (torchreid's "
        "identity sampler)",
        minimum=1,
    )
    margin: float = option(0.3, help="triplet margin")
    circle_m: float = option(
        0.25, help="circle-loss relaxation margin (the circle-loss paper's re-ID value)"
    )
    circle_gamma: float = option(
        128.0, help="circle-loss scale (the circle-loss paper's re-ID value)"
    )
    eval_batch_size: int = option(64, help="batch of the ranking", minimum=1)
    seed: int = option(0, help="re-ID training seed", flag="--reid-seed")
    save_every: int = option(500, help="steps between saved training states", minimum=1)

    def __post_init__(self) -> None:
        check_loss(self.loss)
        positive = ("steps", "batch_size", "height", "width", "num_instances", "eval_batch_size")
        for name in (*positive, "save_every"):
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
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise InputError(f"{name}={value!r}: must be a finite number >= 0", arg=name)
        if self.loss != "softmax" and self.batch_size < 2 * self.num_instances:
            raise InputError(
                f"batch_size={self.batch_size}: the {self.loss} loss needs at least two people "
                f"per batch, so at least 2 x num_instances ({2 * self.num_instances})",
                arg="batch_size",
            )

    @classmethod
    def from_dict(cls, d: dict, arg: str = "config") -> ReidConfig:
        """A ReidConfig from a mapping (a run's config.json), refusing unknown keys."""
        return from_dict(cls, d, arg)
