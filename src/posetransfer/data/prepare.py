"""Turn the user's Market-1501 / DeepFashion downloads into the public layout, and check it.

The layout every other part of posetransfer reads (SPEC section 3)::

    ROOT/train/*.jpg   ROOT/test/*.jpg
    ROOT/<annotation train/test CSV>   ROOT/<pairs train/test CSV>   (names in `DATASET_FILES`)

Market-1501: the official archive's ``bounding_box_train``/``bounding_box_test`` folders,
copied byte for byte (128x64 images). DeepFashion In-shop: the 256x256 ``img/`` tree, each
image of the authors' train/test lists cropped to 256x176 and saved under its flattened name.
The authors' own conversion script for DeepFashion stops on an undefined variable; this module
is the working replacement. The annotation and pairs CSVs are separate downloads: they are
copied into ROOT when found, and the images are checked against them (`check_layout`).

Work runs on a thread pool (Pillow releases the GIL while decoding and encoding), every output
is written under a temporary name and renamed, and a re-run skips outputs already complete.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import threading
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from posetransfer.data.pairs import build_pairs, is_distractor, person_id
from posetransfer.errors import InputError, require_dir
from posetransfer.pose import has_torso, read_annotations, read_pairs, write_pairs

DATASETS: tuple[str, ...] = ("market", "fashion")
SPLITS: tuple[str, ...] = ("train", "test")

# File names of the public annotation and pairs files (sic "fasion"), by dataset and split.
DATASET_FILES: dict[str, dict[str, dict[str, str]]] = {
    "market": {
        "annotations": {
            "train": "market-annotation-train.csv",
            "test": "market-annotation-test.csv",
        },
        "pairs": {"train": "market-pairs-train.csv", "test": "market-pairs-test.csv"},
    },
    "fashion": {
        "annotations": {
            "train": "fasion-resize-annotation-train.csv",
            "test": "fasion-resize-annotation-test.csv",
        },
        "pairs": {
            "train": "fasion-resize-pairs-train.csv",
            "test": "fasion-resize-pairs-test.csv",
        },
    },
}

# Image size (height, width) in the prepared layout.
IMAGE_SIZE: dict[str, tuple[int, int]] = {"market": (128, 64), "fashion": (256, 176)}

MARKET_FOLDERS: dict[str, str] = {"train": "bounding_box_train", "test": "bounding_box_test"}
FASHION_SOURCE_SIZE: tuple[int, int] = (256, 256)  # (height, width) of In-shop's img/ images
FASHION_CROP_BOX: tuple[int, int, int, int] = (40, 0, 216, 256)  # PIL box: columns 40..215
FASHION_LISTS: dict[str, str] = {"train": "train.lst", "test": "test.lst"}
REPORT_NAME = "prepare-report.json"

# <prefix>/(MEN|WOMEN)/<category>/id_XXXXXXXX/<file>.jpg, anywhere in a tree or an archive.
_FASHION_PATH = re.compile(r"^((?:[^/]+/)*?)(MEN|WOMEN)/([^/]+)/(id_\d+)/([^/]+\.jpg)$", re.I)
_PART_SUFFIX = ".part"  # temporary outputs: ".<name>.<random>.part"


# --------------------------------------------------------------------------------------------
# Reports


@dataclass
class SplitReport:
    """What one split folder holds, checked against its annotation and pairs files."""

    split: str
    images: int = 0
    """JPEG images in ROOT/<split>."""
    annotation_file: str | None = None
    """The annotation CSV checked against, None when it is not in ROOT."""
    annotated: int | None = None
    missing: list[str] = field(default_factory=list)
    """Annotated images absent from ROOT/<split> (e.g. a partial download)."""
    unannotated: list[str] = field(default_factory=list)
    """Images with no annotation (Market distractors are counted apart, below)."""
    unannotated_distractors: int = 0
    wrong_size: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Images of another size than the dataset's, name -> (height, width)."""
    unreadable: list[str] = field(default_factory=list)
    pairs_file: str | None = None
    pairs: int | None = None
    pairs_missing_images: int = 0
    """Pairs naming an image absent from ROOT/<split>."""
    written: int = 0
    """Images written by this run."""
    already_present: int = 0
    """Images skipped because a complete output already existed (resume)."""
    source_problems: list[str] = field(default_factory=list)
    """Source images that could not be used: unreadable, or of the wrong size (fashion)."""
    listed_not_found: list[str] = field(default_factory=list)
    """Names in the split's list (DeepFashion) found nowhere in the source."""


