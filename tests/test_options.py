"""Each command's options are declared once, in frozen dataclasses; its flags derive from them."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json

import pytest

from posetransfer import cli
from posetransfer.commands import COMMANDS, command_module
from posetransfer.commands.options import parser_fields
from posetransfer.config import CONFIG_DIR
from posetransfer.core.options import from_dict, option_of
from posetransfer.errors import InputError


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def _parsers() -> dict[str, argparse.ArgumentParser]:
    return _subparsers(cli.build_parser())


def _expected(classes) -> dict[str, tuple]:
    """Field name -> (default, choices) over the option dataclasses."""
    out = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            o = option_of(f)
            default = None if f.default is dataclasses.MISSING else f.default
            out[f.name] = (default, o.choice_list())
    return out


def _check(parser: argparse.ArgumentParser, classes) -> None:
    expected = _expected(classes)
    assert parser_fields(parser) == set(expected)
    for a in parser._actions:
        if a.dest not in expected:
            continue
        default, choices = expected[a.dest]
        got = tuple(a.default) if isinstance(a.default, list) else a.default
        assert got == default, a.dest
        assert (tuple(a.choices) if a.choices is not None else None) == choices, a.dest


@pytest.mark.parametrize("name", COMMANDS)
def test_every_flag_is_a_field_of_the_command_options(name):
    module = importlib.import_module(command_module(name))
    parser = _parsers()[name]
    options = module.OPTIONS
    if isinstance(options, dict):  # actions: reid augment|train|..., pretrained list|export
        actions = _subparsers(parser)
        assert set(actions) == set(options)
        for action, classes in options.items():
            _check(actions[action], classes)
    else:
        _check(parser, options)


def test_unknown_keys_are_refused():
    from posetransfer.commands.generate import GenerateOptions
    from posetransfer.motion.animate import AnimateOptions
    from posetransfer.reid.config import ReidConfig

    with pytest.raises(InputError, match="unknown key retargetting of AnimateOptions"):
        from_dict(AnimateOptions, {"retargetting": "bones"})
    with pytest.raises(InputError, match="config: unknown keys color, size of ReidConfig"):
        ReidConfig.from_dict({"steps": 3, "size": 1, "color": 2})
    assert ReidConfig.from_dict({"steps": 3}).steps == 3
    with pytest.raises(InputError, match="unknown key batch of GenerateOptions"):
        from_dict(GenerateOptions, {"dataset": "d", "out": "o", "batch": 2})


def test_choices_come_from_their_owners():
    from posetransfer.motion.animate import LAYOUTS, AnimateOptions
    from posetransfer.motion.retarget import MODES

    parser = _parsers()["animate"]
    choices = {a.dest: a.choices for a in parser._actions}
    assert tuple(choices["retarget"]) == MODES and tuple(choices["layout"]) == LAYOUTS
    assert AnimateOptions().retarget in MODES


def test_export_and_pretrained_choices_come_from_their_owners(capsys):
    from posetransfer.checkpoint.bundled import PRETRAINED
    from posetransfer.export import FORMATS

    parsers = _parsers()
    export = {a.dest: a for a in parsers["export"]._actions}
    assert tuple(export["format"].choices) == FORMATS
    name = {a.dest: a for a in _subparsers(parsers["pretrained"])["export"]._actions}["name"]
    assert tuple(name.choices) == PRETRAINED
    argv = ["export", "--checkpoint", "c", "--format", "tflite", "--out", "m.onnx"]
    with pytest.raises(SystemExit):
        cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "posetransfer export: error: argument --format: invalid choice: 'tflite' "
        "(choose from 'onnx', 'openvino')"
    )


def test_export_calls_the_library_with_its_options(tmp_path, monkeypatch, capsys):
    import posetransfer.export
    import posetransfer.export.check

    calls = {}
    out = tmp_path / "m.onnx"

    def export_generator(*args, **kw):
        calls["export"] = (args, kw)
        out.write_bytes(b"x" * 2_000_000)
        return out

    def parity(checkpoint, path, pairs_root=None):
        calls["parity"] = (checkpoint, path, pairs_root)
        return {"batch": 64, "psnr_db": 33.8}

    monkeypatch.setattr(posetransfer.export, "export_generator", export_generator)
    monkeypatch.setattr(posetransfer.export.check, "parity", parity)
    argv = ["export", "--checkpoint", "c", "--format", "onnx", "--out", str(out), "--int8"]
    assert cli.main([*argv, "--batch-size", "8", "--calibration", "data/market"]) == 0
    args, kw = calls["export"]
    assert args == ("c", "onnx", str(out), 8)
    assert kw == {
        "int8": True,
        "calibration": "data/market",
        "calibration_pairs": 256,
        "progress": True,
    }
    assert calls["parity"] == ("c", out, "data/market")
    assert capsys.readouterr().out == (
        f"wrote {out} (2.0 MB)\nint8 against torch fp32 on 64 test pairs: PSNR 33.8 dB\n"
    )
    calls.clear()
    assert cli.main([*argv[:-1], "--no-check"]) == 0
    assert calls["export"][1]["int8"] is False and "parity" not in calls


def test_pretrained_export_errors_name_the_command_and_its_flags(capsys):
    # --command is the training command line: it must not replace the subcommand's name
    argv = ["pretrained", "export", "--name", "synthetic-patn", "--checkpoint", "run"]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == (
        "posetransfer pretrained: error: --checkpoint needs --command: the command line that "
        "trained the run\n"
    )
    with pytest.raises(SystemExit):
        cli.main(["pretrained", "export", "--name", "mine", "--command", "x"])
    assert "argument --name: invalid choice: 'mine'" in capsys.readouterr().err


def test_train_help_lists_every_shipped_config(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    shipped = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert len(shipped) == 7
    assert f"Shipped configs: {', '.join(shipped)}." in out


def test_train_no_progress_sets_train_progress(capsys):
    assert cli.main(["train", "--no-progress", "--print-config"]) == 0
    assert "progress: false" in capsys.readouterr().out
    assert cli.main(["train", "--no-progress", "--train.progress", "true", "--print-config"]) == 0
    assert "progress: true" in capsys.readouterr().out


def test_animation_report_json_keeps_its_keys_in_order():
    from posetransfer.motion.animate import AnimationReport

    names = [f.name for f in dataclasses.fields(AnimationReport)]
    r = AnimationReport(**{n: 0 for n in names[: names.index("out")]})
    assert list(r.to_dict()) == [*names[: names.index("out")], "frames_written", "complete"]
    done = dataclasses.replace(r, out="o.mp4", frames_written=3, size=(4, 2), seconds_per_frame=1)
    d = done.to_dict()
    assert d["size"] == [4, 2] and d["frames_written"] == 3 and "encoded_size" not in d


def test_report_dict_is_its_fields_in_order_and_items_still_work():
    from posetransfer.core.report import Report

    @dataclasses.dataclass(frozen=True)
    class Done(Report):
        name: str
        size: tuple[int, int]
        parts: dict

    r = Done("a", (4, 2), {"b": (1, 2)})
    assert r.to_dict() == {"name": "a", "size": [4, 2], "parts": {"b": [1, 2]}}
    assert list(r.to_dict()) == ["name", "size", "parts"]
    with pytest.deprecated_call(match=r"Done\['size'\] is deprecated; use the attribute \.size"):
        assert r["size"] == (4, 2)
    with pytest.raises(KeyError):
        r["to_dict"]


def test_commands_call_the_library_with_their_options(tmp_path, monkeypatch, capsys):
    import posetransfer.data.pairs
    import posetransfer.metrics.runner
    from posetransfer.commands.pairs import PairsOptions

    calls = {}

    class Summary:
        def summary(self):
            return "done"

    def make_pairs_file(annotations, out, images_dir, max_pairs, seed, require_torso):
        calls["pairs"] = PairsOptions(annotations, out, images_dir, max_pairs, seed, require_torso)
        return Summary()

    monkeypatch.setattr(posetransfer.data.pairs, "make_pairs_file", make_pairs_file)
    argv = ["pairs", "--annotations", "a.csv", "--out", "p.csv", "--max-pairs", "3"]
    assert cli.main([*argv, "--no-torso-filter"]) == 0
    assert calls["pairs"] == PairsOptions("a.csv", "p.csv", max_pairs=3, torso_filter=False)
    assert capsys.readouterr().out == "done\n"

    report = posetransfer.metrics.runner.EvaluationReport(
        "paper",
        "none",
        ["l1"],
        "g",
        "r",
        "p.csv",
        2,
        0,
        {},
        {"l1": {"unavailable": "x"}},
        "cpu",
        0.5,
    )

    def evaluate(*args, **kw):
        calls["evaluate"] = (args, kw)
        return report

    monkeypatch.setattr(posetransfer.metrics.runner, "evaluate", evaluate)
    out = tmp_path / "e.json"
    argv = ["evaluate", "--generated", "g", "--dataset", "d", "--pairs", "p.csv", "--out"]
    assert cli.main([*argv, str(out), "--protocol", "paper", "--no-progress"]) == 1  # none done
    args, kw = calls["evaluate"]
    assert args == ("g", "d", None, "p.csv") and kw["protocol"] == "paper"
    assert kw["progress"] is False and kw["weights"] == {} and kw["batch_size"] == 16
    assert json.loads(out.read_text()) == report.to_dict()
