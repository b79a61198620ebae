"""Subcommands of the `posetransfer` console script, one module each.

Every module defines ``register(subparsers)``, which adds its parser (with an example in the
epilog) and sets ``func`` to a ``run(args) -> int`` that does the work by calling an importable
function. Modules import torch and friends inside ``run`` so that ``posetransfer --help`` is fast.
"""

import argparse
import sys


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``: the one spelling, in every command that shows progress bars."""
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bars (e.g. in logs)"
    )


def int_at_least(minimum: int):
    """An argparse type: an integer >= minimum, with a one-line error otherwise."""
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


def add_checkpoint_flag(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint``, defaulting to the bundled ``synthetic-patn`` (`posetransfer.pretrained`)."""
    parser.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="checkpoint or run directory, authors' latest_net_netG.pth, or a bundled model: "
        "synthetic-patn (the default) or synthetic-apatn, trained on synthetic people only",
    )


def checkpoint_or_bundled(args: argparse.Namespace) -> str:
    """``args.checkpoint``, or the default bundled model, saying on stderr which one it is."""
    from posetransfer.checkpoint.bundled import (
        DEFAULT_PRETRAINED,
        PRETRAINED,
        describe,
        pretrained_dir,
    )

    name = args.checkpoint or DEFAULT_PRETRAINED
    if name in PRETRAINED and pretrained_dir(name) is not None:
        print(f"using the {describe(name)}", file=sys.stderr)
    return name


def add_inference_flags(parser: argparse.ArgumentParser, backends: bool = True) -> None:
    """``--precision`` (with ``backends``: ``--backend`` and ``--compile``): how the generator
    runs (`for_inference`)."""
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="arithmetic of the generator: auto (bf16 where the CPU or GPU has it natively, "
        "fp16 on other GPUs, else fp32), fp32 (the reference), bf16, fp16 (CUDA)",
    )
    if not backends:
        return
    parser.add_argument(
        "--backend",
        default="torch",
        choices=("torch", "onnxruntime", "openvino"),
        help="torch (default), or run an exported .onnx/.xml given as --checkpoint with "
        "onnxruntime or OpenVINO (see `posetransfer export`)",
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch backend: run through torch.compile"
    )


def inference_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of `posetransfer.export.load_for_inference` from the flags."""
    return {
        "precision": args.precision,
        "backend": getattr(args, "backend", "torch"),
        "compile": getattr(args, "compile", False),
    }


def report_inference(model: object) -> None:
    """Say how the generator runs (backend, device, precision), on stdout with the results."""
    from posetransfer.export import describe

    print(describe(model))


# Order in which the subcommands are listed by `posetransfer --help`.
COMMANDS: tuple[str, ...] = (
    "demo",
    "synthetic",
    "prepare",
    "pairs",
    "train",
    "generate",
    "evaluate",
    "keypoints",
    "transfer",
    "animate",
    "app",
    "attention",
    "pretrained",
    "reid",
    "export",
    "bench",
)
