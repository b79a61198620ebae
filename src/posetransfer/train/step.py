"""One training step: a generator update, then one update of each discriminator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from posetransfer.core.precision import autocast
from posetransfer.models.losses import discriminator_step
from posetransfer.train.build import Training
from posetransfer.train.run import Stats


def train_step(t: Training, batch: dict[str, Any], stats: Stats) -> None:
    """Update G on ``batch`` (discriminators frozen), then each D; advance the schedules.

    Forward passes and losses run under the precision's autocast (`posetransfer.core.precision`);
    the weights, their gradients and the optimisers stay in float32.
    """
    # Generator step (discriminators frozen).
    for d in t.discs.values():
        d.requires_grad_(False)
    with autocast(t.precision, t.device):
        fake = t.ddp_generator(batch["src_img"], batch["src_pose"], batch["tgt_pose"])
        terms = t.g_loss(fake, batch, t.discs.get("D_app"), t.discs.get("D_shape"))
    t.opts["G"].zero_grad(set_to_none=True)
    _scaled(t, "G")(terms["G_total"]).backward()
    _optimizer_step(t, "G")
    for k, v in terms.items():
        stats.report(f"loss/{k}", v.detach())

    # Discriminator steps: real pairs against generated ones drawn through the image pools.
    if t.discs:
        # The discriminators see the fake in float32, as the real images: the image pools
        # then hold one dtype whatever the precision.
        _discriminator_steps(t, batch, fake.detach().float(), stats)
    for s in t.scheds.values():
        s.step()


def _discriminator_steps(
    t: Training, batch: dict[str, Any], fake: torch.Tensor, stats: Stats
) -> None:
    pairs = {
        "D_app": (
            torch.cat([batch["tgt_img"], batch["src_img"]], 1),
            torch.cat([fake, batch["src_img"]], 1),
        ),
        "D_shape": (
            torch.cat([batch["tgt_img"], batch["tgt_pose"]], 1),
            torch.cat([fake, batch["tgt_pose"]], 1),
        ),
    }
    for name, d in t.discs.items():
        d.requires_grad_(True)
        t.opts[name].zero_grad(set_to_none=True)
        real, fake_pair = pairs[name]
        with autocast(t.precision, t.device):
            parts = discriminator_step(
                t.gan,
                d,
                real,
                t.pools[name].query(fake_pair),
                t.cfg.loss.lambda_gan,
                scale=_scaled(t, name),
            )
        if t.world > 1:  # average gradients by hand: D is not wrapped in DDP
            for p in d.parameters():
                dist.all_reduce(p.grad)
                p.grad /= t.world
        _optimizer_step(t, name)
        stats.report(f"loss/{name}_real", parts["real"])
        stats.report(f"loss/{name}_fake", parts["fake"])


def _scaled(t: Training, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """What a loss of optimiser ``name`` goes through before backward: fp16's loss scaling."""
    scaler = t.scalers.get(name)
    return scaler.scale if scaler is not None else (lambda loss: loss)


def _optimizer_step(t: Training, name: str) -> None:
    """Step optimiser ``name``; with fp16, through its scaler (unscale, skip on inf, update)."""
    scaler = t.scalers.get(name)
    if scaler is None:
        t.opts[name].step()
    else:
        scaler.step(t.opts[name])
        scaler.update()
