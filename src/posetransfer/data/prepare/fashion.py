"""DeepFashion In-shop: the 256x256 ``img/`` tree, cropped to 256x176 under the public names.

Each image named in the authors' train/test lists is cropped to 256x176 and saved under its
flattened name. The authors' own conversion script stops on an undefined variable; this module
is the working replacement and follows the same naming and cropping rules.
"""

from __future__ import annotations

import io
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from PIL import Image

from posetransfer.core.files import atomic_write, read_image, remove_partial
from posetransfer.data.prepare.check import check_root, find_file, finish, search_dirs
from posetransfer.data.prepare.layout import DATASET_FILES, IMAGE_SIZE, SPLITS
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
from posetransfer.pose import read_annotations

FASHION_SOURCE_SIZE: tuple[int, int] = (256, 256)  # (height, width) of In-shop's img/ images
FASHION_CROP_BOX: tuple[int, int, int, int] = (40, 0, 216, 256)  # PIL box: columns 40..215
FASHION_LISTS: dict[str, str] = {"train": "train.lst", "test": "test.lst"}

# <prefix>/(MEN|WOMEN)/<category>/id_XXXXXXXX/<file>.jpg, anywhere in a tree or an archive.
_FASHION_PATH = re.compile(r"^((?:[^/]+/)*?)(MEN|WOMEN)/([^/]+)/(id_\d+)/([^/]+\.jpg)$", re.I)


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
    """Read a ``train.lst``/``test.lst`` file: one image name per line, blank lines ignored.

    UTF-8 with or without a byte-order mark, Unix or Windows line endings.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"name list not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file of image names")
    return [line.strip() for line in text.splitlines() if line.strip()]


def open_fashion_source(path: Path) -> Source:
    """Find the folder holding MEN/ and WOMEN/ in an In-shop img/ tree, its parent, or img.zip."""
    bases = find_bases(source_folders(path, max_depth=3), ("MEN/", "WOMEN/"))
    if not bases:
        raise InputError(
            f"{path}: not a DeepFashion In-shop image tree (no MEN/ or WOMEN/ folder inside; "
            "expected img.zip, the img/ folder or its parent)"
        )
    return Source(path, bases[0])


def _split_lists(
    out: Path,
    dirs: Sequence[Path],
    train_list: str | Path | None,
    test_list: str | Path | None,
    split_from_annotations: bool,
) -> dict[str, list[str]]:
    """The image names of each split, from the lists or from the annotation files."""
    if split_from_annotations:
        if train_list is not None or test_list is not None:
            raise InputError(
                "give either train_list and test_list, or split_from_annotations",
                names=("train_list", "test_list", "split_from_annotations"),
            )
        names = {}
        for split, fname in DATASET_FILES["fashion"]["annotations"].items():
            found = find_file(fname, [out, *dirs])
            if found is None:
                where = ", ".join(dict.fromkeys(map(str, [out, *dirs])))
                raise InputError(
                    f"split_from_annotations: {fname} not found in {where}",
                    names=("split_from_annotations",),
                )
            names[split] = list(read_annotations(found))
        return names
    given = {"train": train_list, "test": test_list}
    if train_list is None and test_list is None:  # look for the authors' train.lst / test.lst
        given = {s: find_file(f, dirs) for s, f in FASHION_LISTS.items()}
        if not any(given.values()):
            raise InputError(
                "no split lists: give train_list train.lst and test_list test.lst (the "
                f"authors' fashion_data lists; none found in {', '.join(map(str, dirs))}), "
                "or use split_from_annotations",
                names=("train_list", "test_list", "split_from_annotations"),
            )
    return {s: read_name_list(p) for s, p in given.items() if p is not None}


def _is_complete_crop(path: Path) -> bool:
    """True when ``path`` decodes completely as a 256x176 image (a finished earlier output)."""
    try:
        read_image(path, *IMAGE_SIZE["fashion"])
    except InputError:
        return False
    return True


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
    A re-run keeps the outputs that decode as 256x176 images, redoes the others and removes
    the temporary files of an interrupted run.

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
            unreadable list, or an unwritable out, one that is the source or lies inside it,
            or whose train/test folders hold the source or a list.
    """
    if not 1 <= jpeg_quality <= 100:
        raise InputError(f"jpeg_quality={jpeg_quality}: must be in 1..100", arg="jpeg_quality")
    source, out = Path(source), Path(out)
    check_root(out, source, train_list=train_list, test_list=test_list)
    src = open_fashion_source(source)
    dirs = search_dirs(out, source, annotations_dir)
    lists = _split_lists(out, dirs, train_list, test_list, split_from_annotations)
    report = PrepareReport("fashion", str(out), IMAGE_SIZE["fashion"], source=str(source))
    split_of: dict[str, list[str]] = {}
    for split in SPLITS:
        report.splits[split] = SplitReport(split)
        remove_partial(out / split)
        make_dir(out / split)
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
        jobs += [Job(split, member, out / split / flat) for split in sorted(set(split_of[flat]))]
    report.skipped = dict(skipped)
    for split in SPLITS:
        report.splits[split].listed_not_found = sorted(set(lists.get(split, [])) - seen)

    def crop(job: Job) -> str:
        if job.dest.is_file() and _is_complete_crop(job.dest):
            return "present"
        try:  # archive members are bytes, which files.read_image (a path reader) cannot take
            with Image.open(io.BytesIO(src.read(job.member))) as im:
                if (im.height, im.width) != FASHION_SOURCE_SIZE:
                    return f"{im.height}x{im.width}, expected 256x256"
                cropped = crop_fashion(im.convert("RGB"))
        except READ_ERRORS:
            return "unreadable"
        buf = io.BytesIO()
        cropped.save(buf, "JPEG", quality=jpeg_quality)
        atomic_write(job.dest, buf.getvalue(), durable=False)
        return "written"

    try:
        results = run_jobs(jobs, crop, workers, progress, desc="fashion")
    finally:
        src.close()
    return finish(report, results, source, out, annotations_dir, workers, progress)
