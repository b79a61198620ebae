"""Generators, discriminators and the import of the authors' checkpoints.

Importing this package imports every model module, which registers each generator variant
(`register_generator`) before anything can ask the registry for one.
"""

from posetransfer.models import variants  # noqa: F401  (registers the ablations and baselines)
from posetransfer.models.apatn import APATB, APATN
from posetransfer.models.blocks import count_parameters
from posetransfer.models.inference import fold_batchnorm, for_inference
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
    "fold_batchnorm",
    "for_inference",
    "list_generators",
    "load_original_patn",
    "register_generator",
]
