"""The `posetransfer` command as a whole: every subcommand is listed, and errors are one line."""

from __future__ import annotations

import pytest
import torch

from posetransfer import cli
from posetransfer.commands import COMMANDS


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_every_command_has_an_example_in_its_help(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        lines = capsys.readouterr().out.splitlines()
        examples = [ln for ln in lines if ln.lstrip().startswith(f"posetransfer {name}")]
        assert examples, f"`posetransfer {name} --help` shows no example command line"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_train_on_a_missing_cuda_device_is_one_line(tmp_path, capsys, tiny_root):
    from conftest import tiny_overrides

    overrides = tiny_overrides(tiny_root, tmp_path / "runs", **{"train.device": "cuda"})
    argv = ["train", "--config", "synthetic"]
    for o in overrides:
        key, value = o.split("=", 1)
        argv += [f"--{key}", value]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "posetransfer train: error: --train.device 'cuda': no CUDA device is "
        "available here; use 'cpu' or 'auto'"
    ]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
