"""Making a bundled model from a training run (`posetransfer.pretrained.export`).

The bundled models themselves, and reading them, are `posetransfer.checkpoint.bundled`; their
names stay importable from here.
"""

from __future__ import annotations

from posetransfer.checkpoint.bundled import (
    CARD_FILE,
    DEFAULT_PRETRAINED,
    PRETRAINED,
    PRETRAINED_DIR,
    SYNTHETIC_ONLY,
    describe,
    installed_pretrained,
    pretrained_dir,
    read_card,
)

__all__ = [
    "CARD_FILE",
    "DEFAULT_PRETRAINED",
    "PRETRAINED",
    "PRETRAINED_DIR",
    "SYNTHETIC_ONLY",
    "describe",
    "installed_pretrained",
    "pretrained_dir",
    "read_card",
]
