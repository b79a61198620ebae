"""Complexity report (paper Table 2 and Fig. 6): parameters, speed, per-block time breakdown.

* Parameters of every registered generator, counted on the ``meta`` device (no memory, no init).
* Inference speed of chosen generators at chosen image sizes: eval mode, ``torch.inference_mode``,
  random inputs, ``warmup`` untimed calls then ``repeats`` timed ones; per-image time is the
  batch time divided by the batch size. On CUDA every call is bracketed by
  ``torch.cuda.synchronize()``.
* One PATB (a later block: 512-channel pose input, 4.72M parameters) and one APATB on a
  1 x 256 x 64 x 64 code, the paper's setting: wall time as above, and a breakdown from
  `torch.profiler` into conv / norm / matmul / softmax / other (see `op_category`). The APATB is
  measured twice: with the fused attention the model uses (``sdpa``; its kernel does the
  matmuls and the softmax in one op, counted as matmul) and with the explicit
  softmax(Q K^T) V path (``explicit``), which separates matmul from softmax as the paper's
  figure does.

Times are reported as median and spread (interquartile range, min, max) over the repeats.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from posetransfer.core.device import device_description, resolve_device
from posetransfer.core.files import atomic_write
from posetransfer.errors import InputError
from posetransfer.models.apatn import APATB
from posetransfer.models.blocks import count_parameters
from posetransfer.models.patn import PATB
from posetransfer.models.registry import create_generator, list_generators

CATEGORIES: tuple[str, ...] = ("conv", "norm", "matmul", "softmax", "other")
DEFAULT_GENERATORS: tuple[str, ...] = ("patn_fashion", "apatn_fashion")
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((128, 64), (256, 176))

# The paper's Table 2 and block timings (Titan Xp, DeepFashion), for the report.
PAPER = {
    "fps": {"patn_fashion": 60.61, "apatn_fashion": 58.82},
    "block_us": {"PATB": 1543.0, "APATB": 3114.0},
}

_MATMUL_OPS = {"mm", "bmm", "matmul", "addmm", "baddbmm", "addbmm", "linear", "einsum", "dot"}


def op_category(name: str) -> str:
    """The breakdown category of a profiler op name such as ``aten::mkldnn_convolution``.

    conv: any convolution op (``conv2d``, ``convolution``, ``mkldnn_convolution``,
    ``cudnn_convolution``, ...); norm: any ``*_norm`` op (InstanceNorm runs through
    ``batch_norm``); softmax: ``softmax`` / ``_softmax``; matmul: matrix products (``mm``,
    ``bmm``, ``matmul``, ...) and fused attention kernels (``*scaled_dot_product*``,
    ``*attention*``); other: everything else (padding, ReLU, sigmoid, cat, add, copies, ...).
    """
    op = name.split("::")[-1].lower()
    if "conv" in op:
        return "conv"
    if "norm" in op:
        return "norm"
    if "softmax" in op:
        return "softmax"
    if op in _MATMUL_OPS or "scaled_dot_product" in op or "attention" in op:
        return "matmul"
    return "other"


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, min and max of a list of timings."""
    v = sorted(values)
    if len(v) == 1:
        q1 = q3 = v[0]
    else:
        q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive")
    return {
        "median": statistics.median(v),
        "q1": q1,
        "q3": q3,
        "min": v[0],
        "max": v[-1],
        "n": len(v),
    }


def time_calls(
    fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int
) -> list[float]:
    """Seconds per call of ``fn`` over ``repeats`` timed calls after ``warmup`` untimed ones."""
    cuda = device.type == "cuda"
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    # The profiler's C++ backend prints start/stop lines to the stderr file descriptor.
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def profile_breakdown(
    fn: Callable[[], Any], device: torch.device, repeats: int = 1
) -> dict[str, float]:
    """Microseconds per call of ``fn`` spent in each of `CATEGORIES`, from `torch.profiler`.

    Every op's *self* time (its time minus its children's) goes to the category of its name, so
    nested ops (``conv2d`` -> ``convolution`` -> ``mkldnn_convolution``) are counted once. On
    CUDA the ops' self device (kernel) time is used.
    """
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    repeats = max(1, repeats)
    with _quiet_stderr(), profile(activities=activities) as prof:
        for _ in range(repeats):
            fn()
        if cuda:
            torch.cuda.synchronize(device)
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for evt in prof.key_averages():
        if evt.device_type != torch.autograd.DeviceType.CPU:
            continue  # kernel rows: their time is already in the op that launched them
        us = evt.self_device_time_total if cuda else evt.self_cpu_time_total
        totals[op_category(evt.key)] += us / repeats
    return totals


