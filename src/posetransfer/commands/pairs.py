"""`posetransfer pairs`: build a pairs CSV (same-identity ordered pairs) from annotations."""

from __future__ import annotations

import argparse

EXAMPLE = """\
examples:
  posetransfer pairs --annotations data/market/market-annotation-test.csv \\
      --out data/market/my-pairs-test.csv --images data/market/test --max-pairs 12000 --seed 0
  posetransfer pairs --annotations data/synthetic/synthetic-annotation-train.csv --out pairs.csv

Images of distractors (Market ids -1 and 0000) and, unless --no-torso-filter, images missing a
shoulder or a hip are dropped; then every ordered pair of two images of one person is written.
"""


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
    p.add_argument("--annotations", required=True, metavar="CSV", help="annotation CSV")
    p.add_argument("--out", required=True, metavar="PAIRS.csv", help="pairs CSV to write")
    p.add_argument(
        "--images", metavar="DIR", help="drop annotated images that are not in this folder"
    )
    p.add_argument("--max-pairs", type=int, metavar="N", help="sample N pairs (default: all)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    p.add_argument(
        "--no-torso-filter",
        action="store_true",
        help="keep images missing a shoulder or a hip",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.data.pairs import make_pairs_file

    summary = make_pairs_file(
        args.annotations,
        args.out,
        images_dir=args.images,
        max_pairs=args.max_pairs,
        seed=args.seed,
        require_torso=not args.no_torso_filter,
    )
    print(summary.summary())
    return 0
