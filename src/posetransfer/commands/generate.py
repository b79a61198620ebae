"""`posetransfer generate`: run a checkpoint over a pairs file."""

from __future__ import annotations

import argparse
from pathlib import Path

from posetransfer.commands import (
    add_checkpoint_flag,
    add_inference_flags,
    add_progress_flag,
    checkpoint_or_bundled,
    inference_options,
)

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
at all; after an interruption (Ctrl-C, a full disk) the same command with --skip-existing
finishes the job and remakes any damaged file or one of the wrong size.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="generate the target images of a pairs file",
        description="Generate one image per pair with a trained checkpoint (ours, or an "
        "authors' latest_net_netG.pth).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_checkpoint_flag(p)
    p.add_argument("--dataset", required=True, type=Path, help="dataset root")
    p.add_argument("--split", default="test", help="image folder under the root (default test)")
    p.add_argument(
        "--annotations", type=Path, help="annotation CSV (default: <root>/*-annotation-<split>.csv)"
    )
    p.add_argument("--pairs", type=Path, help="pairs CSV (default: <root>/*-pairs-<split>.csv)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--strips", type=Path, help="also write viewing strips to this folder")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--limit", type=int, help="only the first N pairs")
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="continue an interrupted run: keep outputs that decode and have the right size, "
        "remake the others",
    )
    p.add_argument(
        "--legacy-heatmaps",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force (or disable) the authors' uint8-truncated heatmaps",
    )
    add_inference_flags(p)
    add_progress_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.data.datasets import split_file
    from posetransfer.errors import require_dir
    from posetransfer.generate import generate

    root = require_dir(args.dataset, "dataset root")
    result = generate(
        checkpoint_or_bundled(args),
        image_dir=root / args.split,
        annotations=args.annotations or split_file(root, "annotation", args.split),
        pairs=args.pairs or split_file(root, "pairs", args.split),
        out_dir=args.out,
        strips_dir=args.strips,
        batch_size=args.batch_size,
        device=args.device,
        limit=args.limit,
        skip_existing=args.skip_existing,
        legacy_heatmaps=args.legacy_heatmaps,
        progress=not args.no_progress,
        **inference_options(args),
    )
    print(result.runtime)
    summary = f"{len(result)} images in {args.out}"
    if args.skip_existing:
        summary += f": {len(result.written)} written, {len(result.kept)} kept"
    print(summary)
    undecodable = [p for p in result.damaged if p not in result.wrong_size]
    _report(f"remade {len(undecodable)} damaged (undecodable) images", undecodable, args.out)
    _report(
        f"remade {len(result.wrong_size)} images of the wrong size", result.wrong_size, args.out
    )
    return 0


def _report(what: str, paths: list[Path], out: Path) -> None:
    """One line listing ``paths`` (outputs by name, strips by path), if there are any."""
    if paths:
        shown = ", ".join(p.name if p.parent == out else str(p) for p in paths[:10])
        more = f", ... ({len(paths) - 10} more)" if len(paths) > 10 else ""
        print(f"{what}: {shown}{more}")
