"""`posetransfer generate`: run a checkpoint over a pairs file."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from posetransfer.commands import checkpoint_or_bundled
from posetransfer.commands.options import (
    Checkpoint,
    Device,
    Inference,
    Progress,
    add_options,
    options_from_args,
)
from posetransfer.core.options import option

EXAMPLE = """\
examples:
  posetransfer generate --checkpoint runs/00000-patn_small-synthetic --dataset data/synthetic \\
      --out generated --strips strips
  # an authors' checkpoint on Market-1501's test pairs
  posetransfer generate --checkpoint latest_net_netG.pth --dataset data/market \\
      --annotations data/market/market-annotation-test.csv \\
      --pairs data/market/market-pairs-test.csv --out generated
  # an exported model on OpenVINO (see `posetransfer export`); --precision fp32 is exact
  posetransfer generate --checkpoint patn.xml --backend openvino --dataset data/synthetic \\
      --out generated

Writes <from stem>___<to stem>.png per pair at the dataset resolution, each one whole or not
at all, and OUT/generate.json, which says "complete": false until the last image is on disk
(`posetransfer evaluate` refuses an incomplete folder); after an interruption (Ctrl-C, kill,
a full disk) the same command with --skip-existing finishes the job and remakes any damaged
file or one of the wrong size. --out and --strips must not be, hold or lie inside an input.
"""

# The library's argument names, as this command's flags.
_FLAGS = {
    "out_dir": "--out",
    "strips_dir": "--strips",
    "image_dir": "--dataset",
    "checkpoint": "--checkpoint",
}


@dataclass(frozen=True)
class GenerateOptions:
    """`posetransfer generate`: the pairs to generate and where (`posetransfer.generate`)."""

    dataset: Path = option(help="dataset root")
    out: Path = option(help="output folder")
    split: str = option("test", help="image folder under the root")
    annotations: Path | None = option(
        None, help="annotation CSV (default: <root>/*-annotation-<split>.csv)"
    )
    pairs: Path | None = option(None, help="pairs CSV (default: <root>/*-pairs-<split>.csv)")
    strips: Path | None = option(None, help="also write viewing strips to this folder")
    batch_size: int = option(16, help="pairs per generator call")
    limit: int | None = option(None, help="only the first N pairs")
    skip_existing: bool = option(
        False,
        help="continue an interrupted run: keep outputs that decode and have the right size, "
        "remake the others",
    )
    legacy_heatmaps: bool | None = option(
        None, help="force (or disable) the authors' uint8-truncated heatmaps"
    )


OPTIONS = (Checkpoint, GenerateOptions, Device, Inference, Progress)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="generate the target images of a pairs file",
        description="Generate one image per pair with a trained checkpoint (ours, or an "
        "authors' latest_net_netG.pth).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(p, *OPTIONS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.data.datasets import split_file
    from posetransfer.errors import InputError, require_dir
    from posetransfer.generate import generate

    ckpt, o, device, inference, progress = options_from_args(args, *OPTIONS)
    root = require_dir(o.dataset, "dataset root")
    try:
        result = generate(
            checkpoint_or_bundled(ckpt),
            image_dir=root / o.split,
            annotations=o.annotations or split_file(root, "annotation", o.split),
            pairs=o.pairs or split_file(root, "pairs", o.split),
            out_dir=o.out,
            strips_dir=o.strips,
            batch_size=o.batch_size,
            device=device.device,
            limit=o.limit,
            skip_existing=o.skip_existing,
            legacy_heatmaps=o.legacy_heatmaps,
            progress=progress.progress,
            **inference.kwargs(),
        )
    except InputError as e:  # name the flags, not the library's arguments
        raise InputError(e.flag_message(_FLAGS)) from None
    print(result.runtime)
    summary = f"{len(result)} images in {o.out}"
    if o.skip_existing:
        summary += f": {len(result.written)} written, {len(result.kept)} kept"
    print(summary)
    undecodable = [p for p in result.damaged if p not in result.wrong_size]
    _report(f"remade {len(undecodable)} damaged (undecodable) images", undecodable, o.out)
    _report(f"remade {len(result.wrong_size)} images of the wrong size", result.wrong_size, o.out)
    return 0


def _report(what: str, paths: list[Path], out: Path) -> None:
    """One line listing ``paths`` (outputs by name, strips by path), if there are any."""
    if paths:
        shown = ", ".join(p.name if p.parent == out else str(p) for p in paths[:10])
        more = f", ... ({len(paths) - 10} more)" if len(paths) > 10 else ""
        print(f"{what}: {shown}{more}")
