"""`bench --compare`: every inference path side by side in one run, plus training and data speed.

For each generator and (height, width, batch) case, the same random weights and inputs go
through each path:

- ``eager fp32``: the plain network in eval mode under ``torch.inference_mode``, the baseline;
- ``fast <precision>``: `posetransfer.models.for_inference` (BatchNorm folded, low-precision
  weights, channels_last on CUDA) at fp32, bf16 (where native) and fp16 (CUDA);
- ``compiled <precision>``: the fast path through ``torch.compile`` (its compile time is reported
  as the setup time);
- ``onnxruntime fp32``, ``openvino fp32``, ``openvino bf16``: the ONNX export on those runtimes
  (CPU; the export time is the setup time).

Per path: ms/image (median [IQR]) and images/s, the speedup over eager fp32, the PSNR of its
output against eager fp32's, the peak memory (CUDA: allocator peak; CPU: the process's peak
resident size during that path, reset before it through ``/proc/self/clear_refs``), and the
achieved GFLOP/s from FLOPs per image counted by ``torch.utils.flop_counter`` (convolutions,
plus the attention matrix products, which the counter does not see on the CPU).

Then: one PATB and one APATB on the paper's 1x256x64x64 code, eager fp32 and on the fast path,
with their time ratio against their FLOP ratio; the training loader's pairs/s on one core; and
training speed per recipe and precision along each training path, against a plain eager loop and
as a share of the measured convolution peak (`posetransfer.analysis.train_speed`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from posetransfer.analysis.bench import block_setup, summarize, time_calls
from posetransfer.analysis.train_speed import conv_peak, format_training, training_paths
from posetransfer.core.device import device_description, resolve_device
from posetransfer.core.files import atomic_write
from posetransfer.core.precision import native_bf16
from posetransfer.export.check import psnr
from posetransfer.models.inference import for_inference
from posetransfer.models.registry import create_generator
from posetransfer.runtime.exported import with_backend

DEFAULT_CASES: tuple[tuple[int, int, int], ...] = ((128, 64, 8), (256, 176, 4))
PAPER_APATB_PATB = 3114.0 / 1543.0  # Titan Xp, the paper's block timings


# --------------------------------------------------------------------------------------------
# Measuring


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def _peak_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _sdpa_flops(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    # query [B, heads, Lq, d], key [B, heads, Lk, d], value [B, heads, Lk, dv]: two products.
    q, k, v = (torch.Size(s) for s in args[:3])
    b, h, lq, d = q
    return 2 * b * h * lq * k[-2] * d + 2 * b * h * lq * k[-2] * v[-1]


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (convolutions, matrix products, fused attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        mapping[op] = _sdpa_flops
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=mapping) as fc:
        fn()
    return int(fc.get_total_flops())


def _inputs(batch: int, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    from posetransfer.runtime.onnx import example_inputs

    return tuple(t.to(device) for t in example_inputs(batch, h, w))


def inference_paths(device: torch.device, compile: bool = True) -> list[tuple[str, str, str]]:
    """(label, backend, precision) of every path this device and installation can run."""
    import importlib.util

    low = []
    if native_bf16(device):
        low.append("bf16")
    if device.type == "cuda":
        low.append("fp16")
    paths = [("fast fp32", "torch", "fp32")] + [(f"fast {p}", "torch", p) for p in low]
    if compile:
        best = low[0] if low else "fp32"
        paths.append((f"compiled {best}", "compiled", best))
    if device.type == "cpu":
        if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnxscript"):
            paths.append(("onnxruntime fp32", "onnxruntime", "fp32"))
        if importlib.util.find_spec("openvino") and importlib.util.find_spec("onnxscript"):
            paths.append(("openvino fp32", "openvino", "fp32"))
            if native_bf16(device):
                paths.append(("openvino bf16", "openvino", "bf16"))
    return paths


def _build(model: torch.nn.Module, backend: str, precision: str, device, size) -> Any:
    if backend == "compiled":
        return for_inference(model, precision, device, compile=True)
    return with_backend(model, backend, precision, device, image_size=size)


def compare_generator(
    name: str,
    case: tuple[int, int, int],
    device: torch.device,
    paths: Sequence[tuple[str, str, str]],
    repeats: int,
    warmup: int,
    progress: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Rows of the comparison for one generator at one (height, width, batch)."""
    h, w, batch = case
    torch.manual_seed(0)
    model = create_generator(name).to(device).eval()
    inputs = _inputs(batch, h, w, device)
    one = tuple(t[:1] for t in inputs)
    flops = count_flops(lambda: model(*one))  # per image
    rows = []

    def measure(label: str, fn: Callable[[], torch.Tensor], setup_s: float, ref) -> dict:
        _peak_reset(device)  # the peak of the timed calls, not of building the path
        times = time_calls(fn, device, repeats, warmup)
        ms = summarize([1000 * t / batch for t in times])
        out = fn()
        quality = None if ref is None else psnr(ref, out)
        return {
            "generator": name,
            "height": h,
            "width": w,
            "batch": batch,
            "path": label,
            "ms_per_image": ms,
            "images_per_s": 1000 / ms["median"],
            # null for the reference itself and where the output is bit-identical to it
            "psnr_db": None if quality in (None, float("inf")) else quality,
            "bit_exact": quality == float("inf"),
            "peak_mb": _peak_mb(device),
            "setup_s": setup_s,
            "gflop_per_image": flops / 1e9,
            "gflop_per_s": flops / 1e9 * 1000 / ms["median"],
        }

    progress(f"{name} {h}x{w} eager fp32")
    with torch.inference_mode():
        ref = model(*inputs)
        base = measure("eager fp32", lambda: model(*inputs), 0.0, None)
    rows.append(base)
    for label, backend, precision in paths:
        progress(f"{name} {h}x{w} {label}")
        t0 = time.perf_counter()
        fast = _build(model, backend, precision, device, (h, w))
        fast(*inputs)  # compiles on the first call
        setup = time.perf_counter() - t0
        rows.append(measure(label, lambda fast=fast: fast(*inputs), setup, ref))
        del fast
    for r in rows:
        r["speedup"] = base["ms_per_image"]["median"] / r["ms_per_image"]["median"]
    return rows


