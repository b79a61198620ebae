"""A folder of generated images (`posetransfer generate`) and the manifest that says if it is whole.

`posetransfer generate` writes ``generate.json`` into its output folder with ``complete: false``
before the first image changes, and rewrites it with ``complete: true`` only once every image
is on disk. A run killed at any point (kill -9, a full disk) therefore leaves a manifest saying
incomplete, with the command that finishes the folder; `posetransfer evaluate` reads it
(`check_generated`) and refuses an incomplete folder instead of scoring part of it. A folder
without a manifest (the authors' results, images from elsewhere) is evaluated as it is.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from posetransfer.core.files import atomic_write, list_images
from posetransfer.errors import InputError

MANIFEST = "generate.json"
"""The manifest in a folder written by `posetransfer generate`."""


def finish_command(request: dict[str, Any], out_dir: str | Path) -> str:
    """The ``posetransfer generate`` command line that completes the folder of ``request``."""
    image_dir = Path(request["image_dir"])
    parts = [
        "posetransfer generate",
        f"--checkpoint {shlex.quote(str(request['checkpoint']))}",
        f"--dataset {shlex.quote(str(image_dir.parent))}",
        f"--split {shlex.quote(image_dir.name)}",
        f"--annotations {shlex.quote(str(request['annotations']))}",
        f"--pairs {shlex.quote(str(request['pairs']))}",
        f"--out {shlex.quote(str(out_dir))}",
    ]
    if request.get("limit") is not None:
        parts.append(f"--limit {request['limit']}")
    if request.get("strips_dir") is not None:
        parts.append(f"--strips {shlex.quote(str(request['strips_dir']))}")
    return " ".join(parts + ["--skip-existing"])


def write_manifest(
    out_dir: str | Path, request: dict[str, Any], complete: bool, images: int, pairs: int
) -> Path:
    """Write ``out_dir/generate.json`` atomically (durable: it is the folder's truth).

    Args:
        out_dir: the folder of generated images.
        request: what the run generates: ``checkpoint``, ``image_dir``, ``annotations``,
            ``pairs`` (paths as given) and ``limit``.
        complete: every image of the request is on disk.
        images: images of the request on disk when written. A run stopped by an error, Ctrl-C
            or SIGTERM rewrites it with the count it reached; after kill -9 it is the count
            when last written, so while ``complete`` is false it is a lower bound.
        pairs: pairs the request covers.
    """
    out_dir = Path(out_dir)
    report = {
        "complete": complete,
        "images": images,
        "pairs": pairs,
        "request": {k: (str(v) if isinstance(v, Path) else v) for k, v in request.items()},
        "finish": None if complete else finish_command(request, out_dir),
    }
    return atomic_write(out_dir / MANIFEST, json.dumps(report, indent=2) + "\n")


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The manifest of a generated folder, or None when it has none.

    Raises:
        InputError: the manifest exists but cannot be read (damaged).
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable manifest ({e}); generate the folder again") from None
    if not isinstance(found, dict) or not isinstance(found.get("complete"), bool):
        raise InputError(
            f"{path}: not a manifest of posetransfer generate; generate the folder again"
        )
    return found


def check_generated(folder: str | Path, arg: str = "generated_dir") -> dict[str, Any] | None:
    """Refuse a folder whose `generate` run did not finish; its manifest otherwise (or None).

    Raises:
        InputError: naming ``arg``: the manifest says incomplete (a run was interrupted); the
            message gives the command that finishes it.
    """
    found = read_manifest(folder)
    if found is not None and not found["complete"]:
        finish = found.get("finish") or "posetransfer generate ... --skip-existing"
        raise InputError(
            f"{arg}={str(folder)!r}: incomplete: its generate run was interrupted "
            f"({len(list_images(Path(folder)))} of {found.get('pairs', '?')} images on disk); "
            f"finish it with: {finish}",
            arg=arg,
        )
    return found
