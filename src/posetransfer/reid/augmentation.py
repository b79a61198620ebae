"""Augmented Market-1501 training sets (the paper's section 5): keep a portion, generate the rest.

`plan_augmentation` decides, from the names, poses and a seed only, which real images stay and
which images are generated from which source and target pose; `augment` writes the plan as a
Market-1501 folder that re-ID engines read like the original:

    OUT/bounding_box_train/   kept real images, and generated ones named
                              <source stem>___<target stem>.jpg (the source's person and camera)
    OUT/query/, OUT/bounding_box_test/   the original test folders, linked (copied from a zip)
    OUT/manifest.csv          name,pid,camid,kind,source,target for every training image
    OUT/augment.json          what was asked for; "complete" once everything is written
    OUT/augment-report.json   counts, and every image left out with the reason

``augment.json`` is written first, saying "complete": false, and is the last file rewritten:
the report and the manifest exist only in a finished set (or for a moment before
"complete": true), so after any interruption the folder says it is unfinished, and consumers
(`check_complete_set`) refuse it with the command that finishes it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from posetransfer.core.files import (
    atomic_write,
    check_output,
    claim_folder,
    disk_error,
    image_size,
    is_intact_image,
    read_image,
    remove_partial,
)
from posetransfer.data.market import (
    GALLERY_DIR,
    QUERY_DIR,
    TRAIN_DIR,
    by_identity,
    image_names,
    open_reid_source,
    parse_name,
)
from posetransfer.errors import InputError
from posetransfer.pose import keypoints_to_heatmaps, read_annotations
from posetransfer.reid.config import TARGET_POSES
from posetransfer.reid.plan import (  # noqa: F401  (re-exported: part of this module's API)
    SEPARATOR,
    Plan,
    check_options,
    check_portion,
    keep_portion,
    plan_augmentation,
)
from posetransfer.runtime.load import load_generator

MANIFEST, META, REPORT = "manifest.csv", "augment.json", "augment-report.json"
MANIFEST_COLUMNS = ("name", "pid", "camid", "kind", "source", "target")
JPEG_QUALITY = 95
_OWN = {TRAIN_DIR, QUERY_DIR, GALLERY_DIR, MANIFEST, META, REPORT}


def augment(
    market_root: str | Path,
    annotations: str | Path,
    checkpoint: str | Path | None,
    out: str | Path,
    portion: float = 1.0,
    seed: int = 0,
    target_poses: str = "removed",
    ratio: int = 1,
    batch_size: int = 16,
    progress: bool = True,
    device: str = "auto",
) -> Path:
    """Write an augmented Market-1501 training set (see the module docstring for the layout).

    Keeps ``max(round(portion * N), identities)`` of the N training images (at least one per
    identity; junk -1 and distractor 0000 images never enter) and replaces every removed image
    by a kept image of the same person transferred to the removed image's pose
    (``target_poses="removed"``) or to a pose drawn from the kept images (``"random"``, the
    paper's starred rows). With ``ratio=K`` (portion 1) each real image gets K-1 generated
    ones in poses drawn from the whole set (the paper's 2x and 3x sets). Everything is
    deterministic for ``seed``; an interrupted run continues where it stopped.

    Args:
        market_root: Market-1501's zip or folder (``bounding_box_train/``, ``query/``,
            ``bounding_box_test/``), or a folder written by ``posetransfer synthetic --reid``.
        annotations: the training images' keypoint CSV (``name:keypoints_y:keypoints_x``).
        checkpoint: a generator: a checkpoint or run folder, an authors' ``.pth``, a bundled
            model's name or an exported file; it must make images of the training size.
            None writes the kept real images only (the no-augmentation lower bound).
        out: the folder to write; new, empty, or an unfinished run of the same call.
        portion: the share p of real training images kept, in (0, 1].
        seed: chooses the kept images, the sources and the random target poses.
        target_poses: "removed" or "random".
        ratio: K >= 1; above 1 only with portion 1.
        batch_size: images per generator call.
        progress: show a progress bar.
        device: "auto", "cpu", "cuda", ...

    Returns:
        ``out``, holding ``manifest.csv`` and the three Market-1501 folders.

    Raises:
        InputError: naming the argument or file at fault (see docs/reid.md).
    """
    check_options(portion, target_poses, ratio)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size={batch_size!r}: must be at least 1", arg="batch_size")
    out = check_output(out, set_inputs(market_root, annotations, checkpoint))
    source, train, groups, covered, size = open_inputs(market_root, annotations)
    try:
        meta = {
            "market_root": str(Path(market_root).resolve()),
            "annotations": str(Path(annotations).resolve()),
            "checkpoint": checkpoint_id(checkpoint),
            "portion": portion,
            "seed": seed,
            "target_poses": target_poses,
            "ratio": ratio,
        }
        if _finished(out, meta):
            return out
        plan = plan_augmentation(groups, covered, portion, seed, target_poses, ratio)
        if checkpoint is None:
            plan.generated = []  # the lower bound: the kept real images only
        generator = _sized_generator(checkpoint, size, device) if plan.generated else None
        _claim(out, meta)
        folder = out / TRAIN_DIR
        _copy_real(source, train, plan.kept, folder)
        for sub in (QUERY_DIR, GALLERY_DIR):
            _link_folder(source, sub, out / sub)
    finally:
        source.close()
    if generator is not None:
        _generate(plan, covered, generator, folder, size, batch_size, progress)
    _finish(out, meta, plan, len(train))
    return out


def set_inputs(
    market_root: str | Path, annotations: str | Path, checkpoint: str | Path | None = None
) -> dict[str, str | Path | None]:
    """The paths a set is made from, by argument name, for `check_output` (a bundled
    generator's name is not a path)."""
    given = checkpoint if checkpoint is not None and Path(checkpoint).exists() else None
    return {"market_root": market_root, "annotations": annotations, "checkpoint": given}


def open_inputs(market_root: str | Path, annotations: str | Path):
    """(source, {name: member}, names by person, {name: keypoints}, (height, width) or None) of
    the training images.

    The caller closes the source. The annotations are read with the training images' size, so
    that keypoints written for another resolution are refused.

    Raises:
        InputError: naming ``market_root`` (not Market-1501, a re-ID folder missing, no
            identity, an unfinished augmented set) or ``annotations`` (unreadable, of
            another resolution, or covering none of the training images).
    """
    source = open_reid_source(market_root)
    try:
        if not source.is_zip:  # an augmented set made into another one: only a finished set
            check_complete_set(source.path / source.base, arg="market_root")
        train = image_names(source, TRAIN_DIR)
        groups = by_identity(list(train))
        if not groups:
            raise InputError(
                f"market_root={str(market_root)!r}: {TRAIN_DIR}/ holds no identity (only junk "
                "or distractor images)",
                arg="market_root",
            )
        size = train_size(source, train)
        poses = read_annotations(annotations, image_size=size)
        covered = {n: poses[n] for n in train if n in poses}
        if not covered:
            raise InputError(
                f"annotations={str(annotations)!r}: covers none of the {len(train)} images in "
                f"{TRAIN_DIR}/ of {source} (names such as {next(iter(train))})",
                arg="annotations",
            )
    except BaseException:
        source.close()
        raise
    return source, train, groups, covered, size


def train_size(source, train: dict[str, str]) -> tuple[int, int] | None:
    """(height, width) of the first training image."""
    return image_size(io.BytesIO(source.read(next(iter(train.values())))))


def check_inputs(
    market_root: str | Path, annotations: str | Path, checkpoints=(), device: str = "auto"
) -> None:
    """Everything `augment` refuses, checked before any work: the data, the annotations and
    each generator's image size (`run_study` calls it before its first cell)."""
    source, *_, size = open_inputs(market_root, annotations)
    source.close()
    for checkpoint in checkpoints:
        _sized_generator(checkpoint, size, device)


def extract_market(market_root: str | Path, dest: str | Path, progress: bool = True) -> Path:
    """The three re-ID folders of a Market-1501 zip, written once into ``dest`` (resumable)."""
    from tqdm import tqdm as bar

    dest = Path(dest)
    done = dest / ".complete"
    if done.is_file():
        return dest
    source = open_reid_source(market_root)
    try:
        jobs = [
            (sub, n, m)
            for sub in (TRAIN_DIR, QUERY_DIR, GALLERY_DIR)
            for n, m in image_names(source, sub).items()
        ]
        for sub, name, member in bar(jobs, desc="extract", unit="img", disable=not progress):
            target = dest / sub / name
            if not (target.is_file() and target.stat().st_size == source.size(member)):
                atomic_write(target, source.read(member), durable=False)
    finally:
        source.close()
    atomic_write(done, "")
    return dest


def _finished(out: Path, meta: dict) -> bool:
    try:
        found = json.loads((out / META).read_text())
    except (OSError, ValueError):
        return False
    return (
        found.get("complete") is True
        and found.get("request") == meta
        and (out / MANIFEST).is_file()
    )


def _claim(out: Path, meta: dict) -> None:
    """Make ``out`` ours: new or empty, or an unfinished (or finished) run of the same request."""
    claim_folder(out, META, meta, "an augmented set", key="request")
    # "complete": false before anything else changes (a kill before it leaves an empty folder,
    # which the next run claims); then only a finished set has a report and a manifest.
    atomic_write(out / META, json.dumps({"request": meta, "complete": False}, indent=2) + "\n")
    (out / MANIFEST).unlink(missing_ok=True)
    (out / REPORT).unlink(missing_ok=True)
    (out / TRAIN_DIR).mkdir(parents=True, exist_ok=True)


def _copy_real(source, members: dict[str, str], kept: list[str], folder: Path) -> None:
    """Kept real images into ``folder``: hard links from a folder, bytes from a zip."""
    remove_partial(folder)
    for name in kept:
        dest = folder / name
        if dest.is_file() and dest.stat().st_size == source.size(members[name]):
            continue
        dest.unlink(missing_ok=True)
        if not source.is_zip:
            try:
                os.link(source.path / source.base / members[name], dest)
                continue
            except OSError:
                pass  # another file system: copy instead
        atomic_write(dest, source.read(members[name]), durable=False)


def _link_folder(source, sub: str, dest: Path) -> None:
    """``dest`` showing ``sub`` of ``source`` unchanged: a symbolic link, or a copy from a zip."""
    if dest.is_symlink() or dest.exists():
        return
    if not source.is_zip:
        try:
            os.symlink((source.path / source.base / sub).resolve(), dest, target_is_directory=True)
            return
        except OSError:
            pass
    tmp = dest.with_name(f".{dest.name}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name, member in image_names(source, sub).items():
            (tmp / name).write_bytes(source.read(member))
        tmp.rename(dest)
    except OSError as e:
        raise disk_error(dest, e) from None


def checkpoint_id(checkpoint: str | Path | None) -> str | None:
    """What names a generator in a set's request: its resolved path, or a bundled name."""
    if checkpoint is None:
        return None
    p = Path(checkpoint)
    return str(p.resolve()) if p.exists() else str(checkpoint)


def _sized_generator(checkpoint: str | Path, size: tuple[int, int] | None, device: str = "auto"):
    """(model, info, device) of ``checkpoint``, which must make images of ``size``.

    The generator runs in float32 (`for_inference`'s exact path): a set is then the same on
    every machine, and a resumed run never mixes precisions.
    """
    model, info = load_generator(checkpoint, device=device, precision="fp32")
    if (info.height, info.width) != size:
        shown = "unreadable" if size is None else f"{size[0]}x{size[1]}"
        raise InputError(
            f"checkpoint={str(checkpoint)!r}: makes {info.height}x{info.width} images, and the "
            f"training images are {shown} (Market-1501: 128x64); use a generator trained at "
            "that size",
            arg="checkpoint",
        )
    return model, info, model.device


def _generate(
    plan: Plan,
    poses: dict[str, np.ndarray],
    generator,
    folder: Path,
    size: tuple[int, int],
    batch_size: int,
    progress: bool,
) -> None:
    """Generate every planned image not yet on disk (intact, of the right size)."""
    from posetransfer.data.datasets import image_to_tensor, tensor_to_image

    model, info, dev = generator
    todo = [
        g
        for g in plan.generated
        if image_size(folder / g[0]) != size or not is_intact_image(folder / g[0])
    ]

    def heatmaps(names: list[str]) -> torch.Tensor:
        kps = torch.from_numpy(np.stack([poses[n] for n in names])).to(dev)
        return keypoints_to_heatmaps(kps, info.height, info.width, info.sigma, info.legacy_heatmaps)

    with tqdm(total=len(todo), desc="augment", unit="img", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            src = torch.stack([image_to_tensor(read_image(folder / s, *size)) for _, s, _ in chunk])
            with torch.no_grad():
                fake = model(
                    src.to(dev),
                    heatmaps([s for _, s, _ in chunk]),
                    heatmaps([t for *_, t in chunk]),
                )
            for (name, _, _), img in zip(chunk, fake):
                buf = io.BytesIO()
                Image.fromarray(tensor_to_image(img)).save(buf, format="JPEG", quality=JPEG_QUALITY)
                atomic_write(folder / name, buf.getvalue(), durable=False)
            bar.update(len(chunk))


def _finish(out: Path, meta: dict, plan: Plan, n_train: int) -> None:
    """Remove what the plan does not hold, then write the report, the manifest and "complete"."""
    folder = out / TRAIN_DIR
    wanted = set(plan.kept) | {g[0] for g in plan.generated}
    for p in folder.iterdir():
        if p.name not in wanted:
            p.unlink()
    rows = [(n, *parse_name(n), "real", "", "") for n in plan.kept]
    rows += [(n, *parse_name(n), "generated", s, t) for n, s, t in plan.generated]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(sorted(rows))
    report = {
        "train_images": n_train,
        "identities": len({r[1] for r in rows}),
        "kept": len(plan.kept),
        "generated": len(plan.generated),
        "left_out": {k: {"count": len(v), "images": v} for k, v in plan.left_out.items()},
    }
    atomic_write(out / REPORT, json.dumps(report, indent=2) + "\n")
    atomic_write(out / MANIFEST, buf.getvalue())
    atomic_write(
        out / META,
        json.dumps({"request": meta, "complete": True, **report_counts(report)}, indent=2) + "\n",
    )


def finish_command(out: str | Path, request: dict) -> str:
    """The `posetransfer reid augment` command that writes (or finishes) the set of ``request``
    (an ``augment.json``'s request) in ``out``."""
    q = shlex.quote
    if not isinstance(request, dict):
        raise TypeError("the request is not a mapping")
    words = ["posetransfer reid augment", "--market", q(str(request["market_root"]))]
    words += ["--annotations", q(str(request["annotations"]))]
    ckpt = request.get("checkpoint")
    words += ["--no-generator"] if ckpt is None else ["--checkpoint", q(str(ckpt))]
    for key, default in (("portion", 1.0), ("seed", 0), ("target_poses", "removed"), ("ratio", 1)):
        if request.get(key, default) != default:
            words += [f"--{key.replace('_', '-')}", q(str(request[key]))]
    return " ".join([*words, "--out", q(str(out))])


def check_complete_set(folder: str | Path, arg: str = "data") -> Path:
    """Refuse an augmented set that `augment` has not finished; ``folder`` as a Path.

    Only folders holding ``augment.json`` are checked (Market-1501 itself, or a ``synthetic
    --reid`` folder, has none and is a whole training set).

    Raises:
        InputError: naming ``arg``: the set's ``augment.json`` says "complete": false (an
            interrupted ``reid augment``: the message gives the command that finishes it) or
            cannot be read.
    """
    folder = Path(folder)
    path = folder / META
    if not path.exists():
        return folder
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        complete = found["complete"] is True and (folder / MANIFEST).is_file()
        command = finish_command(folder, found["request"])
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(
            f"{arg}={str(folder)!r}: {path} is unreadable or damaged, so the set cannot be "
            "told finished; write the set again with `posetransfer reid augment`",
            arg=arg,
        ) from None
    if not complete:
        raise InputError(
            f'{arg}={str(folder)!r}: an unfinished augmented set ({META} says "complete": '
            f"false: `reid augment` was interrupted); finish it with: {command}",
            arg=arg,
        )
    return folder


def report_counts(report: dict) -> dict:
    """The report without its image lists: what a summary line shows."""
    return {
        **{k: report[k] for k in ("train_images", "identities", "kept", "generated")},
        "left_out": {k: v["count"] for k, v in report["left_out"].items()},
    }


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """The rows of a ``manifest.csv`` as dicts; InputError naming the file if it is not one."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})")
    if rows and tuple(rows[0]) != MANIFEST_COLUMNS:
        raise InputError(f"{path}: not a manifest (columns {', '.join(MANIFEST_COLUMNS)})")
    return rows


def _decode(data: bytes, size: tuple[int, int]) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB").resize(size[::-1]))


def write_samples(set_dir: str | Path, out: str | Path, n: int = 8) -> Path:
    """A PNG of ``n`` generated images of a set: source, target pose, generated, the target's
    own image where it is a real one (``target_poses="removed"``), spread over the set."""
    from posetransfer.pose.draw import sample_grid, save_png

    set_dir = Path(set_dir)
    request = json.loads((set_dir / META).read_text())["request"]
    rows = [r for r in read_manifest(set_dir / MANIFEST) if r["kind"] == "generated"]
    if not rows:
        raise InputError(f"{set_dir}: the set has no generated images to show")
    picks = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, min(n, len(rows))).round()]
    poses = read_annotations(request["annotations"])
    source = open_reid_source(request["market_root"])
    try:
        members = image_names(source, TRAIN_DIR)
        folder = set_dir / TRAIN_DIR
        fakes = [read_image(folder / r["name"]) for r in picks]
        h, w = fakes[0].shape[:2]
        sources = [read_image(folder / r["source"]) for r in picks]
        targets = [_decode(source.read(members[r["target"]]), (h, w)) for r in picks]
    finally:
        source.close()
    grid = sample_grid(sources, [poses[r["target"]] for r in picks], fakes, targets, columns=2)
    return save_png(grid, out)


__all__ = [
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "TARGET_POSES",
    "Plan",
    "augment",
    "check_complete_set",
    "finish_command",
    "keep_portion",
    "plan_augmentation",
    "read_manifest",
    "write_samples",
]
