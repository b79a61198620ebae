"""`posetransfer attention`: render PATB masks / APATB attention of a checkpoint for one pair."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from posetransfer.commands import checkpoint_or_bundled, report_inference
from posetransfer.commands.options import Checkpoint, Precision, add_options, options_from_args
from posetransfer.core.options import option

EXAMPLE = """\
examples:
  posetransfer attention --checkpoint runs/00003-patn_small-synthetic \\
      --dataset data/synthetic --pairs data/synthetic/synthetic-pairs-test.csv \\
      --annotations data/synthetic/synthetic-annotation-test.csv --index 0 --out attention/
  posetransfer attention --checkpoint runs/00004-apatn_small-synthetic \\
      --dataset data/synthetic --pairs data/synthetic/synthetic-pairs-test.csv \\
      --annotations data/synthetic/synthetic-annotation-test.csv --index 3 \\
      --points 40,20 90,30 --out attention-points/
  posetransfer attention --checkpoint CKPT --dataset data/market \\
      --annotations data/market/market-annotation-test.csv --pair FROM.jpg,TO.jpg --out att/

A PATN gives pair.png, patb_masks.png (every block's mask over the target image) and one
patb_mask_block<k>.png per block. An APATN gives pair.png and, per --points y,x (pixels of the
target image), apatb_point<j>.png: where that target location looks in the condition image,
block by block; without --points, apatb_body.png averages over the target's body.
"""


@dataclass(frozen=True)
class AttentionOptions:
    """`posetransfer attention` (`analysis.attention`)."""

    dataset: str = option(help="dataset folder", metavar="ROOT")
    annotations: str = option(help="annotation CSV", metavar="CSV")
    out: str = option(help="folder for the PNGs", metavar="DIR")
    split: str = option("test", help="image sub-folder of ROOT")
    pairs: str | None = option(None, help="pairs CSV (with --index)", metavar="CSV")
    index: int | None = option(None, help="0-based row of --pairs (0)", metavar="I", group="pair")
    pair: str | None = option(
        None, help="condition and target image names", metavar="FROM,TO", group="pair"
    )
    points: tuple[str, ...] | None = option(
        None,
        help="APATN: target pixels to query (default: the whole target body)",
        metavar="Y,X",
    )
    alpha: float = option(0.5, help="heat-map opacity")
    device: str = option("cpu", help="torch device")


OPTIONS = (Checkpoint, Precision, AttentionOptions)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "attention",
        help="draw the attention maps of a PATN / APATN checkpoint for one pair",
        description=(
            "Render the blocks' attention for one pair (paper Figs. 10 and 11): PATB masks\n"
            "over the target image, or APATB alignment over the condition image, as PNGs."
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(p, *OPTIONS)
    p.set_defaults(func=run)


def _parse_points(values: Sequence[str] | None) -> list[tuple[int, int]] | None:
    from posetransfer.errors import InputError

    if not values:
        return None
    points = []
    for v in values:
        try:
            y, x = (int(s) for s in v.split(","))
        except ValueError:
            raise InputError(f"--points: expected Y,X integers, got {v!r}")
        points.append((y, x))
    return points


def run(args: argparse.Namespace) -> int:
    from posetransfer.analysis.attention import load_pair, save_attention_maps
    from posetransfer.core.device import resolve_device
    from posetransfer.errors import InputError
    from posetransfer.runtime.load import load_generator

    ckpt, precision, o = options_from_args(args, *OPTIONS)
    pair = None
    if o.pair:
        names = [s.strip() for s in o.pair.split(",")]
        if len(names) != 2 or not all(names):
            raise InputError(f"--pair: expected FROM,TO image names, got {o.pair!r}")
        pair = (names[0], names[1])
    elif o.pairs is None:
        raise InputError("give a pairs CSV with --pairs (or a pair with --pair FROM,TO)")
    points = _parse_points(o.points)
    dev = resolve_device(o.device)
    model, info = load_generator(
        checkpoint_or_bundled(ckpt), device=dev, precision=precision.precision
    )
    report_inference(model)
    item = load_pair(
        o.dataset,
        o.annotations,
        o.pairs,
        index=o.index,
        pair=pair,
        split=o.split,
        size=(info.height, info.width),
        sigma=info.sigma,
        legacy_heatmaps=info.legacy_heatmaps,
    )
    paths = save_attention_maps(
        model,
        item["src_img"].to(dev),
        item["src_pose"].to(dev),
        item["tgt_pose"].to(dev),
        o.out,
        tgt_img=item["tgt_img"],
        tgt_kps=item["tgt_kps"],
        points=points,
        alpha=o.alpha,
    )
    print(f"{item['src_name']} -> {item['tgt_name']}: wrote {len(paths)} images to {o.out}")
    for path in paths:
        print(f"  {path}")
    return 0
