"""Resuming safely: config changes, the run lock, damaged checkpoints, leftovers, signals."""

import errno
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_overrides
from posetransfer.checkpoint import CheckpointWarning, resolve_checkpoint
from posetransfer.checkpoint.format import write_manifest
from posetransfer.cli import main
from posetransfer.commands.train import EXAMPLE
from posetransfer.config import load_config
from posetransfer.core.files import PART_SUFFIX
from posetransfer.errors import InputError
from posetransfer.train import TrainingInterrupted, resume_config, train
from posetransfer.train.build import setup_processes
from posetransfer.train.resume import RESUMABLE_FIELDS
from posetransfer.train.run import RunLock

train_module = importlib.import_module("posetransfer.train")
build_module = importlib.import_module("posetransfer.train.build")


def run_of(tiny_root, runs, **extra):
    return train(load_config("synthetic", tiny_overrides(tiny_root, runs, **extra)))


def resume(target, *overrides):
    return train(*resume_config([f"train.resume={target}", *overrides]))


def cli_args(overrides):
    return [a for o in overrides for a in ("--" + o.split("=")[0], o.split("=", 1)[1])]


def stats_steps(run):
    return [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]


def test_resume_applies_a_changed_lr_and_records_it(tiny_root, tmp_path):
    run = run_of(
        tiny_root,
        tmp_path,
        **{"train.iterations": 2, "train.decay_start": 100, "train.log_every": 1},
    )
    lr = load_config(run / "config.yaml").train.lr
    assert resume(run, "train.lr=0.01", "train.iterations=4") == run
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [(r["step"], r["lr"]) for r in rows] == [(1, lr), (2, lr), (3, 0.01), (4, 0.01)]
    state = torch.load(resolve_checkpoint(run) / "train_state.pt", weights_only=True)
    assert all(g["lr"] == 0.01 for o in state["optimizers"].values() for g in o["param_groups"])
    history = [json.loads(line) for line in (run / "config-history.jsonl").read_text().splitlines()]
    assert history == [
        {
            "step": 2,
            "checkpoint": "step-0000002",
            "changed": {"train.iterations": [2, 4], "train.lr": [lr, 0.01]},
        }
    ]
    assert load_config(run / "config.yaml").train.lr == 0.01


@pytest.mark.parametrize(
    "override", ["train.batch_size=4", "model.ngf=8", "loss.lambda_l1=2", "train.seed=3"]
)
def test_resume_refuses_a_changed_fixed_field(tiny_root, tmp_path, override):
    run = run_of(tiny_root, tmp_path, **{"train.iterations": 1})
    saved_config = (run / "config.yaml").read_text()
    field = override.split("=")[0]
    with pytest.raises(InputError, match=f"{run}: cannot resume with a changed {field} "):
        resume(run, override, "train.iterations=2")
    assert (run / "config.yaml").read_text() == saved_config
    assert not (run / "config-history.jsonl").exists()
    assert resolve_checkpoint(run).name == "step-0000001"


def test_train_help_lists_exactly_the_resumable_fields():
    text = " ".join(EXAMPLE.split())
    listed = text.split("recorded in the run's config-history.jsonl: ")[1].split(". ")[0]
    assert listed.split(", ") == list(RESUMABLE_FIELDS)


def test_second_process_cannot_train_the_same_run(tiny_root, tmp_path):
    run = run_of(tiny_root, tmp_path, **{"train.iterations": 1})
    lock = RunLock(run)  # as another process training it holds the lock
    try:
        with pytest.raises(InputError, match=f"{run}: process {os.getpid()} is already training"):
            resume(run, "train.iterations=2")
    finally:
        lock.release()
    assert resolve_checkpoint(run).name == "step-0000001"
    resume(run, "train.iterations=2")
    assert resolve_checkpoint(run).name == "step-0000002"


