"""`posetransfer keypoints`: annotate photos with COCO-18 keypoints (MediaPipe BlazePose)."""

from __future__ import annotations

import argparse

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


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keypoints",
        help="detect keypoints in photos and write an annotation CSV",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="IMAGES_OR_DIR", help="image files and/or folders of images"
    )
    parser.add_argument("--out", required=True, help="annotation CSV to write (.csv)")
    parser.add_argument(
        "--overlays",
        metavar="DIR",
        help="also write skeleton overlays <stem>.png to this folder (<name>.png where two "
        "images share a stem)",
    )
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=0.5,
        metavar="C",
        help="per-joint visibility threshold in [0, 1] (default 0.5)",
    )
    parser.add_argument(
        "--upscale-to",
        type=int,
        default=256,
        metavar="PX",
        help="enlarge images less than PX high before detection; 0 disables (default 256)",
    )
    parser.add_argument(
        "--no-progress", "--quiet", action="store_true", help="hide the progress bar"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.keypoints.detect import annotate_images

    report = annotate_images(
        args.inputs,
        args.out,
        overlays=args.overlays,
        min_confidence=args.min_confidence,
        upscale_to=args.upscale_to,
        progress=not args.no_progress,
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
    if args.overlays:
        print(f"overlays in {args.overlays}")
    return 0 if n_ok else 1
