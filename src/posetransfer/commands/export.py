"""`posetransfer export`: a generator to ONNX or OpenVINO IR for deployment."""

from __future__ import annotations

import argparse
import sys

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
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a generator to ONNX or OpenVINO for deployment",
        description="Export a checkpoint, a bundled model or an authors' .pth to ONNX (torch's "
        "dynamo exporter) or OpenVINO IR, and check it against the torch model.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="CKPT",
        help="checkpoint or run directory, bundled model name, authors' latest_net_netG.pth, "
        "or hf://owner/name",
    )
    p.add_argument("--format", required=True, choices=("onnx", "openvino"))
    p.add_argument("--out", required=True, metavar="PATH", help="the .onnx or .xml file to write")
    p.add_argument("--batch-size", type=int, metavar="N", help="a fixed batch size (default: any)")
    p.add_argument(
        "--int8",
        action="store_true",
        help="ONNX: quantise the convolutions to int8 (static, per-channel, calibrated)",
    )
    p.add_argument(
        "--calibration",
        metavar="ROOT",
        help="--int8: dataset root whose train pairs calibrate (default: synthetic people)",
    )
    p.add_argument(
        "--calibration-pairs", type=int, default=256, metavar="N", help="--int8: pairs (256)"
    )
    p.add_argument("--no-check", action="store_true", help="skip running the export against torch")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.export import export_generator
    from posetransfer.export.check import parity

    out = export_generator(
        args.checkpoint,
        args.format,
        args.out,
        args.batch_size,
        int8=args.int8,
        calibration=args.calibration,
        calibration_pairs=args.calibration_pairs,
    )
    size = out.stat().st_size + (
        out.with_suffix(".bin").stat().st_size if out.suffix == ".xml" else 0
    )
    print(f"wrote {out} ({size / 1e6:.1f} MB)")
    if args.no_check:
        return 0
    if args.int8:
        result = parity(args.checkpoint, out, pairs_root=args.calibration or "synthetic")
        print(
            f"int8 against torch fp32 on {result['batch']} test pairs: PSNR {result['psnr_db']:.1f} dB"
        )
        if result["psnr_db"] < 30:
            print(
                f"posetransfer export: warning: int8 PSNR {result['psnr_db']:.1f} dB is under 30 "
                "dB: calibrate on the model's own data (--calibration) or use fp32",
                file=sys.stderr,
            )
        return 0
    result = parity(args.checkpoint, out)
    print(
        f"checked against torch fp32 on {result['batch']} inputs: max abs difference "
        f"{result['max_abs_diff']:.2e}, PSNR {result['psnr_db']:.1f} dB"
    )
    return 0