@dataclass
class PrepareReport:
    """Result of preparing or checking a dataset root; `to_json` gives counts and examples."""

    dataset: str
    root: str
    image_size: tuple[int, int]
    splits: dict[str, SplitReport] = field(default_factory=dict)
    source: str | None = None
    files_copied: list[str] = field(default_factory=list)
    files_missing: list[str] = field(default_factory=list)
    """Annotation/pairs files of the dataset that are not in ROOT."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Source images deliberately not written, by reason (e.g. ``not_in_lists``)."""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every annotation file is present and matches the images exactly."""
        return not self.files_missing and not any(
            s.missing
            or s.unannotated
            or s.wrong_size
            or s.unreadable
            or s.pairs_missing_images
            or s.source_problems
            or s.listed_not_found
            for s in self.splits.values()
        )

    def to_dict(self, examples: int = 10) -> dict:
        """A JSON-ready dict; name lists become ``{"count": n, "examples": [first names]}``."""
        out = asdict(self)
        out["ok"] = self.ok
        for split in out["splits"].values():
            for key, value in split.items():
                if key == "wrong_size":
                    items = [f"{n} ({h}x{w})" for n, (h, w) in sorted(value.items())]
                    split[key] = {"count": len(items), "examples": items[:examples]}
                elif isinstance(value, list):
                    split[key] = {"count": len(value), "examples": value[:examples]}
        return out

    def to_json(self, examples: int = 10) -> str:
        """The report as indented JSON (see `to_dict`)."""
        return json.dumps(self.to_dict(examples), indent=2)

    def summary(self) -> str:
        """A few human-readable lines: counts per split and every problem found."""
        h, w = self.image_size
        lines = [f"{self.dataset} at {self.root} (images {h}x{w})"]
        for s in self.splits.values():
            parts = [f"{s.images} images"]
            if s.written or s.already_present:
                parts.append(f"{s.written} written, {s.already_present} already present")
            if s.annotated is not None:
                parts.append(f"{s.annotated} annotated")
            if s.pairs is not None:
                parts.append(f"{s.pairs} pairs")
            lines.append(f"  {s.split}: " + ", ".join(parts))
            problems = [
                (s.missing, "annotated images are MISSING (partial download?)"),
                (s.unannotated, "images are not annotated"),
                (
                    [f"{n} ({a}x{b})" for n, (a, b) in sorted(s.wrong_size.items())],
                    f"images are not {h}x{w}",
                ),
                (s.unreadable, "images cannot be read"),
                (s.source_problems, "source images were unusable"),
                (s.listed_not_found, "listed names were not found in the source"),
            ]
            for names, what in problems:
                if names:
                    lines.append(f"    {len(names)} {what}, e.g. {', '.join(names[:3])}")
            if s.pairs_missing_images:
                lines.append(f"    {s.pairs_missing_images} pairs name a missing image")
        for reason, n in sorted(self.skipped.items()):
            lines.append(f"  skipped {n} source images: {reason.replace('_', ' ')}")
        if self.files_copied:
            lines.append(f"  copied: {', '.join(self.files_copied)}")
        if self.files_missing:
            lines.append(f"  not found (download them separately): {', '.join(self.files_missing)}")
        lines += [f"  WARNING: {w}" for w in self.warnings]
        lines.append("  all checks passed" if self.ok else "  some checks FAILED (see above)")
        return "\n".join(lines)

    def write(self, path: str | Path | None = None) -> Path:
        """Write the JSON report (default ``ROOT/prepare-report.json``) and return its path."""
        path = Path(path) if path is not None else Path(self.root) / REPORT_NAME
        _atomic_write(path, (self.to_json() + "\n").encode())
        return path


# --------------------------------------------------------------------------------------------
# Names


def flatten_fashion_name(relpath: str | os.PathLike) -> str:
    """The public-split name of a DeepFashion In-shop image.

    ``img/WOMEN/Blouses_Shirts/id_00000693/02_3_back.jpg`` ->
    ``fashionWOMENBlouses_Shirtsid0000069302_3back.jpg``: prefix ``fashion``, gender and
    category as they are, the id folder without its underscore, the file name keeping only its
    first underscore. Only the last four path components are used.

    Raises:
        InputError: when the path does not end in ``GENDER/CATEGORY/id_NNNNNNNN/NN_....jpg``.
    """
    parts = PurePosixPath(Path(relpath).as_posix()).parts[-4:]
    if len(parts) != 4 or not re.fullmatch(r"id_\d+", parts[2]) or "_" not in parts[3]:
        raise InputError(f"{relpath}: not an In-shop image path (GENDER/CATEGORY/id_N/NN_x.jpg)")
    gender, category, id_dir, filename = parts
    head, rest = filename.split("_", 1)
    return f"fashion{gender}{category}{id_dir.replace('_', '')}{head}_{rest.replace('_', '')}"


def crop_fashion(image: Image.Image) -> Image.Image:
    """Crop a 256x256 In-shop image to 256x176 (columns 40..215), as the public splits do."""
    return image.crop(FASHION_CROP_BOX)


def read_name_list(path: str | Path) -> list[str]:
    """Read a ``train.lst``/``test.lst`` file: one image name per line, blank lines ignored."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"name list not found: {path}")
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file of image names")


