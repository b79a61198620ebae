"""The shell examples of README.md and docs/*.md, found with sybil's Markdown lexers, and how
tests/test_docs.py runs them.

A shell example is a fenced block tagged `bash`/`sh`/`shell`, or an untagged one whose every
command starts with `posetransfer`. Each document runs in its own scratch folder, its blocks in
the order a reader meets them (later blocks see earlier blocks' files), with .venv/bin first on
PATH, under `bash -e -o pipefail`: every command must succeed.

Two invisible HTML comments just before a block say how it runs:

- `<!-- needs: market-1501, gpu -->`: what the block needs beyond a fresh install (the kinds in
  NEEDS below). Without it the block is skipped, naming what is missing. Data you downloaded
  (Market-1501, DeepFashion, the authors' .pth) counts as present when $POSETRANSFER_DOCS_DATA
  names a folder holding it; that folder's entries are linked into every scratch folder, so the
  examples find them under the names they use.
- `<!-- smoke: train --config synthetic => --train.iterations 2; synthetic => --test-ids 2 -->`:
  the size the suite runs the block at. For each `COMMAND => ARGS` clause, ARGS is appended to
  every `posetransfer COMMAND...` in the block (a later flag overrides an earlier one). Set
  POSETRANSFER_DOCS_FULL=1 to run the blocks at their written size instead.

sybil's own pytest collector is not used: it only sees files pytest walks (the docs lie outside
testpaths) and runs every block in the same folder, with no notion of a block's needs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sybil import Document
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer, RawFencedCodeBlockLexer

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELLS = {"bash", "sh", "shell", "console"}
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


def _data(name: str) -> str | None:
    """None when $POSETRANSFER_DOCS_DATA holds `name`, else why not."""
    root = os.environ.get("POSETRANSFER_DOCS_DATA")
    if root and (Path(root) / name).exists():
        return None
    return f"{name} in $POSETRANSFER_DOCS_DATA"


def _torch_cache(name: str) -> str | None:
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / name
    return None if path.is_file() else str(path)


def _gpu() -> str | None:
    import torch

    return None if torch.cuda.is_available() else "a CUDA device"


def _env(var: str, what: str) -> str | None:
    return None if os.environ.get(var) == "1" else f"{what} ({var}=1)"


def _opencv_doc() -> str | None:
    return None if OPENCV_DATA.is_dir() else f"Debian's opencv-doc ({OPENCV_DATA})"


# Each kind of need: what it is, and a check returning None when it is present or what is
# missing. Any other need is a file or folder the reader brings (it has a "/" or a "."): a name
# looked up in $POSETRANSFER_DOCS_DATA, or a path from ~ or /, looked up as written.
NEEDS = {
    "gpu": ("a CUDA GPU", _gpu),
    "vgg19": ("torchvision's ImageNet VGG19", lambda: _torch_cache("vgg19-dcbb9e9d.pth")),
    "resnet50": ("torchvision's ImageNet ResNet-50", lambda: _torch_cache("resnet50-0676ba61.pth")),
    "photos": ("your photos and video (stand-ins: opencv-doc's)", _opencv_doc),
    "minutes": ("minutes of CPU", lambda: _env("POSETRANSFER_DOCS_SLOW", "minutes of CPU")),
    "network": ("the network", lambda: _env("POSETRANSFER_DOCS_NETWORK", "network access")),
    # Never run by this suite: they change the environment, serve until stopped, or need an
    # account; CI's `make test` is the checkout's own run, tests/test_app.py starts the app.
    "checkout": ("a clone of this repository", lambda: "a clone of the repository (CI's run)"),
    "install": ("pip installing into the environment", lambda: "pip install (make install)"),
    "server": ("a server that runs until Ctrl-C", lambda: "serves until stopped (test_app.py)"),
    "hub-account": ("a Hugging Face account", lambda: "a Hugging Face login (run by hand)"),
    "slurm": ("a SLURM cluster", lambda: None if shutil.which("sbatch") else "sbatch (SLURM)"),
}


def is_file_need(need: str) -> bool:
    return need not in NEEDS and ("/" in need or "." in need)


def _file(need: str) -> str | None:
    if need.startswith(("~", "/")):
        return None if Path(need).expanduser().exists() else need
    return _data(need)


# Stand-ins for the reader's own files, made in the scratch folder of a block that `needs: photos`.
PHOTOS = {
    "me.jpg": "messi5.jpg",
    "photo.jpg": "messi5.jpg",
    "person.jpg": "messi5.jpg",
    "other.jpg": "basketball1.png",
    "photos/messi5.jpg": "messi5.jpg",
    "photos/basketball1.png": "basketball1.png",
    "extra.jpg": "messi5.jpg",
    "dance.mp4": "vtest.avi",
}


@dataclass
class Block:
    """One shell example: where it is, its text, and its markers."""

    doc: Path
    line: int
    source: str
    needs: tuple[str, ...] = ()
    smoke: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"

    def missing(self) -> list[str]:
        """What this block needs that is not here."""
        out = []
        for need in self.needs:
            what = _file(need) if is_file_need(need) else NEEDS[need][1]()
            if what is not None:
                out.append(f"{need}: {what}")
        return out

    def script(self, full: bool = False) -> str:
        """The block's text with its smoke-size arguments appended (unless full)."""
        return self.source if full else apply_smoke(self.source, self.smoke)


