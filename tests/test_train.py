import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import run_torchrun, tiny_overrides
from posetransfer import checkpoint as ckpt_mod
from posetransfer.checkpoint import resolve_checkpoint
from posetransfer.checkpoint.format import write_manifest
from posetransfer.cli import main
from posetransfer.config import load_config
from posetransfer.core.precision import native_bf16
from posetransfer.errors import InputError, InputWarning
from posetransfer.models.losses import PerceptualLoss
from posetransfer.runtime.load import load_generator
from posetransfer.train import resume_config, train

GAN = {"loss.lambda_gan": 1, "loss.pool_size": 3, "model.ndf": 8, "model.discriminator_blocks": 1}


def vgg_file(path: Path) -> Path:
    """A VGG19-layout file holding the first two conv layers (random: tests the loading path)."""
    torch.manual_seed(0)
    sd = {
        "features.0.weight": torch.randn(64, 3, 3, 3),
        "features.0.bias": torch.zeros(64),
        "features.2.weight": torch.randn(64, 64, 3, 3),
        "features.2.bias": torch.zeros(64),
    }
    torch.save(sd, path)
    return path


def test_run_directory_contents(tiny_root, tmp_path):
    run = train(load_config("synthetic", tiny_overrides(tiny_root, tmp_path)))
    assert run.name == "00000-patn_tiny-synthetic"
    assert (run / "config.yaml").is_file()
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [2, 4] and all("loss/G_l1" in s for s in stats)
    assert list(run.glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-0000002.png",
        "step-0000004.png",
    ]
    grid = Image.open(run / "samples" / "step-0000004.png")
    assert grid.height >= 128 and grid.width > 4 * 64
    ckpt = resolve_checkpoint(run)
    assert ckpt.name == "step-0000004"
    assert {p.name for p in ckpt.iterdir()} == {
        "generator.safetensors",
        "config.yaml",
        "train_state.pt",
        "manifest.json",
    }
    model, info = load_generator(run, device="cpu", precision=None)
    assert (info.name, info.height, info.width, info.step) == ("patn_tiny", 128, 64, 4)
    assert not model.training


def test_numbered_runs(tiny_root, tmp_path):
    a = train(
        load_config("synthetic", tiny_overrides(tiny_root, tmp_path, **{"train.iterations": 1}))
    )
    b = train(
        load_config("synthetic", tiny_overrides(tiny_root, tmp_path, **{"train.iterations": 1}))
    )
    assert (a.name[:5], b.name[:5]) == ("00000", "00001")


def test_compile_wraps_the_generator_and_checkpoints_stay_plain(tiny_root, tmp_path):
    from posetransfer.train.build import build, distribute

    cfg = load_config("synthetic", tiny_overrides(tiny_root, tmp_path, **{"train.compile": True}))
    t = build(cfg, 0, 1, torch.device("cpu"))
    distribute(t)
    assert isinstance(t.ddp_generator, torch._dynamo.eval_frame.OptimizedModule)
    assert t.ddp_generator._orig_mod is t.generator  # saved weights keep their plain names


@pytest.mark.slow
def test_compile_without_a_cxx_compiler_says_so_once_and_trains_eager(tiny_root, tmp_path):
    import torch._inductor.config

    over = {"train.compile": True, "train.iterations": 2}
    # inductor's own config patch: it restores the setting (a monkeypatch of a config module
    # leaves it deleted)
    with torch._inductor.config.patch({"cpp.cxx": ("no-such-cxx",)}):
        with pytest.warns(InputWarning) as caught:
            run = train(load_config("synthetic", tiny_overrides(tiny_root, tmp_path, **over)))
    messages = [str(w.message) for w in caught if issubclass(w.category, InputWarning)]
    assert len(messages) == 1 and "train.compile" in messages[0] and "eager" in messages[0]
    assert resolve_checkpoint(run).name == "step-0000002"


