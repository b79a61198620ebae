"""`posetransfer pretrained`: the bundled models (list them, make one from a run, publish one)."""

from __future__ import annotations

import argparse
from pathlib import Path

from posetransfer.commands import add_progress_flag

EXAMPLE = """\
examples:
  posetransfer pretrained list
  posetransfer pretrained export --checkpoint runs/00007-patn_small-synthetic \\
      --name synthetic-patn --command "posetransfer train --config synthetic_long" \\
      --fid-real-dir data/synthetic/train
  # a bundled model as a Hugging Face Hub repository's files, then published with the Hub's client
  posetransfer pretrained export --name synthetic-patn --hub-folder hub/synthetic-patn \\
      --hub-repo you/posetransfer-synthetic-patn
  hf upload you/posetransfer-synthetic-patn hub/synthetic-patn .

The bundled models were trained on the procedural synthetic people only; `list` prints each
one's card: generator, iterations, training time, the command that trained it, and its
held-out metrics beside copying the condition image. `export --hub-folder DIR` writes the
model's files and a README.md model card (the Hub's metadata: library, licence, tags, the
held-out metrics); once uploaded, `--checkpoint hf://OWNER/NAME` loads it in every command.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrained",
        help="list the bundled models, or make one from a training run",
        description="The models bundled with posetransfer (synthetic-patn, synthetic-apatn).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="print the bundled models' cards")
    e = actions.add_parser(
        "export",
        help="write a bundled model from a run (float16) and measure it on held-out data, "
        "and/or write it as a Hugging Face Hub folder",
    )
    e.add_argument(
        "--checkpoint", metavar="CKPT", help="checkpoint or run folder to make the model from"
    )
    e.add_argument("--name", required=True, help="synthetic-patn or synthetic-apatn")
    e.add_argument("--command", help="with --checkpoint: the command line that trained the run")
    e.add_argument(
        "--hub-folder",
        type=Path,
        metavar="DIR",
        help="also (or, without --checkpoint, only) write the model as a Hugging Face Hub "
        "repository's files, with a README.md model card",
    )
    e.add_argument(
        "--hub-repo",
        metavar="OWNER/NAME",
        help="--hub-folder: the repository it will be uploaded to, for the card's example",
    )
    e.add_argument(
        "--out-root", type=Path, help="folder of the model folders (default: the package's)"
    )
    e.add_argument("--work-dir", type=Path, help="keep the held-out set and images here")
    e.add_argument("--fid-real-dir", type=Path, help="real images for FID (the training images)")
    e.add_argument("--fid-real-stats", type=Path, help="cache of their FID statistics (.npz)")
    e.add_argument("--machine", help="what it was trained on, for the card (e.g. '2-core CPU')")
    add_progress_flag(e)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.checkpoint.bundled import PRETRAINED, read_card
    from posetransfer.metrics.scores import SCORE_LABELS, format_score

    if args.action == "list":
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

    from posetransfer.errors import InputError
    from posetransfer.pretrained.export import export_pretrained, write_hub_folder

    if args.checkpoint is None:
        if args.hub_folder is None:
            raise InputError(
                "give --checkpoint (a run to make the bundled model from), --hub-folder (a "
                "bundled model as a Hub repository's files), or both"
            )
        model = args.out_root / args.name if args.out_root else args.name
        print(f"wrote {write_hub_folder(model, args.hub_folder, args.hub_repo)}")
        return 0
    if not args.command:
        raise InputError("--checkpoint needs --command: the command line that trained the run")
    kw = {"out_root": args.out_root} if args.out_root else {}
    folder = export_pretrained(
        args.checkpoint,
        args.name,
        args.command,
        work_dir=args.work_dir,
        fid=args.fid_real_dir is not None,
        fid_real_dir=args.fid_real_dir,
        fid_real_stats=args.fid_real_stats,
        machine=args.machine,
        progress=not args.no_progress,
        **kw,
    )
    print(f"wrote {folder}")
    if args.hub_folder is not None:
        print(f"wrote {write_hub_folder(folder, args.hub_folder, args.hub_repo)}")
    return 0
