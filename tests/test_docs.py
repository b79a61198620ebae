"""Every shell example of README.md and docs/*.md runs as written (or at the smoke size its
marker documents), document by document in a reader's order; see tests/docs_runner.py."""

from __future__ import annotations

import time

import pytest

from docs_runner import (
    DOCUMENTS,
    NEEDS,
    Block,
    apply_smoke,
    is_file_need,
    parse,
    parse_smoke,
    run_block,
)

PARSED = {doc: parse(doc) for doc in DOCUMENTS}
BLOCKS = [block for blocks, _ in PARSED.values() for block in blocks]


class Reader:
    """One scratch folder per document; runs each block once, earlier blocks first."""

    def __init__(self, tmp_path_factory):
        self.factory = tmp_path_factory
        self.folders = {}
        self.outcomes = {}  # block name -> "passed" | "skipped: ..." | "failed"

    def folder(self, block: Block):
        if block.doc not in self.folders:
            self.folders[block.doc] = self.factory.mktemp(block.doc.stem)
        return self.folders[block.doc]

    def run(self, block: Block) -> None:
        for earlier in PARSED[block.doc][0]:
            if earlier is block:
                break
            if earlier.name not in self.outcomes:
                self._run(earlier)
            if self.outcomes[earlier.name] == "failed":
                pytest.fail(f"an earlier example failed: {earlier.name}")
        self._run(block)
        outcome = self.outcomes[block.name]
        if outcome.startswith("skipped"):
            pytest.skip(outcome)
        if outcome != "passed":
            pytest.fail(outcome, pytrace=False)

    def _run(self, block: Block) -> None:
        missing = block.missing()
        if missing:
            self.outcomes[block.name] = "skipped: needs " + "; ".join(missing)
            return
        self.outcomes[block.name] = "failed"
        start = time.monotonic()
        done = run_block(block, self.folder(block))
        if done.returncode != 0:
            tail = (done.stdout[-3000:] + "\n" + done.stderr[-3000:]).strip()
            self.outcomes[block.name] = (
                f"{block.name} exited {done.returncode} after {time.monotonic() - start:.0f} s"
                f"\n--- script\n{block.script()}--- output (tail)\n{tail}"
            )
            return
        self.outcomes[block.name] = "passed"


@pytest.fixture(scope="session")
def reader(tmp_path_factory):
    return Reader(tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_example_runs(block, reader):
    reader.run(block)


def test_markers_are_well_formed():
    problems = []
    for doc, (_, markers) in PARSED.items():
        for marker in markers:
            where = f"{doc.name}:{marker.line}"
            if marker.block is None:
                problems.append(f"{where}: {marker.kind} marker not before a shell block")
            elif marker.kind == "needs":
                unknown = {n for n in marker.block.needs if n not in NEEDS and not is_file_need(n)}
                problems += [f"{where}: unknown need {u!r}" for u in sorted(unknown)]
            else:
                for command, _ in marker.block.smoke:
                    if f"posetransfer {command}" not in " ".join(marker.block.source.split()):
                        problems.append(f"{where}: smoke names {command!r}, not in the block")
    assert problems == []


def test_every_document_has_examples_found():
    assert {b.doc.name for b in BLOCKS} >= {"README.md", "apatn.md", "datasets.md", "reid.md"}


def test_smoke_appends_to_the_named_command_only():
    source = (
        "posetransfer synthetic --out d  # data\n"
        "posetransfer train --config synthetic \\\n    --data.root d   # train\n"
        "posetransfer train --train.resume runs/x\n"
    )
    smoke = parse_smoke("train --config synthetic => --train.iterations 2; synthetic => --x 1")
    assert apply_smoke(source, smoke) == (
        "posetransfer synthetic --out d --x 1  # data\n"
        "posetransfer train --config synthetic \\\n"
        "    --data.root d --train.iterations 2  # train\n"
        "posetransfer train --train.resume runs/x\n"
    )
