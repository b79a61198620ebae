"""`posetransfer export`: a generator to ONNX or OpenVINO IR for deployment."""

from __future__ import annotations

import argparse

EXAMPLE = """\
examples:
  posetransfer export --checkpoint synthetic-patn --format onnx --out patn.onnx
  posetransfer export --checkpoint runs/00003-apatn_fashion-fashion --format openvino \\
      --out apatn.xml
  posetransfer export --checkpoint latest_net_netG.pth --format onnx --batch-size 8 \\
      --out market_patn_b8.onnx

The graph takes image [B, 3, H, W] and source_heatmaps, target_heatmaps [B, 18, H, W] and
gives generated [B, 3, H, W], all float32, at the checkpoint's image size; B is any batch size
unless --batch-size fixes it. The exported file records the image size and heatmap style, so
`generate` and `transfer` run it with --checkpoint FILE --backend onnxruntime|openvino.
After writing, the export is run once against the torch model and the largest difference
printed (--no-check skips it).
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
        help="checkpoint or run directory, bundled model name, or authors' latest_net_netG.pth",
    )
    p.add_argument("--format", required=True, choices=("onnx", "openvino"))
    p.add_argument("--out", required=True, metavar="PATH", help="the .onnx or .xml file to write")
    p.add_argument("--batch-size", type=int, metavar="N", help="a fixed batch size (default: any)")
    p.add_argument("--no-check", action="store_true", help="skip running the export against torch")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.export import export_generator
    from posetransfer.export.check import parity

    out = export_generator(args.checkpoint, args.format, args.out, args.batch_size)
    size = out.stat().st_size + (
        out.with_suffix(".bin").stat().st_size if out.suffix == ".xml" else 0
    )
    print(f"wrote {out} ({size / 1e6:.1f} MB)")
    if not args.no_check:
        result = parity(args.checkpoint, out)
        print(
            f"checked against torch fp32 on {result['batch']} inputs: max abs difference "
            f"{result['max_abs_diff']:.2e}, PSNR {result['psnr_db']:.1f} dB"
        )
    return 0
