"""The package's structure: an ordered stack of layers whose imports only point down.

Every internal import counts: module level, inside functions and under ``TYPE_CHECKING``. Lazy
imports are for optional extras (mediapipe, gradio, torchreid, PyAV, onnx), never a way around
this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "posetransfer"

LAYERS: tuple[str, ...] = (
    "errors",  # InputError and InputWarning: what every layer raises
    "core",  # files, devices, precisions, the package version, log noise
    "pose",  # the 18 joints, heatmaps, body masks, file formats, drawing
    "config",  # frozen dataclass configs, YAML and overrides
    "data",  # datasets, pairs, preparation, synthetic people, Market-1501 names
    "models",  # generators, discriminators, losses, the fast torch inference form
    "checkpoint",  # the checkpoint format, reading and writing, the bundled models
    "runtime",  # load_generator: any model spec, on any backend
    "keypoints",  # detection, framing, target poses, named poses
    "train",  # the training loop
    "metrics",  # the paper's metrics and today's, the evaluation runner
    "generate",  # pipelines: a pairs file through a generator
    "motion",  # a driving video through a generator
    "photos",  # PoseTransfer: your own photos
    "reid",  # re-ID augmentation, training and the study
    "pretrained",  # a run made into a bundled model, measured
    "export",  # ONNX / OpenVINO / int8 files, checked
    "analysis",  # attention maps, the benchmark, the path comparison
    "experiments",  # the paper's tables and figures, one command each
    "userstudy",  # Table 3's real-or-generated server and its report
    "app",  # applications: the web app and its tabs
    "demo",  # the demo
    "commands",  # one module per subcommand
    "cli",  # the `posetransfer` command
    "",  # the package's __init__: the public API
)
"""Top-level units of the package, from the bottom: each imports only those before it."""


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def internal_imports(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, posetransfer module) of every import in ``path``, wherever it stands."""
    module = _module_name(path, package)
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    modules = {_module_name(p, package) for p in package.rglob("*.py")}
    out = []
    for line, name in found:
        if name.split(".")[0] != "posetransfer":
            continue
        while name not in modules and "." in name:  # `from pkg import attribute` imports pkg
            name = name.rpartition(".")[0]
        out.append((line, name))
    return out


def upward_imports(package: Path = PACKAGE) -> list[str]:
    """``file:line: unit -> unit`` for every import that points up the stack (or off it)."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        unit = _unit(_module_name(path, package))
        for line, name in internal_imports(path, package):
            target = _unit(name)
            where = f"{path.relative_to(package)}:{line}"
            if unit not in LAYERS or target not in LAYERS:
                missing = unit if unit not in LAYERS else target
                problems.append(f"{where}: {missing!r} is in no layer of LAYERS")
            elif LAYERS.index(target) > LAYERS.index(unit):
                problems.append(f"{where}: {unit or 'posetransfer'} imports {name} (a layer above)")
    return problems


def test_every_top_level_unit_has_a_layer():
    units = {_unit(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units <= set(LAYERS), f"not in LAYERS: {sorted(units - set(LAYERS))}"


def test_imports_only_point_down():
    problems = upward_imports()
    assert not problems, "imports up the stack of layers:\n" + "\n".join(problems)


def test_an_upward_import_is_caught_with_its_file_and_line(tmp_path):
    """The check itself: a function-local import from data up to metrics fails, named."""
    fake = tmp_path / "posetransfer"
    (fake / "data").mkdir(parents=True)
    (fake / "metrics").mkdir()
    (fake / "core").mkdir()
    for name in ("__init__.py", "core/__init__.py", "metrics/image.py"):
        (fake / name).write_text("")
    (fake / "metrics" / "__init__.py").write_text("from posetransfer.data import x\n")
    (fake / "data" / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    import posetransfer.core\n\n"
        "def f():\n    from posetransfer.metrics import image\n"
    )
    assert upward_imports(fake) == [
        "data/__init__.py:7: data imports posetransfer.metrics.image (a layer above)"
    ]


@pytest.mark.parametrize(
    "source, module",
    [
        ("from . import blocks", "blocks"),
        ("from .blocks import PATB", "blocks"),
        ("from .. import pose", "pose"),
    ],
)
def test_relative_imports_resolve_to_their_module(tmp_path, source, module):
    fake = tmp_path / "posetransfer"
    for name in ("models/patn.py", "models/blocks.py", "models/__init__.py", "pose/__init__.py"):
        (fake / name).parent.mkdir(parents=True, exist_ok=True)
        (fake / name).write_text("")
    (fake / "models" / "patn.py").write_text(source + "\n")
    expected = "posetransfer.pose" if module == "pose" else f"posetransfer.models.{module}"
    assert internal_imports(fake / "models" / "patn.py", fake) == [(1, expected)]
