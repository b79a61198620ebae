"""`Report`: the base of the dataclasses that functions return to say what they did.

    @dataclass(frozen=True)
    class EvaluationReport(Report):
        pairs: int
        evaluated: int

    report.evaluated                  # the field
    json.dumps(report.to_dict())      # the file the function writes, keys in field order

Reports used to be plain dicts; ``report["evaluated"]`` still works for one release (with a
DeprecationWarning) so that code indexing them keeps running. Plain data: importing this loads
nothing but the standard library.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any


def _plain(value: Any) -> Any:
    """``value`` as JSON holds it: tuples become lists, in dicts and lists too."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class Report:
    """Mixin of a report dataclass: `to_dict` for its JSON, item access kept for old callers."""

    def to_dict(self) -> dict[str, Any]:
        """The report as its JSON file holds it: fields in order, nested dataclasses as dicts."""
        return _plain(dataclasses.asdict(self))

    def __getitem__(self, key: str) -> Any:
        """The field ``key``: ``report["evaluated"]`` is ``report.evaluated`` (deprecated)."""
        if key not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(key)
        warnings.warn(
            f"{type(self).__name__}[{key!r}] is deprecated; use the attribute .{key}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(self, key)
