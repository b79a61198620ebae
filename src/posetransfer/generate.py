"""Generation: run a checkpoint over a pairs file and write one PNG per pair.

Files are named ``<from stem>___<to stem>.png`` (three underscores) at the dataset resolution,
the naming that `posetransfer evaluate` reads. Each image is written as soon as it is made, so an
interrupted run keeps what it produced; ``skip_existing`` continues it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from posetransfer.checkpoint import GeneratorInfo, load_generator
from posetransfer.data.datasets import PairDataset, tensor_to_image
from posetransfer.device import resolve_device
from posetransfer.errors import InputError
from posetransfer.files import generated_name
from posetransfer.visualize import pair_strip, save_png


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
) -> list[Path]:
    """Generate the target of every pair with a trained (or imported) generator.

    Args:
        checkpoint: a checkpoint or run directory, or an authors' ``latest_net_netG.pth``.
        image_dir: folder of the condition (and target) images, e.g. ``ROOT/test``.
        annotations: annotation CSV covering every image named in the pairs.
        pairs: pairs CSV (``from,to``).
        out_dir: where the ``<from>___<to>.png`` files go.
        strips_dir: if given, also write condition | condition pose | target | target pose |
            generated strips there, for viewing.
        batch_size: pairs per forward pass.
        device: "auto", "cpu", "cuda", ...
        limit: only the first N pairs.
        skip_existing: leave pairs whose output exists (continue an interrupted run).
        legacy_heatmaps: override the heatmap style recorded with the checkpoint.
        progress: show a progress bar.

    Returns:
        The paths written (or kept, with skip_existing), in pairs-file order.
    """
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise InputError(f"limit must be at least 1, got {limit}")
    dev = resolve_device(device)
    model, info = load_generator(checkpoint, dev)
    dataset = dataset_for(info, image_dir, annotations, pairs, legacy_heatmaps)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    indices = list(range(len(dataset) if limit is None else min(limit, len(dataset))))
    names = [generated_name(*dataset.pairs[i]) for i in indices]
    todo = [i for i, n in zip(indices, names) if not (skip_existing and (out_dir / n).is_file())]
    loader = DataLoader(Subset(dataset, todo), batch_size=batch_size, num_workers=0)
    with tqdm(total=len(todo), desc="generate", unit="img", disable=not progress) as bar:
        for batch in loader:
            fake = model(
                batch["src_img"].to(dev), batch["src_pose"].to(dev), batch["tgt_pose"].to(dev)
            )
            for j in range(fake.shape[0]):
                img = tensor_to_image(fake[j])
                name = generated_name(batch["src_name"][j], batch["tgt_name"][j])
                save_png(img, out_dir / name)
                if strips_dir is not None:
                    strip = pair_strip(
                        tensor_to_image(batch["src_img"][j]),
                        batch["src_kps"][j].numpy(),
                        tensor_to_image(batch["tgt_img"][j]),
                        batch["tgt_kps"][j].numpy(),
                        img,
                    )
                    save_png(strip, Path(strips_dir) / name)
            bar.update(fake.shape[0])
    return [out_dir / n for n in names]


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
