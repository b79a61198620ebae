"""`posetransfer reid augment|train|evaluate|study`: pose-transfer augmentation for person re-ID."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from posetransfer.commands import checkpoint_or_bundled
from posetransfer.commands.options import (
    Device,
    Progress,
    add_actions,
    run_action,
)
from posetransfer.core.options import option
from posetransfer.reid.config import TARGET_POSES, ReidConfig

if TYPE_CHECKING:
    from posetransfer.reid.train import ReidScores

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


@dataclass(frozen=True)
class SetInputs:
    """The Market-1501 set that `reid augment` and `reid study` start from."""

    market: Path = option(
        help="Market-1501 zip or folder (bounding_box_train/, query/, bounding_box_test/), or "
        "a `synthetic --reid` folder",
        metavar="ROOT",
    )
    annotations: Path = option(
        help="keypoints of the training images (market-annotation-train.csv)", metavar="CSV"
    )
    seed: int = option(0, help="chooses kept images, sources, poses")


@dataclass(frozen=True)
class AugmentOptions:
    """`posetransfer reid augment`: how the augmented set is written (`reid.augment`)."""

    out: Path = option(help="the set to write", metavar="DIR")
    checkpoint: str | None = option(
        None,
        help="generator (128x64): checkpoint or run, authors' .pth, exported file, or a bundled "
        "model (synthetic-patn, the default)",
        metavar="CKPT",
    )
    portion: float = option(
        1.0, help="share of real training images kept, in (0, 1]", parse=_portion, metavar="P"
    )
    target_poses: str = option(
        "removed",
        help="pose of each generated image: the removed image's, or a random kept image's (the "
        "paper's starred rows)",
        choices=TARGET_POSES,
    )
    ratio: int = option(
        1, help="with portion 1: K-1 generated images per real one", minimum=1, metavar="K"
    )
    generator: bool = option(
        True, help="augment with the generator (--no-generator: the kept real images only)"
    )
    batch_size: int = option(16, help="generator batch", minimum=1)
    sheet: Path | None = option(None, help="also save 8 generated examples", metavar="PNG")


@dataclass(frozen=True)
class TrainInputs:
    """`posetransfer reid train`: the set and the run folder."""

    data: Path = option(
        help="a Market-1501-layout folder (Market-1501, an augmented set, synthetic --reid)",
        metavar="DIR",
    )
    out: Path = option(help="the run folder", metavar="DIR")


@dataclass(frozen=True)
class EvaluateOptions:
    """`posetransfer reid evaluate` (`reid.evaluate_reid`)."""

    run: Path = option(help="a `reid train` folder", metavar="DIR")
    data: Path | None = option(
        None,
        help="rank this folder's query/ and bounding_box_test/ (default: the run's data)",
        metavar="DIR",
    )
    json: Path | None = option(None, help="also write the results here", metavar="FILE")


@dataclass(frozen=True)
class StudyOptions:
    """`posetransfer reid study`: the Table 6 sweep (`reid.run_study`)."""

    out: Path = option(help="the study folder", metavar="DIR")
    portions: tuple[float, ...] = option(
        (0.1, 0.3, 0.5, 1.0), help="portions kept", parse=_portion, metavar="P"
    )
    generators: tuple[str, ...] = option(
        (),
        help="generators to augment with (none: only the no-augmentation rows)",
        nargs="*",
        metavar="CKPT",
    )
    target_poses: tuple[str, ...] = option(
        ("removed",), help="a row per rule for each generator", choices=TARGET_POSES
    )
    ratios: tuple[int, ...] = option(
        (), help="the Kx columns, e.g. 2 3", nargs="*", minimum=1, metavar="K"
    )


@dataclass(frozen=True)
class StudyBatch:
    """`posetransfer reid study`: the generators' batch."""

    generator_batch_size: int = option(16, help="generator batch", minimum=1)


