"""`posetransfer train`: train a generator from a shipped config or a YAML file."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

from posetransfer.commands.options import add_options, options_from_args
from posetransfer.core.options import option

EXAMPLE = """\
examples:
  # the CPU-sized synthetic recipe (builds data/synthetic on first use)
  posetransfer train --config synthetic --train.iterations 300
  # the paper's Market-1501 recipe, overriding fields with --section.field value
  posetransfer train --config market_patn --data.root data/market --train.batch_size 16
  # a long run: compile the generator's step first (a minute the first time, cached after)
  posetransfer train --config synthetic_long --train.compile true
  # several GPUs (or CPU processes with the gloo backend)
  torchrun --nproc_per_node 2 -m posetransfer.cli train --config market_patn
  # continue an interrupted run exactly (from its newest intact checkpoint)
  posetransfer train --train.resume runs/00003-patn_market-market
  # ... and train it longer with a lower learning rate from there on
  posetransfer train --train.resume runs/00003-patn_market-market \\
      --train.iterations 120000 --train.lr 1e-4

Resuming keeps the run's saved config. Only these fields may change on resume; they apply after
the checkpoint's step and are recorded in the run's config-history.jsonl: train.iterations,
train.decay_start, train.lr, train.log_every, train.sample_every, train.checkpoint_every,
train.keep_checkpoints, train.max_minutes, train.progress, train.device, train.precision,
train.channels_last, train.compile, data.num_workers, data.cache_mb.
Changing any other field (model, data, losses, batch size, seed, ...) is refused: start a new
run instead. One process at a time may train a run.

Under torchrun a configuration error is printed once, by rank 0 (torchrun then adds its own
summary of the failed processes).

Ctrl-C (or SIGTERM) finishes the current step, writes a checkpoint and exits with status 130
(143 for SIGTERM); a second Ctrl-C stops at once.

Shipped configs: {configs}.
Ablations and ResNet baselines are generator names: --model.generator patn_fashion_wo_cat.
Every field of the config can be overridden: data.*, model.*, loss.*, train.*.
"""


@dataclass(frozen=True)
class TrainCommand:
    """`posetransfer train`'s own flags; every config field is a ``--section.field`` override."""

    config: str | None = option(
        None,
        help="shipped config name or a YAML file; defaults to synthetic, or to the resumed "
        "run's config",
    )
    print_config: bool = option(False, help="print the resolved config and exit")
    progress: bool = option(
        True, help="show the progress bar (--no-progress is --train.progress false)"
    )


OPTIONS = (TrainCommand,)


def register(sub: argparse._SubParsersAction) -> None:
    from posetransfer.config import shipped_configs

    p = sub.add_parser(
        "train",
        help="train a generator (PATN, APATN, variants)",
        description="Train a generator. Writes a numbered run directory with checkpoints, "
        "TensorBoard logs, stats.jsonl and sample grids; Ctrl-C checkpoints and stops.",
        epilog=EXAMPLE.format(configs=", ".join(shipped_configs())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(p, *OPTIONS)
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from posetransfer.errors import InputError

    try:
        return _run(args)
    except InputError:
        rank = int(os.environ.get("RANK", "0"))
        if rank != 0 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # Every process meets the same configuration error: rank 0 prints it, and torchrun
            # stops the others once it exits. A process still running after a few seconds
            # met an error of its own (rank 0 did not), which it prints then.
            time.sleep(RANK_ERROR_DELAY_S)
        raise


RANK_ERROR_DELAY_S = 5.0
"""Under torchrun, how long a process other than rank 0 waits before printing its error."""


def _run(args: argparse.Namespace) -> int:
    from posetransfer.config import load_config, resume_override
    from posetransfer.train import TrainingInterrupted, resume_config, train

    cmd = options_from_args(args, TrainCommand)
    if not cmd.progress:  # before the overrides: a --train.progress given wins
        args.overrides = ["train.progress=false", *args.overrides]
    # Resuming without --config reads the saved config of the checkpoint to resume (a damaged one
    # skipped is one warning line, see cli); training then resumes that same checkpoint.
    ckpt = None
    if cmd.config is None and resume_override(args.overrides) is not None:
        cfg, ckpt = resume_config(args.overrides)
    else:
        cfg = load_config(cmd.config or "synthetic", args.overrides)
    if cmd.print_config:
        print(cfg.to_yaml())
        return 0
    try:
        run_dir = train(cfg, ckpt)
    except TrainingInterrupted as e:
        print(
            f"posetransfer train: interrupted at step {e.step}; continue with "
            f"--train.resume {e.run_dir}",
            file=sys.stderr,
        )
        return e.exit_code
    print(f"run directory: {run_dir}")
    return 0
