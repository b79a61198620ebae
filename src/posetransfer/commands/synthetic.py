"""`posetransfer synthetic`: write the procedural synthetic people dataset (Market-1501 layout)."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from posetransfer.commands.options import Progress, add_options, options_from_args
from posetransfer.core.options import option

EXAMPLE = """\
examples:
  posetransfer synthetic --out data/synthetic
  posetransfer synthetic --out /tmp/tiny --train-ids 4 --test-ids 2 --images-per-id 3 \\
      --sheet /tmp/tiny_sheet.png
  posetransfer synthetic --out data/synthetic-256 --height 256 --width 176 --seed 1
  posetransfer synthetic --out data/reid-synthetic --test-ids 50 --reid

Writes OUT/train/*.jpg, OUT/test/*.jpg (held-out identities), synthetic-annotation-{train,test}.csv,
synthetic-pairs-{train,test}.csv and synthetic.json; with --reid also bounding_box_train/,
query/ and bounding_box_test/ (Market-1501's re-ID layout, for `posetransfer reid`).
Running it again with the same options reuses the finished dataset; other options replace it.
OUT must be new, empty or a synthetic dataset folder: a folder of other files is never cleared.
--sheet must lie outside OUT.
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


@dataclass(frozen=True)
class SyntheticOptions:
    """`posetransfer synthetic` (`data.synthetic.SyntheticConfig` and the extras)."""

    out: Path = option(help="dataset folder", metavar="DIR")
    train_ids: int = option(100, help="training identities", minimum=1, metavar="N")
    test_ids: int = option(20, help="held-out test identities", minimum=1, metavar="N")
    images_per_id: int = option(
        12, help="images of each identity, at least 2", minimum=1, metavar="N"
    )
    height: int = option(128, help="image height", minimum=1, metavar="H")
    width: int = option(64, help="image width", minimum=1, metavar="W")
    seed: int = option(0, help="seed", minimum=0, metavar="S")
    max_test_pairs: int = option(
        200, help="test pairs kept after sampling; 0 keeps all", minimum=0, metavar="N"
    )
    jpeg_quality: int = option(92, help="JPEG quality 1..100", minimum=1, metavar="Q")
    reid: bool = option(
        False,
        help="also write Market-1501's re-ID layout: bounding_box_train/ (the train "
        "identities), query/ and bounding_box_test/ (the test identities, one query per "
        "camera and person), as hard links",
    )
    sheet: Path | None = option(
        None,
        help="also save a contact sheet of 32 images, skeletons over half of them",
        metavar="PNG",
    )


OPTIONS = (SyntheticOptions, Progress)


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
    add_options(p, *OPTIONS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.core.files import check_output
    from posetransfer.data.synthetic import (
        PAIRS_FILES,
        SyntheticConfig,
        make_contact_sheet,
        make_synthetic_dataset,
    )
    from posetransfer.errors import InputError
    from posetransfer.pose import read_pairs

    o, progress = options_from_args(args, *OPTIONS)
    try:
        config = SyntheticConfig(
            n_train_ids=o.train_ids,
            n_test_ids=o.test_ids,
            images_per_id=o.images_per_id,
            height=o.height,
            width=o.width,
            seed=o.seed,
            max_test_pairs=o.max_test_pairs or None,
            jpeg_quality=o.jpeg_quality,
        )
    except InputError as e:  # name the option, not the config field
        raise InputError(e.flag_message(_FLAGS)) from None
    t0 = time.monotonic()
    if o.sheet is not None:  # the sheet never lands in the dataset it shows (a foreign file)
        check_output(o.sheet, arg="sheet", kind="file")
        if o.sheet.suffix.lower() != ".png":
            raise InputError(f"--sheet {str(o.sheet)!r}: the contact sheet is a PNG; name it .png")
        if o.out.resolve() in (sheet := o.sheet.resolve(), *sheet.parents):
            raise InputError(
                f"--sheet {str(o.sheet)!r}: lies inside --out {str(o.out)!r}; save the sheet "
                "elsewhere (a dataset folder holds only the dataset)"
            )
    try:
        root = make_synthetic_dataset(o.out, config, progress=progress.progress)
    except InputError as e:
        raise InputError(e.flag_message({"root": "--out"})) from None
    n_pairs = {split: len(read_pairs(root / name)) for split, name in PAIRS_FILES.items()}
    n_ids = config.n_train_ids + config.n_test_ids
    print(
        f"{root}: {n_ids * config.images_per_id} images of {n_ids} people "
        f"({config.n_train_ids} train, {config.n_test_ids} test), {n_pairs['train']} train / "
        f"{n_pairs['test']} test pairs, {config.height}x{config.width} "
        f"({time.monotonic() - t0:.1f} s)"
    )
    if o.reid:
        from posetransfer.data.synthetic import write_reid_layout

        counts = write_reid_layout(root)
        print(
            f"re-ID layout: {', '.join(f'{n} {folder}/' for folder, n in counts.items())} "
            "(posetransfer reid augment|train|study read it)"
        )
    if o.sheet:
        print(f"contact sheet: {make_contact_sheet(root, o.sheet)}")
    return 0
