"""`posetransfer bench`: parameters, inference speed and per-block time breakdown."""

from __future__ import annotations

import argparse
from pathlib import Path

from posetransfer.commands import add_progress_flag

EXAMPLE = """\
examples:
  posetransfer bench --out bench/
  posetransfer bench --threads 1 --out bench/
  posetransfer bench --device cuda --repeats 50 --warmup 10 --batch 8 --out bench-gpu/
  posetransfer bench --generators patn_small,apatn_small --sizes 128x64 --repeats 3 --out b/

Writes bench.json and bench.md (also printed): the parameters of every registered generator;
per-image inference time (median [IQR]) and images/s of the chosen generators at each size; and
one PATB and one APATB on a 1x256x64x64 code (the paper's setting), timed and broken down by
torch.profiler into conv / norm / matmul / softmax / other. Defaults take about 2 minutes on
2 CPU cores; on a machine busy with other jobs, --threads 1 gives steadier CPU timings.
"""


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
    p.add_argument(
        "--device", default="auto", help="auto (CUDA if any), cpu, cuda, cuda:1, ... (auto)"
    )
    p.add_argument("--repeats", type=int, default=5, metavar="N", help="timed calls (5)")
    p.add_argument("--warmup", type=int, default=1, metavar="N", help="untimed calls first (1)")
    p.add_argument(
        "--generators",
        default="patn_fashion,apatn_fashion",
        metavar="NAMES",
        help="comma-separated registered generators to time (patn_fashion,apatn_fashion)",
    )
    p.add_argument(
        "--sizes", default="128x64,256x176", metavar="HxW,...", help="image sizes to time at"
    )
    p.add_argument("--batch", type=int, default=1, metavar="N", help="images per call (1)")
    p.add_argument(
        "--block-size", default="64x64", metavar="HxW", help="code size of the block test (64x64)"
    )
    p.add_argument(
        "--block-dim", type=int, default=256, metavar="C", help="code channels of the block test"
    )
    p.add_argument(
        "--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for bench.json/bench.md")
    add_progress_flag(p)
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


def run(args: argparse.Namespace) -> int:
    from posetransfer.analysis.bench import run_bench
    from posetransfer.device import resolve_device
    from posetransfer.errors import InputError
    from posetransfer.models.registry import list_generators

    generators = [g.strip() for g in args.generators.split(",") if g.strip()]
    known = list_generators()
    for g in generators:
        if g not in known:
            raise InputError(f"--generators: unknown generator {g!r}; known: {', '.join(known)}")
    sizes = [_size(s.strip(), "--sizes") for s in args.sizes.split(",") if s.strip()]
    if not sizes:
        raise InputError("--sizes: give at least one HxW")
    for option, value in (("--repeats", args.repeats), ("--batch", args.batch)):
        if value < 1:
            raise InputError(f"{option} must be at least 1, got {value}")
    if args.warmup < 0:
        raise InputError(f"--warmup must be 0 or more, got {args.warmup}")
    resolve_device(args.device)  # a clear message before any work
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    block_h, block_w = _size(args.block_size, "--block-size", multiple=1)
    if args.block_dim < 2 or args.block_dim % 2:
        raise InputError(f"--block-dim must be even and at least 2, got {args.block_dim}")
    run_bench(
        args.out,
        device=args.device,
        generators=generators,
        sizes=sizes,
        batch=args.batch,
        repeats=args.repeats,
        warmup=args.warmup,
        block_size=(block_h, block_w),
        block_dim=args.block_dim,
        progress=not args.no_progress,
    )
    print((Path(args.out) / "bench.md").read_text(), end="")
    return 0
