"""Training speed: the project's training step beside a plain eager loop, against the hardware.

The training rows of `posetransfer bench --compare`. Each times a shipped recipe on synthetic
people at its size, one path at a time:

- ``plain``: a plain eager loop of the same network in stock torch modules (`nn.Dropout`, not
  the project's `posetransfer.models.blocks.Dropout`), the same loss terms and optimiser
  (torch's Adam with its default for-loop, the recipe's L1 terms under the recipe's autocast)
  on one fixed batch: no data loading, no logging; the reference a training loop is measured
  against. Only for recipes without discriminators or a perceptual network.
- ``before``: the project's step (`posetransfer.train.step.train_step`) and loader as they were
  before the faster CPU dropout and before decoded images were kept in memory
  (``data.cache_mb=0``).
- ``train``: the project's step and loader as ``posetransfer train`` runs them by default.
- ``compiled``: the same with ``train.compile`` (`torch.compile` of the generator's forward and
  backward); its compile time is reported apart and not counted in the speed.

Every row has its FLOPs per step (generator forward and backward, the discriminators' when the
recipe has them; torch's flop counter) and the GFLOP/s they make as a share of the convolution
peak measured in the same run (`conv_peak`: one 3x3 convolution at a size these networks use, in
the row's precision).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posetransfer.core.precision import autocast

PATHS = ("plain", "before", "train", "compiled")
CONV_PEAK_SHAPE = (4, 256, 64, 64)
"""Input of the peak measurement: batch, channels (in and out), height, width."""


def conv_peak(device: torch.device, precision: str, repeats: int = 5) -> dict[str, Any]:
    """GFLOP/s of one 3x3 convolution, 256 to 256 channels on [4, 256, 64, 64], in ``precision``.

    The largest convolutions of the PATN/APATN generators have this shape (their residual
    blocks at a quarter of the image); oneDNN and cuDNN run them at their best, so this is the
    practical peak that the networks' own GFLOP/s are compared with.
    """
    from posetransfer.analysis.compare import _time_us

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    b, c, h, w = CONV_PEAK_SHAPE
    conv = nn.Conv2d(c, c, 3, padding=1).to(device, dtype)
    x = torch.randn(CONV_PEAK_SHAPE, device=device, dtype=dtype)
    flops = 2 * c * c * 9 * b * h * w
    with torch.inference_mode():
        us = _time_us(lambda: conv(x), device, repeats)
    return {
        "precision": precision,
        "input": list(CONV_PEAK_SHAPE),
        "gflop": flops / 1e9,
        "gflop_per_s": flops / 1e3 / us["median"],
    }


def step_flops(step: Any) -> int:
    """FLOPs of one call of ``step`` (a training step: forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        step()
    return int(fc.get_total_flops())


def _config(config: str, root: Path, device: torch.device, precision: str, extra: list[str]):
    from posetransfer.config import load_config

    return load_config(
        config,
        [
            f"data.root={root}",
            "data.dataset=synthetic",
            "data.train_annotations=synthetic-annotation-train.csv",
            "data.train_pairs=synthetic-pairs-train.csv",
            "data.test_annotations=synthetic-annotation-test.csv",
            "data.test_pairs=synthetic-pairs-test.csv",
            "data.num_workers=0",
            f"train.precision={precision}",
            f"train.device={device}",
            "train.progress=false",
            *extra,
        ],
    )


def plain_loop_runs(config: str) -> bool:
    """Can the plain loop stand for this recipe (no discriminators, no perceptual network)?"""
    from posetransfer.config import load_config

    loss = load_config(config, []).loss
    return loss.lambda_gan == 0 and loss.lambda_perceptual == 0


def training_speed(
    config: str,
    root: Path,
    device: torch.device,
    precision: str,
    steps: int = 6,
    path: str = "train",
    batch_size: int | None = None,
    flops: int | None = None,
) -> dict[str, Any]:
    """Iterations and samples per second of a shipped recipe along one of `PATHS`.

    Args:
        config: a shipped recipe (``synthetic``, ``fashion_patn``, ...).
        root: synthetic people at the recipe's size.
        device, precision: where and how to train (``precision`` as ``train.precision``).
        steps: timed steps, after warm-up steps that are not timed (one, or two when compiled:
            the first compiles, the second runs the compiled code once).
        path: one of `PATHS`.
        batch_size: instead of the recipe's.
        flops: FLOPs of one step, when known; else counted on a step (torch's flop counter
            cannot see inside compiled code: give the ``train`` row's to a ``compiled`` row).
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    extra = [f"train.batch_size={batch_size}"] if batch_size else []
    if path == "before":
        extra.append("data.cache_mb=0")
    extra.append(f"train.compile={path == 'compiled'}")
    cfg = _config(config, root, device, precision, extra)
    from posetransfer.train.build import compile_failures

    failures = compile_failures()
    if path == "plain":
        step, close = _plain_step(cfg, device)
    else:
        step, close = _project_step(cfg, device, stock=path == "before")
    setup = time.perf_counter()
    for _ in range(2 if path == "compiled" else 1):
        step()
    setup_s = time.perf_counter() - setup
    eager_only = path == "compiled" and compile_failures() > failures
    if flops is None:
        flops = step_flops(step)
    wait = work = 0.0
    for _ in range(steps):
        waited, worked = step()
        wait, work = wait + waited, work + worked
    close()
    it_s = steps / (wait + work)
    return {
        "config": config,
        "path": path,
        "generator": cfg.model.generator,
        "height": cfg.data.height,
        "width": cfg.data.width,
        "batch": cfg.train.batch_size,
        "precision": "fp32" if precision == "fp32" else _resolved(precision, device),
        "steps": steps,
        "iterations_per_s": it_s,
        "samples_per_s": it_s * cfg.train.batch_size,
        "data_wait_share": wait / (wait + work),
        "gflop_per_step": flops / 1e9,
        "gflop_per_s": flops / 1e9 * it_s,
        "warmup_s": setup_s,
        **({"note": "torch.compile failed here: this row timed eager code"} if eager_only else {}),
    }


def _resolved(precision: str, device: torch.device) -> str:
    from posetransfer.core.precision import check_precision

    return check_precision(precision, device)


def _project_step(cfg, device: torch.device, stock: bool = False):
    """One step of `posetransfer.train` as it trains: next batch from the loader, then the step."""
    from posetransfer.train.build import batches, build, compile_settings, distribute
    from posetransfer.train.run import Stats
    from posetransfer.train.step import train_step

    t = build(cfg, 0, 1, device)
    if stock:  # the "before" path
        stock_dropout(t.generator)
    settings = contextlib.ExitStack()
    if cfg.train.compile:
        settings.enter_context(compile_settings())
    distribute(t)  # one process: the networks themselves (compiled when configured)
    if cfg.data.cache_mb:  # as after the first few hundred steps of a run: images in memory
        for i in range(len(t.train_set)):
            t.train_set[i]
    stats = Stats(None)
    data = batches(t, lambda: False)
    t.generator.train()
    for d in t.discs.values():
        d.train()

    def step() -> tuple[float, float]:
        t0 = time.perf_counter()
        batch = next(data)
        t1 = time.perf_counter()
        train_step(t, batch, stats)
        _sync(device)
        return t1 - t0, time.perf_counter() - t1

    def close() -> None:
        data.close()
        settings.close()

    return step, close


def _plain_step(cfg, device: torch.device):
    """The reference: generator, L1 terms and Adam in a few lines, on one batch read once."""
    from torch.utils.data import default_collate

    from posetransfer.data.datasets import add_heatmaps, dataset_from_config
    from posetransfer.models.losses import masked_l1
    from posetransfer.models.registry import create_generator

    if cfg.loss.lambda_gan or cfg.loss.lambda_perceptual:
        raise ValueError("the plain loop has no discriminators or perceptual network")
    data = dataset_from_config(cfg.data, "train", body_masks=True, heatmaps=False)
    batch = default_collate([data[i] for i in range(cfg.train.batch_size)])
    batch = add_heatmaps(
        {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}, cfg.data
    )
    generator = stock_dropout(create_generator(cfg.model.generator)).to(device).train()
    opt = torch.optim.Adam(generator.parameters(), lr=cfg.train.lr, betas=(0.5, 0.999))
    precision = _resolved(cfg.train.precision, device)
    loss_cfg = cfg.loss

    def step() -> tuple[float, float]:
        t0 = time.perf_counter()
        with autocast(precision, device):
            fake = generator(batch["src_img"], batch["src_pose"], batch["tgt_pose"])
            loss = loss_cfg.lambda_l1 * (fake - batch["tgt_img"]).abs().mean()
            if loss_cfg.lambda_mask_l1:
                loss = loss + loss_cfg.lambda_mask_l1 * masked_l1(
                    fake, batch["tgt_img"], batch["tgt_mask"]
                )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        return 0.0, time.perf_counter() - t0

    return step, lambda: None


def stock_dropout(module: nn.Module) -> nn.Module:
    """``module`` with each of the project's dropouts replaced by torch's `nn.Dropout`."""
    from posetransfer.models.blocks import Dropout

    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, Dropout):
                setattr(parent, name, nn.Dropout(child.p))
    return module


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_paths(
    config: str,
    root: Path,
    device: torch.device,
    precision: str,
    steps: int,
    compile: bool,
    peak_gflop_per_s: float | None = None,
) -> list[dict[str, Any]]:
    """The training rows of one recipe and precision, each with its samples/s against the plain
    loop's and the ``before`` path's and its share of the convolution peak (`compare_rows`)."""
    paths = [p for p in PATHS if (p != "plain" or plain_loop_runs(config))]
    paths = [p for p in paths if compile or p != "compiled"]
    rows: list[dict[str, Any]] = []
    for path in paths:
        flops = next((r["gflop_per_step"] * 1e9 for r in rows if r["path"] == "train"), None)
        rows.append(
            training_speed(
                config,
                root,
                device,
                precision,
                steps,
                path,
                flops=int(flops) if flops and path == "compiled" else None,
            )
        )
    return compare_rows(rows, peak_gflop_per_s)


def compare_rows(
    rows: list[dict[str, Any]], peak_gflop_per_s: float | None
) -> list[dict[str, Any]]:
    """Add ``vs_plain`` and ``vs_before`` (samples/s ratios) and ``conv_peak_share`` to the
    rows of one recipe and precision."""
    ref = {r["path"]: r["samples_per_s"] for r in rows}
    for r in rows:
        r["vs_plain"] = r["samples_per_s"] / ref["plain"] if "plain" in ref else None
        r["vs_before"] = r["samples_per_s"] / ref["before"] if "before" in ref else None
        r["conv_peak_share"] = r["gflop_per_s"] / peak_gflop_per_s if peak_gflop_per_s else None
    return rows


TRAINING_PATHS = {
    "plain": "plain eager loop, one fixed batch",
    "before": "train, images decoded every time",
    "train": "train (default)",
    "compiled": "train, train.compile",
}


def format_training(result: dict[str, Any]) -> list[str]:
    """The training table: each path's speed, against the plain loop and the conv peak."""
    peaks = {p["precision"]: p["gflop_per_s"] for p in result.get("conv_peak", [])}
    lines = [
        "",
        "## Training",
        "",
        "Convolution peak (one 3x3 convolution, 256 channels, 4x64x64): "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items())
        + ". The compiled row's warm-up is its compile time.",
        "",
        "| config | size x batch | precision | path | it / s | samples / s | vs plain | "
        "vs before | GFLOP / step | GFLOP/s | % of conv peak | waiting for data | warm-up s |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in result["training"]:
        vs = [f"{t[k]:.2f}x" if t.get(k) else "" for k in ("vs_plain", "vs_before")]
        share = t.get("conv_peak_share")
        lines.append(
            f"| {t['config']} | {t['height']}x{t['width']} x{t['batch']} | {t['precision']} | "
            f"{TRAINING_PATHS.get(t.get('path', 'train'), t.get('path'))}"
            f"{' (compile failed: eager)' if t.get('note') else ''} | "
            f"{t['iterations_per_s']:.2f} | {t['samples_per_s']:.1f} | {vs[0]} | {vs[1]} | "
            f"{t['gflop_per_step']:.1f} | {t['gflop_per_s']:.0f} | "
            f"{f'{100 * share:.0f}' if share else ''} | "
            f"{100 * t['data_wait_share']:.0f}% | {t['warmup_s']:.1f} |"
        )
    return lines
