"""Market-1501's re-ID layout: its three folders, its file names, and reading it as a source.

The official archive holds ``bounding_box_train/`` (751 identities), ``query/`` and
``bounding_box_test/`` (the gallery, 750 other identities plus distractors). A name such as
``0002_c1s1_000451_03.jpg`` is person 0002 seen by camera 1 (sequence 1, frame 451, box 3); re-ID
engines read the person and camera with the pattern `MARKET_NAME`. Person -1 marks junk boxes and
0000 distractors: neither is an identity to learn.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from posetransfer.data.prepare.sources import Source, find_bases, source_folders
from posetransfer.errors import InputError

TRAIN_DIR, QUERY_DIR, GALLERY_DIR = "bounding_box_train", "query", "bounding_box_test"
REID_DIRS: tuple[str, ...] = (TRAIN_DIR, QUERY_DIR, GALLERY_DIR)
MARKET_NAME = re.compile(r"([-\d]+)_c(\d)")
"""The person and camera in a Market-1501 file name, as torchreid's Market-1501 reader parses it."""
JUNK_PIDS: frozenset[int] = frozenset({-1, 0})
"""Junk boxes (-1) and distractors (0000): kept out of every training set."""


def parse_name(name: str) -> tuple[int, int]:
    """(person id, camera 1..6) of a Market-1501 file name; InputError naming it otherwise."""
    match = MARKET_NAME.search(Path(name).name)
    if match is None:
        raise InputError(
            f"{name}: not a Market-1501 image name (expected PERSON_cCAMERA..., e.g. "
            "0002_c1s1_000451_03.jpg)"
        )
    pid, cam = int(match.group(1)), int(match.group(2))
    if cam < 1:
        raise InputError(f"{name}: camera {cam}: cameras are numbered from 1")
    return pid, cam


def by_identity(names: list[str]) -> dict[int, list[str]]:
    """Training names grouped by person id (sorted), junk and distractors left out."""
    groups: dict[int, list[str]] = defaultdict(list)
    for name in sorted(names):
        pid, _ = parse_name(name)
        if pid not in JUNK_PIDS:
            groups[pid].append(name)
    return dict(sorted(groups.items()))


def open_reid_source(path: str | Path, arg: str = "market_root") -> Source:
    """Market-1501 (its zip or folder, or a folder holding either) with all three re-ID folders.

    Raises:
        InputError: naming ``arg`` when the path is not Market-1501, or lacks one of
            `REID_DIRS` (``prepare market`` needs only the two bounding-box folders; re-ID also
            needs ``query/``).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{arg}={str(path)!r}: not found", arg=arg)
    markers = tuple(f"{d}/" for d in REID_DIRS)
    bases = find_bases(source_folders(path, max_depth=3), markers)
    if not bases:
        raise InputError(
            f"{arg}={str(path)!r}: not Market-1501 (no {', '.join(markers)} inside; "
            "expected Market-1501-v15.09.15.zip or its extracted folder)",
            arg=arg,
        )
    source = Source(path, bases[0])
    missing = [d for d in REID_DIRS if not source.files(d)]
    if missing:
        source.close()
        raise InputError(
            f"{arg}={str(path)!r}: no images in {', '.join(d + '/' for d in missing)} "
            f"of {source}; re-ID needs {', '.join(d + '/' for d in REID_DIRS)}",
            arg=arg,
        )
    return source


def image_names(source: Source, folder: str) -> dict[str, str]:
    """{file name: member path} of the ``.jpg`` images directly in ``folder`` of ``source``."""
    members = [m for m in source.files(folder) if m.count("/") == folder.count("/") + 1]
    return {m.rsplit("/", 1)[-1]: m for m in sorted(members)}
