"""Files on disk: reading images, writing anything atomically, and telling a full disk apart.

Every file the project writes goes through `atomic_write` (or the helpers built on it): the
bytes land in a temporary file beside the target, are flushed, and are renamed over it, so an
interrupted or failed write never leaves a half-written file under the final name. Temporary
files are named ``.<name>.<random>.part`` and `remove_partial` clears those a killed run left.

A full disk (``ENOSPC``) or a quota error becomes an `InputError` naming the file and saying
that the disk is full, instead of an OSError traceback.

Image reading is `read_image` (raises `InputError`) or `try_read_image` (returns None), both
decoding the whole file so that a truncated image is caught here rather than later.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from posetransfer.core.scratch import pid_alive
from posetransfer.errors import InputError, os_error_message

# The image formats the project reads from folders (a photo folder, a folder of generated images).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

# Temporary files are ".<name>.<random>.posetransfer-part": a name no other program uses, so
# `remove_partial` only ever deletes the project's own leftovers.
PART_SUFFIX = ".posetransfer-part"

# Generated images are named after their pair: ``<from stem>___<to stem>.png``.
GENERATED_SEPARATOR = "___"

# What PIL raises for a file that is not an image, or a truncated or corrupt one.
IMAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    UnidentifiedImageError,
    SyntaxError,
    ValueError,
    EOFError,
)

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


# --------------------------------------------------------------------------------------------
# Names


def generated_name(src_name: str, tgt_name: str) -> str:
    """File name of the image generated for pair (src, tgt): ``<src stem>___<tgt stem>.png``.

    `posetransfer generate` writes these names and `posetransfer evaluate` reads them.
    """
    return f"{Path(src_name).stem}{GENERATED_SEPARATOR}{Path(tgt_name).stem}.png"


# --------------------------------------------------------------------------------------------
# Reading


def is_image_file(path: Path) -> bool:
    """True for a file whose suffix is one of `IMAGE_SUFFIXES`."""
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if is_image_file(p))


def read_image(path: str | Path, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Read an image as uint8 (H, W, 3) RGB, decoding every pixel.

    Args:
        path: the image file.
        height: if given with ``width``, the size the image must have.
        width: see ``height``.

    Raises:
        InputError: naming the file, when it is missing, unreadable, truncated or of the wrong
            size.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.array(im.convert("RGB"))
    except FileNotFoundError:
        raise InputError(f"image not found: {path}")
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not an image file")
    except IMAGE_ERRORS as e:
        raise InputError(f"{path}: unreadable or truncated image ({e})")
    if height is not None and arr.shape[:2] != (height, width):
        raise InputError(
            f"{path}: image is {arr.shape[0]}x{arr.shape[1]} (HxW), expected {height}x{width}"
        )
    return arr


def try_read_image(path: str | Path) -> np.ndarray | None:
    """`read_image` without the error: None when the file cannot be decoded."""
    try:
        return read_image(path)
    except InputError:
        return None


def image_size(source: str | Path | IO[bytes]) -> tuple[int, int] | None:
    """(height, width) from an image's header (pixels are not decoded), or None if unreadable."""
    try:
        with Image.open(source) as im:
            return im.height, im.width
    except IMAGE_ERRORS:
        return None


def is_intact_image(path: str | Path) -> bool:
    """True when ``path`` decodes completely (a truncated PNG from a full disk does not)."""
    return try_read_image(path) is not None