@pytest.mark.slow
def test_lock_of_a_killed_process_is_released(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from posetransfer.train.run import RunLock
        lock = RunLock(Path({str(tmp_path)!r}))
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(InputError, match=f"process {proc.pid} is already training"):
            RunLock(tmp_path)
    finally:
        proc.kill()  # SIGKILL: the process gets no chance to clean up
        proc.wait()
    RunLock(tmp_path).release()


def test_sigterm_checkpoints_holds_the_lock_and_exits_143(tiny_root, tmp_path, monkeypatch):
    real_step = train_module.train_step
    seen = []

    def step_then_sigterm(t, batch, stats):
        real_step(t, batch, stats)
        if not seen:  # while training, the run is locked
            with pytest.raises(InputError, match="is already training this run"):
                RunLock(next(tmp_path.glob("0*")))
            os.kill(os.getpid(), signal.SIGTERM)
        seen.append(1)

    monkeypatch.setattr(train_module, "train_step", step_then_sigterm)
    over = tiny_overrides(tiny_root, tmp_path, **{"train.iterations": 100})
    args = [a for o in over for a in ("--" + o.split("=")[0], o.split("=", 1)[1])]
    assert main(["train", *args]) == 143
    run = next(tmp_path.glob("0*"))
    assert resolve_checkpoint(run).name == "step-0000001" and len(seen) == 1
    RunLock(run).release()  # released on the way out

    seen.clear()
    with pytest.raises(TrainingInterrupted) as e:  # the library raises, after its checkpoint
        resume(run)
    assert (e.value.step, e.value.exit_code, e.value.run_dir) == (2, 143, run)
    assert resolve_checkpoint(run).name == "step-0000002"


def test_resume_drops_stats_rows_after_the_checkpoint(tiny_root, tmp_path):
    run = run_of(tiny_root, tmp_path, **{"train.log_every": 1})
    assert stats_steps(run) == [1, 2, 3, 4]
    with open(run / "stats.jsonl", "a") as f:
        f.write('{"step": 5, "loss/G_l1"')  # a line torn by a killed process
    resume(run / "checkpoints" / "step-0000002")  # as if killed after logging step 4
    assert stats_steps(run) == [1, 2, 3, 4]


def test_resume_removes_orphan_checkpoint_folders(tiny_root, tmp_path):
    run = run_of(tiny_root, tmp_path, **{"train.iterations": 1})
    orphans = [
        run / "checkpoints" / ".step-0000002.tmp-999",
        run / "checkpoints" / ".step-0000001.old-998",
    ]
    for p in orphans:
        p.mkdir()
        (p / "generator.safetensors").write_bytes(b"partial")
    resume(run, "train.iterations=2")
    assert not any(p.exists() for p in orphans)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "latest",
        "step-0000001",
        "step-0000002",
    ]


def test_resume_falls_back_past_a_damaged_newest_checkpoint(tiny_root, tmp_path):
    run = run_of(tiny_root, tmp_path)
    newest = run / "checkpoints" / "step-0000004"
    weights = load_file(newest / "generator.safetensors")
    state = newest / "train_state.pt"
    state.write_bytes(state.read_bytes()[:100])  # truncated
    with pytest.warns(CheckpointWarning, match="skipped step-0000004 \\(train_state.pt is trunc"):
        resume(run)
    again = load_file(newest / "generator.safetensors")  # retrained exactly from step 2
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    torch.load(state, weights_only=True)


def test_resume_with_no_intact_checkpoint_is_a_clear_error(tiny_root, tmp_path):
    run = run_of(tiny_root, tmp_path, **{"train.iterations": 1})
    path = run / "checkpoints" / "step-0000001" / "generator.safetensors"
    path.write_bytes(path.read_bytes()[:-1])
    cfg = load_config("synthetic", tiny_overrides(tiny_root, tmp_path, **{"train.resume": run}))
    with pytest.raises(InputError, match="no intact checkpoint: step-0000001 \\(generator.safe"):
        train(cfg)


def test_train_state_loads_with_weights_only(tiny_root, tmp_path):
    over = {"loss.lambda_gan": 1, "loss.pool_size": 3, "model.ndf": 8, "train.iterations": 1}
    run = run_of(tiny_root, tmp_path, **{**over, "model.discriminator_blocks": 1})
    state = torch.load(resolve_checkpoint(run) / "train_state.pt", weights_only=True)
    rank = state["ranks"][0]
    assert set(rank["pools"]) == {"D_app", "D_shape"} and len(rank["pools"]["D_app"]["images"]) == 2
    assert set(rank["rng"]) == {"torch", "cuda", "python", "numpy"}


