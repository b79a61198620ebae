"""`posetransfer train`: train a generator from a shipped config or a YAML file."""

from __future__ import annotations

import argparse
import sys

EXAMPLE = """\
examples:
  # the CPU-sized synthetic recipe (builds data/synthetic on first use)
  posetransfer train --config synthetic --train.iterations 300
  # the paper's Market-1501 recipe, overriding fields with --section.field value
  posetransfer train --config market_patn --data.root data/market --train.batch_size 16
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
train.channels_last, data.num_workers.
Changing any other field (model, data, losses, batch size, seed, ...) is refused: start a new
run instead. One process at a time may train a run.

Ctrl-C (or SIGTERM) finishes the current step, writes a checkpoint and exits with status 130
(143 for SIGTERM); a second Ctrl-C stops at once.

Shipped configs: market_patn, fashion_patn, market_apatn, fashion_apatn, synthetic.
Ablations and ResNet baselines are generator names: --model.generator patn_fashion_wo_cat.
Every field of the config can be overridden: data.*, model.*, loss.*, train.*.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a generator (PATN, APATN, variants)",
        description="Train a generator. Writes a numbered run directory with checkpoints, "
        "TensorBoard logs, stats.jsonl and sample grids; Ctrl-C checkpoints and stops.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        default=None,
        help="shipped config name (e.g. market_patn) or a YAML file; "
        "defaults to synthetic, or to the resumed run's config",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from posetransfer.config import load_config, resume_override
    from posetransfer.train import TrainingInterrupted, resume_config, train

    # Resuming without --config reads the saved config of the checkpoint to resume (a damaged one
    # skipped is one warning line, see cli); training then resumes that same checkpoint.
    ckpt = None
    if args.config is None and resume_override(args.overrides) is not None:
        cfg, ckpt = resume_config(args.overrides)
    else:
        cfg = load_config(args.config or "synthetic", args.overrides)
    if args.print_config:
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
