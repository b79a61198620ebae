"""Subcommands of the `posetransfer` console script, one module each.

Every module defines ``register(subparsers)``, which adds its parser (with an example in the
epilog) and sets ``func`` to a ``run(args) -> int`` that does the work by calling an importable
function. The flags are derived from the command's frozen options dataclasses, listed in its
``OPTIONS`` (`posetransfer.commands.options`). Modules import torch and friends inside ``run``
so that ``posetransfer --help`` is fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from posetransfer.commands.options import Checkpoint


def checkpoint_or_bundled(options: Checkpoint) -> str:
    """``options.checkpoint``, or the default bundled model, saying on stderr which one it is.

    ``options``: the `Checkpoint` options, or any with a ``checkpoint`` field.
    """
    from posetransfer.checkpoint.bundled import (
        DEFAULT_PRETRAINED,
        PRETRAINED,
        describe,
        pretrained_dir,
    )

    name = options.checkpoint or DEFAULT_PRETRAINED
    if name in PRETRAINED and pretrained_dir(name) is not None:
        print(f"using the {describe(name)}", file=sys.stderr)
    return name


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
    "reproduce",
    "user-study",
)


def command_module(name: str) -> str:
    """The module of command ``name`` (``user-study`` -> ``posetransfer.commands.user_study``)."""
    return f"posetransfer.commands.{name.replace('-', '_')}"
