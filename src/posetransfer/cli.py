"""The `posetransfer` console script: a thin dispatcher over `posetransfer.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable

from posetransfer.commands import COMMANDS
from posetransfer.core import __version__
from posetransfer.errors import InputError, InputWarning


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posetransfer",
        description="Pose-guided person image generation (PATN / APATN).",
        epilog="Run `posetransfer COMMAND --help` for the options and an example of each command.",
    )
    parser.add_argument("--version", action="version", version=f"posetransfer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"posetransfer.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    previous = _one_line_warnings(args.command)
    try:
        if getattr(args, "accepts_overrides", False):
            from posetransfer.config import cli_overrides

            args.overrides = cli_overrides(extra)
        return int(args.func(args) or 0)
    except InputError as e:
        print(f"posetransfer {args.command}: error: {e.flag_message()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"posetransfer {args.command}: interrupted", file=sys.stderr)
        # 130 for Ctrl-C; an interrupted training (e.g. inside demo) knows its signal (143: SIGTERM)
        return getattr(e, "exit_code", 130)
    except BrokenPipeError:  # e.g. `posetransfer ... | head`
        sys.stderr.close()
        return 0
    finally:
        warnings.showwarning = previous


def _one_line_warnings(command: str) -> Callable:
    """Print the project's own warnings (`InputWarning`) as one line each, like its errors.

    Each message is printed once per command, wherever it was raised from. Returns the previous
    `warnings.showwarning`, for the caller to put back.
    """
    show = warnings.showwarning
    shown: set[str] = set()

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, InputWarning):
            if str(message) not in shown:
                shown.add(str(message))
                print(f"posetransfer {command}: warning: {message}", file=file or sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning
    return show


if __name__ == "__main__":
    sys.exit(main())
