"""Scratch folders named after their process, swept once that process is gone.

An export writes its files into ``.export-<pid>-<random>/`` beside the output and renames them
into place at the end; the app keeps its downloads in ``posetransfer-app-<pid>-<random>/`` in
the temporary directory. A normal end, an error, Ctrl-C or SIGTERM (`terminate_as_interrupt`)
removes the folder; a process killed with SIGKILL cannot, so the next `scratch_dir` of the same
kind removes those whose process no longer runs (`sweep_stale`).

Scratch folders are created with the mode a plain ``mkdir`` gives (0777 less the umask), so that
a folder renamed into place (a bundled model) is as readable as any other the user makes.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

EXPORT_PREFIX = ".export-"
"""Scratch folders of exports, beside their output."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True


def sweep_stale(parent: str | Path, prefix: str) -> list[Path]:
    """Remove the ``<prefix><pid>-*`` folders in ``parent`` whose process is gone; those removed."""
    parent = Path(parent)
    pattern = re.compile(re.escape(prefix) + r"(\d+)-")
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:  # missing, or not readable: nothing of ours there
        return removed
    for path in entries:
        m = pattern.match(path.name)
        if m is None or not path.is_dir() or path.is_symlink():
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or pid_alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def new_scratch_dir(parent: str | Path, prefix: str = EXPORT_PREFIX) -> Path:
    """Create ``parent/<prefix><pid>-<random>`` (after sweeping stale ones); the caller removes it.

    Raises:
        OSError: ``parent`` cannot be created or written.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(parent, prefix)
    for _ in range(100):
        path = parent / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            path.mkdir()  # 0777 less the umask, unlike tempfile.mkdtemp's 0700
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{parent}: no free scratch folder name")


@contextlib.contextmanager
def scratch_dir(parent: str | Path, prefix: str = EXPORT_PREFIX) -> Iterator[Path]:
    """A `new_scratch_dir`, removed with everything left in it when the block ends."""
    path = new_scratch_dir(parent, prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that ``finally`` blocks run; exits with status 143."""

    exit_code = 143


class Stop:
    """What `terminate_as_interrupt` yields: ``terminated`` is set once SIGTERM arrived."""

    terminated: bool = False


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[Stop]:
    """While entered, SIGTERM raises `Terminated` in the main thread (as Ctrl-C raises
    KeyboardInterrupt), so that scratch folders and temporary files are removed; outside the
    main thread it only yields."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_term(signum, frame):
        stop.terminated = True
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)
