"""A checkpoint directory on disk: its file names, its checksum manifest, and finding it.

    runs/00003-patn_small-synthetic/checkpoints/
        step-0001000/
            generator.safetensors, discriminators.safetensors, config.yaml, train_state.pt
            manifest.json   {"files": {name: {"bytes": size, "sha256": hex digest}}}, written last
        latest          the name of the newest checkpoint

This module knows files only (no networks, no `Config`), so that `posetransfer.config` (which
reads the config saved with a resumed run) and `posetransfer.checkpoint` (which builds on
`Config`) both depend on it and not on each other.

A checkpoint is intact when every file its manifest lists is there with its recorded size and
sha256. Checkpoints written before manifests existed have none; their files are taken as they
are. `resolve_checkpoint` turns a run directory into its newest intact checkpoint: the one
``latest`` names or, when that one is missing or damaged, the newest intact ``step-*`` directory
of no later step (later ones belong to a branch a resume from an earlier step abandoned), with a
`CheckpointWarning` naming each one it skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from posetransfer.core.files import atomic_write
from posetransfer.errors import InputError, InputWarning

GENERATOR_FILE = "generator.safetensors"
DISCRIMINATORS_FILE = "discriminators.safetensors"
CONFIG_FILE = "config.yaml"
STATE_FILE = "train_state.pt"
MANIFEST_FILE = "manifest.json"
LATEST_FILE = "latest"
CHECKPOINTS_DIR = "checkpoints"

# What every use of a checkpoint reads: the generator's weights and how to build it.
REQUIRED_FILES = (GENERATOR_FILE, CONFIG_FILE)

_STEP_DIR = re.compile(r"step-(\d+)")
_CHUNK = 1 << 20


class CheckpointWarning(InputWarning):
    """A damaged or missing checkpoint was skipped in favour of an older intact one."""


def sha256_file(path: Path) -> str:
    """The hex sha256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path, written: dict[str, bytes] | None = None) -> Path:
    """Record the size and sha256 of every file in a checkpoint folder in its manifest.

    The manifest is written last, so that a checkpoint renamed into place after this call
    survives a power cut with the bytes its manifest describes.

    Args:
        folder: the checkpoint folder.
        written: the bytes of each file, as just written durably
            (`posetransfer.core.files.atomic_write`); recorded without reading them back. None
            reads every file in the folder, flushing each to disk first.
    """
    files: dict[str, dict[str, Any]] = {}
    if written is not None:
        for name, data in sorted(written.items()):
            files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    else:
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.name == MANIFEST_FILE:
                continue
            with path.open("rb") as f:
                os.fsync(f.fileno())
            files[path.name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return atomic_write(folder / MANIFEST_FILE, json.dumps({"files": files}, indent=1) + "\n")


def _manifest(ckpt: Path) -> dict[str, dict[str, Any]] | None:
    """The manifest's file entries; None when the checkpoint has no manifest."""
    path = ckpt / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        entries = json.loads(path.read_text())["files"]
        if not all(
            isinstance(e, dict) and isinstance(e.get("bytes"), int) and "sha256" in e
            for e in entries.values()
        ):
            raise ValueError("malformed entry")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise InputError(f"{path}: unreadable checkpoint manifest") from None
    return entries


def checkpoint_problem(ckpt: Path, names: Iterable[str] | None = REQUIRED_FILES) -> str | None:
    """What is wrong with a checkpoint's files, or None when they are intact.

    Args:
        ckpt: a checkpoint directory.
        names: the files to check (each must be present); None checks every file the manifest
            lists, and the required ones.
    """
    required = REQUIRED_FILES if names is None else tuple(names)
    for name in required:
        if not (ckpt / name).is_file():
            return f"{name} is missing"
    try:
        entries = _manifest(ckpt)
    except InputError:
        return f"{MANIFEST_FILE} is unreadable"
    if entries is None:  # written before manifests existed: nothing to check against
        return None
    for name in entries if names is None else [n for n in required if n in entries]:
        path, entry = ckpt / name, entries[name]
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != entry["bytes"]:
            return f"{name} is truncated or damaged ({size} bytes, {entry['bytes']} recorded)"
        if sha256_file(path) != entry["sha256"]:
            return f"{name} is damaged (its sha256 does not match {MANIFEST_FILE})"
    return None


def verify_checkpoint(ckpt: Path, names: Iterable[str] | None = REQUIRED_FILES) -> bool:
    """Check a checkpoint's files against its manifest (see `checkpoint_problem`).

    Returns:
        True when the files were verified, False when the checkpoint has no manifest.

    Raises:
        InputError: naming the checkpoint and the file that is missing or damaged.
    """
    problem = checkpoint_problem(ckpt, names)
    if problem is not None:
        raise InputError(f"{ckpt}: {problem}")
    return (ckpt / MANIFEST_FILE).is_file()


def is_checkpoint_dir(path: Path) -> bool:
    """True for a directory holding checkpoint files (not a run or checkpoints directory)."""
    return path.is_dir() and any(
        (path / n).is_file() for n in (GENERATOR_FILE, MANIFEST_FILE, STATE_FILE)
    )


def checkpoint_steps(checkpoints_dir: Path) -> list[Path]:
    """The ``step-NNNNNNN`` directories of a checkpoints folder, newest (highest step) first."""
    if not checkpoints_dir.is_dir():
        return []
    steps = [p for p in checkpoints_dir.iterdir() if p.is_dir() and _STEP_DIR.fullmatch(p.name)]
    return sorted(steps, key=_step, reverse=True)


def _step(ckpt: Path) -> int:
    return int(ckpt.name[5:])


def _latest(folder: Path, steps: list[Path], skipped: list[str]) -> str | None:
    """The checkpoint ``latest`` names, put first in ``steps`` when there; None without one.

    Only a ``step-N`` name counts: anything else in the file (binary, empty, a path) is ignored,
    noted in ``skipped``.
    """
    path = folder / LATEST_FILE
    if not path.is_file():
        return None
    try:
        name = path.read_bytes().decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    if not _STEP_DIR.fullmatch(name):
        skipped.append(f"{LATEST_FILE} (it does not name a step-N checkpoint)")
        return None
    named = folder / name
    if named.is_dir():  # a step-N directory: one of ``steps``
        steps.remove(named)
        steps.insert(0, named)
    elif steps:
        skipped.append(f"{name} (named by {LATEST_FILE}, no longer there)")
    return name


def resolve_checkpoint(path: str | Path, names: Iterable[str] | None = REQUIRED_FILES) -> Path:
    """The intact checkpoint a path names: a checkpoint, a run directory or its checkpoints/.

    A checkpoint directory is checked as it is. For a run directory, the checkpoint ``latest``
    names comes first, then the other ``step-*`` directories of no later step, newest first: a
    later step is one that a run resumed from an earlier checkpoint has not reached again yet,
    a branch it abandoned. Only when none of those is intact do the later ones follow. The first
    intact one is returned, with a `CheckpointWarning` naming those skipped.

    Args:
        path: where to look.
        names: the files that must be intact (see `checkpoint_problem`); None: all of them, as
            resuming needs.

    Raises:
        InputError: nothing there, or no intact checkpoint (each one named with its problem).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"checkpoint not found: {p}")
    names = None if names is None else tuple(names)
    if is_checkpoint_dir(p):
        verify_checkpoint(p, names)
        return p
    folder = p / CHECKPOINTS_DIR if (p / CHECKPOINTS_DIR).is_dir() else p
    candidates = checkpoint_steps(folder)
    skipped: list[str] = []
    latest_name = _latest(folder, candidates, skipped)
    latest = None if latest_name is None else int(latest_name[5:])
    if not candidates:
        raise InputError(
            f"{p}: not a checkpoint (no {GENERATOR_FILE}) nor a run directory with checkpoints"
        )
    later = [c for c in candidates if latest is not None and _step(c) > latest]
    for ckpt in [c for c in candidates if c not in later] + later:
        problem = checkpoint_problem(ckpt, names)
        if problem is None:
            using = ckpt.name
            if ckpt in later:
                using += (
                    f", a later step than the {latest_name} that {LATEST_FILE} names "
                    "(none up to that step is intact)"
                )
            if skipped:
                warnings.warn(
                    f"{folder}: skipped {'; '.join(skipped)}; using {using}",
                    CheckpointWarning,
                    stacklevel=2,
                )
            return ckpt
        skipped.append(f"{ckpt.name} ({problem})")
    raise InputError(f"{folder}: no intact checkpoint: {'; '.join(skipped)}")


def read_saved_config(ckpt: Path) -> dict[str, Any]:
    """The mapping saved in a checkpoint's config.yaml: the config sections, generator, step."""
    path = ckpt / CONFIG_FILE
    if not path.is_file():
        raise InputError(f"{ckpt}: missing {CONFIG_FILE}")
    try:
        saved = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(saved, dict):
        raise InputError(f"{path}: not a mapping of config sections")
    return saved
