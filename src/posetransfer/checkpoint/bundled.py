"""Trained models shipped inside the package: ``synthetic-patn`` and ``synthetic-apatn``.

Each is a checkpoint folder, ``posetransfer/weights/<name>/``, that every command and
`posetransfer.load_generator` reads like one of a run (a Hub repository holds the same files):

    generator.safetensors   the generator's weights, stored in float16 (loaded into float32)
    config.yaml             the full training config, with the generator's name and arguments
    manifest.json           size and sha256 of the two files above
    card.json               what it is: training step and time, the command that reproduces
                            it, its held-out metrics and the data they were measured on

They were trained on the procedural synthetic people only (docs/synthetic.md): they show what
the architectures learn and let every command run out of the box, but they are not models of
real photos. For photos, load the authors' Market-1501 / DeepFashion weights
(``--checkpoint latest_net_netG.pth``) or train on real data (docs/datasets.md).

This module reads files only; it imports neither torch nor the rest of posetransfer, so that
`posetransfer.checkpoint` can depend on it. Making a bundled model from a run is
`posetransfer.pretrained.export`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "weights"
PRETRAINED = ("synthetic-patn", "synthetic-apatn")
"""The bundled models, by name."""
DEFAULT_PRETRAINED = "synthetic-patn"
"""What commands use when no ``--checkpoint`` is given."""
CARD_FILE = "card.json"
SYNTHETIC_ONLY = (
    "trained on synthetic people only; for photos load the authors' Market-1501 or DeepFashion "
    "weights (--checkpoint latest_net_netG.pth) or train on real data (docs/datasets.md)"
)
"""What every place that shows a bundled model's output says about it."""


def pretrained_dir(name: str | Path) -> Path | None:
    """The folder of bundled model ``name``, or None when ``name`` is not one.

    A path that exists on disk is never taken for a bundled name: a run folder called
    ``synthetic-patn`` in the working directory is loaded as that run.
    """
    text = str(name)
    if text not in PRETRAINED or Path(text).exists():
        return None
    return PRETRAINED_DIR / text


def installed_pretrained() -> list[str]:
    """The bundled models present in this installation (a source tree may lack them)."""
    return [n for n in PRETRAINED if (PRETRAINED_DIR / n / CARD_FILE).is_file()]


def read_card(name: str) -> dict[str, Any]:
    """The card of bundled model ``name`` (see the module docstring).

    Raises:
        KeyError: ``name`` is not a bundled model.
        FileNotFoundError: this installation lacks it (e.g. a source tree before training).
    """
    if name not in PRETRAINED:
        raise KeyError(f"no bundled model {name!r}; there are: {', '.join(PRETRAINED)}")
    path = PRETRAINED_DIR / name / CARD_FILE
    return json.loads(path.read_text(encoding="utf-8"))


def describe(name: str) -> str:
    """One line for logs and pages: which bundled model, its step, and that it is synthetic."""
    try:
        card = read_card(name)
        trained = f"{card['generator']['name']}, {card['step']} iterations, "
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        trained = ""
    return f"bundled model {name} ({trained}{SYNTHETIC_ONLY})"