def dataset_file_names(dataset: str) -> list[str]:
    """The four annotation and pairs file names of ``dataset``."""
    files = DATASET_FILES[_check_dataset(dataset)]
    return [files[kind][split] for kind in ("annotations", "pairs") for split in SPLITS]


# --------------------------------------------------------------------------------------------
# Sources: a folder or a zip archive, read by many threads


class _Source:
    """Files under ``base`` in a folder or a zip archive, addressed by POSIX relative paths."""

    def __init__(self, path: Path, base: str = "") -> None:
        self.path, self.base = path, base
        self.is_zip = path.is_file()
        self._local = threading.local()
        self._handles: list[zipfile.ZipFile] = []
        self._lock = threading.Lock()
        self._infos = {i.filename: i for i in _zip(path).infolist()} if self.is_zip else {}

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
        if self.is_zip:
            return self._infos[self.base + rel].file_size
        return (self.path / self.base / rel).stat().st_size

    def read(self, rel: str) -> bytes:
        if not self.is_zip:
            return (self.path / self.base / rel).read_bytes()
        handle = getattr(self._local, "zip", None)
        if handle is None:  # one handle per thread: reads never share a file position
            handle = self._local.zip = zipfile.ZipFile(self.path)
            with self._lock:
                self._handles.append(handle)
        return handle.read(self.base + rel)

    def close(self) -> None:
        with self._lock:
            for handle in self._handles:
                handle.close()
            self._handles.clear()


def _zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(f"{path}: not a readable zip archive ({e})")


def _source_entries(path: Path, max_depth: int) -> tuple[bool, list[str]]:
    """Whether path is an archive, and its directory names ("a/b/") up to max_depth levels."""
    if not path.exists():
        raise InputError(f"source not found: {path}")
    if path.is_file():
        with _zip(path) as z:
            dirs = {n.rsplit("/", 1)[0] + "/" for n in z.namelist() if "/" in n}
        return True, sorted({"/".join(d.split("/")[:k]) + "/" for d in dirs for k in range(1, 5)})
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
    return False, dirs


def _bases(dirs: Iterable[str], markers: Iterable[str]) -> list[str]:
    """Prefixes of the dirs that end in one of the markers, shortest (then by name) first."""
    return sorted(
        {d[: -len(m)] for d in dirs for m in markers if d.endswith(m)}, key=lambda b: (len(b), b)
    )


def _open_market_source(path: Path) -> _Source:
    """Find the folder holding bounding_box_train/test in a Market archive or folder."""
    _, dirs = _source_entries(path, max_depth=3)
    folders = tuple(f"{f}/" for f in MARKET_FOLDERS.values())
    bases = [b for b in _bases(dirs, folders) if not b or b.endswith("/")]
    if not bases:
        raise InputError(
            f"{path}: not a Market-1501 archive or folder (no bounding_box_train/ or "
            "bounding_box_test/ inside; expected Market-1501-v15.09.15.zip or its extracted folder)"
        )
    return _Source(path, bases[0])


