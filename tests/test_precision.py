"""Training precision (fp32 / bf16 / fp16), the memory layout, and the step's speed record.

Exact resume at each precision is tested in test_train.py (test_resume_is_exact).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_overrides
from posetransfer.checkpoint import resolve_checkpoint
from posetransfer.config import load_config
from posetransfer.core import precision
from posetransfer.errors import InputError, InputWarning
from posetransfer.train import resume_config, train

GAN = {"loss.lambda_gan": 1, "loss.pool_size": 3, "model.ndf": 8, "model.discriminator_blocks": 1}


def _weights(run, step):
    ckpt = run / "checkpoints" / f"step-{step:07d}"
    return {f: load_file(ckpt / f) for f in ("generator.safetensors", "discriminators.safetensors")}


def test_unknown_precision_is_refused_naming_the_field():
    with pytest.raises(InputError, match=r"train\.precision='fp8': choose one of fp32, bf16, fp16"):
        load_config("synthetic", ["train.precision=fp8"])


def test_fp16_without_cuda_is_refused_before_anything_is_built(tiny_root, tmp_path, monkeypatch):
    import sys

    build = sys.modules["posetransfer.train.build"]  # the module, not the function it exports

    def no_dataset(*a, **k):
        raise AssertionError("a dataset was built before the precision was checked")

    monkeypatch.setattr(build, "dataset_from_config", no_dataset)
    cfg = load_config(
        "synthetic", tiny_overrides(tiny_root, tmp_path / "r", **{"train.precision": "fp16"})
    )
    with pytest.raises(InputError, match=r"train\.precision='fp16': float16 needs a CUDA"):
        train(cfg)


def test_bf16_on_a_cpu_without_native_support_warns(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    with pytest.warns(InputWarning, match="no native bfloat16"):
        assert precision.check_precision("bf16", torch.device("cpu")) == "bf16"


def test_bf16_training_is_used_and_stays_finite(tiny_root, tmp_path):
    over = {**GAN, "train.iterations": 3}
    runs = {
        p: train(
            load_config(
                "synthetic",
                tiny_overrides(tiny_root, tmp_path / p, **{**over, "train.precision": p}),
            )
        )
        for p in ("fp32", "bf16")
    }
    fp32, bf16 = _weights(runs["fp32"], 3), _weights(runs["bf16"], 3)
    gen = "generator.safetensors"
    assert all(torch.isfinite(v).all() for w in bf16.values() for v in w.values())
    assert all(v.dtype == torch.float32 for v in bf16[gen].values()), "weights stay float32"
    assert any(not torch.equal(fp32[gen][k], bf16[gen][k]) for k in fp32[gen]), (
        "bf16 arithmetic gives other weights than fp32: autocast was not applied"
    )


def test_stats_record_iterations_per_second_and_the_data_share(tiny_root, tmp_path):
    run = train(load_config("synthetic", tiny_overrides(tiny_root, tmp_path / "r")))
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert rows and all(r["time/it_per_s"] > 0 for r in rows)
    assert all(0 <= r["time/data_share"] <= 1 for r in rows)


def test_channels_last_training_runs_and_stays_finite(tiny_root, tmp_path):
    run = train(
        load_config(
            "synthetic",
            tiny_overrides(tiny_root, tmp_path / "r", **GAN, **{"train.channels_last": True}),
        )
    )
    w = _weights(run, 4)["generator.safetensors"]
    assert all(torch.isfinite(v).all() for v in w.values())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 training needs CUDA")
def test_fp16_on_cuda_resumes_with_its_gradient_scaler(tiny_root, tmp_path):
    over = {**GAN, "train.iterations": 4, "train.precision": "fp16", "train.device": "cuda"}
    run = train(load_config("synthetic", tiny_overrides(tiny_root, tmp_path / "r", **over)))
    state = torch.load(
        resolve_checkpoint(run) / "train_state.pt", map_location="cpu", weights_only=True
    )
    assert set(state["scalers"]) == {"G", "D_app", "D_shape"}


def test_auto_picks_the_fastest_native_precision(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert precision.check_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert precision.check_precision("auto", cpu) == "fp32"
    assert precision.check_precision("auto", cuda) == "fp16"


def test_changing_precision_on_resume_warns_and_is_recorded(tiny_root, tmp_path):
    over = {**GAN, "train.iterations": 2, "train.precision": "fp32"}
    run = train(load_config("synthetic", tiny_overrides(tiny_root, tmp_path / "r", **over)))
    more = {**over, "train.iterations": 4, "train.resume": run, "train.precision": "bf16"}
    with pytest.warns(InputWarning, match="trained at fp32 until step 2, continuing at bf16"):
        train(*resume_config([f"{k}={v}" for k, v in more.items()]))
    history = json.loads((run / "config-history.jsonl").read_text().splitlines()[-1])
    assert history["changed"]["train.precision"] == ["fp32", "bf16"]
