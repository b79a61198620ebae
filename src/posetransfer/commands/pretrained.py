"""`posetransfer pretrained`: the bundled models (list them, make one from a run, publish one)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from posetransfer.commands.options import Progress, add_actions, options_from_args
from posetransfer.core.options import option

EXAMPLE = """\
examples:
  posetransfer pretrained list
  # writes ./pretrained/synthetic-patn/ (--into-package: replace the installed package's own)
  posetransfer pretrained export --checkpoint runs/00007-patn_small-synthetic \\
      --name synthetic-patn --command "posetransfer train --config synthetic_long" \\
      --fid-real-dir data/synthetic/train
  # a bundled model as a Hugging Face Hub repository's files, then published with the Hub's client
  posetransfer pretrained export --name synthetic-patn --hub-folder hub/synthetic-patn \\
      --hub-repo you/posetransfer-synthetic-patn
  hf upload you/posetransfer-synthetic-patn hub/synthetic-patn .

The bundled models were trained on the procedural synthetic people only; `list` prints each
one's card: generator, iterations, training time, the command that trained it, and its
held-out metrics beside copying the condition image. `export --checkpoint RUN` writes the
model folder under --out-root (./pretrained by default; the installed package's folder only
with --into-package); its --name must match the run's generator (synthetic-apatn for an APATN
run). `export --hub-folder DIR` writes the model's files and a README.md model card (the Hub's
metadata: library, licence, tags, the held-out metrics); once uploaded,
`--checkpoint hf://OWNER/NAME` loads it in every command.
"""


def _bundled() -> tuple[str, ...]:
    from posetransfer.checkpoint.bundled import PRETRAINED  # owns them; its package loads torch

    return PRETRAINED


@dataclass(frozen=True)
class PretrainedExportOptions:
    """`posetransfer pretrained export` (`pretrained.export_pretrained`, `write_hub_folder`)."""

    name: str = option(help="the bundled model to write", choices=_bundled)
    checkpoint: str | None = option(
        None, help="checkpoint or run folder to make the model from", metavar="CKPT"
    )
    train_command: str | None = option(
        None,
        help="with --checkpoint: the command line that trained the run",
        flag="--command",
        metavar="COMMAND",
    )
    hub_folder: Path | None = option(
        None,
        help="also (or, without --checkpoint, only) write the model as a Hugging Face Hub "
        "repository's files, with a README.md model card",
        metavar="DIR",
    )
    hub_repo: str | None = option(
        None,
        help="--hub-folder: the repository it will be uploaded to, for the card's example",
        metavar="OWNER/NAME",
    )
    out_root: Path | None = option(
        None,
        help="folder of the model folders; without --checkpoint, where --hub-folder reads the "
        "model (default: ./pretrained with --checkpoint, else the bundled model)",
        metavar="DIR",
        group="destination",
    )
    into_package: bool = option(
        False,
        help="with --checkpoint: replace the model inside the installed package (what every "
        "command loads by that name) instead of writing under --out-root",
        group="destination",
    )
    work_dir: Path | None = option(None, help="keep the held-out set and images here")
    fid_real_dir: Path | None = option(None, help="real images for FID (the training images)")
    fid_real_stats: Path | None = option(None, help="cache of their FID statistics (.npz)")
    machine: str | None = option(
        None, help="what it was trained on, for the card (e.g. '2-core CPU')"
    )


OPTIONS: dict[str, tuple[type, ...]] = {
    "list": (),
    "export": (PretrainedExportOptions, Progress),
}
"""The options of each action, in the order of their flags."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrained",
        help="list the bundled models, or make one from a training run",
        description="The models bundled with posetransfer (synthetic-patn, synthetic-apatn).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    helps = {
        "list": "print the bundled models' cards",
        "export": "write a bundled model from a run (float16) and measure it on held-out data, "
        "and/or write it as a Hugging Face Hub folder",
    }
    add_actions(p, OPTIONS, helps, EXAMPLE)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list()
    return _export(*options_from_args(args, *OPTIONS["export"]))


def _list() -> int:
    from posetransfer.checkpoint.bundled import PRETRAINED, read_card
    from posetransfer.metrics.scores import SCORE_LABELS, format_score

    for name in PRETRAINED:
        try:
            card = read_card(name)
        except FileNotFoundError:
            print(f"{name}: not in this installation")
            continue
        m, c = card["metrics"], card["copy_baseline"]
        seconds = card.get("train_seconds")
        took = f"{seconds / 60:.0f} min" if seconds else "time unknown"
        print(
            f"{name}: {card['generator']['name']}, {card['step']} iterations, {took} on "
            f"{card['machine']}"
        )
        print(f"  command: {card['command']}")
        for key, label in SCORE_LABELS.items():
            print(
                f"  {label:10} {format_score(key, m[key]):>8}   "
                f"(copying the condition image: {format_score(key, c[key])})"
            )
        if "fid" in m:
            print(f"  {'FID':10} {m['fid']}")
        print(f"  {card['note']}")
    return 0


def _export(o: PretrainedExportOptions, progress: Progress) -> int:
    from posetransfer.errors import InputError
    from posetransfer.pretrained.export import export_pretrained, write_hub_folder

    if o.checkpoint is None:
        if o.hub_folder is None:
            raise InputError(
                "give --checkpoint (a run to make the bundled model from), --hub-folder (a "
                "bundled model as a Hub repository's files), or both"
            )
        if o.into_package:
            raise InputError("--into-package is for --checkpoint (writing a bundled model)")
        model = o.out_root / o.name if o.out_root else o.name
        print(f"wrote {write_hub_folder(model, o.hub_folder, o.hub_repo)}")
        return 0
    if not o.train_command:
        raise InputError("--checkpoint needs --command: the command line that trained the run")
    from posetransfer.checkpoint.bundled import PRETRAINED_DIR
    from posetransfer.pretrained.export import DEFAULT_OUT_ROOT

    out_root = PRETRAINED_DIR if o.into_package else o.out_root or DEFAULT_OUT_ROOT
    folder = export_pretrained(
        o.checkpoint,
        o.name,
        o.train_command,
        work_dir=o.work_dir,
        fid=o.fid_real_dir is not None,
        fid_real_dir=o.fid_real_dir,
        fid_real_stats=o.fid_real_stats,
        machine=o.machine,
        progress=progress.progress,
        out_root=out_root,
    )
    print(f"wrote {folder}")
    if o.hub_folder is not None:
        print(f"wrote {write_hub_folder(folder, o.hub_folder, o.hub_repo)}")
    return 0