def _time_us(fn: Callable[[], Any], device: torch.device, repeats: int) -> dict[str, float]:
    return summarize([1e6 * v for v in time_calls(fn, device, repeats, 1)])


def block_comparison(
    device: torch.device, dim: int = 256, size: tuple[int, int] = (64, 64), repeats: int = 3
) -> list[dict[str, Any]]:
    """PATB and APATB on a [1, dim, H, W] code, in fp32 and with the weights and inputs in the
    fast path's low precision (bf16 where native, fp16 on other GPUs).

    FLOPs are the mathematical ones, from the explicit path: convolutions, Q K^T over C/2
    channels and A V over C (the generator rows of the comparison count what the fused kernel
    executes, with Q and K padded to C)."""
    patb, apatb, x, s, t, pose = block_setup(dim, size, device)
    shape = tuple(x.shape)
    with torch.inference_mode():
        flops = {
            "PATB": count_flops(lambda: patb(x, pose)),
            "APATB": count_flops(lambda: apatb(x, s, t, return_attention=True)),
        }
    precisions = ["fp32"] + (["bf16"] if native_bf16(device) else [])
    if device.type == "cuda":  # every CUDA GPU has fp16 (tensor cores since Volta)
        precisions.append("fp16")
    rows = []
    for precision in precisions:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        p, a = patb.to(dtype), apatb.to(dtype)
        xs, ss, ts, ps = (v.to(dtype) for v in (x, s, t, pose))
        with torch.inference_mode():
            tp = _time_us(functools.partial(p, xs, ps), device, repeats)
            ta = _time_us(functools.partial(a, xs, ss, ts), device, repeats)
        rows.append(
            {
                "precision": precision,
                "input": list(shape),
                "patb_us": tp,
                "apatb_us": ta,
                "time_ratio": ta["median"] / tp["median"],
                "patb_gflop": flops["PATB"] / 1e9,
                "apatb_gflop": flops["APATB"] / 1e9,
                "flop_ratio": flops["APATB"] / flops["PATB"],
            }
        )
    return rows


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def loader_speed(
    root: Path,
    height: int,
    width: int,
    device: torch.device,
    pairs: int = 64,
    batch: int = 8,
    body_masks: bool = False,
) -> dict[str, Any]:
    """Pairs/s of the training data path on one core: the loader, then heatmaps on the device.

    As training runs it: the loader (one process) decodes both JPEGs and makes their tensors
    (and body masks when asked), collated into batches; `add_heatmaps` then renders the 36
    heatmaps per pair from the keypoints on ``device``. Also timed: the older path, with the
    heatmaps made per pair inside the loader.
    """
    from torch.utils.data import DataLoader

    from posetransfer.config import DataConfig
    from posetransfer.data.datasets import PairDataset, add_heatmaps

    def make(heatmaps: bool) -> PairDataset:
        return PairDataset(
            root / "train",
            root / "synthetic-annotation-train.csv",
            root / "synthetic-pairs-train.csv",
            height=height,
            width=width,
            body_masks=body_masks,
            heatmaps=heatmaps,
        )

    data_cfg = DataConfig(dataset="synthetic", root=str(root), height=height, width=width)
    n = min(pairs, len(make(False))) // batch * batch

    def timed(heatmaps: bool) -> tuple[float, float]:
        loader = DataLoader(make(heatmaps), batch_size=batch, num_workers=0)
        load = render = 0.0
        seen = 0
        t0 = time.perf_counter()
        for b in loader:
            t1 = time.perf_counter()
            load += t1 - t0
            if not heatmaps:
                b = {k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()}
                add_heatmaps(b, data_cfg)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            render += t0 - t1
            seen += b["src_img"].shape[0]
            if seen >= n:
                break
        return load, render

    with _threads(1):
        timed(False)  # warm the file cache
        load, render = timed(False)
        old, _ = timed(True)
    return {
        "height": height,
        "width": width,
        "pairs": n,
        "batch": batch,
        "body_masks": body_masks,
        "loader_pairs_per_s": n / load,
        "heatmaps_ms_per_pair": 1000 * render / n,
        "pairs_per_s_per_core": n / (load + render),
        "in_loader_heatmaps_pairs_per_s": n / old,
    }


