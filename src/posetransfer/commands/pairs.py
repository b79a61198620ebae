"""`posetransfer pairs`: build a pairs CSV (same-identity ordered pairs) from annotations."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from posetransfer.commands.options import add_options, options_from_args
from posetransfer.core.options import option

EXAMPLE = """\
examples:
  posetransfer pairs --annotations data/market/market-annotation-test.csv \\
      --out my-pairs-test.csv --images data/market/test --max-pairs 12000 --seed 0
  # ... then use them (a pairs file outside the root is always picked explicitly)
  posetransfer generate --checkpoint runs/00003-patn_market-market --dataset data/market \\
      --pairs my-pairs-test.csv --out generated
  posetransfer pairs --annotations data/synthetic/synthetic-annotation-train.csv --out pairs.csv

Images of distractors (Market ids -1 and 0000) and, unless --no-torso-filter, images missing a
shoulder or a hip are dropped; then every ordered pair of two images of one person is written.
Write a new pairs file outside the dataset root (or under a name not ending -pairs-<split>.csv)
and pass it as --pairs: a second *-pairs-test.csv in the root leaves `generate` unable to
pick the default one. With --images, annotations of another resolution than the
images are refused. --out must not be an input or lie inside --images.
"""


@dataclass(frozen=True)
class PairsOptions:
    """`posetransfer pairs` (`data.pairs.make_pairs_file`)."""

    annotations: str = option(help="annotation CSV", metavar="CSV")
    out: str = option(help="pairs CSV to write", metavar="PAIRS.csv")
    images: str | None = option(
        None, help="drop annotated images that are not in this folder", metavar="DIR"
    )
    max_pairs: int | None = option(None, help="sample N pairs (default: all)", metavar="N")
    seed: int = option(0, help="sampling seed")
    torso_filter: bool = option(
        True, help="drop images missing a shoulder or a hip (--no-torso-filter keeps them)"
    )


OPTIONS = (PairsOptions,)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pairs",
        help="build a pairs CSV from an annotation CSV",
        description=(
            "Write a pairs file (header from,to) holding every ordered pair of two annotated\n"
            "images of the same person, as the public splits do, optionally sampled down."
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(p, *OPTIONS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.data.pairs import make_pairs_file

    o = options_from_args(args, *OPTIONS)
    summary = make_pairs_file(
        o.annotations,
        o.out,
        images_dir=o.images,
        max_pairs=o.max_pairs,
        seed=o.seed,
        require_torso=o.torso_filter,
    )
    print(summary.summary())
    return 0
