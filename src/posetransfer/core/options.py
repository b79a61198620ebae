"""A command's options, declared once: frozen dataclass fields that carry their help and choices.

    @dataclass(frozen=True)
    class AnimateOptions:
        retarget: str = option("bones", help="how the driving poses fit the body", choices=MODES)
        every: int = option(1, help="use every N-th frame", minimum=1, metavar="N")

The field is the Python API's keyword argument; `posetransfer.commands.options` derives the
command's flag from it (``--every``, its type, choices, help and default), and the web app its
control. `from_dict` builds one from a mapping (a saved JSON file), refusing keys it does not
know. Plain data: importing this loads nothing but the standard library.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass
from typing import Any, TypeVar

from posetransfer.errors import InputError

T = TypeVar("T")
_KEY = "posetransfer.option"


@dataclass(frozen=True)
class Option:
    """How one field appears on the command line (and in the app): see `option`."""

    help: str
    choices: tuple | Callable[[], tuple] | None = None
    flag: str | None = None
    metavar: str | None = None
    minimum: int | None = None
    parse: Callable[[str], Any] | None = None
    nargs: str | None = None
    action: str | None = None
    positional: bool = False
    group: str | None = None
    show_default: bool = True

    def choice_list(self) -> tuple | None:
        """The choices (a callable is asked now: choices owned by a module loaded lazily)."""
        return self.choices() if callable(self.choices) else self.choices


def option(
    default: Any = MISSING,
    *,
    help: str,
    choices: Iterable | Callable[[], tuple] | None = None,
    flag: str | None = None,
    metavar: str | None = None,
    minimum: int | None = None,
    parse: Callable[[str], Any] | None = None,
    nargs: str | None = None,
    action: str | None = None,
    positional: bool = False,
    group: str | None = None,
    show_default: bool = True,
) -> Any:
    """A dataclass field with its command-line description; no default makes it required.

    Args:
        default: the default value (a tuple for a list of values); none: required.
        help: what the option does, one phrase; the command's help appends the default.
        choices: the allowed values, from the module that owns them (a callable returning them
            where that module is slow to import, e.g. needs torch).
        flag: the flag where it is not ``--`` + the field name with ``-`` for ``_``.
        metavar: the value's name in the help.
        minimum: an integer field's least value, refused by the parser in one line.
        parse: the parser's converter of the text (default: the field's type).
        nargs: ``"+"`` or ``"*"`` for a tuple of values.
        action: an argparse action instead of the derived one (e.g. ``"extend"``).
        positional: an argument without a flag.
        group: fields of one group name are mutually exclusive.
        show_default: append the default to the help.
    """
    spec = Option(
        help=help,
        choices=tuple(choices) if choices is not None and not callable(choices) else choices,
        flag=flag,
        metavar=metavar,
        minimum=minimum,
        parse=parse,
        nargs=nargs,
        action=action,
        positional=positional,
        group=group,
        show_default=show_default,
    )
    return dataclasses.field(default=default, metadata={_KEY: spec})


def option_of(field: dataclasses.Field) -> Option | None:
    """The `Option` of a dataclass field, or None for a field declared without `option`."""
    return field.metadata.get(_KEY)


def spec(cls: type, name: str) -> tuple[Option, Any]:
    """(the `Option`, the default) of field ``name`` of ``cls``: e.g. for an app's control."""
    for f in dataclasses.fields(cls):
        if f.name == name and option_of(f) is not None:
            return option_of(f), f.default
    raise KeyError(f"{cls.__name__} has no option {name!r}")


def flag_of(field: dataclasses.Field) -> str:
    """The command-line flag of a field: its `Option.flag`, else ``--field-name``."""
    o = option_of(field)
    return (o.flag if o else None) or "--" + field.name.replace("_", "-")


def flags(*classes: type) -> dict[str, str]:
    """Field name -> flag, for `InputError.flag_message`, of every field of ``classes``."""
    return {f.name: flag_of(f) for cls in classes for f in dataclasses.fields(cls)}


def from_dict(cls: type[T], mapping: Mapping[str, Any], arg: str = "options") -> T:
    """``cls(**mapping)``, refusing keys that are not fields of ``cls`` with one InputError.

    Raises:
        InputError: naming ``arg`` and the unknown keys, and listing the known ones; or what
            ``cls`` itself refuses.
    """
    if not isinstance(mapping, Mapping):
        raise InputError(f"{arg}: expected a mapping of {cls.__name__} fields", arg=arg)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise InputError(
            f"{arg}: unknown {'key' if len(unknown) == 1 else 'keys'} {', '.join(unknown)} "
            f"of {cls.__name__}; known: {', '.join(known)}",
            arg=arg,
        )
    return cls(**mapping)
