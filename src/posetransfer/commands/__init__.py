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
    from posetransfer.pretrained import DEFAULT_PRETRAINED, PRETRAINED, describe, pretrained_dir

    name = args.checkpoint or DEFAULT_PRETRAINED
    if name in PRETRAINED and pretrained_dir(name) is not None:
        print(f"using the {describe(name)}", file=sys.stderr)
    return name


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
    "app",
    "attention",
    "pretrained",
    "bench",
)
