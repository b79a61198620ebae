"""Numbers quoted in README.md and docs/*.md come from the code or from a measurement file.

Every decimal number in the docs (``0.3125``, ``2.12x``, ``43.7``; not integers, which are
mostly counts and sizes the reader can check, nor version strings like ``0.10.21``) outside a
fenced code block (```` ``` ````: shell examples, sample output) stands in a passage fenced by
two invisible HTML comments that say where its numbers come from. There are three kinds.

1. From a source, checked against it::

    <!-- numbers from: docs/measured/demo.json, python:posetransfer.reid.config:ReidConfig -->
    ... the table or paragraph ...
    <!-- /numbers -->

   Sources: a JSON file (a measurement or a model card) or a recipe YAML
   (``src/posetransfer/configs/*.yaml``), named by its path from the repository's root, whose
   every number counts, at any depth; or ``python:MODULE:NAME`` (a constant, a dict, a
   dataclass, whose field defaults count, or a function or other class, whose parameters'
   defaults count). Every decimal number in the passage must equal a source number rounded to
   the decimals shown, taken as it is, as a percentage (x100), for seconds in minutes (/60), in
   thousandths (microseconds in ms) or in millions (parameters). A measurement that is redone
   changes the file, and this test then names every passage whose numbers the new file no
   longer bears out.

2. A dated past measurement that is not measured again::

    <!-- numbers: history 1a2b3c4 -->
    ... measured at commit 1a2b3c4 ...
    <!-- /numbers -->

   ``1a2b3c4`` must be a commit of this repository, and every decimal number of the passage
   must already stand in that commit's version of the same document: the numbers were written
   then, with the measurement, and have not been retyped since. (Without git or without that
   history, a shallow clone, the commit check is skipped and says why.)

3. Numbers that are no measurement at all (a paper's results quoted from the paper, a version
   such as TensorFlow 1.4, an illustrative argument, a target set by an issue), with the
   reason, which must not be empty::

    <!-- numbers: not measured: the paper's Table 2 -->
    ... the passage ...
    <!-- /numbers -->

   This kind is kept rare; nothing checks its numbers but the reason a reader sees in the
   source.

A decimal number outside code blocks and outside these passages fails
``test_no_decimal_number_is_unfenced``, so none can be added silently.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OPEN = re.compile(r"<!--\s*numbers from:\s*(.+?)\s*-->")
HISTORY = re.compile(r"<!--\s*numbers:\s*history\s+([0-9a-fA-F]{7,40})\s*-->")
NOT_MEASURED = re.compile(r"<!--\s*numbers:\s*not measured\b\s*(?::(.*?))?-->", re.DOTALL)
ANY_OPENING = re.compile(r"<!--\s*numbers\b.*?-->", re.DOTALL)  # any of the three, or a typo
CLOSE = re.compile(r"<!--\s*/numbers\s*-->")
CODE_FENCE = re.compile(r"^[ \t]*```", re.MULTILINE)
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


def code_blocks(text: str) -> list[tuple[int, int]]:
    """(start, end) of every fenced code block (``` ... ```) in a Markdown text."""
    marks = [m.start() for m in CODE_FENCE.finditer(text)]
    return [(a, b) for a, b in zip(marks[::2], marks[1::2], strict=False)]


def _inside(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= position < b for a, b in spans)


def fences(name: str, text: str) -> list[tuple[str, str, int, int, int, str]]:
    """(kind, argument, start, end, line, body) of every numbers passage in one document.

    kind is "from" (argument: its sources), "history" (argument: the commit) or
    "not measured" (argument: the reason). Markers inside code blocks do not count.
    """
    code = code_blocks(text)
    found = []
    position = 0
    for opening in ANY_OPENING.finditer(text):
        if opening.start() < position or _inside(opening.start(), code):
            continue
        line = text.count("\n", 0, opening.start()) + 1
        marker = opening.group(0)
        if m := OPEN.fullmatch(marker):
            kind, argument = "from", m.group(1)
        elif m := HISTORY.fullmatch(marker):
            kind, argument = "history", m.group(1)
        elif m := NOT_MEASURED.fullmatch(marker):
            kind, argument = "not measured", (m.group(1) or "").strip()
        else:
            raise AssertionError(
                f"{name}:{line}: {marker} is none of <!-- numbers from: SOURCES -->, "
                "<!-- numbers: history COMMIT -->, <!-- numbers: not measured: REASON -->"
            )
        closing = CLOSE.search(text, opening.end())
        assert closing, f"{name}:{line}: {marker} without <!-- /numbers -->"
        nested = ANY_OPENING.search(text, opening.end(), closing.start())
        assert not nested, f"{name}:{line}: a numbers passage opened inside another"
        body = text[opening.end() : closing.start()]
        found.append((kind, argument, opening.start(), closing.end(), line, body))
        position = closing.end()
    return found


def unfenced(name: str, text: str) -> list[tuple[int, str]]:
    """(line, number) of every decimal number outside code blocks and numbers passages."""
    covered = code_blocks(text) + [(a, b) for _, _, a, b, _, _ in fences(name, text)]
    return [
        (text.count("\n", 0, m.start()) + 1, m.group(1))
        for m in DECIMAL.finditer(text)
        if not _inside(m.start(), covered)
    ]


def _all_fences() -> list[tuple[str, str, str, int, str]]:
    """(document, kind, argument, line, body) of every numbers passage in the docs."""
    found = []
    for doc in DOCUMENTS:
        name = doc.relative_to(REPO).as_posix()
        for kind, argument, _, _, line, body in fences(name, doc.read_text()):
            found.append((name, kind, argument, line, body))
    return found


FENCES = _all_fences()


def passages() -> list[tuple[str, int, list[str], str]]:
    """(document, line, sources, text) of every passage fenced by its sources."""
    return [
        (name, line, [s.strip() for s in argument.split(",")], body)
        for name, kind, argument, line, body in FENCES
        if kind == "from"
    ]


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


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_no_decimal_number_is_unfenced(document: Path) -> None:
    """A number outside code blocks says where it comes from (one of the three fences)."""
    name = document.relative_to(REPO).as_posix()
    loose = unfenced(name, document.read_text())
    assert not loose, (
        f"{name}: decimal numbers outside any numbers passage: "
        + ", ".join(f"line {line}: {token}" for line, token in loose)
        + " (fence them: <!-- numbers from: SOURCE -->, <!-- numbers: history COMMIT -->"
        " or <!-- numbers: not measured: REASON -->, closed by <!-- /numbers -->)"
    )


HISTORIES = [(d, a, line, b) for d, kind, a, line, b in FENCES if kind == "history"]


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    ("document", "commit", "line", "text"),
    HISTORIES,
    ids=[f"{doc}:{line}" for doc, _, line, _ in HISTORIES],
)
def test_a_past_measurement_was_written_at_its_commit(
    document: str, commit: str, line: int, text: str
) -> None:
    tokens = DECIMAL.findall(text)
    assert tokens, f"{document}:{line}: a history passage without a decimal number"
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the commit of a past measurement cannot be checked")
    if _git("rev-parse", "--git-dir").returncode != 0:
        pytest.skip("not a git checkout: the commit of a past measurement cannot be checked")
    if _git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        if _git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
            pytest.skip(f"shallow clone: commit {commit} is not in the fetched history")
        pytest.fail(f"{document}:{line}: {commit} is not a commit of this repository")
    then = _git("show", f"{commit}:{document}")
    assert then.returncode == 0, f"{document}:{line}: {document} did not exist at {commit}"
    written = set(DECIMAL.findall(then.stdout))
    retyped = sorted({t for t in tokens if t not in written}, key=text.index)
    assert not retyped, (
        f"{document}:{line}: {', '.join(retyped)} not in {document} at {commit} "
        "(a past measurement names the commit that wrote its numbers)"
    )


NOT_MEASURED_PASSAGES = [(d, a, line) for d, kind, a, line, _ in FENCES if kind == "not measured"]


@pytest.mark.parametrize(
    ("document", "reason", "line"),
    NOT_MEASURED_PASSAGES,
    ids=[f"{doc}:{line}" for doc, _, line in NOT_MEASURED_PASSAGES],
)
def test_a_number_not_measured_says_why(document: str, reason: str, line: int) -> None:
    assert reason, (
        f"{document}:{line}: <!-- numbers: not measured --> needs a reason after a colon, "
        "e.g. <!-- numbers: not measured: the paper's Table 2 -->"
    )


def test_the_fence_check_sees_every_kind() -> None:
    text = "\n".join(
        [
            "Loose 1.5 here.",
            "```",
            "$ posetransfer train --lr 0.0002",
            "<!-- numbers: bogus -->",
            "```",
            "<!-- numbers from: docs/measured/demo.json -->",
            "Checked 2.5.",
            "<!-- /numbers -->",
            "<!-- numbers: history abc1234 -->",
            "Past 3.5.",
            "<!-- /numbers -->",
            "<!-- numbers: not measured: the paper's Table 2 -->",
            "Paper 4.5.",
            "<!-- /numbers -->",
            "<!-- numbers: not measured -->",
            "No reason 5.5.",
            "<!-- /numbers -->",
            "Loose 6.5 again.",
        ]
    )
    assert unfenced("x.md", text) == [(1, "1.5"), (18, "6.5")]
    kinds = [(kind, argument) for kind, argument, *_ in fences("x.md", text)]
    assert kinds == [
        ("from", "docs/measured/demo.json"),
        ("history", "abc1234"),
        ("not measured", "the paper's Table 2"),
        ("not measured", ""),
    ]
    with pytest.raises(AssertionError, match="none of"):
        fences("x.md", "<!-- numbers: measured yesterday -->\n1.5\n<!-- /numbers -->")
    with pytest.raises(AssertionError, match="without"):
        fences("x.md", "<!-- numbers: history abc1234 -->\n1.5\n")