def test_checkpoint_of_the_earlier_layout_still_resumes(tiny_root, tmp_path):
    """No manifest, and NumPy's RNG state as the legacy tuple holding an array."""
    run = run_of(tiny_root, tmp_path, **{"train.iterations": 1})
    ckpt = resolve_checkpoint(run)
    state = torch.load(ckpt / "train_state.pt", weights_only=True)
    for rank in state["ranks"]:
        saved = rank["rng"]["numpy"]
        key = saved["key"].numpy().astype(np.uint32)
        rank["rng"]["numpy"] = ("MT19937", key, saved["pos"], saved["has_gauss"], saved["gauss"])
    torch.save(state, ckpt / "train_state.pt")
    (ckpt / "manifest.json").unlink()
    resume(run, "train.iterations=2")
    assert resolve_checkpoint(run).name == "step-0000002"


def test_full_disk_during_a_training_checkpoint_is_one_error(tiny_root, tmp_path, monkeypatch):
    real_step = train_module.train_step

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def step_then_fill_the_disk(t, batch, stats):
        real_step(t, batch, stats)
        if t.step == 2:  # steps 1..3 done: the disk is full when step 4 checkpoints
            monkeypatch.setattr(os, "fsync", no_space)

    monkeypatch.setattr(train_module, "train_step", step_then_fill_the_disk)
    with pytest.raises(InputError, match="generator.safetensors: no space left on the device"):
        run_of(tiny_root, tmp_path)
    monkeypatch.undo()
    ckpts = next(tmp_path.glob("0*")) / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step-0000002"]
    assert resolve_checkpoint(ckpts.parent).name == "step-0000002"


@pytest.mark.parametrize("target", ["a folder", "a checkpoint outside a run"])
def test_resume_from_outside_a_run_is_refused_and_touches_nothing(tiny_root, tmp_path, target):
    run = run_of(tiny_root, tmp_path / "runs", **{"train.iterations": 1})
    elsewhere = tmp_path / "elsewhere"
    path = elsewhere
    if target == "a folder":
        elsewhere.mkdir()
    else:
        path = elsewhere / "kept" / "step-0000001"
        shutil.copytree(resolve_checkpoint(run), path)
    stray = elsewhere / f".notes.txt.abc123{PART_SUFFIX}"
    stray.write_text("someone else's file")
    over = tiny_overrides(tiny_root, tmp_path / "runs", **{"train.resume": path})
    with pytest.raises(InputError, match=f"train.resume={path}: not a run directory") as e:
        train(load_config("synthetic", over))
    assert e.value.flag_message().startswith(f"--train.resume {path}: not a run directory")
    assert stray.read_text() == "someone else's file"
    assert not list(elsewhere.rglob(".train.lock"))


@pytest.mark.parametrize("saved", ["world recorded", "older state: one entry per rank"])
def test_resume_refuses_another_number_of_processes(tiny_root, tmp_path, saved):
    run = run_of(tiny_root, tmp_path, **{"train.iterations": 1})
    ckpt = resolve_checkpoint(run)
    state = torch.load(ckpt / "train_state.pt", weights_only=True)
    assert state["world"] == 1
    if saved == "world recorded":
        state["world"] = 2
    else:
        del state["world"]
        state["ranks"] = state["ranks"] * 2
    torch.save(state, ckpt / "train_state.pt")
    write_manifest(ckpt)
    with pytest.raises(InputError, match=f"{ckpt}: saved by 2 training processes, resumed by 1"):
        resume(run, "train.iterations=2")


def test_resume_checks_lock_and_config_before_building_anything(tiny_root, tmp_path, monkeypatch):
    run = run_of(tiny_root, tmp_path, **{"train.iterations": 1})

    def no_dataset(*args, **kwargs):
        raise AssertionError("a dataset was built before the run was checked")

    monkeypatch.setattr(build_module, "dataset_from_config", no_dataset)
    lock = RunLock(run)  # as another process training it holds the lock
    try:
        with pytest.raises(InputError, match="is already training this run"):
            resume(run, "train.iterations=2")
    finally:
        lock.release()
    with pytest.raises(InputError, match="cannot resume with a changed model.ngf"):
        resume(run, "train.iterations=2", "model.ngf=8")


