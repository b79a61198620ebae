"""`posetransfer keypoints`: annotate photos with COCO-18 keypoints (MediaPipe BlazePose)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from posetransfer.commands.options import Progress, add_options, options_from_args
from posetransfer.core.options import option

DESCRIPTION = """\
Detect the 18 COCO keypoints of the most prominent person in each image with MediaPipe
BlazePose and write them as an annotation CSV in the public format (name:keypoints_y:keypoints_x,
names = file names). Images with no person, with a shoulder or hip not found, that cannot be read,
whose file name repeats another's or cannot be a row name (it holds a ':' or a line break, starts
or ends with a space, or is not valid UTF-8) are skipped; they are printed and listed with the
reason in <out stem>.skipped.csv. --out and --overlays are checked before any detection.
Needs the [keypoints] extra: pip install 'posetransfer[keypoints]'."""

EPILOG = """\
example:
  posetransfer keypoints photos/ extra.jpg --out photos-annotation.csv --overlays overlays/
  posetransfer keypoints data/market/test --out market-annotation-test.csv --min-confidence 0.3
"""


@dataclass(frozen=True)
class KeypointsOptions:
    """`posetransfer keypoints` (`keypoints.detect.annotate_images`)."""

    inputs: tuple[str, ...] = option(
        help="image files and/or folders of images", positional=True, metavar="IMAGES_OR_DIR"
    )
    out: str = option(help="annotation CSV to write (.csv)")
    overlays: str | None = option(
        None,
        help="also write skeleton overlays <stem>.png to this folder (<name>.png where two "
        "images share a stem)",
        metavar="DIR",
    )
    min_confidence: float = option(
        0.5, help="per-joint visibility threshold in [0, 1]", metavar="C"
    )
    upscale_to: int = option(
        256, help="enlarge images less than PX high before detection; 0 disables", metavar="PX"
    )


OPTIONS = (KeypointsOptions, Progress)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keypoints",
        help="detect keypoints in photos and write an annotation CSV",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(parser, *OPTIONS)
    # --quiet: the older spelling of --no-progress
    parser.add_argument("--quiet", dest="progress", action="store_false", help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.keypoints.detect import annotate_images

    o, progress = options_from_args(args, *OPTIONS)
    report = annotate_images(
        o.inputs,
        o.out,
        overlays=o.overlays,
        min_confidence=o.min_confidence,
        upscale_to=o.upscale_to,
        progress=progress.progress,
    )
    for _name, path, reason in report.skipped:
        # Escape what the terminal cannot show: a file name that is not UTF-8 is one reason
        # for a skip.
        shown = path.encode("utf-8", "backslashreplace").decode("utf-8")
        print(f"skipped {shown}: {reason}")
    n_ok, n_skip = len(report.annotations), len(report.skipped)
    print(
        f"annotated {n_ok} of {n_ok + n_skip} images -> {report.annotation_path} "
        f"({report.seconds_per_image:.3f} s per image)"
    )
    if n_skip:
        print(f"skipped images listed in {report.skipped_path}")
    if o.overlays:
        print(f"overlays in {o.overlays}")
    return 0 if n_ok else 1
