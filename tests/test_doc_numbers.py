"""Numbers quoted in README.md and docs/*.md come from the code or from a measurement file.

A passage of the docs that quotes measured or configured numbers is fenced by two invisible
HTML comments naming where they come from::

    <!-- numbers from: docs/measured/demo.json, python:posetransfer.reid.config:ReidConfig -->
    ... the table or paragraph ...
    <!-- /numbers -->

Sources: a JSON file (a measurement or a model card) or a recipe YAML
(``src/posetransfer/configs/*.yaml``), named by its path from the repository's root, whose
every number counts, at any depth; or ``python:MODULE:NAME`` (a constant, a dict, a dataclass,
whose field defaults count, or a function or other class, whose parameters' defaults count).
Every decimal number in the passage (``0.3125``, ``2.12x``, ``43.7``; not integers, which are
mostly counts and sizes the reader can check, nor version strings like ``0.10.21``) must equal
a source number rounded to the decimals shown, taken as it is, as a percentage (x100), for
seconds in minutes (/60), in thousandths (microseconds in ms) or in millions (parameters). A
measurement that is redone changes the file, and this test then names every passage whose
numbers the new file no longer bears out.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OPEN = re.compile(r"<!--\s*numbers from:\s*(.+?)\s*-->")
CLOSE = re.compile(r"<!--\s*/numbers\s*-->")
# A decimal number not part of a version string (0.10.21) or of a word (v1.5, fp16).
DECIMAL = re.compile(r"(?<![\w.])(\d+\.\d+)(?![\w.]*\d)")
SCALES = (1.0, 100.0, 1 / 60, 1e-3, 1e-6)  # as is, %, s in min, us in ms, millions


def _numbers(value: object) -> list[float]:
    """Every number in a JSON or YAML value or a Python object, at any depth."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)] if math.isfinite(value) else []
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list | tuple):
        return [n for v in value for n in _numbers(v)]
    if dataclasses.is_dataclass(value):
        fields = dataclasses.fields(value)
        if isinstance(value, type):  # the class: its defaults
            return [n for f in fields for n in _numbers(_default(f))]
        return [n for f in fields for n in _numbers(getattr(value, f.name))]
    if inspect.isfunction(value) or inspect.isclass(value):  # its parameters' defaults
        parameters = inspect.signature(value).parameters.values()
        return [n for p in parameters if p.default is not p.empty for n in _numbers(p.default)]
    return []


def _default(f: dataclasses.Field) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def source_numbers(spec: str) -> list[float]:
    """The numbers of one source named in a passage's opening comment."""
    if spec.startswith("python:"):
        _, module, name = spec.split(":")
        return _numbers(getattr(importlib.import_module(module), name))
    path = REPO / spec
    assert path.is_file(), f"{spec}: no such measurement file"
    if path.suffix in (".yaml", ".yml"):
        return _numbers(yaml.safe_load(path.read_text()))
    return _numbers(json.loads(path.read_text()))


def borne_out(token: str, numbers: list[float]) -> bool:
    """Does some source number, scaled, round to `token` at its decimals?"""
    decimals = len(token.split(".")[1])
    want = float(token)
    tolerance = 0.5 * 10**-decimals + 1e-9
    return any(abs(n * scale - want) <= tolerance for n in numbers for scale in SCALES)


def passages() -> list[tuple[str, int, list[str], str]]:
    """(document, line, sources, text) of every fenced passage in the docs."""
    found = []
    for doc in DOCUMENTS:
        text = doc.read_text()
        for opening in OPEN.finditer(text):
            closing = CLOSE.search(text, opening.end())
            line = text.count("\n", 0, opening.start()) + 1
            name = doc.relative_to(REPO).as_posix()
            assert closing, f"{name}:{line}: <!-- numbers from: --> without <!-- /numbers -->"
            sources = [s.strip() for s in opening.group(1).split(",")]
            found.append((name, line, sources, text[opening.end() : closing.start()]))
    return found


PASSAGES = passages()


@pytest.mark.parametrize(
    ("document", "line", "sources", "text"),
    PASSAGES,
    ids=[f"{doc}:{line}" for doc, line, _, _ in PASSAGES],
)
def test_every_quoted_number_comes_from_its_source(
    document: str, line: int, sources: list[str], text: str
) -> None:
    numbers = [n for spec in sources for n in source_numbers(spec)]
    tokens = DECIMAL.findall(text)
    assert tokens, f"{document}:{line}: a numbers passage without a decimal number"
    unsupported = sorted({t for t in tokens if not borne_out(t, numbers)}, key=text.index)
    assert not unsupported, (
        f"{document}:{line}: {', '.join(unsupported)} not found in {', '.join(sources)} "
        "(redo the measurement or correct the docs)"
    )


def test_the_checker_catches_a_number_typed_by_hand() -> None:
    numbers = [0.31249, 215.3, 0.437]
    assert borne_out("0.3125", numbers)
    assert borne_out("43.7", numbers)  # a percentage
    assert borne_out("3.6", numbers)  # 215.3 s in minutes
    assert not borne_out("0.3126", numbers)
    assert not borne_out("216.0", numbers)
    assert DECIMAL.findall("torch 2.14.1, fp16, v1.5, 0.083 s, 2.12x") == ["0.083", "2.12"]


def test_recipes_and_signatures_are_sources() -> None:
    assert 0.1 in source_numbers("src/posetransfer/configs/synthetic_gan.yaml")  # loss.lambda_gan
    assert 0.5 in source_numbers("python:posetransfer.models.apatn:APATN")  # dropout=0.5
    assert 6.0 in source_numbers("python:posetransfer.analysis.attention:load_pair")  # sigma


def test_the_key_passages_are_checked() -> None:
    """The numbers a reader sees first are among the checked ones."""
    checked = {(doc, tuple(sources)) for doc, _, sources, _ in PASSAGES}
    docs = {doc for doc, _ in checked}
    assert "README.md" in docs
    assert any(any("card.json" in source for source in s) for _, s in checked)
    assert any("docs/measured/demo.json" in s for _, s in checked)
