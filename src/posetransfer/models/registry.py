"""Named generator variants: `@register_generator` on a factory, `create_generator(name, **kw)`.

A checkpoint stores the variant name and its keyword arguments, which is all that is needed to
rebuild the network (no pickled code). This module imports no model: the model modules import it
to register their factories, and `posetransfer.models` imports every model module, so the
registry is complete whenever it can be reached (importing ``posetransfer.models.registry`` runs
the package's ``__init__`` first).
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
    return sorted(_GENERATORS)


def create_generator(name: str, **overrides: Any) -> nn.Module:
    """Build the registered variant ``name``; keyword overrides replace its defaults (e.g. ngf)."""
    if name not in _GENERATORS:
        known = ", ".join(sorted(_GENERATORS))
        raise KeyError(f"unknown generator {name!r}; known: {known}")
    return _GENERATORS[name](**overrides)
