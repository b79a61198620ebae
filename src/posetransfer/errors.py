"""User-facing errors.

Anything the user can fix (a wrong path, a malformed CSV row, a checkpoint of another
architecture) raises `InputError`. The command line prints its message on one line and exits
with status 2 instead of showing a traceback from deep inside a library.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input that the user can fix; the message names the file, row or argument at fault."""


def where(path: str | Path, row: int | None = None) -> str:
    """Format a location for an error message: ``file`` or ``file, row N``."""
    return f"{path}, row {row}" if row is not None else f"{path}"


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise InputError if it is not an existing file."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found: {p}")
    if not p.is_file():
        raise InputError(f"{what} is not a file: {p}")
    return p


def require_dir(path: str | Path, what: str = "folder") -> Path:
    """Return ``path`` as a Path, or raise InputError if it is not an existing directory."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found: {p}")
    if not p.is_dir():
        raise InputError(f"{what} is not a folder: {p}")
    return p
