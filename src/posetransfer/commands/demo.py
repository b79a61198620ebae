"""`posetransfer demo`: the whole pipeline on the synthetic data, in a few CPU minutes."""

from __future__ import annotations

import argparse
from pathlib import Path

from posetransfer.commands import add_progress_flag

EXAMPLE = """\
example:
  posetransfer demo --out demo_out

Writes demo_out/samples.png (condition | target pose | generated | ground truth) and
demo_out/metrics.json (ssim, l1, and the copy-the-condition-image baseline).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="synthetic data, a small PATN trained on the CPU, generation and metrics",
        description="Build the synthetic dataset, train a small PATN for a few minutes, "
        "generate the held-out test pairs and compare with copying the condition image.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument(
        "--minutes",
        type=float,
        default=8.0,
        help="training time cap in minutes; training normally ends earlier, at train.iterations (700)",
    )
    p.add_argument("--data", type=Path, help="synthetic dataset folder (default OUT/data)")
    add_progress_flag(p)
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from posetransfer.demo import run_demo

    m = run_demo(args.out, args.minutes, args.data, args.overrides, progress=not args.no_progress)
    print()
    print(f"{'':22}{'generated':>10}{'copy source':>13}")
    print(f"{'SSIM (higher better)':22}{m['ssim']:>10.4f}{m['ssim_copy_source']:>13.4f}")
    print(f"{'L1 (lower better)':22}{m['l1']:>10.2f}{m['l1_copy_source']:>13.2f}")
    print(
        f"\n{m['pairs']} held-out pairs, {m['iterations']} iterations in {m['train_seconds']:.0f} s"
    )
    print(f"samples: {args.out / 'samples.png'}   metrics: {args.out / 'metrics.json'}")
    if not m["beats_copy_source"]:
        print("warning: the model did not beat the copy-the-condition baseline on both metrics")
    return 0
