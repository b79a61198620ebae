"""The `posetransfer` console script: a thin dispatcher over `posetransfer.commands`."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings
from collections.abc import Callable

from posetransfer.commands import COMMANDS, command_module
from posetransfer.core import __version__
from posetransfer.core.scratch import terminate_as_interrupt
from posetransfer.errors import InputError, InputWarning, os_error_message


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posetransfer",
        description="Pose-guided person image generation (PATN / APATN).",
        epilog="Run `posetransfer COMMAND --help` for the options and an example of each command.",
    )
    parser.add_argument("--version", action="version", version=f"posetransfer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(command_module(name)).register(sub)
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
        # SIGTERM stops a command as Ctrl-C does: its temporary files and folders are removed.
        # Not under torchrun: a rank blocked in a collective must still die of the agent's SIGTERM.
        distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        with contextlib.nullcontext() if distributed else terminate_as_interrupt():
            return int(args.func(args) or 0)
    except InputError as e:
        print(f"posetransfer {args.command}: error: {e.flag_message()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        # 130 for Ctrl-C, 143 for SIGTERM (`Terminated`, or a training that knows its signal).
        code = getattr(e, "exit_code", 130)
        how = "stopped (SIGTERM)" if code == 143 else "interrupted"
        print(f"posetransfer {args.command}: {how}", file=sys.stderr)
        return code
    except BrokenPipeError:  # e.g. `posetransfer ... | head`
        sys.stderr.close()
        return 0
    except OSError as e:  # a file the checks before could not foresee (permissions, a race)
        print(f"posetransfer {args.command}: error: {os_error_message(e)}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # Path.resolve on a link that points to itself (Python < 3.13)
        if "Symlink loop" not in str(e):
            raise
        print(f"posetransfer {args.command}: error: {e}: a symbolic link loop", file=sys.stderr)
        return 2
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
