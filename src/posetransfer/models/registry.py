"""Named generator variants: `@register_generator` on a factory, `create_generator(name, **overrides)`.

A checkpoint stores the variant name and its keyword arguments, which is all that is needed to
rebuild the network (no pickled code).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_GENERATORS: dict[str, Callable[..., nn.Module]] = {}


def register_generator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a factory under its function name; the decorator returns it unchanged."""
    name = fn.__name__
    if name in _GENERATORS:
        raise ValueError(f"generator {name!r} is registered twice")
    _GENERATORS[name] = fn
    return fn


def list_generators() -> list[str]:
    """Names of all registered generator variants, sorted."""
    _load_builtin()
    return sorted(_GENERATORS)


def create_generator(name: str, **overrides: Any) -> nn.Module:
    """Build the registered variant ``name``; keyword overrides replace its defaults (e.g. ngf)."""
    _load_builtin()
    if name not in _GENERATORS:
        known = ", ".join(sorted(_GENERATORS))
        raise KeyError(f"unknown generator {name!r}; known: {known}")
    return _GENERATORS[name](**overrides)


def _load_builtin() -> None:
    # Importing the model modules runs their @register_generator decorators.
    import posetransfer.models.apatn  # noqa: F401
    import posetransfer.models.patn  # noqa: F401
    import posetransfer.models.variants  # noqa: F401
