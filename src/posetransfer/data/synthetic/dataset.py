"""Writing the synthetic dataset in the Market-1501 layout, and a contact sheet to look at it."""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from posetransfer.core.files import (
    OUTPUT_MARKER,
    PART_SUFFIX,
    atomic_write,
    check_output,
    exclusive_lock,
    mark_output,
    read_image,
    save_image,
)
from posetransfer.data.pairs import build_pairs
from posetransfer.data.synthetic.appearance import Appearance, sample_appearance
from posetransfer.data.synthetic.background import render_background
from posetransfer.data.synthetic.body import sample_skeleton
from posetransfer.data.synthetic.figure import render_person
from posetransfer.errors import InputError, os_error_message, require_dir
from posetransfer.pose import draw_skeleton, read_annotations, write_annotations, write_pairs

# Bump when the drawing changes, so that `make_synthetic_dataset` regenerates old folders.
GENERATOR_VERSION = 1

ANNOTATION_FILES = {
    "train": "synthetic-annotation-train.csv",
    "test": "synthetic-annotation-test.csv",
}
PAIRS_FILES = {"train": "synthetic-pairs-train.csv", "test": "synthetic-pairs-test.csv"}
META_FILE = "synthetic.json"
_STAGING = ".partial"
# The re-ID layout (`reid_layout`) a dataset may carry; a regenerated dataset drops it.
_REID_NAMES = ("bounding_box_train", "query", "bounding_box_test", "reid-layout.json")
_LOCK = ".synthetic.lock"


@dataclass(frozen=True)
class SyntheticConfig:
    """What `make_synthetic_dataset` writes."""

    n_train_ids: int = 100
    """Identities in ``train/`` (ids 0001 .. n_train_ids)."""
    n_test_ids: int = 20
    """Held-out identities in ``test/`` (the ids after the training ones)."""
    images_per_id: int = 12
    """Images of each identity (at least 2, so that every identity forms pairs)."""
    height: int = 128
    """Image height in pixels (Market-1501: 128)."""
    width: int = 64
    """Image width in pixels (Market-1501: 64)."""
    seed: int = 0
    """Seed of everything random: appearances, poses, backgrounds, test-pair sampling."""
    max_test_pairs: int | None = 200
    """Test pairs kept after sampling all same-identity pairs down; None keeps them all."""
    jpeg_quality: int = 92
    """JPEG quality of the written images (1..100)."""

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, rule: str) -> None:
            if not ok:
                raise InputError(f"{name}={getattr(self, name)!r}: {rule}", arg=name)

        for name in ("n_train_ids", "n_test_ids", "images_per_id", "height", "width", "seed"):
            value = getattr(self, name)
            check(name, isinstance(value, int) and not isinstance(value, bool), "must be an int")
        check("n_train_ids", self.n_train_ids >= 1, "must be at least 1")
        check("n_test_ids", self.n_test_ids >= 1, "must be at least 1")
        if self.n_train_ids + self.n_test_ids > 9999:
            raise InputError(
                "n_train_ids + n_test_ids must be at most 9999 (ids have 4 digits), got "
                f"{self.n_train_ids + self.n_test_ids}",
                names=("n_train_ids", "n_test_ids"),
            )
        check("images_per_id", 2 <= self.images_per_id <= 5000, "must be in 2..5000")
        check("height", 32 <= self.height <= 2048, "must be in 32..2048")
        check("width", 16 <= self.width <= 2048, "must be in 16..2048")
        check("seed", self.seed >= 0, "must be >= 0")
        mtp = self.max_test_pairs
        check(
            "max_test_pairs",
            mtp is None or (isinstance(mtp, int) and not isinstance(mtp, bool) and mtp >= 1),
            "must be a positive int or None",
        )
        check("jpeg_quality", isinstance(self.jpeg_quality, int), "must be an int")
        check("jpeg_quality", 1 <= self.jpeg_quality <= 100, "must be in 1..100")


# --------------------------------------------------------------------------------------------
# Writing


def _rng(seed: int, pid: int, k: int) -> np.random.Generator:
    """Generator of identity ``pid``: k = 0 for its appearance, k >= 1 for its k-th image.

    Independent of the image size and of the other identities, so a person looks the same
    whatever else the config asks for.
    """
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(pid, k)))


