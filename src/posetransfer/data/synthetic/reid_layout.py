"""The synthetic dataset in Market-1501's re-ID layout, beside its pose-transfer layout.

``bounding_box_train/`` shows the training identities' images; the held-out identities' images
are split into ``query/`` (one image per camera and person) and ``bounding_box_test/`` (the
gallery: the rest). Every query keeps a gallery image of its person from another camera, which
the Market-1501 protocol needs to count it. The files are hard links to ``train/`` and ``test/``
(copies where the file system has none), so the folder serves generators and re-ID at once.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

from posetransfer.core.files import atomic_write, disk_error
from posetransfer.data.market import GALLERY_DIR, QUERY_DIR, TRAIN_DIR, parse_name
from posetransfer.errors import InputError

REID_META = "reid-layout.json"


def split_query_gallery(names: list[str]) -> tuple[list[str], list[str]]:
    """(query, gallery) of held-out images: per person, the first image of each camera is a
    query as long as the gallery keeps an image of that person from another camera."""
    people: dict[int, list[str]] = defaultdict(list)
    for name in sorted(names):
        people[parse_name(name)[0]].append(name)
    query, gallery = [], []
    for group in people.values():
        firsts: dict[int, str] = {}
        for name in group:
            firsts.setdefault(parse_name(name)[1], name)
        chosen = list(firsts.values())
        while True:  # hand back queries that would have no match, until every one has
            rest = [n for n in group if n not in chosen]
            cams = {parse_name(n)[1] for n in rest}
            keep = [q for q in chosen if cams - {parse_name(q)[1]}]
            if keep == chosen:
                break
            chosen = keep
        query += chosen
        gallery += [n for n in group if n not in chosen]
    return sorted(query), sorted(gallery)


def _link(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def write_reid_layout(root: str | Path) -> dict[str, int]:
    """Add the three Market-1501 re-ID folders to a finished synthetic dataset; their counts.

    Rebuilt when ``reid-layout.json`` (written last) is missing or older than the images.
    """
    root = Path(root)
    meta = root / REID_META
    train, test = sorted((root / "train").glob("*.jpg")), sorted((root / "test").glob("*.jpg"))
    if not train or not test:
        raise InputError(f"{root}: no synthetic train/ and test/ images to lay out for re-ID")
    if meta.is_file() and meta.stat().st_mtime >= (root / "train").stat().st_mtime:
        return json.loads(meta.read_text())
    query, gallery = split_query_gallery([p.name for p in test])
    parts = {
        TRAIN_DIR: train,
        QUERY_DIR: [root / "test" / n for n in query],
        GALLERY_DIR: [root / "test" / n for n in gallery],
    }
    meta.unlink(missing_ok=True)
    try:
        for folder, files in parts.items():
            shutil.rmtree(root / folder, ignore_errors=True)
            (root / folder).mkdir()
            for src in files:
                _link(src, root / folder / src.name)
    except OSError as e:
        raise disk_error(root, e) from None
    counts = {folder: len(files) for folder, files in parts.items()}
    atomic_write(meta, json.dumps(counts, indent=2) + "\n")
    return counts
