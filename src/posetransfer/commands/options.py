"""A command's flags derived from its options dataclasses (`posetransfer.core.options`).

    add_options(parser, AnimateCommand, AnimateOptions)    # --source ... --retarget ...
    command, options = options_from_args(args, AnimateCommand, AnimateOptions)

Each field becomes ``--field-name`` (or its `Option.flag`) of the field's type: a bool that
defaults to False is a switch, one that defaults to True (or None) is ``--x/--no-x``; a tuple
takes ``nargs`` values; a field without a default is required. The help appends the default.
Shared option groups (checkpoint, how the generator runs, device, progress bars) are here.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posetransfer.core.device import BACKENDS
from posetransfer.core.options import Option, flag_of, option, option_of
from posetransfer.core.precision import AUTO, PRECISIONS

_NONE = type(None)


def int_at_least(minimum: int) -> Callable[[str], int]:
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


def finite_float(text: str) -> float:
    """An argparse type: a finite number (nan and inf are refused in one line)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


class _Choices(tuple):
    """Choices asked of their owning module only when the parser needs them (help, a check)."""

    def __new__(cls, get: Callable[[], tuple]) -> _Choices:
        self = super().__new__(cls)
        self._get = get
        return self

    def __iter__(self):
        return iter(self._get())

    def __contains__(self, value: object) -> bool:
        return value in self._get()

    def __len__(self) -> int:
        return len(self._get())

    def __bool__(self) -> bool:
        return True


def _base(hint: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    args = typing.get_args(hint)
    if _NONE in args:
        rest = [a for a in args if a is not _NONE]
        return rest[0], True
    return hint, False


def _shown(value: Any) -> str:
    if isinstance(value, tuple | list):
        return " ".join(str(v) for v in value) or "none"
    return str(value)


def add_options(parser: argparse.ArgumentParser, *classes: type) -> None:
    """Add a flag (or positional argument) for every `option` field of ``classes``."""
    groups: dict[str, Any] = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            o = option_of(f)
            if o is None:
                raise TypeError(f"{cls.__name__}.{f.name} is not declared with option()")
            target = parser
            if o.group is not None:
                if o.group not in groups:
                    groups[o.group] = parser.add_mutually_exclusive_group()
                target = groups[o.group]
            _add(target, f, o, hints[f.name])


def _add(parser, f: dataclasses.Field, o: Option, hint: Any) -> None:
    base, _optional = _base(hint)
    default = f.default
    required = default is dataclasses.MISSING
    kw: dict[str, Any] = {"help": o.help.replace("%", "%%")}
    if callable(o.choices):  # listed when the help is shown, not when the parser is built
        kw["choices"] = _Choices(o.choices)
        kw["help"] += "; one of %(choices)s"
        kw.setdefault("metavar", f.name.upper())
    elif o.choices is not None:
        kw["choices"] = o.choices
    if o.show_default and not required and default is not None and base is not bool:
        if default != () or o.nargs == "*":
            kw["help"] += f" ({_shown(default)})"
    if o.metavar:
        kw["metavar"] = o.metavar
    names = [f.name] if o.positional else [flag_of(f)]
    if not o.positional:
        kw["dest"] = f.name
        if required:
            kw["required"] = True
    if base is bool:
        kw.pop("metavar", None)
        if default is True or default is None:
            kw["action"] = argparse.BooleanOptionalAction
            kw["default"] = default
        else:
            kw["action"] = "store_true"
        parser.add_argument(*names, **kw)
        return
    if typing.get_origin(base) is tuple:
        base = typing.get_args(base)[0]
        kw["nargs"] = o.nargs or "+"
    elif o.nargs:
        kw["nargs"] = o.nargs
    if o.action:
        kw["action"] = o.action
    if o.parse is not None:
        kw["type"] = o.parse
    elif o.minimum is not None:
        kw["type"] = int_at_least(o.minimum)
    elif base is float:
        kw["type"] = finite_float
    elif base in (int, Path):
        kw["type"] = base
    if not required:
        kw["default"] = default
    parser.add_argument(*names, **kw)


def add_actions(
    parser: argparse.ArgumentParser,
    options: dict[str, tuple[type, ...]],
    helps: dict[str, str],
    epilog: str,
) -> None:
    """Sub-actions of a command (``reid augment``, ``reproduce run``): one parser per action
    with the flags of its option classes, chosen as ``args.action``."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, classes in options.items():
        a = actions.add_parser(
            action,
            help=helps[action],
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_options(a, *classes)


def run_action(
    args: argparse.Namespace,
    options: dict[str, tuple[type, ...]],
    handlers: dict[str, Callable[..., int]],
    flags: dict[str, str] | None = None,
) -> int:
    """Call the handler of ``args.action`` with its options (one per class); an `InputError`
    from the library comes back with its argument names written as ``flags``."""
    from posetransfer.errors import InputError

    found = options_from_args(args, *options[args.action])
    try:
        return handlers[args.action](*(found if isinstance(found, tuple) else (found,)))
    except InputError as e:
        raise InputError(e.flag_message(flags)) from None


def options_from_args(args: argparse.Namespace, *classes: type) -> Any:
    """An instance of each of ``classes`` from the parsed flags (one class: the instance)."""
    out = []
    for cls in classes:
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            value = getattr(args, f.name)
            if isinstance(value, list) and typing.get_origin(_base(hints[f.name])[0]) is tuple:
                value = tuple(value)
            values[f.name] = value
        out.append(cls(**values))
    return out[0] if len(out) == 1 else tuple(out)


def parser_fields(parser: argparse.ArgumentParser) -> set[str]:
    """The destinations of a parser's options and arguments (without --help): for the tests."""
    return {
        a.dest
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    }


# Option groups that several commands share.


CHECKPOINT_HELP = (
    "checkpoint or run directory, authors' latest_net_netG.pth, or a bundled model: "
    "synthetic-patn (the default) or synthetic-apatn, trained on synthetic people only"
)
PRECISION_HELP = (
    "arithmetic of the generator: auto (bf16 where the CPU or GPU has it natively, "
    "fp16 on other GPUs, else fp32), fp32 (the reference), bf16, fp16 (CUDA)"
)


@dataclass(frozen=True)
class Checkpoint:
    """``--checkpoint``, defaulting to the bundled ``synthetic-patn``."""

    checkpoint: str | None = option(None, help=CHECKPOINT_HELP, metavar="CKPT")


@dataclass(frozen=True)
class Precision:
    """``--precision`` of the generator (`for_inference`)."""

    precision: str = option(AUTO, help=PRECISION_HELP, choices=(AUTO, *PRECISIONS))


@dataclass(frozen=True)
class Inference(Precision):
    """``--precision``, ``--backend`` and ``--compile``: how the generator runs."""

    backend: str = option(
        "torch",
        help="torch, or run an exported .onnx/.xml given as --checkpoint with onnxruntime or "
        "OpenVINO (see `posetransfer export`)",
        choices=BACKENDS,
    )
    compile: bool = option(False, help="torch backend: run through torch.compile")

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `PoseTransfer.from_checkpoint` and friends."""
        return {"precision": self.precision, "backend": self.backend, "compile": self.compile}


@dataclass(frozen=True)
class Device:
    """``--device``."""

    device: str = option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")


@dataclass(frozen=True)
class Progress:
    """``--progress/--no-progress``: the one spelling, in every command with progress bars."""

    progress: bool = option(True, help="show the progress bars (--no-progress, e.g. in logs)")