def _camera(rng: np.random.Generator, img: np.ndarray, quality: int) -> bytes:
    """Mild camera effects (white balance, sensor noise) and JPEG encoding."""
    gains = rng.uniform(0.95, 1.05, 3).astype(np.float32)
    noise = rng.normal(0, rng.uniform(1.0, 3.0), img.shape).astype(np.float32)
    out = np.clip(np.round(img * gains + noise), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def make_image(
    config: SyntheticConfig, appearance: Appearance, pid: int, k: int
) -> tuple[str, bytes, np.ndarray]:
    """Image ``k`` (0-based) of identity ``pid``: its Market-style name, JPEG bytes, keypoints."""
    rng = _rng(config.seed, pid, k + 1)
    cam, seq = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    frame = 100 * k + int(rng.integers(1, 100))  # increasing, so names are unique per identity
    name = f"{pid:04d}_c{cam}s{seq}_{frame:06d}_00.jpg"
    skeleton = sample_skeleton(rng, config.height, config.width, build=appearance.build)
    background = render_background(rng, config.height, config.width)
    img = render_person(skeleton, appearance, background)
    return name, _camera(rng, img, config.jpeg_quality), skeleton.keypoints()


def _metadata(config: SyntheticConfig) -> dict:
    return {
        "generator": "posetransfer.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "config": asdict(config),
    }


def _own_names() -> set[str]:
    files = {*ANNOTATION_FILES.values(), *PAIRS_FILES.values(), META_FILE, META_FILE + ".tmp"}
    return files | {"train", "test", _STAGING, _LOCK, OUTPUT_MARKER, *_REID_NAMES}


# Any of these says a folder was written here (a dataset, or a run that was interrupted); a
# folder holding only names such as train/ and test/ without one is the user's, never cleared.
_OURS = (OUTPUT_MARKER, META_FILE, _STAGING, _LOCK)


def is_complete(root: str | Path, config: SyntheticConfig) -> bool:
    """Whether ``root`` holds a finished dataset written by this generator with ``config``."""
    root = Path(root)
    try:
        meta = json.loads((root / META_FILE).read_text())
    except (OSError, ValueError):
        return False
    expected = _metadata(config)
    if not isinstance(meta, dict) or any(meta.get(key) != v for key, v in expected.items()):
        return False
    counts = {"train": config.n_train_ids, "test": config.n_test_ids}
    for split, n_ids in counts.items():
        folder = root / split
        if not folder.is_dir() or len(list(folder.glob("*.jpg"))) != n_ids * config.images_per_id:
            return False
        if (
            not (root / ANNOTATION_FILES[split]).is_file()
            or not (root / PAIRS_FILES[split]).is_file()
        ):
            return False
    return True


def make_synthetic_dataset(
    root: str | Path, config: SyntheticConfig = SyntheticConfig(), progress: bool = True
) -> Path:
    """Write the synthetic dataset in the public Market-1501 layout, or reuse a finished one.

    Writes ``root/train/*.jpg``, ``root/test/*.jpg`` (held-out identities),
    ``synthetic-annotation-{train,test}.csv``, ``synthetic-pairs-{train,test}.csv`` (all ordered
    same-identity pairs; the test pairs sampled down to ``config.max_test_pairs``) and last
    ``synthetic.json`` (the config). Files are built in ``root/.partial`` and moved in at the
    end, so an interrupted run leaves no ``synthetic.json`` and the next call starts again.

    Args:
        root: output folder; created if needed. It may hold a previous synthetic dataset
            (which is replaced unless it was made with the same config) but nothing else: a
            folder of other files, even ones named ``train/`` and ``test/``, is refused.
        config: sizes, seed and image format.
        progress: show a tqdm progress bar.

    Returns:
        ``root``.

    Raises:
        InputError: ``root`` is a file or holds files that are not from this generator.
    """
    root = check_output(root, arg="root")  # not below a file
    if is_complete(root, config):
        return root
    if root.exists():
        require_dir(root, "output folder")
        # A temporary file is one of ours being written (by another process building it too).
        names = sorted(p.name for p in root.iterdir() if not p.name.endswith(PART_SUFFIX))
        foreign = [n for n in names if n not in _own_names()]
        if names and not any(n in _OURS for n in names):
            foreign = names  # train/, test/... of the user's: not ours to replace
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise InputError(
                f"output folder {root} holds files that are not a synthetic dataset ({shown}); "
                "choose a new or empty folder"
            )
    root.mkdir(parents=True, exist_ok=True)
    mark_output(root)  # before anything else is written: the folder is ours to replace
    # Two processes asked for the same folder (e.g. two training runs on a fresh clone): the
    # second waits for the first, then finds the dataset finished.
    with exclusive_lock(root / _LOCK):
        if not is_complete(root, config):
            try:
                _write_dataset(root, config, progress)
            except BaseException:  # a full disk, Ctrl-C: the next call starts again anyway
                shutil.rmtree(root / _STAGING, ignore_errors=True)
                raise
    return root


def _write_dataset(root: Path, config: SyntheticConfig, progress: bool) -> None:
    (root / META_FILE).unlink(missing_ok=True)
    for name in reversed(_REID_NAMES):  # the layout file first: it marks the folders finished
        target = root / name
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    staging = root / _STAGING
    shutil.rmtree(staging, ignore_errors=True)

    first_test = config.n_train_ids + 1
    splits = {
        "train": range(1, first_test),
        "test": range(first_test, first_test + config.n_test_ids),
    }
    total = (config.n_train_ids + config.n_test_ids) * config.images_per_id
    with tqdm(total=total, desc="synthetic people", unit="img", disable=not progress) as bar:
        for split, pids in splits.items():
            folder = staging / split
            folder.mkdir(parents=True)
            annotations: dict[str, np.ndarray] = {}
            for pid in pids:
                appearance = sample_appearance(_rng(config.seed, pid, 0))
                for k in range(config.images_per_id):
                    name, data, kps = make_image(config, appearance, pid, k)
                    try:  # the staging folder is wiped on a re-run: no temporary names needed
                        (folder / name).write_bytes(data)
                    except OSError as e:
                        raise InputError(
                            f"{folder / name}: {os_error_message(e)}; the dataset in {root} was "
                            "not finished (its partial files are removed; run again)"
                        ) from None
                    annotations[name] = kps
                    bar.update()
            annotations = dict(sorted(annotations.items()))
            write_annotations(staging / ANNOTATION_FILES[split], annotations)
            max_pairs = config.max_test_pairs if split == "test" else None
            pairs = build_pairs(annotations, max_pairs=max_pairs, seed=config.seed)
            write_pairs(staging / PAIRS_FILES[split], pairs)

    # Move into place; synthetic.json goes last, so only a finished dataset carries one.
    for name in ["train", "test", *ANNOTATION_FILES.values(), *PAIRS_FILES.values()]:
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        (staging / name).rename(target)
    staging.rmdir()
    atomic_write(root / META_FILE, json.dumps(_metadata(config), indent=2) + "\n")


def make_contact_sheet(
    root: str | Path, out: str | Path, n: int = 32, columns: int = 8, zoom: int = 2
) -> Path:
    """Save a PNG grid of ``n`` dataset images, skeletons drawn over every second one.

    Args:
        root: a dataset written by `make_synthetic_dataset`.
        out: the PNG to write.
        n: images shown, spread evenly over the train and test images.
        columns: images per row.
        zoom: nearest-neighbour enlargement, so that 128 x 64 images are easy to inspect.
    """
    root = Path(root)
    items = []
    for split in ("train", "test"):
        ann = read_annotations(root / ANNOTATION_FILES[split], image_dir=root / split)
        items += [(root / split / name, kps) for name, kps in ann.items()]
    if not items:
        raise InputError(f"{root}: the dataset has no images")
    picks = np.linspace(0, len(items) - 1, min(n, len(items))).round().astype(int)
    tiles = []
    for i, index in enumerate(picks):
        path, kps = items[index]
        img = read_image(path)
        if i % 2:
            img = draw_skeleton(kps, img.shape[0], img.shape[1], background=img, thickness=1)
        tiles.append(img)
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[r : r + columns], axis=1) for r in range(0, len(tiles), columns)]
    sheet = Image.fromarray(np.concatenate(rows, axis=0))
    sheet = sheet.resize((sheet.width * zoom, sheet.height * zoom), Image.NEAREST)
    return save_image(sheet, out)
