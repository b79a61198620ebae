"""`posetransfer evaluate`: every metric of the paper and of later papers on a folder of images."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from posetransfer.commands.options import Progress, add_options, options_from_args
from posetransfer.core.options import option

DESCRIPTION = """\
Evaluate generated images against the ground truth of a pairs file. Generated files are named
<from stem>___<to stem>.png; the ground truth is ROOT/<split>/<to name>. Metrics: ssim,
mask_ssim, l1, mask_l1 (body L1), is, mask_is, fid, lpips, ds, pckh (or 'all').

Protocols:
  paper   SSIM, IS, mask-SSIM, mask-IS, DS, PCKh (the paper's Table 1); DeepFashion-size
          256x176 images are padded with white to 256x256 before SSIM and IS.
  modern  SSIM, FID (against ROOT/train or --real-dir), LPIPS; nothing padded.
--metrics overrides the protocol's set; the protocol still decides the padding.

Networks come from the libraries' caches or --weights NAME=PATH (NAME: inception, fid,
alexnet, ssd). A metric whose weights are missing (or whose cached file is damaged) is reported
as 'unavailable: <how to get them>' and the others still run; a --weights file that is not
those weights is an error. Missing, unreadable or wrong-size generated images are listed
by name and left out. Writes the report as JSON (--out) and Markdown (same name, .md)."""

EPILOG = """\
example:
  posetransfer evaluate --generated results/market_patn --dataset data/market \\
      --annotations data/market/market-annotation-test.csv \\
      --pairs data/market/market-pairs-test.csv --protocol paper --out results/market_eval.json
  posetransfer evaluate --generated results/fashion --dataset data/fashion \\
      --annotations data/fashion/fasion-resize-annotation-test.csv \\
      --pairs data/fashion/fasion-resize-pairs-test.csv --metrics ssim,fid,lpips,l1 \\
      --weights alexnet=~/weights/alexnet-owt-7be5be79.pth --out fashion_eval.json
  # ... and one row per pair with every per-pair metric, to find the failure cases
  posetransfer evaluate --generated results/market_patn --dataset data/market \\
      --annotations data/market/market-annotation-test.csv \\
      --pairs data/market/market-pairs-test.csv --per-pair per_pair.csv --out market_eval.json
"""


def _protocols() -> tuple[str, ...]:
    from posetransfer.metrics.registry import PROTOCOLS  # owns them; imports numpy and scipy

    return tuple(PROTOCOLS)


@dataclass(frozen=True)
class EvaluateOptions:
    """`posetransfer evaluate` (`metrics.runner.evaluate`)."""

    generated: str = option(help="generated images", metavar="DIR")
    dataset: str = option(help="dataset root folder", metavar="ROOT")
    pairs: str = option(help="pairs CSV (from,to)", metavar="CSV")
    out: str = option(help="report file (.json)", metavar="JSON")
    annotations: str | None = option(
        None, help="annotation CSV with the target keypoints", metavar="CSV"
    )
    split: str = option("test", help="folder under ROOT with the ground truth")
    real_dir: str | None = option(
        None, help="real images for FID (default: ROOT/train)", metavar="DIR"
    )
    real_stats: str | None = option(
        None,
        help="cache of the real set's FID statistics: read if it exists, else written",
        metavar="NPZ",
    )
    metrics: str | None = option(
        None, help="comma-separated metric names or 'all' (default: the protocol's)"
    )
    protocol: str = option(
        "modern",
        help="paper: Table 1 metrics, 256x176 images padded to 256x256 for SSIM and IS; "
        "modern: SSIM, FID, LPIPS, unpadded",
        choices=_protocols,
    )
    keypoints: str | None = option(
        None,
        help="keypoints of the generated images (annotation format, names = generated file "
        "names) for PCKh; default: detect them with MediaPipe",
        metavar="CSV",
    )
    weights: tuple[str, ...] | None = option(
        None,
        help="weights files: inception=, fid=, alexnet=, ssd=",
        action="extend",
        metavar="NAME=PATH",
    )
    download: bool = option(
        False, help="download missing weights into torch hub's cache (needs internet)"
    )
    device: str | None = option(None, help="cpu, cuda, cuda:1... (default: cuda if available)")
    batch_size: int = option(16, help="images per network call")
    per_pair: str | None = option(
        None,
        help="also write one row per pair with every per-pair metric (SSIM, mask-SSIM, L1, "
        "body L1, LPIPS, DS, PCKh): to find the failure cases",
        metavar="CSV",
    )


OPTIONS = (EvaluateOptions, Progress)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="compute SSIM, IS, FID, LPIPS, DS, PCKh... of generated images",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(parser, *OPTIONS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.core.files import check_output
    from posetransfer.errors import InputError
    from posetransfer.metrics.report import check_report_path, format_table, write_report

    o, progress = options_from_args(args, *OPTIONS)
    reads = ("generated", "dataset", "pairs", "annotations", "real_dir", "real_stats", "keypoints")
    inputs = {name: getattr(o, name) for name in reads}
    check_report_path(o.out, inputs)  # before the metrics
    if o.per_pair is not None:
        check_output(o.per_pair, inputs, arg="per_pair", kind="file")
        if Path(o.per_pair).resolve() in {
            Path(o.out).resolve(),
            Path(o.out).with_suffix(".md").resolve(),
        }:
            raise InputError(f"--per-pair {o.per_pair}: is the report's own file; name another")
    try:
        report = _evaluate(o, progress.progress)
    except InputError as e:  # name the flags, not the library's arguments
        raise InputError(e.flag_message(_FLAGS)) from None
    saved = report.to_dict()
    json_path, md_path = write_report(saved, o.out)
    print(format_table(saved))
    print(f"wrote {json_path} and {md_path}")
    return 0 if report.evaluated else 1


# The library's argument names, as this command's flags.
_FLAGS = {"generated_dir": "--generated", "dataset_root": "--dataset", "per_pair": "--per-pair"}


def _evaluate(o: EvaluateOptions, progress: bool):
    """`metrics.runner.evaluate` with the command's options."""
    from posetransfer.metrics.runner import evaluate

    return evaluate(
        o.generated,
        o.dataset,
        o.annotations,
        o.pairs,
        metrics=o.metrics,
        protocol=o.protocol,
        split=o.split,
        real_dir=o.real_dir,
        real_stats=o.real_stats,
        keypoints=o.keypoints,
        weights=parse_weights(o.weights),
        device=o.device,
        batch_size=o.batch_size,
        download=o.download,
        progress=progress,
        per_pair=o.per_pair,
    )


def parse_weights(items: Sequence[str] | None) -> dict[str, Path]:
    """Parse ``--weights`` values, ``NAME=PATH`` strings, into ``{network: path}``.

    NAME is a network of `posetransfer.metrics.weights.WEIGHTS` or a metric using it (``lpips``
    for ``alexnet``...).

    Raises:
        InputError: for a malformed item, an unknown name or a missing file.
    """
    from posetransfer.errors import InputError
    from posetransfer.metrics.weights import ALIASES, WEIGHTS

    out: dict[str, Path] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise InputError(f"--weights {item!r}: expected NAME=PATH, e.g. alexnet=alexnet.pth")
        key = ALIASES.get(name.strip().lower())
        if key is None:
            raise InputError(
                f"--weights {item!r}: unknown network {name!r}; known: {', '.join(WEIGHTS)}"
            )
        p = Path(path.strip()).expanduser()
        if not p.is_file():
            raise InputError(f"--weights {item!r}: file not found: {p}")
        out[key] = p
    return out
