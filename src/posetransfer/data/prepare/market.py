"""Market-1501: the official archive's bounding-box folders, copied byte for byte."""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath

from posetransfer.core.files import atomic_write, image_size, remove_partial
from posetransfer.data.prepare.check import check_root, finish
from posetransfer.data.prepare.layout import IMAGE_SIZE, SPLITS
from posetransfer.data.prepare.report import PrepareReport, SplitReport
from posetransfer.data.prepare.sources import (
    READ_ERRORS,
    Job,
    Source,
    find_bases,
    make_dir,
    run_jobs,
    source_folders,
)
from posetransfer.errors import InputError

MARKET_FOLDERS: dict[str, str] = {"train": "bounding_box_train", "test": "bounding_box_test"}


def open_market_source(path: Path) -> Source:
    """Find the folder holding bounding_box_train/test in a Market archive or folder."""
    markers = tuple(f"{f}/" for f in MARKET_FOLDERS.values())
    bases = find_bases(source_folders(path, max_depth=3), markers)
    if not bases:
        raise InputError(
            f"{path}: not a Market-1501 archive or folder (no bounding_box_train/ or "
            "bounding_box_test/ inside; expected Market-1501-v15.09.15.zip or its extracted folder)"
        )
    return Source(path, bases[0])


def prepare_market(
    source: str | Path,
    out: str | Path,
    annotations_dir: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> PrepareReport:
    """Build ``out/train`` and ``out/test`` from Market-1501's official archive or folder.

    Copies ``bounding_box_train``/``bounding_box_test`` byte for byte (``query/`` and the rest
    are not used), copies the public annotation/pairs CSVs when found, checks the result with
    `check_layout` and writes ``out/prepare-report.json``. Missing images are reported, not
    raised: the report says what a partial download lacks. A re-run keeps the images already
    copied (same byte size as the source) and removes the temporary files of an interrupted one.

    Args:
        source: ``Market-1501-v15.09.15.zip``, its extracted folder, or a folder holding that.
        out: the dataset root to write.
        annotations_dir: where to find the CSVs; default ``out``, then the source (if a
            folder) and the folder holding it.
        workers: copy threads (default: Python's thread-pool default).
        progress: show progress bars.

    Raises:
        InputError: if source is neither a Market-1501 archive nor folder, or out is unwritable,
            is the source or lies inside it, or its train/test folders hold the source.
    """
    source, out = Path(source), Path(out)
    check_root(out, source)
    src = open_market_source(source)
    report = PrepareReport("market", str(out), IMAGE_SIZE["market"], source=str(source))
    jobs = []
    for split, folder in MARKET_FOLDERS.items():
        report.splits[split] = SplitReport(split)
        remove_partial(out / split)
        members = src.files(folder)
        if not members:
            report.warnings.append(f"no images in {folder}/ of {src}; {out / split} stays empty")
        jobs += [Job(split, m, out / split / PurePosixPath(m).name) for m in members]
    for split in SPLITS:
        make_dir(out / split)

    def copy(job: Job) -> str:
        if job.dest.is_file() and job.dest.stat().st_size == src.size(job.member):
            return "present"
        try:
            data = src.read(job.member)
        except READ_ERRORS:
            return "unreadable"
        if image_size(io.BytesIO(data)) is None:
            return "unreadable"
        atomic_write(
            job.dest, data, durable=False
        )  # a wrong size is copied anyway and reported by the check
        return "written"

    try:
        results = run_jobs(jobs, copy, workers, progress, desc="market")
    finally:
        src.close()
    return finish(report, results, source, out, annotations_dir, workers, progress)
