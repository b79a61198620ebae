"""Subcommands of the `posetransfer` console script, one module each.

Every module defines ``register(subparsers)``, which adds its parser (with an example in the
epilog) and sets ``func`` to a ``run(args) -> int`` that does the work by calling an importable
function. Modules import torch and friends inside ``run`` so that ``posetransfer --help`` is fast.
"""

import argparse


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``: the one spelling, in every command that shows progress bars."""
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bars (e.g. in logs)"
    )


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
    "bench",
)