def to_rgb_array(image: np.ndarray | Image.Image, what: str = "image") -> np.ndarray:
    """An in-memory image as a C-contiguous uint8 (H, W, 3) RGB array.

    Accepts a PIL image of any mode, or a uint8 array (H, W), (H, W, 3) or (H, W, 4) (alpha is
    dropped); anything else raises InputError naming ``what``.
    """
    if isinstance(image, Image.Image):
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise InputError(f"{what} must be a uint8 array, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or min(arr.shape[:2]) < 1:
        raise InputError(f"{what} must be an (H, W, 3) RGB array, got shape {arr.shape}")
    return np.ascontiguousarray(arr[:, :, :3])


# --------------------------------------------------------------------------------------------
# Writing


def disk_error(path: str | Path, e: OSError) -> InputError:
    """The one-line error for a failed write: names the file, and says so when the disk is full."""
    if e.errno in _DISK_FULL:
        return InputError(f"{path}: no space left on the device (disk full); nothing was replaced")
    return InputError(f"{path}: cannot write ({e.strerror or e})")


def open_temp(folder: str | Path, prefix: str, suffix: str) -> tuple[int, str]:
    """Create a new file ``<prefix><random><suffix>`` in ``folder``: (open descriptor, path).

    `tempfile.mkstemp` without its mode 0600: the file gets the mode a plain ``open()`` gives
    (0666 less the process's umask, applied by the kernel at creation, so a umask changed at run
    time counts), and keeps it when renamed into place.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = os.path.join(folder, f"{prefix}{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(name, flags | getattr(os, "O_CLOEXEC", 0), 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "wb", durable: bool = True, **kwargs: Any
) -> Iterator[IO]:
    """Open a temporary file beside ``path`` that replaces it when the block ends without error.

    On any error the temporary file is removed and ``path`` is untouched; an OSError (a full
    disk, a read-only folder) becomes an `InputError` naming ``path``.

    Args:
        path: the file to write.
        mode: a write mode of `open` ("wb", "w").
        durable: fsync the data before the rename, so that a power cut cannot leave an empty
            file under the final name. Checkpoints, configs and reports want it; bulk image
            outputs, which resumed runs verify anyway, skip it (it costs a disk flush per file).
        **kwargs: passed to `open` (e.g. ``newline=""``).
    """
    path = Path(path)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")  # the project's text files are UTF-8 everywhere
    refuse_special(path)  # a rename would replace a device or pipe with a file
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = open_temp(path.parent, f".{path.name}.", PART_SUFFIX)
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise disk_error(path, e) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def atomic_write(path: str | Path, data: bytes | str, durable: bool = True) -> Path:
    """Write bytes or text to ``path`` atomically (see `atomic_open`)."""
    text = isinstance(data, str)
    kwargs = {"newline": ""} if text else {}
    with atomic_open(path, "w" if text else "wb", durable, **kwargs) as f:
        f.write(data)
    return Path(path)


def atomic_save(path: str | Path, save: Callable[[IO[bytes]], None], durable: bool = True) -> Path:
    """Let ``save(file)`` write into a temporary file that then replaces ``path`` atomically."""
    with atomic_open(path, "wb", durable) as f:
        save(f)
    return Path(path)


def save_image(
    image: np.ndarray | Image.Image,
    path: str | Path,
    format: str | None = None,
    durable: bool = False,
) -> Path:
    """Save an image atomically, in ``format`` or the one its suffix names (PNG by default).

    Not fsynced by default (see `atomic_open`): a folder of thousands of images would pay a disk
    flush each, and resumed runs verify the images they find.
    """
    path = Path(path)
    im = image if isinstance(image, Image.Image) else Image.fromarray(image)
    fmt = format or Image.registered_extensions().get(path.suffix.lower(), "PNG")
    return atomic_save(path, lambda f: im.save(f, format=fmt), durable)


def load_torch_file(path: str | Path, what: str) -> Any:
    """Read a ``.pt``/``.pth`` file with ``torch.load(weights_only=True)``, never unpickling code.

    Args:
        path: the file.
        what: what the file should hold, for messages (e.g. "VGG19 weights").

    Raises:
        InputError: naming the file: it is missing, damaged, not a PyTorch file, or holds pickled
            Python objects (such as a whole model saved with ``torch.save(model)``), which are
            refused rather than run; the message says to save a ``state_dict()`` instead.
    """
    import pickle
    import re

    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        named = re.search(r"GLOBAL ([\w.]+)", str(e))
        if named is None:
            raise InputError(
                f"{path}: unreadable {what} (damaged, or not a PyTorch file)"
            ) from None
        raise InputError(
            f"{path}: the {what} file holds a pickled Python object ({named.group(1)}), not only "
            "tensors; such files can run code and are never loaded: load it where it was made "
            "and save its state_dict() instead"
        ) from None
    except Exception as e:  # torch raises many types for a truncated or foreign file
        first = (str(e).strip().splitlines() or [""])[0]
        raise InputError(f"{path}: unreadable {what} ({type(e).__name__}: {first})") from None


class LockHeld(InputError):
    """`exclusive_lock` with ``wait=False`` found the lock taken; ``holder`` is its process id."""

    def __init__(self, path: Path, holder: str) -> None:
        who = f"process {holder}" if holder.isdigit() else "another process"
        super().__init__(f"{path}: held by {who}")
        self.path, self.holder = path, holder


@contextlib.contextmanager
def exclusive_lock(path: str | Path, wait: bool = True) -> Iterator[Path]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) while the block runs.

    The lock file holds the holder's process id. The operating system drops the lock when the
    process ends, however it ends (even killed with SIGKILL), so a stale lock never blocks.
    Where the file system has no locks (or on Windows), the block runs unlocked.

    Args:
        path: the lock file.
        wait: block until the lock is free; with False, raise `LockHeld` at once.

    Raises:
        LockHeld: ``wait=False`` and another process holds the lock.
        InputError: the lock file cannot be created (e.g. a read-only folder or a full disk).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = path.open("a+")
    except OSError as e:
        raise disk_error(path, e) from None
    with f:
        try:
            import fcntl
        except ImportError:  # not POSIX
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except OSError as e:
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    f.seek(0)
                    raise LockHeld(path, f.read().strip()) from None
                # ENOLCK, EINVAL...: a file system without locks; run unlocked
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield path


def check_output(
    out: str | Path,
    inputs: Mapping[str, str | Path | None] | None = None,
    arg: str = "out",
    kind: str | None = None,
) -> Path:
    """Refuse, before anything is written, an output path that would destroy or mix with input.

    Refused (InputError naming ``arg``): an output below a regular file (``a.png/out``); an
    output that is one of ``inputs``, contains one (clearing or filling it would touch the
    input), or lies inside an input folder (the command reads that folder). Paths are compared
    resolved, so ``./x``, ``x/`` and a symbolic link to ``x`` are the same path.

    Args:
        out: the file or folder the command writes.
        inputs: argument name -> path of each input the command reads (None entries skipped).
        arg: the argument naming ``out``, for the message.
        kind: "file" or "folder": an existing ``out`` of the other kind is refused too.

    Also refused: an existing ``out`` that is neither a file nor a folder (a device such as
    /dev/full, a pipe), a symbolic link loop, a folder on the way that cannot be read.

    Returns:
        ``out`` as a Path.
    """
    out = Path(out)
    try:
        for parent in out.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise InputError(
                        f"{arg}={str(out)!r}: {parent} is a file, not a folder", arg=arg
                    )
                break
        refuse_special(out, arg)
        if kind == "folder" and out.is_file():
            raise InputError(f"{arg}={str(out)!r}: is a file, not a folder", arg=arg)
        if kind == "file" and out.is_dir():
            raise InputError(f"{arg}={str(out)!r}: is a folder, not a file", arg=arg)
        target = _resolve(out, arg)
    except OSError as e:  # a folder on the way that cannot be read
        raise InputError(f"{arg}={str(out)!r}: {os_error_message(e)}", arg=arg) from None
    for name, given in (inputs or {}).items():
        if given is None:
            continue
        source = _resolve(Path(given), name)
        if target == source:
            why = "is the input"
        elif target in source.parents:
            why = "contains the input"
        elif source.is_dir() and source in target.parents:
            why = "lies inside the input folder"
        else:
            continue
        raise InputError(
            f"{arg}={str(out)!r}: {why} {name}={str(given)!r}; write the output elsewhere "
            "(an output never replaces what the command reads)",
            arg=arg,
        )
    return out


def refuse_special(path: str | Path, arg: str | None = None) -> None:
    """Refuse to write over something that is neither a file nor a folder (a device, a pipe).

    Outputs are written beside their target and renamed over it, which would replace a device
    such as /dev/full (for root) with a regular file.
    """
    path = Path(path)
    where = f"{arg}={str(path)!r}" if arg else str(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InputError(f"{where}: a symbolic link loop", arg=arg) from None
        return  # unreadable: the write itself reports it
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InputError(
            f"{where}: not a regular file (a device or pipe); write the output to a file",
            arg=arg,
        )


def _resolve(path: Path, arg: str) -> Path:
    """``path.resolve()``, with a link that points to itself refused in one line."""
    try:
        return path.resolve()
    except RuntimeError:  # Python < 3.13's "Symlink loop from ..."
        raise InputError(f"{arg}={str(path)!r}: a symbolic link loop", arg=arg) from None
    except OSError as e:
        raise InputError(f"{arg}={str(path)!r}: {os_error_message(e)}", arg=arg) from None


OUTPUT_MARKER = ".posetransfer-output"
"""A file in every output folder this package may clear again: only such folders are cleared."""


def reusable_folder(out: str | Path, what: str, arg: str = "out") -> bool:
    """Whether ``out`` may be cleared and written again: missing, empty, or marked as ours.

    Returns False for a missing or empty folder (nothing to clear), True for one holding
    `OUTPUT_MARKER` (a folder this package wrote: the caller may clear it).

    Raises:
        InputError: naming ``arg``: ``out`` is a file, or a folder of files this package did
            not write (it is never cleared).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{arg}={str(out)!r}: is a file, not a folder", arg=arg)
    if not out.is_dir() or not any(out.iterdir()):
        return False
    if (out / OUTPUT_MARKER).is_file():
        return True
    names = ", ".join(sorted(p.name for p in out.iterdir())[:4])
    raise InputError(
        f"{arg}={str(out)!r}: holds files that are not {what} ({names}); choose a new or empty "
        "folder (only folders this package wrote are replaced)",
        arg=arg,
    )


def mark_output(out: str | Path) -> Path:
    """Mark folder ``out`` as an output of this package (see `reusable_folder`)."""
    return atomic_write(Path(out) / OUTPUT_MARKER, "written by posetransfer; safe to replace\n")


def claim_folder(
    out: str | Path, marker: str, request: dict, what: str, key: str | None = None
) -> Path:
    """Make ``out`` the folder of one job: new, empty, or holding that job already.

    A folder with files is the same job when its JSON ``marker`` (its ``key`` entry, if given)
    agrees with ``request`` on every key of ``request``; ``out`` is created when missing.

    Args:
        out: the folder.
        marker: the JSON file in it that records the job.
        request: what the job is.
        what: the job with its article, for messages ("a study").
        key: the entry of the marker holding the request.

    Raises:
        InputError: naming ``out``: a file, a folder of other files, or of another such job
            (the message lists what differs).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"out={str(out)!r}: is a file, not a folder", arg="out")
    if out.is_dir() and any(out.iterdir()):
        try:
            found = json.loads((out / marker).read_text())
            found = found.get(key) if key else found
        except (OSError, ValueError, AttributeError):
            found = None
        if not isinstance(found, dict):
            names = ", ".join(sorted(p.name for p in out.iterdir())[:4])
            raise InputError(
                f"out={str(out)!r}: holds files that are not {what} ({names}); choose a new or "
                "empty folder",
                arg="out",
            )
        diff = [k for k in request if found.get(k) != request[k]]
        if diff:
            shown = ", ".join(
                k if isinstance(request[k], dict) else f"{k}={found.get(k)!r}" for k in diff
            )
            raise InputError(
                f"out={str(out)!r}: holds another {what.split(' ', 1)[-1]} (its {shown} differ); "
                "choose another folder",
                arg="out",
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise disk_error(out, e) from None
    return out


def remove_partial(folder: str | Path) -> int:
    """Delete the temporary ``.*.part`` files an interrupted run left in ``folder``; their count."""
    folder = Path(folder)
    n = 0
    if folder.is_dir():
        for p in folder.glob(f".*{PART_SUFFIX}"):
            p.unlink(missing_ok=True)
            n += 1
    return n


def torch_file_failure(error: InputError) -> tuple[str | None, str]:
    """Why `posetransfer.core.files.load_torch_file` refused a file, for callers that reword it.

    Returns:
        (the Python class a refused pickle names, or None; torch's reason in a few words).
        `load_torch_file` raises its InputError while handling torch's own exception, which is
        therefore the error's ``__context__``.
    """
    cause = error.__context__
    if isinstance(cause, pickle.UnpicklingError):
        named = re.search(r"GLOBAL ([\w.]+)", str(cause))
        if named is not None:
            return named.group(1), "it holds a pickled Python object"
        return None, "damaged, or not a PyTorch file"
    if cause is None:
        return None, str(error)
    first = (str(cause).strip().splitlines() or [""])[0]
    return None, f"{type(cause).__name__}: {first}"


def swap_into_place(tmp: str | Path, dest: str | Path) -> Path:
    """Rename a folder written at ``tmp`` to ``dest``, moving an earlier ``dest`` aside meanwhile.

    The earlier copy is renamed to ``.NAME.old-PID`` until the new one is in place (and put back
    if that fails), so ``dest`` always holds one whole folder. Returns ``dest``.
    """
    tmp, dest = Path(tmp), Path(dest)
    # A process killed between the two renames left its earlier copy aside: put it back (it
    # is the whole folder that was there), and remove copies already replaced.
    for stale in dest.parent.glob(f".{dest.name}.old-*"):
        pid = stale.name.rpartition("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        if dest.exists():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.rename(dest)
    if not dest.exists():
        tmp.rename(dest)
        return dest
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    dest.rename(old)
    try:
        tmp.rename(dest)
    except BaseException:
        old.rename(dest)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return dest
