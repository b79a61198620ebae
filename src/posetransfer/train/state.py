"""The resumable training state: saved into a checkpoint and restored from it, side by side.

Besides the weights, a checkpoint's ``train_state.pt`` holds, in tensors, numbers, lists and
dicts only (so that it loads with ``torch.load(weights_only=True)``):

    step, epoch, batch_in_epoch   the position: steps done, and batches of this epoch done
    world                         the number of processes (a resume must use as many)
    optimizers                    the Adam state of G, D_app and D_shape
    loader_generator              the DataLoader's generator state (its workers' seeds)
    ranks                         per process, in rank order: RNG states (torch, CUDA, Python,
                                  NumPy) and the image pools

The learning-rate schedule is a function of the step and the config, so it is rebuilt at the
restored step rather than stored (see `posetransfer.train.build.make_schedulers`).
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from posetransfer.checkpoint import (
    DISCRIMINATORS_FILE,
    GENERATOR_FILE,
    load_weights,
    prune_checkpoints,
    read_train_state,
    save_checkpoint,
)
from posetransfer.errors import InputError, InputWarning
from posetransfer.train.build import Training, make_schedulers


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    saved = state["numpy"]
    if isinstance(saved, dict):
        np.random.set_state(
            {
                "bit_generator": "MT19937",
                "state": {"key": saved["key"].numpy().astype(np.uint32), "pos": saved["pos"]},
                "has_gauss": saved["has_gauss"],
                "gauss": saved["gauss"],
            }
        )
    else:  # the legacy tuple of train_state.pt files written before this layout
        np.random.set_state(saved)


def save_state(t: Training, checkpoints_dir: Path) -> Path:
    """Write a checkpoint of ``t`` at its step (rank 0; every process must call it).

    Each process contributes its RNG states and image pools; rank 0 writes the checkpoint and
    prunes old ones. A failed write (a full disk) is an InputError naming the file, and leaves
    the earlier checkpoints as they were.
    """
    per_rank = {"rng": _rng_state(), "pools": {n: p.state_dict() for n, p in t.pools.items()}}
    if t.world > 1:
        gathered: list = [None] * t.world
        dist.all_gather_object(gathered, per_rank)
    else:
        gathered = [per_rank]
    ckpt = checkpoints_dir / f"step-{t.step:07d}"
    if t.rank != 0:
        return ckpt
    state = {
        "step": t.step,
        "epoch": t.epoch,
        "batch_in_epoch": t.batch_in_epoch,
        "world": t.world,
        "optimizers": {k: o.state_dict() for k, o in t.opts.items()},
        "precision": t.precision,
        "scalers": {k: s.state_dict() for k, s in t.scalers.items()},
        "ranks": gathered,
        "loader_generator": t.loader_gen.get_state(),
    }
    cfg = t.cfg
    save_checkpoint(
        ckpt,
        t.generator,
        cfg.model.generator,
        cfg.model.generator_kwargs(),
        cfg,
        t.step,
        t.discs,
        state,
    )
    prune_checkpoints(checkpoints_dir, cfg.train.keep_checkpoints, newest=ckpt)
    return ckpt


def _load_networks(t: Training, ckpt: Path) -> None:
    sds = {"generator": load_weights(ckpt / GENERATOR_FILE)}
    if t.discs:
        sds["discs"] = load_weights(ckpt / DISCRIMINATORS_FILE)
    try:
        t.generator.load_state_dict(sds["generator"])
        for name, d in t.discs.items():
            n = len(name) + 1
            d.load_state_dict(
                {k[n:]: v for k, v in sds["discs"].items() if k.startswith(name + ".")}
            )
    except RuntimeError as e:
        raise InputError(
            f"{ckpt}: its weights do not fit the networks of the config ({str(e).splitlines()[0]})"
        )


def restore_state(t: Training, ckpt: Path, state: dict[str, Any] | None = None) -> None:
    """Load the networks and the training state of ``ckpt`` into ``t`` (every process).

    The optimisers keep the config's learning rate: their schedulers are rebuilt at the
    restored step, so a changed ``train.lr``, ``train.iterations`` or ``train.decay_start``
    applies from the next step.

    Args:
        t: the freshly built training session.
        ckpt: the checkpoint, saved by as many processes as ``t.world`` (see
            `posetransfer.train.resume.check_position`).
        state: its training state when already read; None reads it.
    """
    _load_networks(t, ckpt)
    if state is None:
        state = read_train_state(ckpt)
    try:
        for k, opt in t.opts.items():
            fused = [g.get("fused") for g in opt.param_groups]
            opt.load_state_dict(state["optimizers"][k])
            for group, keep in zip(opt.param_groups, fused, strict=True):
                group["fused"] = keep  # the saved groups' flag (older runs: None) is not ours
                if keep:  # the fused kernel wants its step counters on the parameters' device
                    for p in group["params"]:
                        st = opt.state.get(p, {})
                        if torch.is_tensor(st.get("step")):
                            st["step"] = st["step"].to(p.device, torch.float32)
        before = state.get("precision", "fp32")
        if before != t.precision:
            warnings.warn(
                f"{ckpt}: trained at {before} until step {state['step']}, continuing at "
                f"{t.precision} (train.precision): not bit-identical to a run that stayed at "
                f"{before}",
                InputWarning,
                stacklevel=2,
            )
        for k, scaler in t.scalers.items():  # fp16; a state saved at another precision has none
            if k in state.get("scalers", {}):
                scaler.load_state_dict(state["scalers"][k])
        mine = state["ranks"][t.rank]
        for name, pool in t.pools.items():
            pool.load_state_dict(mine["pools"][name], t.device)
        t.loader_gen.set_state(state["loader_generator"])
        t.step, t.epoch, t.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        _set_rng_state(mine["rng"])
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as e:
        raise InputError(
            f"{ckpt}: its training state does not fit this run ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else 'missing entry'})"
        )
    t.scheds = make_schedulers(t.opts, t.cfg, t.step)