@dataclass
class Marker:
    line: int
    kind: str
    arguments: str
    block: Block | None = field(default=None)


def _is_shell(language: str, source: str) -> bool:
    if language in SHELLS:
        return True
    if language:
        return False
    commands = [c for c in logical_commands(source) if c and not c.startswith("#")]
    return bool(commands) and all(c.startswith("posetransfer ") for c in commands)


def logical_commands(source: str) -> list[str]:
    """The block's commands, continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in source.splitlines():
        code = split_comment(line)[0].rstrip()
        if code.endswith("\\"):
            current += code[:-1].strip() + " "
            continue
        out.append((current + code.strip()).strip())
        current = ""
    return [c for c in out if c]


def split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of one shell line; the comment is a `#` after a blank, outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i], line[i:]
    return line, ""


def parse_smoke(arguments: str) -> tuple[tuple[str, str], ...]:
    clauses = []
    for clause in arguments.split(";"):
        command, sep, args = clause.partition("=>")
        if not sep or not command.strip() or not args.strip():
            raise ValueError(f"smoke clause {clause.strip()!r}: expected 'COMMAND => ARGS'")
        clauses.append((command.strip(), args.strip()))
    return tuple(clauses)


def _command_words(command: str) -> str:
    """`posetransfer ...` without leading VAR=value assignments, or ''."""
    words = command.split()
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[0]):
        words.pop(0)
    return " ".join(words[1:]) if words[:1] == ["posetransfer"] else ""


def apply_smoke(source: str, smoke: tuple[tuple[str, str], ...]) -> str:
    """Append each clause's ARGS to the commands it names (before a trailing comment)."""
    if not smoke:
        return source
    lines, out, current = source.splitlines(), [], []
    for line in lines:
        current.append(line)
        code, comment = split_comment(line)
        if code.rstrip().endswith("\\"):
            continue
        command = _command_words(" ".join(split_comment(x)[0].rstrip(" \\") for x in current))
        extra = [args for key, args in smoke if command == key or command.startswith(key + " ")]
        if extra:
            current[-1] = " ".join([code.rstrip(), *extra]) + (f"  {comment}" if comment else "")
        out.extend(current)
        current = []
    out.extend(current)
    return "\n".join(out) + "\n"


def parse(doc: Path) -> tuple[list[Block], list[Marker]]:
    """The shell blocks of one document, with the markers that precede them."""
    document = Document(doc.read_text(encoding="utf-8"), str(doc))
    fences = RawFencedCodeBlockLexer(
        info_pattern=re.compile(r"(?P<language>[\w+-]*)[ \t]*$\n", re.MULTILINE)
    )
    comments = DirectiveInHTMLCommentLexer(directive="needs|smoke")
    events = []
    for region in fences(document):
        language = region.lexemes["language"]
        source = str(region.lexemes["source"])
        events.append((region.start, "fence", language, source))
    for region in comments(document):
        args = region.lexemes["arguments"] + str(region.lexemes["source"])
        events.append((region.start, "marker", region.lexemes["directive"], args.strip()))
    blocks, markers, pending = [], [], []
    for start, what, kind, text in sorted(events, key=lambda e: e[0]):
        line = document.text.count("\n", 0, start) + 1
        if what == "marker":
            pending.append(Marker(line, kind, text))
            continue
        if not _is_shell(kind, text):
            markers.extend(pending)  # left unattached: test_docs reports them
            pending = []
            continue
        block = Block(doc, line, text)
        for marker in pending:
            marker.block = block
            if marker.kind == "needs":
                block.needs += tuple(n.strip() for n in marker.arguments.split(",") if n.strip())
            else:
                block.smoke += parse_smoke(marker.arguments)
        markers.extend(pending)
        pending = []
        blocks.append(block)
    markers.extend(pending)
    return blocks, markers


def prepare_folder(folder: Path, block: Block) -> None:
    """Link the reader's downloads and make stand-ins for their photos, as the block needs."""
    root = os.environ.get("POSETRANSFER_DOCS_DATA")
    if root and Path(root).is_dir():
        for entry in Path(root).iterdir():
            target = folder / entry.name
            if not target.exists() and not target.is_symlink():
                target.symlink_to(entry)
    if "photos" in block.needs:
        for name, original in PHOTOS.items():
            target = folder / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(OPENCV_DATA / original, target)


def run_block(block: Block, folder: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run one block in `folder` with .venv/bin (this interpreter's bin) first on PATH."""
    import sys

    prepare_folder(folder, block)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    full = os.environ.get("POSETRANSFER_DOCS_FULL") == "1"
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.script(full)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
