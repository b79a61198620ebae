"""`posetransfer reid augment|train|evaluate|study`: pose-transfer augmentation for person re-ID."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from posetransfer.commands import add_progress_flag, checkpoint_or_bundled, int_at_least

EXAMPLE = """\
examples (the synthetic people in Market-1501's layout; for Market-1501 pass its zip or folder
and market-annotation-train.csv):
  posetransfer synthetic --out data/reid-synthetic --test-ids 50 --reid
  posetransfer reid augment --market data/reid-synthetic \\
      --annotations data/reid-synthetic/synthetic-annotation-train.csv \\
      --portion 0.1 --out sets/p0.1 --sheet sets/p0.1.png
  posetransfer reid train --data sets/p0.1 --out reid-runs/p0.1 \\
      --backbone resnet18 --pretrained none --steps 300 --height 128 --width 64
  posetransfer reid evaluate --run reid-runs/p0.1
  posetransfer reid study --market data/reid-synthetic \\
      --annotations data/reid-synthetic/synthetic-annotation-train.csv --out study \\
      --portions 0.1 0.3 1.0 --generators synthetic-patn \\
      --backbone resnet18 --pretrained none --steps 300 --height 128 --width 64

augment writes OUT/bounding_box_train/ (kept real images and generated ones named
<source>___<target>.jpg), OUT/query/ and OUT/bounding_box_test/ (linked), OUT/manifest.csv
(name,pid,camid,kind,source,target) and OUT/augment-report.json (images left out, and why).
study writes results.jsonl (a line per finished cell; a rerun skips them), table.md (Table 6's
layout) and rank1_vs_portion.png. See docs/reid.md.
"""

_FLAGS = {"market_root": "--market", "target_poses": "--target-poses"}


def _portion(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a portion in (0, 1], got {text!r}")
    return value


_positive = int_at_least(1)


def _add_set_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--market", required=True, type=Path, metavar="ROOT",
                   help="Market-1501 zip or folder (bounding_box_train/, query/, "
                   "bounding_box_test/), or a `synthetic --reid` folder")  # fmt: skip
    p.add_argument("--annotations", required=True, type=Path, metavar="CSV",
                   help="keypoints of the training images (market-annotation-train.csv)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="chooses kept images, sources, poses (0)")


def _add_reid_flags(p: argparse.ArgumentParser) -> None:
    from posetransfer.reid.config import ReidConfig

    d = ReidConfig()
    p.add_argument("--backbone", default=d.backbone,
                   help=f"torchreid model: resnet50 (the paper's), resnet18, osnet_x0_25, ... ({d.backbone})")  # fmt: skip
    p.add_argument("--loss", default=d.loss, choices=("softmax", "triplet", "circle"),
                   help="softmax: cross-entropy, label smoothing; triplet or circle "
                   f"(pytorch-metric-learning), each + cross-entropy ({d.loss})")  # fmt: skip
    p.add_argument("--pretrained", default=d.pretrained, metavar="imagenet|none|PATH",
                   help="imagenet: from torch's cache, never downloaded; none: from scratch; "
                   f"or a weights file ({d.pretrained})")  # fmt: skip
    p.add_argument("--steps", type=_positive, default=d.steps, help=f"optimiser steps ({d.steps})")
    p.add_argument("--batch-size", type=_positive, default=d.batch_size,
                   help=f"re-ID batch ({d.batch_size})")  # fmt: skip
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate ({d.lr})")
    p.add_argument("--height", type=_positive, default=d.height, help=f"input height ({d.height})")
    p.add_argument("--width", type=_positive, default=d.width, help=f"input width ({d.width})")
    p.add_argument("--reid-seed", type=int, default=d.seed, help=f"re-ID training seed ({d.seed})")


def _config(args: argparse.Namespace):
    from posetransfer.reid.config import ReidConfig

    return ReidConfig(
        backbone=args.backbone,
        loss=args.loss,
        pretrained=args.pretrained,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        height=args.height,
        width=args.width,
        seed=args.reid_seed,
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reid",
        help="re-ID augmentation: augmented Market-1501 sets, re-ID training, the Table 6 study",
        description=(
            "Person re-identification with pose-transfer augmentation (the paper's section 5):\n"
            "augmented Market-1501 training sets, re-ID models on torchreid, and the Table 6 study."
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    a = actions.add_parser("augment", help="write an augmented training set", epilog=EXAMPLE, formatter_class=fmt)  # fmt: skip
    _add_set_flags(a)
    a.add_argument("--checkpoint", metavar="CKPT",
                   help="generator (128x64): checkpoint or run, authors' .pth, exported file, or "
                   "a bundled model (synthetic-patn, the default)")  # fmt: skip
    a.add_argument("--out", required=True, type=Path, metavar="DIR", help="the set to write")
    a.add_argument("--portion", type=_portion, default=1.0, metavar="P",
                   help="share of real training images kept, in (0, 1] (1)")  # fmt: skip
    a.add_argument("--target-poses", default="removed", choices=("removed", "random"),
                   help="pose of each generated image: the removed image's, or a random kept "
                   "image's (the paper's starred rows) (removed)")  # fmt: skip
    a.add_argument("--ratio", type=_positive, default=1, metavar="K",
                   help="with portion 1: K-1 generated images per real one (1)")  # fmt: skip
    a.add_argument("--no-generator", action="store_true",
                   help="write the kept real images only (the no-augmentation set)")  # fmt: skip
    a.add_argument("--batch-size", type=_positive, default=16, help="generator batch (16)")
    a.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ... (auto)")
    a.add_argument("--sheet", type=Path, metavar="PNG", help="also save 8 generated examples")
    add_progress_flag(a)

    t = actions.add_parser("train", help="train and rank one re-ID model", epilog=EXAMPLE, formatter_class=fmt)  # fmt: skip
    t.add_argument("--data", required=True, type=Path, metavar="DIR",
                   help="a Market-1501-layout folder (Market-1501, an augmented set, synthetic --reid)")  # fmt: skip
    t.add_argument("--out", required=True, type=Path, metavar="DIR", help="the run folder")
    _add_reid_flags(t)
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ... (auto)")
    add_progress_flag(t)

    e = actions.add_parser("evaluate", help="rank a trained re-ID model", epilog=EXAMPLE, formatter_class=fmt)  # fmt: skip
    e.add_argument("--run", required=True, type=Path, metavar="DIR", help="a `reid train` folder")
    e.add_argument("--data", type=Path, metavar="DIR",
                   help="rank this folder's query/ and bounding_box_test/ (default: the run's data)")  # fmt: skip
    e.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ... (auto)")

    s = actions.add_parser("study", help="the Table 6 sweep over portions and generators", epilog=EXAMPLE, formatter_class=fmt)  # fmt: skip
    _add_set_flags(s)
    s.add_argument("--out", required=True, type=Path, metavar="DIR", help="the study folder")
    s.add_argument("--portions", type=_portion, nargs="+", default=[0.1, 0.3, 0.5, 1.0],
                   metavar="P", help="portions kept (0.1 0.3 0.5 1.0)")  # fmt: skip
    s.add_argument("--generators", nargs="*", default=[], metavar="CKPT",
                   help="generators to augment with (none: only the no-augmentation rows)")  # fmt: skip
    s.add_argument("--target-poses", nargs="+", default=["removed"], choices=("removed", "random"),
                   help="a row per rule for each generator (removed)")  # fmt: skip
    s.add_argument("--ratios", type=_positive, nargs="*", default=[], metavar="K",
                   help="the Kx columns, e.g. 2 3 (none)")  # fmt: skip
    _add_reid_flags(s)
    s.add_argument(
        "--generator-batch-size", type=_positive, default=16, help="generator batch (16)"
    )
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ... (auto)")
    add_progress_flag(s)
    p.set_defaults(func=run, flags=_FLAGS)


def run(args: argparse.Namespace) -> int:
    from posetransfer.errors import InputError

    try:
        return {"augment": _augment, "train": _train, "evaluate": _evaluate, "study": _study}[
            args.action
        ](args)
    except InputError as e:  # the library names its arguments; say the flags
        flags = {**_FLAGS, "checkpoint": "--generators"} if args.action == "study" else _FLAGS
        raise InputError(e.flag_message(flags)) from None


def _augment(args: argparse.Namespace) -> int:
    from posetransfer.reid import augment
    from posetransfer.reid.augmentation import REPORT, report_counts, write_samples

    checkpoint = None if args.no_generator else checkpoint_or_bundled(args)
    out = augment(
        args.market, args.annotations, checkpoint, args.out, args.portion, args.seed,
        args.target_poses, args.ratio, args.batch_size, not args.no_progress, args.device,
    )  # fmt: skip
    counts = report_counts(json.loads((out / REPORT).read_text()))
    print(
        f"{out}: {counts['kept']} real + {counts['generated']} generated training images of "
        f"{counts['identities']} people (of {counts['train_images']} real)"
    )
    for reason, n in counts["left_out"].items():
        print(f"  left out: {n} images, {reason} (listed in {out / REPORT})", file=sys.stderr)
    if args.sheet and counts["generated"]:
        print(f"examples: {write_samples(out, args.sheet)}")
    return 0


def _print_metrics(r: dict) -> None:
    print(
        f"rank-1 {100 * r['rank1']:.1f}%  rank-5 {100 * r['rank5']:.1f}%  "
        f"rank-10 {100 * r['rank10']:.1f}%  mAP {100 * r['mAP']:.1f}%  ({r['queries']} queries)"
    )


def _train(args: argparse.Namespace) -> int:
    from posetransfer.reid import train_reid

    r = train_reid(args.data, args.out, _config(args), args.device, not args.no_progress)
    _print_metrics(r)
    print(f"{args.out}: results.json, model.safetensors ({r['images']} images of "
          f"{r['identities']} people, {r['steps']} steps, {r['seconds']:.0f} s on {r['device']})")  # fmt: skip
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from posetransfer.core.files import atomic_write
    from posetransfer.reid import evaluate_reid

    r = evaluate_reid(args.run, args.data, args.device)
    _print_metrics(r)
    if args.json:
        atomic_write(args.json, json.dumps(r, indent=2) + "\n")
    return 0


def _study(args: argparse.Namespace) -> int:
    from posetransfer.reid import run_study
    from posetransfer.reid.study import PLOT, TABLE

    rows = run_study(
        args.market, args.annotations, args.out, args.portions, args.generators,
        args.target_poses, args.ratios, _config(args), args.seed, args.generator_batch_size,
        args.device, not args.no_progress,
    )  # fmt: skip
    if (args.out / TABLE).is_file():
        print((args.out / TABLE).read_text(), end="")
    print(f"{len(rows)} cells: {args.out / TABLE}, {args.out / PLOT}")
    return 0
