"""Generators, discriminators and the import of the authors' checkpoints."""

from posetransfer.models.apatn import APATB, APATN
from posetransfer.models.blocks import count_parameters
from posetransfer.models.original import load_original_patn
from posetransfer.models.patn import PATB, PATN
from posetransfer.models.registry import create_generator, list_generators, register_generator

__all__ = [
    "APATB",
    "APATN",
    "PATB",
    "PATN",
    "count_parameters",
    "create_generator",
    "list_generators",
    "load_original_patn",
    "register_generator",
]
