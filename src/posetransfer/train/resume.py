"""What resuming a run must keep from its checkpoint, and which config fields may change.

Resuming continues a run exactly: the networks, optimisers, image pools, data order and every
RNG come from the checkpoint. So the number of processes must be the one that saved it (each
process's data shard, RNG states and image pools are stored; see `check_position`), and
``train.iterations`` must lie beyond its step (equal: the run is finished and nothing is
trained). The config given with ``train.resume`` is compared with the one saved in that
checkpoint, field by field:

- `RESUMABLE_FIELDS` only steer the rest of the run (how long, the learning rate and its decay,
  logging and checkpointing, the device, the precision and memory layout, data workers). A
  changed value applies after the checkpoint's step and is recorded in the run's
  ``config-history.jsonl`` as
  ``{"step": N, "checkpoint": "step-N", "changed": {"train.lr": [old, new]}}``.
- Every other field (the model, the data, the losses, batch size, seed, Adam betas, where runs
  live) is fixed by the checkpoint: a changed value is refused, naming the fields and the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posetransfer.checkpoint.format import CONFIG_FILE, read_saved_config, resolve_checkpoint
from posetransfer.config import Config, build_config, resume_override
from posetransfer.errors import InputError

RESUMABLE_FIELDS: tuple[str, ...] = (
    "train.iterations",
    "train.decay_start",
    "train.lr",
    "train.log_every",
    "train.sample_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.max_minutes",
    "train.progress",
    "train.device",
    "train.precision",
    "train.channels_last",
    "train.compile",
    "data.num_workers",
    "data.cache_mb",
)

# Not a setting of the run: where it continues from.
_NOT_COMPARED = ("train.resume",)


def resume_config(overrides: list[str]) -> tuple[Config, Path]:
    """The saved config of the run that ``train.resume=RUN`` names, with the overrides applied.

    Reads the config of RUN's newest intact checkpoint (or of the checkpoint named), so that a
    resumed run keeps its settings; the overrides then change only the fields that may change
    on resume (`RESUMABLE_FIELDS`, checked by `train`).

    Returns:
        (the config, the checkpoint it was read from): pass both to `posetransfer.train.train`,
        which then resumes exactly that checkpoint.

    Raises:
        InputError: no ``train.resume`` among the overrides, or no intact checkpoint there.
    """
    resume = resume_override(overrides)
    if resume is None:
        raise InputError(
            "overrides: no train.resume=RUN to read a saved config from", arg="overrides"
        )
    ckpt = resolve_checkpoint(resume, names=None)  # all of its files intact
    base = read_saved_config(ckpt)
    for key in ("generator", "step"):  # saved beside the config sections
        base.pop(key, None)
    return build_config(base, list(overrides), str(ckpt / CONFIG_FILE)), ckpt


def _flat(cfg: Config) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, section in cfg.to_dict().items() for k, v in section.items()}


def config_changes(saved: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """The fields whose values differ: ``"section.field" -> (saved, new)``."""
    old, cur = _flat(saved), _flat(new)
    return {k: (old[k], cur[k]) for k in cur if k not in _NOT_COMPARED and old[k] != cur[k]}


def resume_changes(saved: Config, new: Config, ckpt: Path) -> dict[str, tuple[Any, Any]]:
    """The changes resuming ``ckpt`` with config ``new`` makes; all must be resumable.

    Raises:
        InputError: naming each changed field that a checkpoint fixes, and the run.
    """
    changes = config_changes(saved, new)
    refused = {k: v for k, v in changes.items() if k not in RESUMABLE_FIELDS}
    if refused:
        listed = ", ".join(f"{k} ({a!r} -> {b!r})" for k, (a, b) in refused.items())
        raise InputError(
            f"{ckpt.parent.parent}: cannot resume with a changed {listed}: the checkpoint "
            f"{ckpt.name} fixes {'them' if len(refused) > 1 else 'it'}; start a new run to change "
            f"{'them' if len(refused) > 1 else 'it'} (fields that may change on resume: "
            f"{', '.join(RESUMABLE_FIELDS)})"
        )
    return changes


def saved_world(state: dict[str, Any]) -> int:
    """The number of processes that saved a training state (older states: one entry per rank)."""
    world = state.get("world")
    if isinstance(world, int) and not isinstance(world, bool):
        return world
    ranks = state.get("ranks")
    return len(ranks) if isinstance(ranks, list) and ranks else 1


def check_position(state: dict[str, Any], ckpt: Path, cfg: Config, world: int) -> None:
    """Refuse resuming ``ckpt`` with another number of processes, or short of its step.

    Args:
        state: the checkpoint's training state (`posetransfer.checkpoint.read_train_state`).
        ckpt: the checkpoint, ``RUN/checkpoints/step-N``.
        cfg: the config to resume with.
        world: the number of processes resuming it.

    Raises:
        InputError: a different number of processes, or ``train.iterations`` below the
            checkpoint's step (``arg="train.iterations"``).
    """
    saved = saved_world(state)
    if saved != world:
        raise InputError(
            f"{ckpt}: saved by {saved} training process{'es' if saved > 1 else ''}, resumed by "
            f"{world}: each process's data shard, RNG states and image pools are part of the "
            f"checkpoint, so resume it with {saved} process{'es' if saved > 1 else ''}"
        )
    step = state["step"]
    if cfg.train.iterations < step:
        raise InputError(
            f"train.iterations={cfg.train.iterations}: fewer than the {step} steps that "
            f"{ckpt.parent.parent} has trained (checkpoint {ckpt.name}); give more iterations to "
            "train it further",
            arg="train.iterations",
        )
