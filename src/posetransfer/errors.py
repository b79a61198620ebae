"""User-facing errors.

Anything the user can fix (a wrong path, a malformed CSV row, a checkpoint of another
architecture) raises `InputError`. The command line prints its message on one line and exits
with status 2 instead of showing a traceback from deep inside a library.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path


class InputError(ValueError):
    """Bad input that the user can fix; the message names the file, row or argument at fault.

    Library code names its own arguments: ``InputError("device='cuda': ...", arg="device")``,
    or, for a message about several, ``InputError("give train_list or split_from_annotations",
    names=("train_list", "split_from_annotations"))``. The command line translates each named
    argument to its flag (`flag_message`), so the same mistakes read ``--device 'cuda': ...``
    and ``give --train-list or --split-from-annotations`` there.
    """

    def __init__(
        self, message: str, *, arg: str | None = None, names: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.arg = arg
        self.names = tuple(names)

    def flag_message(self, flags: dict[str, str] | None = None) -> str:
        """The message with the named arguments written as their command-line flags.

        A leading ``arg=value`` becomes ``--flag value``; each of ``names`` standing as a word
        (not inside a path) becomes ``--flag``.

        Args:
            flags: argument name -> flag, where the flag is not ``--`` + the name with ``-``
                for ``_`` (config fields such as ``train.device`` keep their dots).
        """

        def flag(name: str) -> str:
            default = "--" + (name if "." in name else name.replace("_", "-"))
            return (flags or {}).get(name) or default

        text = str(self)
        if self.arg and text.startswith(f"{self.arg}="):
            text = f"{flag(self.arg)} {text[len(self.arg) + 1 :]}"
        for name in self.names:
            word = rf"(?<![\w./\\-]){re.escape(name)}(?![\w/\\])"
            text = re.sub(word, lambda _, name=name: flag(name), text)
        return text


class InputWarning(UserWarning):
    """Input the project can use, but not as given (e.g. joints outside the image, dropped).

    The command line prints these on one line, ``posetransfer CMD: warning: ...``, like errors.
    """


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


_OS_ERRORS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.ELOOP: "a symbolic link loop",
    errno.ENOENT: "not found",
    errno.ENOTDIR: "a file where a folder was expected",
    errno.EISDIR: "a folder where a file was expected",
}


def os_error_message(e: OSError) -> str:
    """One line for an operating-system error: the file it concerns and what went wrong."""
    what = _OS_ERRORS.get(e.errno, e.strerror or str(e))  # type: ignore[arg-type]
    where = str(e.filename) if e.filename is not None else ""
    if e.filename2 is not None:
        where += f" -> {e.filename2}"
    return f"{where}: {what}" if where else what
