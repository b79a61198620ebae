"""Reading a download (a folder or a zip archive) from many threads, and the thread pool.

Work runs on a thread pool: Pillow releases the GIL while decoding and encoding, and zip members
are read through one archive handle per thread, so that reads never share a file position.
"""

from __future__ import annotations

import os
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from posetransfer.core.files import IMAGE_ERRORS
from posetransfer.data.prepare.report import PrepareReport
from posetransfer.errors import InputError

# What reading one source image can raise: a corrupt archive member or a broken image.
READ_ERRORS: tuple[type[BaseException], ...] = (*IMAGE_ERRORS, zipfile.BadZipFile, zlib.error)


class Source:
    """Files under ``base`` in a folder or a zip archive, addressed by POSIX relative paths."""

    def __init__(self, path: Path, base: str = "") -> None:
        self.path, self.base = path, base
        self.is_zip = path.is_file()
        self._local = threading.local()
        self._handles: list[zipfile.ZipFile] = []
        self._lock = threading.Lock()
        self._infos = {i.filename: i for i in open_zip(path).infolist()} if self.is_zip else {}

    def __str__(self) -> str:
        return f"{self.path}!/{self.base}" if self.is_zip else str(self.path / self.base)

    def files(self, sub: str = "", suffix: str = ".jpg") -> list[str]:
        """Relative paths (under base) of the files below ``sub`` whose name ends in suffix."""
        prefix = self.base + (sub.rstrip("/") + "/" if sub else "")
        if self.is_zip:
            return sorted(
                n[len(self.base) :]
                for n in self._infos
                if n.startswith(prefix) and n.lower().endswith(suffix) and not n.endswith("/")
            )
        root = self.path / self.base
        found = []
        for dirpath, _, filenames in os.walk(self.path / prefix):
            rel = Path(dirpath).relative_to(root).as_posix()
            for f in filenames:
                if f.lower().endswith(suffix) and not f.startswith("."):
                    found.append(f if rel == "." else f"{rel}/{f}")
        return sorted(found)

    def size(self, rel: str) -> int:
        """The size in bytes of file ``rel`` (uncompressed, in an archive)."""
        if self.is_zip:
            return self._infos[self.base + rel].file_size
        return (self.path / self.base / rel).stat().st_size

    def read(self, rel: str) -> bytes:
        """The bytes of file ``rel``; safe to call from several threads at once."""
        if not self.is_zip:
            return (self.path / self.base / rel).read_bytes()
        handle = getattr(self._local, "zip", None)
        if handle is None:  # one handle per thread: reads never share a file position
            handle = self._local.zip = zipfile.ZipFile(self.path)
            with self._lock:
                self._handles.append(handle)
        return handle.read(self.base + rel)

    def close(self) -> None:
        """Close the archive handles opened by `read`."""
        with self._lock:
            for handle in self._handles:
                handle.close()
            self._handles.clear()


def open_zip(path: Path) -> zipfile.ZipFile:
    """``path`` opened as a zip archive; InputError naming it if it is not one."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(f"{path}: not a readable zip archive ({e})")


def source_folders(path: Path, max_depth: int) -> list[str]:
    """The folder names ("a/b/") of an archive or folder, up to ``max_depth`` levels deep."""
    if not path.exists():
        raise InputError(f"source not found: {path}")
    if path.is_file():
        with open_zip(path) as z:
            dirs = {n.rsplit("/", 1)[0] + "/" for n in z.namelist() if "/" in n}
        return sorted({"/".join(d.split("/")[:k]) + "/" for d in dirs for k in range(1, 5)})
    dirs, frontier = [], [""]
    for _ in range(max_depth):
        nxt = []
        for rel in frontier:
            try:
                subs = sorted(e.name for e in os.scandir(path / rel) if e.is_dir())
            except OSError:
                continue
            nxt += [f"{rel}{s}/" for s in subs if not s.startswith(".")]
        dirs += nxt
        frontier = nxt
    return dirs


def find_bases(dirs: Iterable[str], markers: Iterable[str]) -> list[str]:
    """Prefixes of the folders named exactly like a marker, shortest (then by name) first.

    Only whole folder names count: ``"WOMEN/"`` ends with ``"MEN/"`` too, but is no ``MEN/``.
    """
    bases = {d[: -len(m)] for d in dirs for m in markers if d.endswith(m)}
    return sorted((b for b in bases if not b or b.endswith("/")), key=lambda b: (len(b), b))


@dataclass(frozen=True)
class Job:
    """One output image: its split, its path in the source and the file to write."""

    split: str
    member: str  # path in the source, relative to its base
    dest: Path


def run_jobs(
    jobs: Sequence[Job],
    fn: Callable[[Job], str],
    workers: int | None,
    progress: bool,
    desc: str,
) -> list[tuple[Job, str]]:
    """Run ``fn`` on every job in a thread pool with a progress bar; returns (job, status)."""
    results: list[tuple[Job, str]] = []
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {pool.submit(fn, job): job for job in jobs}
        with tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress) as bar:
            for fut in as_completed(futures):
                results.append((futures[fut], fut.result()))
                bar.update()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def make_dir(folder: Path) -> None:
    """Create ``folder`` (and its parents); InputError naming it if that fails."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create {folder}: {e}")


def tally(report: PrepareReport, results: Iterable[tuple[Job, str]]) -> None:
    """Add per-job statuses ("written", "present", or a problem) to the split reports."""
    for job, status in sorted(results, key=lambda r: r[0].member):
        split = report.splits[job.split]
        if status == "written":
            split.written += 1
        elif status == "present":
            split.already_present += 1
        else:
            split.source_problems.append(f"{job.member} ({status})")
