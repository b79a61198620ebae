"""`posetransfer prepare`: turn a Market-1501 or DeepFashion download into the public layout."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from posetransfer.commands.options import Progress, add_options, options_from_args
from posetransfer.core.options import option
from posetransfer.data.prepare.layout import DATASETS

EXAMPLE = """\
examples:
  posetransfer prepare market --source ~/Downloads/Market-1501-v15.09.15.zip --out data/market \\
      --annotations-dir ~/Downloads/market-annotations
  posetransfer prepare fashion --source ~/Downloads/img.zip --out data/fashion \\
      --train-list fashion_data/train.lst --test-list fashion_data/test.lst \\
      --annotations-dir ~/Downloads/fashion-annotations
  posetransfer prepare market --out data/market --check     # check an existing root only

Writes ROOT/train and ROOT/test, copies the annotation/pairs CSVs found in --annotations-dir
(default: ROOT, then the source folder and the folder holding the source) into ROOT, checks the
images against them and writes ROOT/prepare-report.json. Missing images are reported, not fatal.
A re-run resumes: complete outputs are kept. See docs/datasets.md.
"""


@dataclass(frozen=True)
class PrepareOptions:
    """`posetransfer prepare` (`data.prepare`)."""

    dataset: str = option(help="which dataset", choices=DATASETS, positional=True)
    out: str = option(help="dataset root to write", metavar="ROOT")
    source: str | None = option(
        None,
        help="Market-1501-v15.09.15.zip or its folder; for fashion img.zip, img/ or its parent",
        metavar="PATH",
    )
    annotations_dir: str | None = option(
        None,
        help="folder of the annotation/pairs CSVs (default: ROOT, the source, its parent)",
        metavar="DIR",
    )
    train_list: str | None = option(None, help="fashion: the authors' train.lst", metavar="FILE")
    test_list: str | None = option(None, help="fashion: the authors' test.lst", metavar="FILE")
    split_from_annotations: bool = option(
        False,
        help="fashion: take each split's image names from its annotation CSV instead of lists",
    )
    jpeg_quality: int = option(95, help="fashion: JPEG quality of the crops")
    workers: int | None = option(None, help="threads (default: Python's)")
    check: bool = option(False, help="only check ROOT; needs no --source")


OPTIONS = (PrepareOptions, Progress)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="build the train/test layout from a Market-1501 or DeepFashion download",
        description=(
            "Build ROOT/train and ROOT/test from Market-1501's archive (bounding_box_train/test,\n"
            "128x64, copied as they are) or DeepFashion In-shop's img/ tree (listed images\n"
            "cropped to 256x176 and renamed to the public flattened names), copy the public\n"
            "annotation and pairs CSVs when found, and check the images against them."
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(p, *OPTIONS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.data.prepare import (
        REPORT_NAME,
        check_layout,
        prepare_fashion,
        prepare_market,
    )
    from posetransfer.errors import InputError

    o, progress = options_from_args(args, *OPTIONS)
    fashion_only = {
        "--train-list": o.train_list,
        "--test-list": o.test_list,
        "--split-from-annotations": o.split_from_annotations,
    }
    if o.dataset == "market":
        for flag, value in fashion_only.items():
            if value:
                raise InputError(f"{flag} is for `prepare fashion` only")
    if o.workers is not None and o.workers < 1:
        raise InputError(f"--workers must be at least 1, got {o.workers}")
    if o.check:
        report = check_layout(o.out, o.dataset, workers=o.workers, progress=progress.progress)
        path = report.write()
    else:
        if o.source is None:
            raise InputError("--source is required (or --check to check ROOT only)")
        common = dict(annotations_dir=o.annotations_dir, workers=o.workers)
        if o.dataset == "market":
            report = prepare_market(o.source, o.out, progress=progress.progress, **common)
        else:
            report = prepare_fashion(
                o.source,
                o.out,
                train_list=o.train_list,
                test_list=o.test_list,
                split_from_annotations=o.split_from_annotations,
                jpeg_quality=o.jpeg_quality,
                progress=progress.progress,
                **common,
            )
        path = Path(o.out) / REPORT_NAME
    print(report.summary())
    print(f"report: {path}")
    return 0
