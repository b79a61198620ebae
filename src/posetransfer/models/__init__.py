"""Generators, discriminators and the import of the authors' checkpoints."""

from posetransfer.models.blocks import count_parameters
from posetransfer.models.original import load_original_patn
from posetransfer.models.patn import PATB, PATN
from posetransfer.models.registry import create_generator, list_generators, register_generator

__all__ = [
    "PATB",
    "PATN",
    "count_parameters",
    "create_generator",
    "list_generators",
    "load_original_patn",
    "register_generator",
]

try:  # APATN lands in its own module
    from posetransfer.models.apatn import APATB, APATN  # noqa: F401

    __all__ += ["APATB", "APATN"]
except ModuleNotFoundError as e:
    if e.name != "posetransfer.models.apatn":
        raise
