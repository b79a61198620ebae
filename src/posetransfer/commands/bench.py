"""`posetransfer bench`: parameters, inference speed and per-block time breakdown."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from posetransfer.commands.options import Progress, add_options, options_from_args
from posetransfer.core.options import option

DEFAULT_GENERATORS = "patn_fashion,apatn_fashion"

EXAMPLE = """\
examples:
  posetransfer bench --out bench/
  posetransfer bench --threads 1 --out bench/
  posetransfer bench --device cuda --repeats 50 --warmup 10 --batch 8 --out bench-gpu/
  posetransfer bench --generators patn_small,apatn_small --sizes 128x64 --repeats 3 --out b/
  posetransfer bench --compare --out bench/        # every inference path side by side
  posetransfer bench --compare --generators patn_fashion,apatn_fashion --no-compile --out b/

Writes bench.json and bench.md (also printed): the parameters of every registered generator;
per-image inference time (median [IQR]) and images/s of the chosen generators at each size; and
one PATB and one APATB on a 1x256x64x64 code (the paper's setting), timed and broken down by
torch.profiler into conv / norm / matmul / softmax / other. Defaults take about 2 minutes on
2 CPU cores; on a machine busy with other jobs, --threads 1 gives steadier CPU timings.

--compare writes compare.json and compare.md instead: for each generator (default
patn_fashion) and --cases HxWxBATCH, eager fp32 against the fast path per precision, compiled,
onnxruntime and OpenVINO (speedup, PSNR against eager fp32, GFLOP/s, peak memory), PATB
against APATB time and FLOP ratios, training iterations/s per precision with the share spent
waiting for data, and the loader's pairs/s. 5.5 minutes on 2 CPU cores for patn_fashion
with --repeats 3 and compile. Both files are rewritten after each measured case, so an
interrupted run keeps what it measured (marked unfinished).
"""


@dataclass(frozen=True)
class BenchOptions:
    """`posetransfer bench` (`analysis.bench.run_bench`, `analysis.compare.run_compare`)."""

    out: str = option(help="folder for the reports", metavar="DIR")
    device: str = option("auto", help="auto (CUDA if any), cpu, cuda, cuda:1, ...")
    repeats: int = option(5, help="timed calls", metavar="N")
    warmup: int = option(1, help="untimed calls first", metavar="N")
    generators: str | None = option(
        None,
        help="comma-separated registered generators to time (patn_fashion,apatn_fashion; "
        "with --compare: patn_fashion)",
        metavar="NAMES",
    )
    sizes: str = option("128x64,256x176", help="image sizes to time at", metavar="HxW,...")
    batch: int = option(1, help="images per call", metavar="N")
    block_size: str = option("64x64", help="code size of the block test", metavar="HxW")
    block_dim: int = option(256, help="code channels of the block test", metavar="C")
    threads: int | None = option(
        None, help="CPU threads for torch (default: torch's choice)", metavar="N"
    )
    compare: bool = option(
        False, help="compare every inference path, training and data speed (compare.json/.md)"
    )
    cases: str = option(
        "128x64x8,256x176x4", help="--compare: image sizes and batches", metavar="HxWxB,..."
    )
    compile: bool = option(
        True, help="--compare: include the torch.compile path (--no-compile leaves it out)"
    )
    train_configs: str | None = option(
        None,
        help="--compare: configs to time training with (synthetic on a CPU, fashion_patn,"
        "market_patn on CUDA; 'none' skips)",
        metavar="NAMES",
    )
    train_steps: int = option(6, help="--compare: timed steps", metavar="N")


OPTIONS = (BenchOptions, Progress)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure parameters, speed and per-block time (paper Table 2, Fig. 6)",
        description=(
            "Benchmark the generators on this machine: parameter counts, inference time per\n"
            "image, and a per-op-category breakdown of one PATB and one APATB."
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(p, *OPTIONS)
    p.set_defaults(func=run)


def _size(text: str, option: str, multiple: int = 4) -> tuple[int, int]:
    from posetransfer.errors import InputError

    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"{option}: expected HxW such as 256x176, got {text!r}")
    if h < multiple or w < multiple or h % multiple or w % multiple:
        raise InputError(f"{option}: {text} must be positive and divisible by {multiple}")
    return h, w


def _case(text: str) -> tuple[int, int, int]:
    from posetransfer.errors import InputError

    parts = text.lower().split("x")
    if len(parts) != 3:
        raise InputError(f"--cases: expected HxWxBATCH such as 256x176x4, got {text!r}")
    h, w = _size("x".join(parts[:2]), "--cases")
    try:
        batch = int(parts[2])
    except ValueError:
        batch = 0
    if batch < 1:
        raise InputError(f"--cases: the batch of {text!r} must be a positive integer")
    return h, w, batch


def _compare(o: BenchOptions, generators: list[str], progress: bool) -> int:
    from posetransfer.analysis.compare import run_compare
    from posetransfer.errors import InputError

    cases = [_case(c.strip()) for c in o.cases.split(",") if c.strip()]
    if not cases:
        raise InputError("--cases: give at least one HxWxBATCH")
    if o.train_steps < 1:
        raise InputError(f"--train-steps must be at least 1, got {o.train_steps}")
    configs = None
    if o.train_configs is not None:
        configs = [c.strip() for c in o.train_configs.split(",") if c.strip() != "none"]
        configs = [c for c in configs if c]
    run_compare(
        o.out,
        device=o.device,
        generators=generators,
        cases=cases,
        repeats=o.repeats,
        warmup=o.warmup,
        compile=o.compile,
        train_configs=configs,
        train_steps=o.train_steps,
        progress=progress,
    )
    print((Path(o.out) / "compare.md").read_text(), end="")
    return 0


def run(args: argparse.Namespace) -> int:
    from posetransfer.analysis.bench import run_bench
    from posetransfer.core.device import resolve_device
    from posetransfer.core.files import check_output
    from posetransfer.errors import InputError
    from posetransfer.models.registry import list_generators

    o, progress = options_from_args(args, *OPTIONS)
    check_output(o.out, arg="out", kind="folder")  # before minutes of timing, not after
    names = o.generators
    if names is None:
        names = "patn_fashion" if o.compare else DEFAULT_GENERATORS
    generators = [g.strip() for g in names.split(",") if g.strip()]
    known = list_generators()
    for g in generators:
        if g not in known:
            raise InputError(f"--generators: unknown generator {g!r}; known: {', '.join(known)}")
    sizes = [_size(s.strip(), "--sizes") for s in o.sizes.split(",") if s.strip()]
    if not sizes:
        raise InputError("--sizes: give at least one HxW")
    for flag, value in (("--repeats", o.repeats), ("--batch", o.batch)):
        if value < 1:
            raise InputError(f"{flag} must be at least 1, got {value}")
    if o.warmup < 0:
        raise InputError(f"--warmup must be 0 or more, got {o.warmup}")
    resolve_device(o.device)  # a clear message before any work
    if o.threads is not None:
        if o.threads < 1:
            raise InputError(f"--threads must be at least 1, got {o.threads}")
        import torch

        torch.set_num_threads(o.threads)
    if o.compare:
        return _compare(o, generators, progress.progress)
    block_h, block_w = _size(o.block_size, "--block-size", multiple=1)
    if o.block_dim < 2 or o.block_dim % 2:
        raise InputError(f"--block-dim must be even and at least 2, got {o.block_dim}")
    run_bench(
        o.out,
        device=o.device,
        generators=generators,
        sizes=sizes,
        batch=o.batch,
        repeats=o.repeats,
        warmup=o.warmup,
        block_size=(block_h, block_w),
        block_dim=o.block_dim,
        progress=progress.progress,
    )
    print((Path(o.out) / "bench.md").read_text(), end="")
    return 0
