"""Which real images an augmented set keeps and which it generates, from names and poses only.

`plan_augmentation` decides, from the names, poses and a seed, which real images stay and which
images are generated from which source and target pose; `posetransfer.reid.augmentation.augment`
writes the plan. Nothing here reads or writes a file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posetransfer.core.files import GENERATED_SEPARATOR
from posetransfer.errors import InputError, InputWarning
from posetransfer.pose import has_torso
from posetransfer.reid.config import TARGET_POSES

SEPARATOR = GENERATED_SEPARATOR
"""Between the source and target stems of a generated image's name, as `generate` names them."""


@dataclass
class Plan:
    """Which training images a set holds: kept real ones and (name, source, target) to generate."""

    kept: list[str]
    generated: list[tuple[str, str, str]]
    left_out: dict[str, list[str]] = field(default_factory=dict)
    """Reason -> images that could not be replaced or used, e.g. "no pose"."""


def keep_portion(
    groups: dict[int, list[str]],
    portion: float,
    seed: int,
    prefer: set[str] | None = None,
) -> list[str]:
    """The ``max(round(portion * N), identities)`` real images kept, at least one per identity.

    One image of each identity is drawn first (among its ``prefer`` images, those with a usable
    pose, where it has any, so that its removed images can be generated), then the rest
    uniformly from the others. The result depends on the names, the poses, ``portion`` and
    ``seed`` only, so the sets of every generator (and of no generator) at one portion hold the
    same real images.
    """
    check_portion(portion)
    everything = [n for names in groups.values() for n in names]
    n_keep = max(round(portion * len(everything)), len(groups))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    first = []
    for names in groups.values():
        pool = [n for n in names if n in prefer] if prefer is not None else []
        pool = pool or names
        first.append(pool[int(rng.integers(len(pool)))])
    chosen = set(first)
    rest = [n for n in everything if n not in chosen]
    extra = rng.choice(len(rest), n_keep - len(first), replace=False) if rest else []
    return sorted(chosen | {rest[int(i)] for i in extra})


def check_portion(portion: float) -> float:
    if isinstance(portion, bool) or not isinstance(portion, int | float) or not 0 < portion <= 1:
        raise InputError(f"portion={portion!r}: must be in (0, 1]", arg="portion")
    return float(portion)


def check_options(portion: float, target_poses: str, ratio: int) -> None:
    """InputError naming the argument for a portion outside (0, 1], an unknown pose rule, or a
    ratio that is not a whole number >= 1 or is asked for together with a portion below 1."""
    check_portion(portion)
    if target_poses not in TARGET_POSES:
        raise InputError(
            f"target_poses={target_poses!r}: choose one of {', '.join(TARGET_POSES)}",
            arg="target_poses",
        )
    if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1:
        raise InputError(f"ratio={ratio!r}: must be a whole number >= 1", arg="ratio")
    if ratio > 1 and portion < 1:
        raise InputError(
            f"ratio={ratio} with portion={portion}: the 2x/3x sets add generated images to the "
            "full training set; use portion 1 (or ratio 1 to replace removed images)",
            names=("ratio", "portion"),
        )


def plan_augmentation(
    groups: dict[int, list[str]],
    poses: dict[str, np.ndarray],
    portion: float = 1.0,
    seed: int = 0,
    target_poses: str = "removed",
    ratio: int = 1,
) -> Plan:
    """Decide the kept real images and the generated ones (see `augment`); nothing is read.

    Args:
        groups: training names by person id (`by_identity`).
        poses: keypoints by name; images missing here, or without both shoulders and hips,
            can be neither source nor target (`Plan.left_out` lists them with the reason).
        portion, seed, target_poses, ratio: as in `augment`.
    """
    check_options(portion, target_poses, ratio)
    left_out: dict[str, list[str]] = {}
    everything = [n for names in groups.values() for n in names]
    usable = {n for n in everything if n in poses and has_torso(poses[n])}
    kept = keep_portion(groups, portion, seed, usable) if ratio == 1 else sorted(everything)
    kept_set = set(kept)

    def why(name: str) -> str:
        return "no pose" if name not in poses else "no torso (shoulders and hips)"

    def leave(name: str, reason: str) -> None:
        left_out.setdefault(reason, []).append(name)

    for name in sorted(kept_set - usable):
        leave(name, f"kept real, {why(name)}: cannot be a source")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    sources = {
        pid: [n for n in names if n in kept_set and n in usable] for pid, names in groups.items()
    }
    generated: list[tuple[str, str, str]] = []
    taken: set[str] = set()

    def add(source: str, target: str) -> None:
        base = f"{Path(source).stem}{SEPARATOR}{Path(target).stem}"
        name, k = f"{base}.jpg", 1
        while name in taken:  # the random rule can draw one (source, target) twice
            k += 1
            name = f"{base}_{k}.jpg"
        taken.add(name)
        generated.append((name, source, target))

    if ratio == 1:
        pool = sorted(kept_set & usable)  # the random rule's target poses
        for pid, names in groups.items():
            for removed in (n for n in names if n not in kept_set):
                if target_poses == "removed" and removed not in usable:
                    leave(removed, f"removed, not replaced: {why(removed)} to be a target")
                elif not sources[pid] or not pool:
                    leave(removed, "removed, not replaced: no kept image of the person has a pose")
                else:
                    source = sources[pid][int(rng.integers(len(sources[pid])))]
                    target = (
                        removed if target_poses == "removed" else pool[int(rng.integers(len(pool)))]
                    )
                    add(source, target)
    else:
        pool = sorted(usable)
        if ratio - 1 > len(pool) - 1:
            warnings.warn(
                f"ratio={ratio}: each real image would need {ratio - 1} target poses of other "
                f"images, and only {len(pool) - 1} are annotated; each gets {len(pool) - 1} "
                f"generated images (a ratio of {len(pool)})",
                InputWarning,
                stacklevel=2,
            )
        for source in (n for n in kept if n in usable):
            others = [n for n in pool if n != source]
            for i in rng.choice(len(others), min(ratio - 1, len(others)), replace=False):
                add(source, others[int(i)])
    return Plan(kept, generated, left_out)