def parameter_counts(names: Sequence[str] | None = None) -> dict[str, int]:
    """Parameters of registered generators (all by default) at their default sizes."""
    counts = {}
    for name in names or list_generators():
        with torch.device("meta"):
            counts[name] = count_parameters(create_generator(name))
    return counts


def _random_inputs(batch: int, height: int, width: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, height, width, generator=g) * 2 - 1
    poses = torch.rand(2, batch, 18, height, width, generator=g)
    return image.to(device), poses[0].to(device), poses[1].to(device)


def generator_speed(
    name: str,
    size: tuple[int, int],
    batch: int = 1,
    device: str | torch.device = "cpu",
    repeats: int = 3,
    warmup: int = 1,
) -> dict[str, Any]:
    """Inference time of a registered generator at one image size.

    Returns:
        ``{"generator", "height", "width", "batch", "ms_per_image": summary, "images_per_s"}``
        with the summary of `summarize` in milliseconds per image.
    """
    device = resolve_device(device)
    model = create_generator(name).to(device).eval()
    inputs = _random_inputs(batch, *size, device)
    with torch.inference_mode():
        times = time_calls(lambda: model(*inputs), device, repeats, warmup)
    ms = summarize([1000 * t / batch for t in times])
    return {
        "generator": name,
        "height": size[0],
        "width": size[1],
        "batch": batch,
        "ms_per_image": ms,
        "images_per_s": 1000 / ms["median"],
    }


def block_setup(dim: int, size: tuple[int, int], device: torch.device) -> tuple:
    """One PATB (a later block: 2*dim pose input) and one APATB in eval mode, with seeded inputs:
    (patb, apatb, image code, condition pose code, target pose code, PATB pose code)."""
    torch.manual_seed(0)
    shape = (1, dim, *size)
    patb = PATB(dim, "instance", pose_in=2 * dim).to(device).eval()
    apatb = APATB(dim, "instance").to(device).eval()
    x, s, t = (torch.randn(shape, device=device) for _ in range(3))
    pose = torch.randn(1, 2 * dim, *size, device=device)
    return patb, apatb, x, s, t, pose


def _block_cases(dim: int, size: tuple[int, int], device: torch.device):
    """(label, attention path, module, call) for one PATB and one APATB (both paths)."""
    patb, apatb, x, s, t, pose = block_setup(dim, size, device)
    return [
        ("PATB", None, patb, lambda: patb(x, pose)),
        ("APATB", "sdpa", apatb, lambda: apatb(x, s, t)),
        ("APATB", "explicit", apatb, lambda: apatb(x, s, t, return_attention=True)),
    ]


def block_timings(
    dim: int = 256,
    size: tuple[int, int] = (64, 64),
    device: str | torch.device = "cpu",
    repeats: int = 3,
    warmup: int = 1,
) -> list[dict[str, Any]]:
    """Wall time and op breakdown of one PATB and one APATB on a [1, dim, H, W] code.

    Returns:
        One dict per case: ``block``, ``attention`` (None, "sdpa" or "explicit"), ``input``,
        ``params``, ``us`` (summary in microseconds) and ``breakdown_us`` per category.
    """
    device = resolve_device(device)
    out = []
    with torch.inference_mode():
        for label, path, module, call in _block_cases(dim, size, device):
            times = time_calls(call, device, repeats, warmup)
            out.append(
                {
                    "block": label,
                    "attention": path,
                    "input": [1, dim, *size],
                    "params": count_parameters(module),
                    "us": summarize([1e6 * t for t in times]),
                    "breakdown_us": profile_breakdown(call, device, repeats),
                }
            )
    return out


