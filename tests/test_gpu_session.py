"""scripts/gpu-session.sh in its smoke mode: every step at tiny sizes on the CPU, then packed."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "gpu-session.sh"
STEPS = ("env", "tests", "bench", "data", "ddp", "train-patn", "train-apatn", "pack")
LIMIT = 16 * 2**20


def _summary(stdout: str) -> dict[str, str]:
    """{step: status} from the summary lines at the end of the output."""
    lines = stdout[stdout.rindex("gpu-session: ") :].splitlines()[1:]
    return {parts[0]: " ".join(parts[1:]) for parts in (line.split() for line in lines) if parts}


@pytest.mark.slow
def test_smoke_session_runs_every_step_and_packs_the_results(tmp_path):
    out = tmp_path / "session"
    env = {
        **os.environ,
        "GPU_SESSION_SMOKE": "1",
        "GPU_SESSION_GAN": "1",  # the two-stage path; the default trains stage 1 alone
        "GPU_SESSION_PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",  # the CPU path, whatever this machine has
    }
    for name in ("GPU_SESSION_MINUTES", "GPU_SESSION_WORK", "_GPU_SESSION_START"):
        env.pop(name, None)
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

    summary = _summary(proc.stdout)
    assert set(summary) == set(STEPS), proc.stdout[-3000:]
    for name in ("tests", "bench"):
        assert summary[name].startswith("skipped: no CUDA"), summary
    for name in ("env", "data", "ddp", "train-patn", "train-apatn", "pack"):
        assert summary[name].startswith("ok"), summary
    assert "images/s" in summary["ddp"] and "gloo" in summary["ddp"]

    # Five files come back (the device machine returns at most 8), each under 16 MiB.
    packed = sorted(p.name for p in out.iterdir() if p.is_file())
    assert packed == [
        "apatn-stage1.tar.gz",
        "apatn.tar.gz",
        "patn-stage1.tar.gz",
        "patn.tar.gz",
        "results.tar.gz",
    ]
    assert all((out / name).stat().st_size < LIMIT for name in packed)

    with tarfile.open(out / "results.tar.gz") as tar:
        names = set(tar.getnames())
    for member in (
        "./summary.txt",
        "./env.txt",
        "./ddp.json",
        "./train/patn-stage1.json",
        "./train/patn.json",
        "./train/apatn-stage1.json",
        "./train/apatn.json",
        "./logs/ddp.log",
    ):
        assert member in names, member
    assert not any("/checkpoints/" in n or n.startswith("./data/") for n in names)

    # The packed checkpoints, extracted beside the results, load as generators.
    from posetransfer.runtime.load import load_generator

    back = tmp_path / "back"
    for name in packed:
        with tarfile.open(out / name) as tar:
            tar.extractall(back, filter="data")
    for name, generator in (("patn", "patn_small"), ("apatn", "apatn_small")):
        (run,) = (back / "train" / name).iterdir()
        _, info = load_generator(str(run), device="cpu", precision=None)
        assert info.name == generator
        assert (run / "stats.jsonl").is_file()

    # A checkpoint over the size limit is packed as its generator and config alone, and loads.
    (run,) = (out / "work" / "train" / "patn").iterdir()
    small = {**env, "GPU_SESSION_LIMIT_BYTES": str(2**20)}
    cmd = ["bash", str(SCRIPT), str(out), "__step", "pack_checkpoint", "slim", str(run)]
    subprocess.run(cmd, cwd=REPO, env=small, check=True, capture_output=True, timeout=120)
    with tarfile.open(out / "slim.tar.gz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "slim", filter="data")
    assert not any(n.endswith("train_state.pt") for n in names), names
    _, info = load_generator(str(tmp_path / "slim" / run.relative_to(out / "work")), device="cpu")
    assert info.name == "patn_small"


@pytest.mark.slow
def test_default_session_trains_stage_one_alone_and_refuses_a_bad_gan_switch(tmp_path):
    out = tmp_path / "session"
    env = {
        **os.environ,
        "GPU_SESSION_SMOKE": "1",
        "GPU_SESSION_PYTHON": sys.executable,
        "GPU_SESSION_STEPS": "train-patn",
        "GPU_SESSION_MINUTES": "1.5",
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    for name in ("GPU_SESSION_GAN", "GPU_SESSION_WORK", "_GPU_SESSION_START"):
        env.pop(name, None)
    run = ["bash", str(SCRIPT), str(out)]
    proc = subprocess.run(run, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = _summary(proc.stdout)
    assert summary["train-patn"].startswith("ok") and "LR decay" in summary["train-patn"]
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        "patn.tar.gz",
        "results.tar.gz",
    ]
    assert not (out / "work" / "train" / "patn-stage1").exists()  # one stage, no GAN run
    config = next((out / "work" / "train" / "patn").glob("*/config.yaml")).read_text()
    assert "lambda_gan: 0.0" in config

    # A mistyped setting stops the session before any step, with one line.
    for name, value in (("GPU_SESSION_GAN", "yes"), ("GPU_SESSION_TRAIN_BATCH", "0")):
        bad = {**env, name: value}
        proc = subprocess.run(run, cwd=REPO, env=bad, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and f"{name}={value}:" in proc.stderr
        assert "start" not in proc.stdout