def test_resume_continues_from_the_checkpoint_its_config_came_from(tiny_root, tmp_path):
    run = run_of(tiny_root, tmp_path)
    cfg, ckpt = resume_config([f"train.resume={run}", "train.iterations=6"])  # step-4's config
    resume(run, "train.iterations=6", "train.lr=0.01")  # meanwhile another process trains on
    assert train(cfg, ckpt) == run
    history = [json.loads(line) for line in (run / "config-history.jsonl").read_text().splitlines()]
    assert history == [
        {"step": 4, "checkpoint": "step-0000004", "changed": {"train.iterations": [4, 6]}}
    ]
    assert load_config(run / "config.yaml").train.lr == cfg.train.lr


def test_resume_refuses_when_its_config_checkpoint_is_gone(tiny_root, tmp_path):
    run = run_of(tiny_root, tmp_path)
    cfg, ckpt = resume_config([f"train.resume={run}"])
    shutil.rmtree(run / "checkpoints" / "step-0000004")
    with pytest.raises(InputError, match="step-0000004: gone since its config was read"):
        train(cfg, ckpt)


def test_resume_with_fewer_iterations_than_done_is_refused(tiny_root, tmp_path):
    run = run_of(tiny_root, tmp_path)
    with pytest.raises(InputError) as e:
        resume(run, "train.iterations=3")
    assert e.value.flag_message().startswith(
        f"--train.iterations 3: fewer than the 4 steps that {run} has trained (checkpoint "
        "step-0000004)"
    )


def test_resuming_a_finished_run_trains_nothing_and_says_so(tiny_root, tmp_path, capsys):
    run = run_of(tiny_root, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    capsys.readouterr()
    assert resume(run) == run
    assert f"{run}: already finished at step 4 (train.iterations=4)" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.name != ".train.lock"} == {
        p: t for p, t in before.items() if p.name != ".train.lock"
    }


def test_resume_removes_partial_sample_grids(tiny_root, tmp_path):
    run = run_of(tiny_root, tmp_path, **{"train.iterations": 1})
    partial = run / "samples" / f".step-0000002.png.x1y2z3{PART_SUFFIX}"
    partial.write_bytes(b"half a PNG")
    resume(run, "train.iterations=2")
    assert not partial.exists()
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-0000001.png",
        "step-0000002.png",
    ]


def test_signal_during_the_final_checkpoint_still_finishes(tiny_root, tmp_path, monkeypatch):
    real_save = train_module.save_state

    def save_with_a_signal(t, ckpt_dir):
        if t.step == t.cfg.train.iterations:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_save(t, ckpt_dir)

    monkeypatch.setattr(train_module, "save_state", save_with_a_signal)
    assert main(["train", *cli_args(tiny_overrides(tiny_root, tmp_path))]) == 0
    assert resolve_checkpoint(next(tmp_path.glob("0*"))).name == "step-0000004"


def test_interrupted_training_says_once_how_to_continue(tiny_root, tmp_path, monkeypatch, capsys):
    real_step = train_module.train_step

    def step_then_ctrl_c(t, batch, stats):
        real_step(t, batch, stats)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(train_module, "train_step", step_then_ctrl_c)
    over = tiny_overrides(tiny_root, tmp_path, **{"train.iterations": 100})
    assert main(["train", *cli_args(over)]) == 130
    run = next(tmp_path.glob("0*"))
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert text.count(f"interrupted at step 1; continue with --train.resume {run}") == 1
    assert "stopped at step" not in text


def test_sigterm_stopping_training_inside_another_command_exits_143(tmp_path, monkeypatch):
    demo = importlib.import_module("posetransfer.demo")

    def interrupted_training(*args, **kwargs):
        raise TrainingInterrupted(tmp_path, 3, signal.SIGTERM)

    monkeypatch.setattr(demo, "run_demo", interrupted_training)
    assert main(["demo", "--out", str(tmp_path / "out")]) == 143


def test_empty_resume_flag_is_refused_not_a_new_run(tiny_root, tmp_path, capsys):
    over = tiny_overrides(tiny_root, tmp_path, **{"train.iterations": 1})
    assert main(["train", *cli_args(over), "--train.resume="]) == 2
    assert "error: --train.resume '': empty" in capsys.readouterr().err
    assert not list(tmp_path.glob("0*"))


def test_batch_size_not_divisible_by_the_processes_names_the_field(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    cfg = load_config("synthetic", ["train.batch_size=8", "train.device=cpu"])
    with pytest.raises(InputError) as e:
        setup_processes(cfg)
    assert e.value.flag_message().startswith(
        "--train.batch_size 8: not divisible by the 3 training processes"
    )