def run_bench(
    out_dir: str | Path,
    device: str = "auto",
    generators: Sequence[str] = DEFAULT_GENERATORS,
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
    batch: int = 1,
    repeats: int = 5,
    warmup: int = 1,
    block_size: tuple[int, int] = (64, 64),
    block_dim: int = 256,
    progress: bool = True,
) -> dict[str, Any]:
    """Measure everything and write ``bench.json`` and ``bench.md`` to ``out_dir``.

    Args:
        out_dir: output folder (created).
        device: "auto" (CUDA when present), "cpu", "cuda", "cuda:1", ...
        generators: registered names to time (parameters are counted for all of them).
        sizes: (H, W) image sizes to time them at.
        batch: images per forward pass.
        repeats: timed calls per measurement (and profiled calls per breakdown).
        warmup: untimed calls before each measurement.
        block_size: (H, W) of the block benchmark's code.
        block_dim: channels of the block benchmark's code.
        progress: show a progress bar.

    Returns:
        The result written to ``bench.json``.
    """
    dev = resolve_device(device)
    known = set(list_generators())
    unknown = [g for g in generators if g not in known]
    if unknown:
        raise InputError(
            f"generators={unknown}: unknown; known: {', '.join(sorted(known))}", arg="generators"
        )
    result: dict[str, Any] = {
        "device": device_description(dev),
        "torch": torch.__version__,
        "settings": {
            "batch": batch,
            "repeats": repeats,
            "warmup": warmup,
            "sizes": [list(s) for s in sizes],
            "block_input": [1, block_dim, *block_size],
        },
        "parameters": parameter_counts(),
        "speed": [],
        "blocks": [],
        "paper": PAPER,
    }
    tasks = [(g, s) for g in generators for s in sizes]
    with tqdm(total=len(tasks) + 1, desc="bench", unit="run", disable=not progress) as bar:
        for name, size in tasks:
            bar.set_postfix_str(f"{name} {size[0]}x{size[1]}")
            result["speed"].append(generator_speed(name, size, batch, dev, repeats, warmup))
            bar.update()
        bar.set_postfix_str("blocks")
        result["blocks"] = block_timings(block_dim, block_size, dev, repeats, warmup)
        bar.update()
    if hasattr(os, "getloadavg"):
        result["device"]["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    out = Path(out_dir)  # atomic_write creates it
    atomic_write(out / "bench.json", json.dumps(result, indent=2) + "\n")
    atomic_write(out / "bench.md", format_markdown(result))
    return result


def format_markdown(result: dict[str, Any]) -> str:
    """The report of `run_bench` as Markdown tables."""
    dev, s = result["device"], result["settings"]
    load = ""
    if "load_average_1min" in dev:
        load = (
            f" Load average {dev['load_average_1min']} at the start, "
            f"{dev.get('load_average_1min_end', '?')} at the end."
        )
    lines = [
        "# posetransfer bench",
        "",
        f"Device: {dev['type']} ({dev['name']}, {dev['threads']} threads), torch "
        f"{result['torch']}; batch {s['batch']}, {s['warmup']} warm-up and {s['repeats']} timed "
        f"calls per measurement; median [interquartile range].{load}",
        "",
        "## Parameters",
        "",
        "| generator | parameters |",
        "|---|---:|",
    ]
    lines += [f"| {n} | {p:,} |" for n, p in result["parameters"].items()]
    lines += [
        "",
        "## Inference speed",
        "",
        "| generator | size | ms / image | images / s | paper fps (Titan Xp, 256x176) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in result["speed"]:
        ms = r["ms_per_image"]
        paper = result["paper"]["fps"].get(r["generator"], "")
        if (r["height"], r["width"]) != (256, 176):
            paper = ""
        lines.append(
            f"| {r['generator']} | {r['height']}x{r['width']} | {ms['median']:.1f} "
            f"[{ms['q1']:.1f}-{ms['q3']:.1f}] | {r['images_per_s']:.2f} | {paper} |"
        )
    lines += [
        "",
        f"## One block on a {'x'.join(map(str, s['block_input']))} code",
        "",
        "Microseconds per call: wall time, then the profiler's self time of the ops in each "
        "category (summed, it leaves out Python overhead and gains the profiler's own).",
        "",
        "| block | attention | params | wall us | "
        + " | ".join(CATEGORIES)
        + " | paper us (Titan Xp) |",
        "|---|---|---:|---:|" + "---:|" * len(CATEGORIES) + "---:|",
    ]
    for b in result["blocks"]:
        us, br = b["us"], b["breakdown_us"]
        total = sum(br.values()) or 1.0
        cells = " | ".join(f"{br[c]:,.0f} ({100 * br[c] / total:.0f}%)" for c in CATEGORIES)
        paper = result["paper"]["block_us"].get(b["block"], "")
        if b["input"] != [1, 256, 64, 64]:
            paper = ""
        elif paper:
            paper = f"{paper:,.0f}"
        lines.append(
            f"| {b['block']} | {b['attention'] or ''} | {b['params']:,} | "
            f"{us['median']:,.0f} [{us['q1']:,.0f}-{us['q3']:,.0f}] | {cells} | {paper} |"
        )
    return "\n".join(lines) + "\n"
