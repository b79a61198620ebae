"""`posetransfer export`: a generator to ONNX or OpenVINO IR for deployment."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from posetransfer.commands.options import Progress, add_options, options_from_args
from posetransfer.core.options import option

EXAMPLE = """\
examples:
  posetransfer export --checkpoint synthetic-patn --format onnx --out patn.onnx
  posetransfer export --checkpoint runs/00003-apatn_fashion-fashion --format openvino \\
      --out apatn.xml
  posetransfer export --checkpoint latest_net_netG.pth --format onnx --batch-size 8 \\
      --out market_patn_b8.onnx
  # int8 convolutions, calibrated on 256 training pairs of a dataset in the public layout
  posetransfer export --checkpoint runs/00002-patn_market-market --format onnx --int8 \\
      --calibration data/market --out market_int8.onnx

The graph takes image [B, 3, H, W] and source_heatmaps, target_heatmaps [B, 18, H, W] and
gives generated [B, 3, H, W], all float32, at the checkpoint's image size; B is any batch size
unless --batch-size fixes it. The exported file records the image size and heatmap style, so
`generate` and `transfer` run it with --checkpoint FILE --backend onnxruntime|openvino.
After writing, the export is run once against the torch model and the largest difference
printed (--no-check skips it); an int8 model is checked on 64 test pairs instead (of
--calibration's root, or of the synthetic people) and its PSNR printed, with a warning under
30 dB. Int8 measured on the bundled models: 33.8 dB (PATN) and 32.6 dB (APATN), 3.5x smaller,
1.6-1.9x faster than fp32 on onnxruntime (docs/performance.md).
An int8 or OpenVINO export takes 20-60 s on a CPU: a line per stage shows where it is
(--no-progress hides it). The output is refused when it is, contains or lies inside the
checkpoint or the --calibration root; files are written in a hidden .export-* folder beside it
and renamed into place (a killed export's folder is removed by the next export there).
"""


def _formats() -> tuple[str, ...]:
    from posetransfer.export import FORMATS  # owns them; imports torch

    return FORMATS


@dataclass(frozen=True)
class ExportOptions:
    """`posetransfer export` (`export.export_generator`, then `export.check.parity`)."""

    checkpoint: str = option(
        help="checkpoint or run directory, bundled model name, authors' latest_net_netG.pth, "
        "or hf://owner/name",
        metavar="CKPT",
    )
    format: str = option(help="what to write", choices=_formats)
    out: str = option(help="the .onnx or .xml file to write", metavar="PATH")
    batch_size: int | None = option(None, help="a fixed batch size (default: any)", metavar="N")
    int8: bool = option(
        False, help="ONNX: quantise the convolutions to int8 (static, per-channel, calibrated)"
    )
    calibration: str | None = option(
        None,
        help="--int8: dataset root whose train pairs calibrate (default: synthetic people)",
        metavar="ROOT",
    )
    calibration_pairs: int = option(256, help="--int8: pairs", metavar="N")
    no_check: bool = option(False, help="skip running the export against torch")


OPTIONS = (ExportOptions, Progress)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a generator to ONNX or OpenVINO for deployment",
        description="Export a checkpoint, a bundled model or an authors' .pth to ONNX (torch's "
        "dynamo exporter) or OpenVINO IR, and check it against the torch model.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(p, *OPTIONS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.export import export_generator
    from posetransfer.export.check import parity

    o, progress = options_from_args(args, *OPTIONS)
    out = export_generator(
        o.checkpoint,
        o.format,
        o.out,
        o.batch_size,
        int8=o.int8,
        calibration=o.calibration,
        calibration_pairs=o.calibration_pairs,
        progress=progress.progress,
    )
    size = out.stat().st_size + (
        out.with_suffix(".bin").stat().st_size if out.suffix == ".xml" else 0
    )
    print(f"wrote {out} ({size / 1e6:.1f} MB)")
    if o.no_check:
        return 0
    if o.int8:
        result = parity(o.checkpoint, out, pairs_root=o.calibration or "synthetic")
        print(
            f"int8 against torch fp32 on {result['batch']} test pairs: "
            f"PSNR {result['psnr_db']:.1f} dB"
        )
        if result["psnr_db"] < 30:
            print(
                f"posetransfer export: warning: int8 PSNR {result['psnr_db']:.1f} dB is under 30 "
                "dB: calibrate on the model's own data (--calibration) or use fp32",
                file=sys.stderr,
            )
        return 0
    result = parity(o.checkpoint, out)
    print(
        f"checked against torch fp32 on {result['batch']} inputs: max abs difference "
        f"{result['max_abs_diff']:.2e}, PSNR {result['psnr_db']:.1f} dB"
    )
    return 0
