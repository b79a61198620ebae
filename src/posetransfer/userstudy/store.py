"""The study file: one SQLite database holding the images, their labels, the settings, the raters
and every answer.

``create_study`` draws the paper's protocol from a folder of real images and a folder of one
model's generated images (55 + 55, shuffled with the seed, the first 10 for practice) and
re-encodes every image the same way (RGB PNG at one size, fixed encoder settings, no metadata),
so that a real JPEG and a generated PNG differ only in what they show.

Tables::

    settings(key, value)       JSON values: name, exposure_ms, window, counts, seed, sources
    images(id, label, source, practice, png)
    raters(session, name, created, practice_order, judged_order)
    trials(trial, session, position, image_id, practice, image_token, issued_at, shown_at,
           answer, answered_at, rt_ms, flag)

``trials`` has one row per trial a rater was given; the answer is written into it once. The
database runs in WAL mode with ``synchronous=FULL``: an answer is on disk when it is
acknowledged, and killing the server loses nothing acknowledged.
"""

from __future__ import annotations

import io
import json
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from posetransfer.core.files import check_output, list_images, read_image
from posetransfer.errors import InputError

SCHEMA = """
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (
    id INTEGER PRIMARY KEY, label TEXT NOT NULL CHECK (label IN ('real', 'fake')),
    source TEXT NOT NULL, practice INTEGER NOT NULL, png BLOB NOT NULL);
CREATE TABLE raters (
    session TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL,
    practice_order TEXT NOT NULL, judged_order TEXT NOT NULL);
CREATE TABLE trials (
    trial TEXT PRIMARY KEY, session TEXT NOT NULL REFERENCES raters(session),
    position INTEGER NOT NULL, image_id INTEGER NOT NULL REFERENCES images(id),
    practice INTEGER NOT NULL, image_token TEXT NOT NULL UNIQUE, issued_at REAL NOT NULL,
    shown_at REAL, answer TEXT CHECK (answer IN ('real', 'fake')), answered_at REAL,
    rt_ms REAL, flag TEXT, UNIQUE (session, position));
"""


@dataclass(frozen=True)
class Protocol:
    """How a study is drawn and run (the paper's Table 3 protocol by default)."""

    n_real: int = 55
    n_generated: int = 55
    practice: int = 10
    """The first trials of every rater, with feedback; not counted."""
    exposure_ms: int = 1000
    """How long each image is shown before the mask replaces it."""
    min_rt_ms: int = 150
    """Answers sooner than this after the image was shown are kept and flagged."""
    max_rt_ms: int = 10000
    """Answers later than this are kept and flagged."""
    seed: int = 0
    """Seed of the draw of the images and of which are practice."""

    def __post_init__(self) -> None:
        for name in ("n_real", "n_generated", "exposure_ms", "max_rt_ms"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1", arg=name)
        if not 0 <= self.practice < self.n_real + self.n_generated:
            raise InputError(
                f"practice={self.practice}: must be at least 0 and leave judged trials",
                arg="practice",
            )
        if not 0 <= self.min_rt_ms < self.max_rt_ms:
            raise InputError("min_rt_ms must be at least 0 and below max_rt_ms", arg="min_rt_ms")


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection to a study file (autocommit; transactions are explicit)."""
    db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on an error): one writer at a time."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def open_study(path: str | Path) -> sqlite3.Connection:
    """Open an existing study file, refusing anything else by name."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"study={str(path)!r}: no such file", arg="study")
    try:
        db = connect(path)
        db.execute("SELECT value FROM settings WHERE key = 'name'").fetchone()
    except sqlite3.DatabaseError:
        raise InputError(
            f"study={str(path)!r}: not a study file (user-study create makes one)", arg="study"
        ) from None
    return db


def settings(db: sqlite3.Connection) -> dict[str, Any]:
    """The study's settings."""
    return {r["key"]: json.loads(r["value"]) for r in db.execute("SELECT * FROM settings")}


def encode(path: Path, size: tuple[int, int]) -> bytes:
    """The image as every image of a study is stored: RGB, ``size`` (H, W), PNG level 6."""
    image = Image.fromarray(read_image(path, *size))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=6, optimize=False)
    return out.getvalue()


def _pick(folder: Path, n: int, rng: random.Random, what: str) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{what}={str(folder)!r}: no such folder", arg=what)
    images = list_images(folder)
    arg = "n_real" if what == "real" else "n_generated"
    if len(images) < n:
        raise InputError(
            f"{arg}={n}: {folder} holds only {len(images)} images; give a smaller {arg}",
            arg=arg,
        )
    return sorted(rng.sample(images, n))


def create_study(
    real: str | Path,
    generated: str | Path,
    name: str,
    out: str | Path,
    protocol: Protocol | None = None,
    size: tuple[int, int] | None = None,
) -> Path:
    """Draw a study and write its file.

    Args:
        real: folder of real images (e.g. a dataset's ``test/``).
        generated: folder of one model's generated images (`posetransfer generate`'s output).
        name: the study's name in the report (one model on one dataset, e.g. "PATN Market").
        out: the study file to write (``.sqlite``); it must not exist.
        protocol: counts, practice, exposure, answer window and seed.
        size: (H, W) every image is stored at; default the first generated image's size.

    Returns:
        ``out``.
    """
    p = protocol or Protocol()
    out = check_output(out, {"real": real, "generated": generated}, kind="file")
    if out.exists():
        raise InputError(
            f"out={str(out)!r}: exists; a study file is never overwritten (it holds answers)",
            arg="out",
        )
    if not name.strip():
        raise InputError("name: give the study a name (the model and dataset)", names=("name",))
    rng = random.Random(p.seed)
    reals = _pick(Path(real), p.n_real, rng, "real")
    fakes = _pick(Path(generated), p.n_generated, rng, "generated")
    if size is None:
        with Image.open(fakes[0]) as im:
            size = (im.height, im.width)
    items = [("real", f) for f in reals] + [("fake", f) for f in fakes]
    rng.shuffle(items)
    tmp = out.with_name(f".{out.name}.part")
    tmp.unlink(missing_ok=True)
    try:
        db = connect(tmp)
        db.executescript(SCHEMA)
        with transaction(db):
            values = {
                "name": name,
                "protocol": asdict(p),
                "size": list(size),
                "real_dir": str(Path(real).resolve()),
                "generated_dir": str(Path(generated).resolve()),
                "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                "encoding": "RGB PNG, compress_level 6, no metadata, every image at this size",
            }
            db.executemany(
                "INSERT INTO settings VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in values.items()],
            )
            db.executemany(
                "INSERT INTO images (label, source, practice, png) VALUES (?, ?, ?, ?)",
                [
                    (label, path.name, int(i < p.practice), encode(path, size))
                    for i, (label, path) in enumerate(items)
                ],
            )
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        tmp.replace(out)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)
    return out
