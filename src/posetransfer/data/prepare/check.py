"""Checking a dataset root against its annotation and pairs files, and copying those files in."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from posetransfer.core.files import atomic_write, check_output, image_size
from posetransfer.data.pairs import is_distractor
from posetransfer.data.prepare.layout import (
    DATASET_FILES,
    IMAGE_SIZE,
    SPLITS,
    check_dataset,
    dataset_file_names,
)
from posetransfer.data.prepare.report import PrepareReport, SplitReport
from posetransfer.data.prepare.sources import Job, run_jobs, tally
from posetransfer.errors import InputError, require_dir
from posetransfer.pose import KeypointWarning, read_annotations, read_pairs


def check_root(out: str | Path, source: str | Path, **lists: str | Path | None) -> Path:
    """Refuse, before anything is written, a root whose writing would touch what is read.

    The root must not be the source nor lie inside a source folder, and neither ROOT/train nor
    ROOT/test (the folders filled with images) may be, hold or lie inside the source or a list.
    The source may lie elsewhere in the root (``data/market/Market-1501-v15.09.15.zip``), and
    so may the annotation CSVs, which are read from the root by default.

    Raises:
        InputError: naming ``out`` (`posetransfer.core.files.check_output`).
    """
    out, source_path = Path(out), Path(source).resolve()
    if out.resolve() not in source_path.parents:  # a source inside the root is fine
        check_output(out, {"source": source}, arg="out")
    for split in SPLITS:
        check_output(out / split, {"source": source, **lists}, arg="out")
    return out


def check_layout(
    root: str | Path, dataset: str, workers: int | None = None, progress: bool = False
) -> PrepareReport:
    """Check ROOT/train and ROOT/test against the dataset's annotation and pairs files.

    Reports (per split) annotated images that are missing, images that are not annotated (Market
    distractors, ids ``-1``/``0000``, counted apart), images of the wrong size or unreadable, and
    pairs naming a missing image. Missing files are reported, never raised. Annotations placing
    joints off the image are listed in the report's warnings (file, count and first rows).

    Args:
        root: the prepared dataset root.
        dataset: ``"market"`` or ``"fashion"``.
        workers: threads reading image headers (default: Python's thread-pool default).
        progress: show a progress bar.

    Raises:
        InputError: if root is not a folder, or an annotation/pairs file is malformed.
    """
    dataset = check_dataset(dataset)
    root = require_dir(root, "dataset root")
    report = PrepareReport(dataset, str(root), IMAGE_SIZE[dataset])
    report.files_missing = [n for n in dataset_file_names(dataset) if not (root / n).is_file()]
    jobs = []
    for split in SPLITS:
        s = report.splits[split] = SplitReport(split)
        folder = root / split
        if not folder.is_dir():
            report.warnings.append(f"{folder} does not exist")
        names = sorted(p.name for p in folder.glob("*.jpg") if not p.name.startswith("."))
        s.images = len(names)
        jobs += [Job(split, n, folder / n) for n in names]

    def header(job: Job) -> str:
        size = image_size(job.dest)
        return "unreadable" if size is None else "{}x{}".format(*size)

    for job, status in run_jobs(jobs, header, workers, progress, desc=f"check {dataset}"):
        s = report.splits[job.split]
        if status == "unreadable":
            s.unreadable.append(job.member)
        elif status != "{}x{}".format(*report.image_size):
            h, w = map(int, status.split("x"))
            s.wrong_size[job.member] = (h, w)
    for split in SPLITS:
        s = report.splits[split]
        s.unreadable.sort()
        present = {j.member for j in jobs if j.split == split}
        ann_path = root / DATASET_FILES[dataset]["annotations"][split]
        if ann_path.is_file():
            annotated = _read_annotations(ann_path, report)
            s.annotation_file, s.annotated = ann_path.name, len(annotated)
            s.missing = sorted(set(annotated) - present)
            extra = sorted(set(present) - set(annotated))
            s.unannotated = [n for n in extra if not is_distractor(n)]
            s.unannotated_distractors = len(extra) - len(s.unannotated)
        pairs_path = root / DATASET_FILES[dataset]["pairs"][split]
        if pairs_path.is_file():
            pairs = read_pairs(pairs_path)
            s.pairs_file, s.pairs = pairs_path.name, len(pairs)
            s.pairs_missing_images = sum(a not in present or b not in present for a, b in pairs)
    return report


def _read_annotations(path: Path, report: PrepareReport) -> dict:
    """The annotations at ``path``; its KeypointWarning (joints off the image) goes to report."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KeypointWarning)
        annotated = read_annotations(path, image_size=report.image_size)
    for w in caught:
        if issubclass(w.category, KeypointWarning):
            report.warnings.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return annotated


# --------------------------------------------------------------------------------------------
# Annotation and pairs files


def search_dirs(out: Path, source: Path, annotations_dir: str | Path | None) -> list[Path]:
    """Where the CSVs (and DeepFashion's lists) are looked for, in order."""
    if annotations_dir is not None:
        return [require_dir(annotations_dir, "annotations folder")]
    return [out, source, source.parent] if source.is_dir() else [out, source.parent]


def find_file(name: str, dirs: Sequence[Path]) -> Path | None:
    """The first ``dir / name`` that is a file, or None."""
    return next((d / name for d in dirs if (d / name).is_file()), None)


def copy_dataset_files(dataset: str, out: str | Path, dirs: Sequence[str | Path]) -> list[str]:
    """Copy the dataset's annotation/pairs files found in ``dirs`` (first match wins) into out.

    Returns:
        The names copied (a file already in ``out`` is neither copied nor listed).
    """
    out = Path(out)
    copied = []
    for name in dataset_file_names(dataset):
        found = find_file(name, [Path(d) for d in dirs])
        if found is None or found.resolve() == (out / name).resolve():
            continue
        try:
            data = found.read_bytes()
        except OSError as e:
            raise InputError(f"cannot read {found}: {e.strerror or e}")
        atomic_write(out / name, data)
        copied.append(name)
    return copied


def finish(
    report: PrepareReport,
    results: list[tuple[Job, str]],
    source: Path,
    out: Path,
    annotations_dir: str | Path | None,
    workers: int | None,
    progress: bool,
) -> PrepareReport:
    """Copy the CSVs, check the layout, merge the write statistics and write the report."""
    copied = copy_dataset_files(report.dataset, out, search_dirs(out, source, annotations_dir))
    checked = check_layout(out, report.dataset, workers=workers, progress=progress)
    for split, s in checked.splits.items():
        prev = report.splits[split]
        s.source_problems, s.listed_not_found = prev.source_problems, prev.listed_not_found
    checked.source, checked.files_copied = report.source, copied
    checked.skipped, checked.warnings = report.skipped, report.warnings + checked.warnings
    tally(checked, results)
    checked.write()
    return checked
