"""Generation: run a checkpoint over a pairs file and write one PNG per pair.

Files are named ``<from stem>___<to stem>.png`` (three underscores) at the dataset resolution,
the naming that `posetransfer evaluate` reads. Each image is written atomically as soon as it is
made, so an interrupted run (a crash, Ctrl-C, a full disk) keeps every image it finished and
never leaves a half-written one under its final name; ``skip_existing`` continues it. Outputs
found on disk are decoded and their size checked before they are trusted: a damaged one, or one
of another size (left by a run of another checkpoint, say), is made again.

The folder's ``generate.json`` (`posetransfer.data.generated`) says ``complete: false`` from
before the first image is written until the last one is on disk, so a run killed at any point
leaves a folder that says it is incomplete (and how to finish it); `posetransfer evaluate`
refuses such a folder. An output that is, contains or lies inside an input is refused before
anything is written (`posetransfer.core.files.check_output`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from posetransfer.checkpoint.format import CHECKPOINTS_DIR
from posetransfer.core.device import resolve_device
from posetransfer.core.files import (
    check_output,
    disk_error,
    generated_name,
    remove_partial,
    try_read_image,
)
from posetransfer.data.datasets import PairDataset, tensor_to_image
from posetransfer.data.generated import write_manifest
from posetransfer.errors import InputError
from posetransfer.pose.draw import pair_strip, pair_strip_size, save_png
from posetransfer.runtime.load import GeneratorInfo, describe, load_generator


@dataclass
class Generated(Sequence[Path]):
    """What `generate` did: the output paths of all pairs, in pairs-file order (a sequence).

    Attributes:
        paths: one output per pair.
        written: the outputs made by this run.
        kept: the outputs already on disk and intact, left as they were (``skip_existing``).
        damaged: files (outputs, or strips) that were on disk but did not decode (truncated by
            a full disk, say) or had the wrong size, and were made again; their outputs are in
            ``written``.
        wrong_size: those of ``damaged`` that decoded but had the wrong size.
    """

    paths: list[Path]
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    damaged: list[Path] = field(default_factory=list)
    wrong_size: list[Path] = field(default_factory=list)
    runtime: str = ""
    """How the generator ran (backend, device, precision), as `posetransfer.export.describe`."""

    def __getitem__(self, index: int) -> Path:
        return self.paths[index]

    def __len__(self) -> int:
        return len(self.paths)


@torch.no_grad()
def generate(
    checkpoint: str | Path,
    image_dir: str | Path,
    annotations: str | Path,
    pairs: str | Path,
    out_dir: str | Path,
    strips_dir: str | Path | None = None,
    batch_size: int = 16,
    device: str = "auto",
    limit: int | None = None,
    skip_existing: bool = False,
    legacy_heatmaps: bool | None = None,
    progress: bool = True,
    precision: str = "auto",
    backend: str = "torch",
    compile: bool = False,
) -> Generated:
    """Generate the target of every pair with a trained (or imported) generator.

    Args:
        checkpoint: a checkpoint or run directory, a bundled model's name, an authors'
            ``latest_net_netG.pth``, an exported ``.onnx`` / ``.xml`` (`posetransfer.export`)
            or ``hf://owner/name``: anything `posetransfer.load_generator` reads.
        image_dir: folder of the condition (and target) images, e.g. ``ROOT/test``.
        annotations: annotation CSV covering every image named in the pairs.
        pairs: pairs CSV (``from,to``).
        out_dir: where the ``<from>___<to>.png`` files go, with ``generate.json`` saying
            whether the folder is complete. It must not be, contain or lie inside an input.
        strips_dir: if given, also write condition | condition pose | target | target pose |
            generated strips there, for viewing (not ``out_dir``, nor inside it).
        batch_size: pairs per forward pass.
        device: "auto", "cpu", "cuda", ...
        limit: only the first N pairs.
        skip_existing: leave pairs whose output (and strip) exists, decodes and has the
            expected size, to continue an interrupted run; any other file is made again.
        legacy_heatmaps: override the heatmap style recorded with the checkpoint.
        progress: show a progress bar.
        precision: "auto", "fp32", "bf16" or "fp16" (`posetransfer.models.for_inference`).
        backend: "torch", "onnxruntime" or "openvino" (the last two run an exported file).
        compile: torch backend: run the generator through ``torch.compile``.

    Returns:
        The output paths in pairs-file order, with what was written, kept and remade.

    Raises:
        InputError: for a bad argument or input file, and for a failed write (a full disk),
            naming the file; the images written before it stay on disk.
    """
    if batch_size < 1:
        raise InputError(f"batch_size={batch_size}: must be at least 1", arg="batch_size")
    if limit is not None and limit < 1:
        raise InputError(f"limit={limit}: must be at least 1", arg="limit")
    # Nothing the user gave is ever overwritten: checked before anything is loaded or written.
    read = Path(checkpoint)
    if read.is_dir() and (read / CHECKPOINTS_DIR).is_dir():
        read = read / CHECKPOINTS_DIR  # of a run folder only its checkpoints are read
    inputs = {
        "image_dir": image_dir,
        "annotations": annotations,
        "pairs": pairs,
        "checkpoint": read if read.exists() else None,  # not a bundled name
    }
    check_output(out_dir, inputs, arg="out_dir", kind="folder")
    if strips_dir is not None:
        check_output(strips_dir, {**inputs, "out_dir": out_dir}, arg="strips_dir", kind="folder")
    dev = resolve_device(device)
    model, info = load_generator(
        checkpoint, device=dev, precision=precision, backend=backend, compile=compile
    )
    dataset = dataset_for(info, image_dir, annotations, pairs, legacy_heatmaps)
    out_dir = Path(out_dir)
    strips = Path(strips_dir) if strips_dir is not None else None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise disk_error(out_dir, e) from None
    for folder in (out_dir, strips):
        if folder is not None:
            remove_partial(folder)  # temporary files of a run that was killed mid-write
    indices = list(range(len(dataset) if limit is None else min(limit, len(dataset))))
    names = [generated_name(*dataset.pairs[i]) for i in indices]
    result = Generated([out_dir / n for n in names], runtime=describe(model))
    sizes = [(out_dir, (info.height, info.width))]  # what a kept file must be, per folder
    if strips is not None:
        sizes.append((strips, pair_strip_size(info.height, info.width)))
    todo = []
    for i, name in zip(indices, names):
        if skip_existing and all(_keep(folder / name, size, result) for folder, size in sizes):
            result.kept.append(out_dir / name)
            continue
        todo.append(i)
    # The folder says it is incomplete before its first image changes, complete once all are.
    request = {
        "checkpoint": str(checkpoint),
        "image_dir": str(image_dir),
        "annotations": str(annotations),
        "pairs": str(pairs),
        "limit": limit,
        "strips_dir": None if strips_dir is None else str(strips_dir),
    }
    write_manifest(out_dir, request, False, len(result.kept), len(indices))
    try:
        _generate_todo(model, dataset, todo, out_dir, strips, result, batch_size, dev, progress)
    except BaseException:  # an error, Ctrl-C, SIGTERM: the manifest counts what was reached
        with contextlib.suppress(Exception):  # a full disk may refuse this write too
            done = sum((out_dir / name).is_file() for name in names)  # what is on disk
            write_manifest(out_dir, request, False, done, len(indices))
        raise
    write_manifest(out_dir, request, True, len(indices), len(indices))
    return result


def _generate_todo(
    model: torch.nn.Module,
    dataset: PairDataset,
    todo: list[int],
    out_dir: Path,
    strips: Path | None,
    result: Generated,
    batch_size: int,
    dev: torch.device,
    progress: bool,
) -> None:
    """Generate the pairs ``todo`` of ``dataset`` into ``out_dir`` (and their strips)."""
    loader = DataLoader(Subset(dataset, todo), batch_size=batch_size, num_workers=0)
    with tqdm(total=len(todo), desc="generate", unit="img", disable=not progress) as bar:
        for batch in loader:
            fake = model(
                batch["src_img"].to(dev), batch["src_pose"].to(dev), batch["tgt_pose"].to(dev)
            )
            for j in range(fake.shape[0]):
                img = tensor_to_image(fake[j])
                name = generated_name(batch["src_name"][j], batch["tgt_name"][j])
                # A full disk raises InputError naming the file; what was written stays.
                result.written.append(save_png(img, out_dir / name))
                if strips is not None:
                    strip = pair_strip(
                        tensor_to_image(batch["src_img"][j]),
                        batch["src_kps"][j].numpy(),
                        tensor_to_image(batch["tgt_img"][j]),
                        batch["tgt_kps"][j].numpy(),
                        img,
                    )
                    save_png(strip, strips / name)
            bar.update(fake.shape[0])


def _keep(path: Path, size: tuple[int, int], result: Generated) -> bool:
    """Whether a file found on disk can stay: it decodes and is ``size`` (height, width).

    A file that is there but cannot stay is recorded in ``result.damaged`` (and, if it only has
    the wrong size, in ``result.wrong_size``); a missing one is simply not kept.
    """
    if not path.exists():
        return False
    image = try_read_image(path)
    if image is not None and image.shape[:2] == size:
        return True
    result.damaged.append(path)
    if image is not None:
        result.wrong_size.append(path)
    return False


def dataset_for(
    info: GeneratorInfo,
    image_dir: str | Path,
    annotations: str | Path,
    pairs: str | Path,
    legacy_heatmaps: bool | None = None,
) -> PairDataset:
    """The PairDataset at the image size and heatmap style the generator was trained with."""
    return PairDataset(
        image_dir,
        annotations,
        pairs,
        height=info.height,
        width=info.width,
        sigma=info.sigma,
        legacy_heatmaps=info.legacy_heatmaps if legacy_heatmaps is None else legacy_heatmaps,
    )
