"""Error messages name only flags the command that prints them has.

Every `--flag` written in an InputError (or `parser.error`) message, and every `arg=`/`names=`
argument that `InputError.flag_message` turns into a flag, is checked against the parser of each
command that can raise it: what the command's module raises itself and what the library modules
it imports raise (function-local imports included).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
from functools import cache
from pathlib import Path

from posetransfer.cli import build_parser
from posetransfer.commands import COMMANDS, command_module

SRC = Path(__file__).resolve().parents[1] / "src" / "posetransfer"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_.-]*[a-z0-9]")
# Messages that write another command's flag on purpose, to say what to run next.
ELSEWHERE = re.compile(r"posetransfer [a-z]+(?: [a-z]+)? [^'\"]*$")


# Errors a command cannot reach: it calls the function with a fixed, valid value for that
# argument. (command, module, flag): why.
NOT_REACHED = {
    ("transfer", "photos/transfer.py", "--name"): "PoseTransfer.from_pretrained('synthetic-patn')",
    ("animate", "photos/transfer.py", "--name"): "PoseTransfer.from_pretrained('synthetic-patn')",
    ("app", "photos/transfer.py", "--name"): "PoseTransfer.from_pretrained('synthetic-patn')",
    ("attention", "runtime/load.py", "--backend"): "load_generator's default backend='torch'",
    ("attention", "runtime/load.py", "--compile"): "load_generator's default compile=False",
}


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    out = set()
    for action in parser._actions:
        out.update(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _flags(sub)
    return out


def command_flags() -> dict[str, set[str]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: _flags(p) for name, p in sub.choices.items()}


def _module_path(name: str) -> Path | None:
    parts = name.split(".")[1:]
    for path in (SRC.joinpath(*parts).with_suffix(".py"), SRC.joinpath(*parts, "__init__.py")):
        if path.is_file():
            return path
    return None


@cache
def _imports(path: Path) -> frozenset[Path]:
    """The package's modules `path` imports, anywhere in the file."""
    module = "posetransfer." + ".".join(path.relative_to(SRC).with_suffix("").parts)
    module = module.removesuffix(".__init__")
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rsplit(".", 1)[0]
                base = f"{pkg}.{base}" if base else pkg
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith("posetransfer") and (found := _module_path(name)):
                out.add(found)
    return frozenset(out)


def reachable(path: Path) -> set[Path]:
    """The command's module and the library modules it imports itself.

    Deeper modules are shared by many commands and name their own arguments; following every
    import would hold each command to every other command's flags.
    """
    return {path, *_imports(path)}


def _strings(node: ast.AST) -> list[str]:
    """The literal texts of a message expression; an f-string's fields read as `{}`."""
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)]
    if isinstance(node, ast.Constant):
        return [node.value] if isinstance(node.value, str) else []
    return [s for child in ast.iter_child_nodes(node) for s in _strings(child)]


def raised_flags(path: Path) -> list[tuple[int, str, str]]:
    """(line, flag, how) for each flag an error raised in `path` can print."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name not in ("InputError", "error") or not node.args:
            continue
        for text in _strings(node.args[0]):
            for match in FLAG.finditer(text):
                if not ELSEWHERE.search(text[: match.start()]):
                    out.append((node.lineno, match.group(), "in the message"))
        texts = _strings(node.args[0])
        for kw in node.keywords:
            values = []
            if kw.arg == "arg" and isinstance(kw.value, ast.Constant):
                # flag_message turns `arg` into a flag only where the message starts `arg=`
                if texts and texts[0].startswith(f"{kw.value.value}="):
                    values = [kw.value.value]
            elif kw.arg == "names" and isinstance(kw.value, (ast.Tuple, ast.List)):
                values = [e.value for e in kw.value.elts if isinstance(e, ast.Constant)]
            for v in values:
                if isinstance(v, str):
                    out.append((node.lineno, v, f"{kw.arg}={v!r}"))
    return out


def test_error_messages_name_only_the_commands_flags():
    flags = command_flags()
    problems = []
    for command in COMMANDS:
        own = flags[command]
        # the command's own translations of argument names (InputError.flag_message(_FLAGS))
        module = importlib.import_module(command_module(command))
        translate = getattr(module, "_FLAGS", {})
        for path in sorted(reachable(SRC / "commands" / f"{command.replace('-', '_')}.py")):
            for line, flag, how in raised_flags(path):
                if not flag.startswith("--"):
                    flag = translate.get(flag) or "--" + (
                        flag if "." in flag else flag.replace("_", "-")
                    )
                if flag in own or (flag.count(".") == 1 and "--config" in own):
                    continue  # a --section.field override of a config-driven command
                if (command, str(path.relative_to(SRC)), flag) in NOT_REACHED:
                    continue
                where = path.relative_to(SRC.parent)
                problems.append(f"{command}: {where}:{line}: {flag} ({how})")
    assert problems == [], "\n".join(problems)


def test_the_check_sees_a_wrong_flag(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(path):\n    raise InputError(f'{path}: give --annotations', arg='calibration')\n"
    )
    assert sorted(f for _, f, _ in raised_flags(bad)) == ["--annotations"]
    bad.write_text("raise InputError(f'calibration={p}: not found', arg='calibration')\n")
    assert [f for _, f, _ in raised_flags(bad)] == ["calibration"]