# --------------------------------------------------------------------------------------------
# The run


def _synthetic(root: Path, height: int, width: int) -> Path:
    from posetransfer.data.synthetic import SyntheticConfig, make_synthetic_dataset

    cfg = SyntheticConfig(
        n_train_ids=6, n_test_ids=1, images_per_id=6, height=height, width=width, max_test_pairs=4
    )
    return make_synthetic_dataset(root, cfg, progress=False)


def run_compare(
    out_dir: str | Path,
    device: str = "auto",
    generators: Sequence[str] = ("patn_fashion",),
    cases: Sequence[tuple[int, int, int]] = DEFAULT_CASES,
    repeats: int = 5,
    warmup: int = 1,
    compile: bool = True,
    train_configs: Sequence[str] | None = None,
    train_steps: int = 6,
    loader_pairs: int = 64,
    loader_size: tuple[int, int] = (256, 176),
    progress: bool = True,
) -> dict[str, Any]:
    """Run the whole comparison and write ``compare.json`` and ``compare.md`` to ``out_dir``.

    Args:
        out_dir: output folder (created).
        device: "auto", "cpu", "cuda", ...
        generators: registered generators to compare (random weights, the same for every path).
        cases: (height, width, batch) to time at.
        repeats, warmup: timed and untimed calls per measurement.
        compile: include the ``torch.compile`` path (minutes of compiling on a small CPU).
        train_configs: shipped configs to time training with; default ``synthetic`` on a CPU,
            ``fashion_patn`` and ``market_patn`` on CUDA (all on synthetic people at the
            config's size); empty to skip.
        train_steps: timed training steps per precision (after one warm-up step).
        loader_pairs: pairs the loader benchmark reads.
        loader_size: (height, width) of the loader benchmark's images.
        progress: show a progress bar.
    """
    dev = resolve_device(device)
    if train_configs is None:
        train_configs = ("fashion_patn", "market_patn") if dev.type == "cuda" else ("synthetic",)
    paths = inference_paths(dev, compile)
    result: dict[str, Any] = {
        "device": device_description(dev),
        "torch": torch.__version__,
        "settings": {"repeats": repeats, "warmup": warmup, "cases": [list(c) for c in cases]},
        "inference": [],
        "blocks": [],
        "training": [],
        "loader": [],
        "paper_apatb_patb": PAPER_APATB_PATB,
        "complete": False,
    }
    out = Path(out_dir)

    def save() -> None:
        # After every measured case, so an interrupted run keeps what it measured.
        atomic_write(out / "compare.json", json.dumps(result, indent=2) + "\n")
        atomic_write(out / "compare.md", format_compare(result))

    steps = len(generators) * len(cases) * (len(paths) + 1) + 3
    with tqdm(total=steps, desc="bench --compare", disable=not progress) as bar:

        def note(text: str) -> None:
            bar.set_postfix_str(text)
            bar.update()

        for name in generators:
            for case in cases:
                result["inference"] += compare_generator(
                    name, case, dev, paths, repeats, warmup, note
                )
                save()
        note("blocks")
        result["blocks"] = block_comparison(dev, repeats=max(3, repeats))
        save()
        with tempfile.TemporaryDirectory(prefix="posetransfer-bench-") as tmp:
            note("loader")
            big = _synthetic(Path(tmp) / "loader", *loader_size)
            for masks in (False, True):
                result["loader"].append(
                    loader_speed(big, *loader_size, dev, loader_pairs, 8, masks)
                )
            note("training")
            precisions = ["fp32"] + [p for p in ("bf16", "fp16") if _runs(p, dev)]
            if train_configs:
                result["conv_peak"] = [conv_peak(dev, p, max(3, repeats)) for p in precisions]
            roots: dict[tuple[int, int], Path] = {tuple(loader_size): big}
            for config in train_configs:
                size = _config_size(config)
                if size not in roots:
                    roots[size] = _synthetic(Path(tmp) / f"{size[0]}x{size[1]}", *size)
                for precision in precisions:
                    peak = next(
                        p["gflop_per_s"] for p in result["conv_peak"] if p["precision"] == precision
                    )
                    result["training"] += training_paths(
                        config, roots[size], dev, precision, train_steps, compile, peak
                    )
                    save()
    if hasattr(os, "getloadavg"):
        result["device"]["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    result["complete"] = True
    save()
    return result


def _runs(precision: str, device: torch.device) -> bool:
    if precision == "bf16":
        return native_bf16(device)
    return device.type == "cuda"


def _config_size(config: str) -> tuple[int, int]:
    from posetransfer.config import load_config

    cfg = load_config(config, [])
    return cfg.data.height, cfg.data.width


# --------------------------------------------------------------------------------------------
# The report


def _fmt(value: float | None, spec: str = ".1f", empty: str = "") -> str:
    return empty if value is None else format(value, spec)


def format_compare(result: dict[str, Any]) -> str:
    """The comparison as Markdown tables."""
    dev, s = result["device"], result["settings"]
    lines = [
        "# posetransfer bench --compare",
        "",
        *(
            []
            if result.get("complete", True)
            else ["**Unfinished run: the sections below hold what was measured so far.**", ""]
        ),
        f"Device: {dev['type']} ({dev['name']}, {dev['threads']} threads), torch "
        f"{result['torch']}; {s['warmup']} warm-up and {s['repeats']} timed calls per "
        f"measurement, median [interquartile range]; load average "
        f"{dev.get('load_average_1min', '?')} at the start, "
        f"{dev.get('load_average_1min_end', '?')} at the end. Same weights and inputs on every "
        "path; PSNR against eager fp32 (images in [-1, 1]).",
        "",
        "## Inference",
        "",
        "| generator | size x batch | path | ms / image | images / s | speedup | PSNR dB | "
        "GFLOP/s | peak MB | setup s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["inference"]:
        ms = r["ms_per_image"]
        p = r["psnr_db"]
        p_text = "exact" if r.get("bit_exact") else ("ref" if p is None else f"{p:.1f}")
        lines.append(
            f"| {r['generator']} | {r['height']}x{r['width']} x{r['batch']} | {r['path']} | "
            f"{ms['median']:.1f} [{ms['q1']:.1f}-{ms['q3']:.1f}] | {r['images_per_s']:.2f} | "
            f"{r['speedup']:.2f}x | {p_text} | {r['gflop_per_s']:.0f} | "
            f"{_fmt(r['peak_mb'], '.0f')} | {r['setup_s']:.1f} |"
        )
    if result["inference"]:
        g = {
            (r["generator"], r["height"], r["width"]): r["gflop_per_image"]
            for r in result["inference"]
        }
        lines += [
            "",
            "FLOPs per image: "
            + ", ".join(f"{k[0]} {k[1]}x{k[2]} {v:.1f} GFLOP" for k, v in g.items())
            + ".",
        ]
    lines += [
        "",
        "## PATB against APATB",
        "",
        "| precision | input | PATB us | APATB us | time ratio | PATB GFLOP | APATB GFLOP | "
        "FLOP ratio | paper time ratio (Titan Xp) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in result["blocks"]:
        lines.append(
            f"| {b['precision']} | {'x'.join(map(str, b['input']))} | "
            f"{b['patb_us']['median']:,.0f} | {b['apatb_us']['median']:,.0f} | "
            f"{b['time_ratio']:.2f} | {b['patb_gflop']:.1f} | {b['apatb_gflop']:.1f} | "
            f"{b['flop_ratio']:.2f} | {result['paper_apatb_patb']:.2f} |"
        )
    if result["training"]:
        lines += format_training(result)
    if result["loader"]:
        lines += [
            "",
            "## Training data, one core",
            "",
            "| size | body masks | loader pairs/s | heatmaps on device ms/pair | pairs/s in all | "
            "heatmaps made in the loader instead: pairs/s |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for ld in result["loader"]:
            lines.append(
                f"| {ld['height']}x{ld['width']} | {'yes' if ld['body_masks'] else 'no'} | "
                f"{ld['loader_pairs_per_s']:.0f} | {ld['heatmaps_ms_per_pair']:.2f} | "
                f"{ld['pairs_per_s_per_core']:.0f} | {ld['in_loader_heatmaps_pairs_per_s']:.0f} |"
            )
    return "\n".join(lines) + "\n"
