"""`posetransfer synthetic`: write the procedural synthetic people dataset (Market-1501 layout)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from posetransfer.commands import add_progress_flag, int_at_least

EXAMPLE = """\
examples:
  posetransfer synthetic --out data/synthetic
  posetransfer synthetic --out /tmp/tiny --train-ids 4 --test-ids 2 --images-per-id 3 \\
      --sheet /tmp/tiny_sheet.png
  posetransfer synthetic --out data/synthetic-256 --height 256 --width 176 --seed 1
  posetransfer synthetic --out data/reid-synthetic --test-ids 50 --reid

Writes OUT/train/*.jpg, OUT/test/*.jpg (held-out identities), synthetic-annotation-{train,test}.csv,
synthetic-pairs-{train,test}.csv and synthetic.json; with --reid also bounding_box_train/,
query/ and bounding_box_test/ (Market-1501's re-ID layout, for `posetransfer reid`). Running it again with the same options
reuses the finished dataset; other options replace it. OUT must be new, empty or a synthetic
dataset folder.
"""


_FLAGS = {
    "n_train_ids": "--train-ids",
    "n_test_ids": "--test-ids",
    "images_per_id": "--images-per-id",
    "height": "--height",
    "width": "--width",
    "seed": "--seed",
    "max_test_pairs": "--max-test-pairs",
    "jpeg_quality": "--jpeg-quality",
}


_positive_int = int_at_least(1)
_non_negative_int = int_at_least(0)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synthetic",
        help="write the procedural synthetic people dataset",
        description=(
            "Draw articulated synthetic people (per-identity clothing, per-image pose, view and\n"
            "background) with exact COCO-18 keypoints, in the public Market-1501 layout."
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="dataset folder")
    p.add_argument("--train-ids", type=_positive_int, default=100, metavar="N",
                   help="training identities (100)")  # fmt: skip
    p.add_argument("--test-ids", type=_positive_int, default=20, metavar="N",
                   help="held-out test identities (20)")  # fmt: skip
    p.add_argument("--images-per-id", type=_positive_int, default=12, metavar="N",
                   help="images of each identity, at least 2 (12)")  # fmt: skip
    p.add_argument("--height", type=_positive_int, default=128, metavar="H",
                   help="image height (128)")  # fmt: skip
    p.add_argument("--width", type=_positive_int, default=64, metavar="W",
                   help="image width (64)")  # fmt: skip
    p.add_argument("--seed", type=_non_negative_int, default=0, metavar="S", help="seed (0)")
    p.add_argument("--max-test-pairs", type=_non_negative_int, default=200, metavar="N",
                   help="test pairs kept after sampling; 0 keeps all (200)")  # fmt: skip
    p.add_argument("--jpeg-quality", type=_positive_int, default=92, metavar="Q",
                   help="JPEG quality 1..100 (92)")  # fmt: skip
    p.add_argument("--reid", action="store_true",
                   help="also write Market-1501's re-ID layout: bounding_box_train/ (the train "
                   "identities), query/ and bounding_box_test/ (the test identities, one query "
                   "per camera and person), as hard links")  # fmt: skip
    p.add_argument("--sheet", type=Path, metavar="PNG",
                   help="also save a contact sheet of 32 images, skeletons over half of them")  # fmt: skip
    add_progress_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.data.synthetic import (
        PAIRS_FILES,
        SyntheticConfig,
        make_contact_sheet,
        make_synthetic_dataset,
    )
    from posetransfer.errors import InputError
    from posetransfer.pose import read_pairs

    try:
        config = SyntheticConfig(
            n_train_ids=args.train_ids,
            n_test_ids=args.test_ids,
            images_per_id=args.images_per_id,
            height=args.height,
            width=args.width,
            seed=args.seed,
            max_test_pairs=args.max_test_pairs or None,
            jpeg_quality=args.jpeg_quality,
        )
    except InputError as e:  # name the option, not the config field
        raise InputError(e.flag_message(_FLAGS)) from None
    t0 = time.monotonic()
    root = make_synthetic_dataset(args.out, config, progress=not args.no_progress)
    n_pairs = {split: len(read_pairs(root / name)) for split, name in PAIRS_FILES.items()}
    n_ids = config.n_train_ids + config.n_test_ids
    print(
        f"{root}: {n_ids * config.images_per_id} images of {n_ids} people "
        f"({config.n_train_ids} train, {config.n_test_ids} test), {n_pairs['train']} train / "
        f"{n_pairs['test']} test pairs, {config.height}x{config.width} "
        f"({time.monotonic() - t0:.1f} s)"
    )
    if args.reid:
        from posetransfer.data.synthetic import write_reid_layout

        counts = write_reid_layout(root)
        print(
            f"re-ID layout: {', '.join(f'{n} {folder}/' for folder, n in counts.items())} "
            "(posetransfer reid augment|train|study read it)"
        )
    if args.sheet:
        print(f"contact sheet: {make_contact_sheet(root, args.sheet)}")
    return 0
