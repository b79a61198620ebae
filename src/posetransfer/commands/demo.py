"""`posetransfer demo`: the whole pipeline on the synthetic data, in a few CPU minutes."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from posetransfer.commands.options import Progress, add_options, options_from_args
from posetransfer.core.options import option

EXAMPLE = """\
example:
  posetransfer demo --out demo_out

Writes demo_out/samples.png (condition | target pose | demo model | bundled PATN | bundled
APATN | ground truth), demo_out/table.md (SSIM, mask-SSIM, L1, body L1 of each and of copying
the condition image) and demo_out/metrics.json.
"""


@dataclass(frozen=True)
class DemoOptions:
    """`posetransfer demo` (`demo.run_demo`); config fields are ``--section.field`` overrides."""

    out: Path = option(Path("demo_out"), help="output folder")
    minutes: float = option(
        8.0,
        help="training time cap in minutes; training normally ends earlier, at "
        "train.iterations (850)",
    )
    data: Path | None = option(None, help="synthetic dataset folder (default OUT/data)")


OPTIONS = (DemoOptions, Progress)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="synthetic data, a small PATN trained on the CPU, generation and metrics",
        description="Build the synthetic dataset, train a small PATN for a few minutes, "
        "generate the held-out test pairs with it and with the bundled models (trained on "
        "synthetic people for much longer), and compare all with copying the condition image.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(p, *OPTIONS)
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from posetransfer.checkpoint.bundled import describe
    from posetransfer.demo import run_demo
    from posetransfer.metrics.scores import SCORE_LABELS, format_score

    o, progress = options_from_args(args, *OPTIONS)
    m = run_demo(o.out, o.minutes, o.data, args.overrides, progress=progress.progress)
    print()
    print(f"{'':22}" + "".join(f"{label:>11}" for label in SCORE_LABELS.values()))
    for name, scores in m.table.items():
        cells = "".join(f"{format_score(k, scores[k]):>11}" for k in SCORE_LABELS)
        print(f"{name:22}{cells}")
    print(
        f"\n{m.pairs} held-out pairs; SSIM and mask-SSIM higher is better, L1 lower. The demo "
        f"model trained {m.iterations} iterations in {m.train_seconds:.0f} s"
    )
    for label, name in m.bundled.items():
        print(f"{label}: the {describe(name)}")
    if not m.bundled:
        print("(no bundled models in this installation)")
    print(f"grid: {o.out / 'samples.png'}   table: {o.out / 'table.md'}")
    if not m.beats_copy_source:
        print("warning: the model did not beat the copy-the-condition baseline on both metrics")
    return 0