def _open_fashion_source(path: Path) -> _Source:
    """Find the folder holding MEN/ and WOMEN/ in an In-shop img/ tree, its parent, or img.zip."""
    _, dirs = _source_entries(path, max_depth=3)
    # Keep whole folder names only: "WOMEN/" also ends with "MEN/".
    bases = [b for b in _bases(dirs, ("MEN/", "WOMEN/")) if not b or b.endswith("/")]
    if not bases:
        raise InputError(
            f"{path}: not a DeepFashion In-shop image tree (no MEN/ or WOMEN/ folder inside; "
            "expected img.zip, the img/ folder or its parent)"
        )
    return _Source(path, bases[0])


# --------------------------------------------------------------------------------------------
# Parallel work


@dataclass(frozen=True)
class _Job:
    split: str
    member: str  # path in the source, relative to its base
    dest: Path


def _atomic_write(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` via a temporary file in the same folder and a rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=_PART_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_partial(folder: Path) -> None:
    """Delete temporary files left by an interrupted run."""
    if folder.is_dir():
        for p in folder.glob(f".*{_PART_SUFFIX}"):
            p.unlink(missing_ok=True)


def _image_size(data_or_path: bytes | Path) -> tuple[int, int]:
    """(height, width) from the image header, without decoding the pixels."""
    src = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    with Image.open(src) as im:
        return im.height, im.width


_READ_ERRORS = (OSError, UnidentifiedImageError, zipfile.BadZipFile, EOFError, ValueError)


def _run_jobs(
    jobs: Sequence[_Job],
    fn: Callable[[_Job], str],
    workers: int | None,
    progress: bool,
    desc: str,
) -> list[tuple[_Job, str]]:
    """Run ``fn`` on every job in a thread pool with a progress bar; returns (job, status)."""
    results: list[tuple[_Job, str]] = []
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


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create {folder}: {e}")


def _write_or_fail(dest: Path, data: bytes) -> None:
    try:
        _atomic_write(dest, data)
    except OSError as e:
        raise InputError(f"cannot write {dest}: {e}")


def _tally(report: PrepareReport, results: Iterable[tuple[_Job, str]]) -> None:
    """Add per-job statuses ("written", "present", or a problem) to the split reports."""
    for job, status in sorted(results, key=lambda r: r[0].member):
        split = report.splits[job.split]
        if status == "written":
            split.written += 1
        elif status == "present":
            split.already_present += 1
        else:
            split.source_problems.append(f"{job.member} ({status})")


# --------------------------------------------------------------------------------------------
# Checking


def check_layout(
    root: str | Path, dataset: str, workers: int | None = None, progress: bool = False
) -> PrepareReport:
    """Check ROOT/train and ROOT/test against the dataset's annotation and pairs files.

    Reports (per split) annotated images that are missing, images that are not annotated (Market
    distractors, ids ``-1``/``0000``, counted apart), images of the wrong size or unreadable, and
    pairs naming a missing image. Missing files are reported, never raised.

    Args:
        root: the prepared dataset root.
        dataset: ``"market"`` or ``"fashion"``.
        workers: threads reading image headers (default: Python's thread-pool default).
        progress: show a progress bar.

    Raises:
        InputError: if root is not a folder, or an annotation/pairs file is malformed.
    """
    dataset = _check_dataset(dataset)
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
        jobs += [_Job(split, n, folder / n) for n in names]

    def header(job: _Job) -> str:
        try:
            h, w = _image_size(job.dest)
        except _READ_ERRORS:
            return "unreadable"
        return f"{h}x{w}"

    for job, status in _run_jobs(jobs, header, workers, progress, desc=f"check {dataset}"):
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
            annotated = read_annotations(ann_path)
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


# --------------------------------------------------------------------------------------------
# Annotation and pairs files


def _search_dirs(out: Path, source: Path, annotations_dir: str | Path | None) -> list[Path]:
    if annotations_dir is not None:
        return [require_dir(annotations_dir, "annotations folder")]
    return [out, source, source.parent] if source.is_dir() else [out, source.parent]


def _find(name: str, dirs: Sequence[Path]) -> Path | None:
    return next((d / name for d in dirs if (d / name).is_file()), None)


def copy_dataset_files(dataset: str, out: str | Path, dirs: Sequence[str | Path]) -> list[str]:
    """Copy the dataset's annotation/pairs files found in ``dirs`` (first match wins) into out.

    Returns:
        The names copied (a file already in ``out`` is neither copied nor listed).
    """
    out = Path(out)
    copied = []
    for name in dataset_file_names(dataset):
        found = _find(name, [Path(d) for d in dirs])
        if found is None or found.resolve() == (out / name).resolve():
            continue
        tmp = out / f".{name}{_PART_SUFFIX}"
        try:
            out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found, tmp)
            os.replace(tmp, out / name)
        except OSError as e:
            raise InputError(f"cannot copy {found} to {out / name}: {e}")
        copied.append(name)
    return copied


# --------------------------------------------------------------------------------------------
# Market-1501


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
    raised: the report says what a partial download lacks.

    Args:
        source: ``Market-1501-v15.09.15.zip``, its extracted folder, or a folder holding that.
        out: the dataset root to write.
        annotations_dir: where to find the CSVs; default ``out``, then the source (if a
            folder) and the folder holding it.
        workers: copy threads (default: Python's thread-pool default).
        progress: show progress bars.

    Raises:
        InputError: if source is neither a Market-1501 archive nor folder, or out is unwritable.
    """
    source, out = Path(source), Path(out)
    src = _open_market_source(source)
    report = PrepareReport("market", str(out), IMAGE_SIZE["market"], source=str(source))
    jobs = []
    for split, folder in MARKET_FOLDERS.items():
        report.splits[split] = SplitReport(split)
        _remove_partial(out / split)
        members = src.files(folder)
        if not members:
            report.warnings.append(f"no images in {folder}/ of {src}; {out / split} stays empty")
        jobs += [_Job(split, m, out / split / PurePosixPath(m).name) for m in members]
    for split in SPLITS:
        _mkdir(out / split)

    def copy(job: _Job) -> str:
        if job.dest.is_file() and job.dest.stat().st_size == src.size(job.member):
            return "present"
        try:
            data = src.read(job.member)
            _image_size(data)
        except _READ_ERRORS:
            return "unreadable"
        _write_or_fail(job.dest, data)  # a wrong size is copied anyway and reported below
        return "written"

    try:
        results = _run_jobs(jobs, copy, workers, progress, desc="market")
    finally:
        src.close()
    return _finish(report, results, source, out, annotations_dir, workers, progress)


def _finish(
    report: PrepareReport,
    results: list[tuple[_Job, str]],
    source: Path,
    out: Path,
    annotations_dir: str | Path | None,
    workers: int | None,
    progress: bool,
) -> PrepareReport:
    """Copy the CSVs, check the layout, merge the write statistics and write the report."""
    copied = copy_dataset_files(report.dataset, out, _search_dirs(out, source, annotations_dir))
    checked = check_layout(out, report.dataset, workers=workers, progress=progress)
    for split, s in checked.splits.items():
        prev = report.splits[split]
        s.source_problems, s.listed_not_found = prev.source_problems, prev.listed_not_found
    checked.source, checked.files_copied = report.source, copied
    checked.skipped, checked.warnings = report.skipped, report.warnings + checked.warnings
    _tally(checked, results)
    checked.write()
    return checked


# --------------------------------------------------------------------------------------------
# DeepFashion In-shop


def _fashion_split_lists(
    out: Path,
    dirs: Sequence[Path],
    train_list: str | Path | None,
    test_list: str | Path | None,
    split_from_annotations: bool,
) -> dict[str, list[str]]:
    """The image names of each split, from the lists or from the annotation files."""
    if split_from_annotations:
        if train_list is not None or test_list is not None:
            raise InputError("give either --train-list/--test-list or --split-from-annotations")
        names = {}
        for split, fname in DATASET_FILES["fashion"]["annotations"].items():
            found = _find(fname, [out, *dirs])
            if found is None:
                raise InputError(f"--split-from-annotations: {fname} not found in {dirs[0]}")
            names[split] = list(read_annotations(found))
        return names
    given = {"train": train_list, "test": test_list}
    if train_list is None and test_list is None:  # look for the authors' train.lst / test.lst
        given = {s: _find(f, dirs) for s, f in FASHION_LISTS.items()}
        if not any(given.values()):
            raise InputError(
                "no split lists: give --train-list train.lst --test-list test.lst (the authors' "
                f"fashion_data lists; none found in {', '.join(map(str, dirs))}), "
                "or --split-from-annotations"
            )
    return {s: read_name_list(p) for s, p in given.items() if p is not None}


def prepare_fashion(
    source: str | Path,
    out: str | Path,
    train_list: str | Path | None = None,
    test_list: str | Path | None = None,
    annotations_dir: str | Path | None = None,
    split_from_annotations: bool = False,
    workers: int | None = None,
    progress: bool = True,
    jpeg_quality: int = 95,
) -> PrepareReport:
    """Build ``out/train`` and ``out/test`` from DeepFashion In-shop's 256x256 ``img/`` tree.

    Each image named in a split's list is cropped to 256x176 (PIL box (40, 0, 216, 256)) and
    saved as ``out/<split>/<flattened name>`` (`flatten_fashion_name`); images in neither list
    are skipped and counted. The annotation/pairs CSVs are copied when found, the result is
    checked with `check_layout`, and the report is written to ``out/prepare-report.json``.

    Args:
        source: ``img.zip``, the ``img/`` folder, or a folder holding it.
        out: the dataset root to write.
        train_list: the authors' ``train.lst`` (flattened names, one per line).
        test_list: the authors' ``test.lst``. Without either list, ``train.lst``/``test.lst``
            are looked for where the annotation files are.
        annotations_dir: where to find the CSVs (and lists); default ``out``, then the source
            (if a folder) and the folder holding it.
        split_from_annotations: take each split's names from its annotation file instead.
        workers: threads (default: Python's thread-pool default).
        progress: show progress bars.
        jpeg_quality: JPEG quality of the cropped images (Pillow's default, 75, is what the
            authors' script would have used).

    Raises:
        InputError: for a source that is not an In-shop tree, no way to decide the split, an
            unreadable list, or an unwritable out.
    """
    if not 1 <= jpeg_quality <= 100:
        raise InputError(f"--jpeg-quality must be in 1..100, got {jpeg_quality}")
    source, out = Path(source), Path(out)
    src = _open_fashion_source(source)
    dirs = _search_dirs(out, source, annotations_dir)
    lists = _fashion_split_lists(out, dirs, train_list, test_list, split_from_annotations)
    report = PrepareReport("fashion", str(out), IMAGE_SIZE["fashion"], source=str(source))
    split_of: dict[str, list[str]] = {}
    for split in SPLITS:
        report.splits[split] = SplitReport(split)
        _remove_partial(out / split)
        _mkdir(out / split)
        if split not in lists:
            report.warnings.append(f"no {split} list given: {out / split} gets no new images")
        for name in lists.get(split, []):
            split_of.setdefault(name, []).append(split)
    if both := sorted(n for n, s in split_of.items() if len(set(s)) > 1):
        report.warnings.append(f"{len(both)} names are in both lists, e.g. {both[0]}")

    jobs, seen, skipped = [], set(), Counter()
    for member in src.files():
        m = _FASHION_PATH.match(member)
        if m is None:
            skipped["not_an_in_shop_image_path"] += 1
            continue
        flat = flatten_fashion_name(member)
        if flat in seen:
            skipped["duplicate_flattened_name"] += 1
            continue
        seen.add(flat)
        if flat not in split_of:
            skipped["not_in_lists"] += 1
            continue
        jobs += [_Job(split, member, out / split / flat) for split in sorted(set(split_of[flat]))]
    report.skipped = dict(skipped)
    for split in SPLITS:
        report.splits[split].listed_not_found = sorted(set(lists.get(split, [])) - seen)

    def crop(job: _Job) -> str:
        if job.dest.is_file():
            try:
                if _image_size(job.dest) == IMAGE_SIZE["fashion"]:
                    return "present"
            except _READ_ERRORS:
                pass
        try:
            with Image.open(io.BytesIO(src.read(job.member))) as im:
                if (im.height, im.width) != FASHION_SOURCE_SIZE:
                    return f"{im.height}x{im.width}, expected 256x256"
                cropped = crop_fashion(im.convert("RGB"))
        except _READ_ERRORS:
            return "unreadable"
        buf = io.BytesIO()
        cropped.save(buf, "JPEG", quality=jpeg_quality)
        _write_or_fail(job.dest, buf.getvalue())
        return "written"

    try:
        results = _run_jobs(jobs, crop, workers, progress, desc="fashion")
    finally:
        src.close()
    return _finish(report, results, source, out, annotations_dir, workers, progress)


def prepare_dataset(dataset: str, source: str | Path, out: str | Path, **kwargs) -> PrepareReport:
    """Dispatch to `prepare_market` or `prepare_fashion` by name."""
    fn = {"market": prepare_market, "fashion": prepare_fashion}[_check_dataset(dataset)]
    return fn(source, out, **kwargs)


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    return dataset


# --------------------------------------------------------------------------------------------
# Pairs files


@dataclass
class PairsSummary:
    """What `make_pairs_file` kept, dropped and wrote."""

    out: str
    annotated: int
    distractors: int
    no_torso: int
    missing_images: int
    kept: int
    identities: int
    single_image_identities: int
    all_pairs: int
    pairs: int

    def summary(self) -> str:
        """One human-readable paragraph."""
        dropped = self.distractors + self.no_torso + self.missing_images
        return (
            f"{self.annotated} annotated images: kept {self.kept}, dropped {dropped} "
            f"({self.distractors} distractors, {self.no_torso} without a full torso, "
            f"{self.missing_images} missing from the image folder)\n"
            f"{self.identities} identities ({self.single_image_identities} with one image, "
            f"hence no pairs); {self.pairs} pairs written to {self.out}"
            + (f" (sampled from {self.all_pairs})" if self.pairs < self.all_pairs else "")
        )


def make_pairs_file(
    annotations: str | Path,
    out: str | Path,
    images_dir: str | Path | None = None,
    max_pairs: int | None = None,
    seed: int = 0,
    require_torso: bool = True,
) -> PairsSummary:
    """Write a pairs CSV of all ordered same-identity pairs of the annotated images.

    Uses `posetransfer.data.pairs.build_pairs`: distractors and (by default) images missing a
    shoulder or a hip are dropped, then every ordered pair of two images of one person is taken,
    optionally sampled down to ``max_pairs``.

    Args:
        annotations: an annotation CSV (``name:keypoints_y:keypoints_x``).
        out: the pairs CSV to write (header ``from,to``).
        images_dir: if given, annotated images absent from this folder are dropped (counted).
        max_pairs: sample this many pairs (deterministic for a seed); all pairs when None.
        seed: the sampling seed.
        require_torso: drop images missing any of both shoulders and both hips.

    Raises:
        InputError: for a malformed annotation file, a missing images_dir, or max_pairs < 1.
    """
    if max_pairs is not None and max_pairs < 1:
        raise InputError(f"--max-pairs must be at least 1, got {max_pairs}")
    kps = read_annotations(annotations)
    present = None
    if images_dir is not None:
        present = set(os.listdir(require_dir(images_dir, "image folder")))
    kept, n_distractor, n_torso, n_missing = {}, 0, 0, 0
    for name, k in kps.items():
        if is_distractor(name):
            n_distractor += 1
        elif require_torso and not has_torso(k):
            n_torso += 1
        elif present is not None and name not in present:
            n_missing += 1
        else:
            kept[name] = k
    per_id = Counter(person_id(n) for n in kept)
    # kept is already filtered (distractors, torso, missing files); only pair and sample here.
    pairs = build_pairs(kept, max_pairs=max_pairs, seed=seed, require_torso=False)
    write_pairs(out, pairs)
    return PairsSummary(
        out=str(out),
        annotated=len(kps),
        distractors=n_distractor,
        no_torso=n_torso,
        missing_images=n_missing,
        kept=len(kept),
        identities=len(per_id),
        single_image_identities=sum(c == 1 for c in per_id.values()),
        all_pairs=sum(c * (c - 1) for c in per_id.values()),
        pairs=len(pairs),
    )