@pytest.mark.parametrize(
    ("precision", "compiled"),
    [("fp32", False), ("bf16", False), ("fp32", True), ("bf16", True)],
)
@pytest.mark.slow
def test_resume_is_exact(tiny_root, tmp_path, precision, compiled):
    """Stopping (here by the time budget) and resuming gives the same weights as one run,
    eager or compiled (`train.compile`)."""
    if precision == "bf16" and not native_bf16(torch.device("cpu")):
        pytest.skip("this CPU emulates bf16 (slow); exactness is checked where it is native")
    over = {
        **GAN,
        "train.iterations": 5,
        "data.num_workers": 1,
        "model.discriminator_norm": "batch",
        "train.precision": precision,
        "train.compile": compiled,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        straight = train(
            load_config("synthetic", tiny_overrides(tiny_root, tmp_path / "a", **over))
        )
    # Compiled for real: `compiled` and the first step warn when it stays eager.
    assert not [w for w in caught if "train.compile" in str(w.message)]
    stopped = train(
        load_config(
            "synthetic",
            tiny_overrides(tiny_root, tmp_path / "b", **over, **{"train.max_minutes": 0}),
        )
    )
    assert resolve_checkpoint(stopped).name == "step-0000001"
    resumed = train(
        load_config(
            "synthetic",
            tiny_overrides(tiny_root, tmp_path / "b", **over, **{"train.resume": stopped}),
        )
    )
    assert resumed == stopped
    for f in ("generator.safetensors", "discriminators.safetensors"):
        a = load_file(straight / "checkpoints" / "step-0000005" / f)
        b = load_file(resumed / "checkpoints" / "step-0000005" / f)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f


def test_perceptual_loss_needs_weights(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cfg = load_config(
        "synthetic", tiny_overrides(tiny_root, tmp_path, **{"loss.lambda_perceptual": 1})
    )
    with pytest.raises(InputError, match="lambda_perceptual 0"):
        train(cfg)
    assert not (tmp_path / "00000-patn_tiny-synthetic" / "checkpoints").exists()


def test_perceptual_loss_from_a_weights_file(tiny_root, tmp_path):
    path = vgg_file(tmp_path / "vgg19.pth")
    loss = PerceptualLoss(path)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert loss(x, x) == 0 and loss(x, -x) > 0
    over = {**GAN, "loss.lambda_perceptual": 1, "loss.vgg_weights": path, "train.iterations": 2}
    run = train(load_config("synthetic", tiny_overrides(tiny_root, tmp_path, **over)))
    stats = json.loads((run / "stats.jsonl").read_text().splitlines()[-1])
    assert stats["loss/G_perceptual"] > 0 and "loss/D_app_real" in stats
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(InputError, match="bad.pth: not torchvision VGG19 weights"):
        PerceptualLoss(bad)


def test_checkpoint_write_is_atomic(tiny_root, tmp_path, monkeypatch):
    run = train(
        load_config("synthetic", tiny_overrides(tiny_root, tmp_path, **{"train.iterations": 2}))
    )

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod, "to_safetensors", broken)
    model, _ = load_generator(run, device="cpu", precision=None)
    with pytest.raises(OSError):
        ckpt_mod.save_checkpoint(
            run / "checkpoints" / "step-0000003",
            model,
            "patn_tiny",
            {},
            load_config("synthetic"),
            3,
        )
    assert not (run / "checkpoints" / "step-0000003").exists()
    assert resolve_checkpoint(run).name == "step-0000002"
    load_generator(run, device="cpu", precision=None)  # still loads


def test_bad_images_give_one_clear_error(tiny_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    victim = sorted((root / "train").iterdir())[0]
    Image.new("RGB", (10, 10)).save(victim, format="JPEG")
    cfg = load_config("synthetic", tiny_overrides(root, tmp_path, **{"data.num_workers": 1}))
    with pytest.raises(InputError) as e:
        train(cfg)
    assert str(e.value) == f"{victim}: image is 10x10 (HxW), expected 128x64"
    victim.write_bytes(victim.read_bytes()[:50])  # truncated
    with pytest.raises(InputError, match="unreadable or truncated image"):
        train(load_config("synthetic", tiny_overrides(root, tmp_path)))
    victim.unlink()
    with pytest.raises(InputError, match="image\\(s\\) named in pairs are missing"):
        train(load_config("synthetic", tiny_overrides(root, tmp_path)))


def test_wrong_architecture_checkpoint(tiny_root, tmp_path):
    run = train(
        load_config("synthetic", tiny_overrides(tiny_root, tmp_path, **{"train.iterations": 1}))
    )
    cfg_file = resolve_checkpoint(run) / "config.yaml"
    cfg_file.write_text(cfg_file.read_text().replace("name: patn_tiny", "name: patn_small"))
    write_manifest(cfg_file.parent)  # an intact checkpoint whose weights fit another generator
    with pytest.raises(InputError, match="weights do not fit generator 'patn_small'"):
        load_generator(run, device="cpu", precision=None)


def _cli(*args, env=None, **kw):
    return [sys.executable, "-m", "posetransfer.cli", *map(str, args)]


@pytest.mark.slow
def test_ctrl_c_checkpoints_and_resumes(tiny_root, tmp_path):
    over = tiny_overrides(
        tiny_root, tmp_path, **{"train.iterations": 100000, "train.checkpoint_every": 100000}
    )
    cmd = _cli("train", *[a for o in over for a in ("--" + o.split("=")[0], o.split("=", 1)[1])])
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    stats = tmp_path / "00000-patn_tiny-synthetic" / "stats.jsonl"
    try:
        deadline = time.monotonic() + 120
        while not stats.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert stats.exists(), "training never logged"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:  # never leave a 100000-iteration run behind
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, out  # the shell's code for a process stopped by SIGINT
    run = tmp_path / "00000-patn_tiny-synthetic"
    ckpt = resolve_checkpoint(run)
    step = int(ckpt.name.split("-")[1])
    assert out.count(f"interrupted at step {step}; continue with --train.resume {run}") == 1, out
    assert step >= 2
    state = torch.load(ckpt / "train_state.pt", weights_only=True)
    assert state["step"] == step
    load_generator(ckpt, device="cpu", precision=None)
    # Resuming continues from that checkpoint to the end.
    assert main(["train", "--train.resume", str(run), "--train.iterations", str(step + 2)]) == 0
    assert resolve_checkpoint(run).name == f"step-{step + 2:07d}"


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tiny_root, tmp_path):
    over = tiny_overrides(
        tiny_root, tmp_path, **{"train.iterations": 2, "data.num_workers": 0, **GAN}
    )
    args = [a for o in over for a in ("--" + o.split("=")[0], o.split("=", 1)[1])]
    returncode, out = run_torchrun(["train", *args], timeout=300)
    assert returncode == 0, out
    runs = list(tmp_path.glob("0*-patn_tiny-synthetic"))
    assert len(runs) == 1  # only rank 0 makes the run directory
    ckpt = resolve_checkpoint(runs[0])
    state = torch.load(ckpt / "train_state.pt", weights_only=True)
    assert state["step"] == 2 and len(state["ranks"]) == 2 and state["world"] == 2
    load_generator(runs[0], device="cpu", precision=None)


def test_resume_without_a_config_keeps_the_saved_schedule(tiny_root, tmp_path):
    over = {"train.iterations": 3, "train.decay_start": 1, "train.max_minutes": 0}
    run = train(load_config("synthetic", tiny_overrides(tiny_root, tmp_path, **over)))
    cfg, ckpt = resume_config([f"train.resume={run}", "train.max_minutes=null"])
    assert (cfg.train.iterations, cfg.train.decay_start, cfg.model.generator) == (3, 1, "patn_tiny")
    assert train(cfg, ckpt) == run
    assert resolve_checkpoint(run).name == "step-0000003"


def test_unknown_generator_fails_before_any_work(tmp_path):
    cfg = load_config("synthetic", [f"data.root={tmp_path / 'new'}", "model.generator=patn_huge"])
    with pytest.raises(InputError, match="unknown generator 'patn_huge'"):
        train(cfg)
    assert not (tmp_path / "new").exists()