OPTIONS = {
    "augment": (SetInputs, AugmentOptions, Device, Progress),
    "train": (TrainInputs, ReidConfig, Device, Progress),
    "evaluate": (EvaluateOptions, Device),
    "study": (SetInputs, StudyOptions, ReidConfig, StudyBatch, Device, Progress),
}
"""The options of each action, in the order of their flags."""


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
    helps = {
        "augment": "write an augmented training set",
        "train": "train and rank one re-ID model",
        "evaluate": "rank a trained re-ID model",
        "study": "the Table 6 sweep over portions and generators",
    }
    add_actions(p, OPTIONS, helps, EXAMPLE)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    handlers = {"augment": _augment, "train": _train, "evaluate": _evaluate, "study": _study}
    # the library names its arguments; say the flags
    flags = {**_FLAGS, "checkpoint": "--generators"} if args.action == "study" else _FLAGS
    return run_action(args, OPTIONS, handlers, flags)


def _augment(inputs: SetInputs, o: AugmentOptions, device: Device, progress: Progress) -> int:
    from posetransfer.core.files import check_output
    from posetransfer.reid import augment
    from posetransfer.reid.augmentation import REPORT, report_counts, set_inputs, write_samples

    checkpoint = checkpoint_or_bundled(o) if o.generator else None
    if o.sheet:  # refused before the set is written
        check_output(o.sheet, set_inputs(inputs.market, inputs.annotations, checkpoint), "sheet")
    out = augment(
        inputs.market,
        inputs.annotations,
        checkpoint,
        o.out,
        portion=o.portion,
        seed=inputs.seed,
        target_poses=o.target_poses,
        ratio=o.ratio,
        batch_size=o.batch_size,
        progress=progress.progress,
        device=device.device,
    )
    counts = report_counts(json.loads((out / REPORT).read_text()))
    print(
        f"{out}: {counts['kept']} real + {counts['generated']} generated training images of "
        f"{counts['identities']} people (of {counts['train_images']} real)"
    )
    for reason, n in counts["left_out"].items():
        print(f"  left out: {n} images, {reason} (listed in {out / REPORT})", file=sys.stderr)
    if o.sheet and counts["generated"]:
        print(f"examples: {write_samples(out, o.sheet)}")
    return 0


def _print_metrics(r: ReidScores) -> None:
    print(
        f"rank-1 {100 * r.rank1:.1f}%  rank-5 {100 * r.rank5:.1f}%  "
        f"rank-10 {100 * r.rank10:.1f}%  mAP {100 * r.mAP:.1f}%  ({r.queries} queries)"
    )


def _train(inputs: TrainInputs, config: ReidConfig, device: Device, progress: Progress) -> int:
    from posetransfer.reid import train_reid

    r = train_reid(inputs.data, inputs.out, config, device.device, progress.progress)
    _print_metrics(r)
    print(
        f"{inputs.out}: results.json, model.safetensors ({r.images} images of "
        f"{r.identities} people, {r.steps} steps, {r.seconds:.0f} s on {r.device})"
    )
    return 0


def _evaluate(o: EvaluateOptions, device: Device) -> int:
    from posetransfer.core.files import atomic_write, check_output
    from posetransfer.reid import evaluate_reid
    from posetransfer.reid.train import CONFIG, RESULTS, WEIGHTS

    if o.json:  # beside the run's files (or anywhere else), never over them or into the data
        for name in (CONFIG, WEIGHTS, RESULTS):
            check_output(o.json, {"data": o.data, "run": o.run / name}, "json")
    r = evaluate_reid(o.run, o.data, device.device)
    _print_metrics(r)
    if o.json:
        atomic_write(o.json, json.dumps(r.to_dict(), indent=2) + "\n")
    return 0


def _study(
    inputs: SetInputs,
    o: StudyOptions,
    config: ReidConfig,
    batch: StudyBatch,
    device: Device,
    progress: Progress,
) -> int:
    from posetransfer.reid import run_study
    from posetransfer.reid.study import PLOT, TABLE

    rows = run_study(
        inputs.market,
        inputs.annotations,
        o.out,
        portions=list(o.portions),
        generators=list(o.generators),
        target_poses=list(o.target_poses),
        ratios=list(o.ratios),
        config=config,
        seed=inputs.seed,
        batch_size=batch.generator_batch_size,
        device=device.device,
        progress=progress.progress,
    )
    if (o.out / TABLE).is_file():
        print((o.out / TABLE).read_text(), end="")
    print(f"{len(rows)} cells: {o.out / TABLE}, {o.out / PLOT}")
    return 0
