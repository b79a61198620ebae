"""`posetransfer reproduce list|run|table`: the paper's tables and figures, one command each."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from posetransfer.commands.options import (
    Device,
    Progress,
    add_actions,
    run_action,
)
from posetransfer.core.options import option

EXAMPLE = """\
examples:
  posetransfer reproduce list
  posetransfer reproduce run table4 --preset cpu --out reproduce/table4
  posetransfer reproduce run table5 --preset cpu --out reproduce/table5 --reuse reproduce/table4
  posetransfer reproduce run table1 --preset cpu --out reproduce/table1 \\
      --reuse reproduce/table4 --external XingGAN=results/xinggan
  posetransfer reproduce table reproduce/table4          # re-render a finished or partial run
  posetransfer reproduce run table4 --preset paper --data data/market --out t4 \\
      --launcher slurm --partition gpu --gpus-per-row 1 --time-limit 2880

Presets: smoke (seconds per row, for tests), cpu (the synthetic people at 128x64, small
generators, 600 iterations per row: Table 4 in about 45 minutes on 2 CPU cores), paper (the
paper's recipes on prepared Market-1501 or DeepFashion, --data; for GPUs).
A run writes into --out: experiment.json (every setting that moves a number), rows/<row>/
(the training run, generated test images, evaluate's report.json and per_pair.csv), table.md,
table.json and the figure. Running the same command again continues where it stopped.
See docs/reproduce.md.
"""


_FLAGS = {"generators": "--generator"}


def _experiments() -> tuple[str, ...]:
    from posetransfer.experiments import experiment_names

    return tuple(experiment_names())


def _presets() -> tuple[str, ...]:
    from posetransfer.experiments import PRESETS

    return tuple(PRESETS)


@dataclass(frozen=True)
class RunOptions:
    """`reproduce run` (`posetransfer.experiments.run_experiment`)."""

    experiment: str = option(
        help="table1 ... fig12 (reproduce list)", positional=True, choices=_experiments
    )
    out: str = option(
        help="the run's folder (new, empty, or this same run to continue)", metavar="DIR"
    )
    preset: str = option("cpu", help="smoke, cpu or paper", choices=_presets)
    data: str | None = option(
        None,
        help="dataset folder (paper: prepared Market-1501 or DeepFashion; synthetic presets: "
        "where the synthetic people are built, default DIR/data)",
        metavar="ROOT",
    )
    dataset: str | None = option(
        None, help="paper preset: market (default) or fashion", choices=("market", "fashion")
    )
    external: tuple[str, ...] = option(
        (),
        help="another method's generated test images for its row (Table 1: PG2, Def-GAN, "
        "VUnet, XingGAN)",
        nargs="*",
        metavar="NAME=DIR",
    )
    reuse: tuple[str, ...] = option(
        (),
        help="other runs' folders: their finished rows with the same settings are copied, "
        "not trained again",
        nargs="*",
        metavar="DIR",
    )
    generator: tuple[str, ...] = option(
        (),
        help="Table 6: a row's generator (default on the synthetic presets: the bundled "
        "synthetic-patn and synthetic-apatn)",
        nargs="*",
        metavar="NAME=CHECKPOINT",
    )
    weights: tuple[str, ...] = option(
        (),
        help="evaluate's network weights where not in the libraries' caches (inception, fid, "
        "alexnet, ssd)",
        nargs="*",
        metavar="NAME=PATH",
    )
    launcher: str = option("local", help="local or slurm", choices=("local", "slurm"))
    partition: str | None = option(None, help="slurm: the partition", metavar="NAME")
    gpus_per_row: int = option(1, help="slurm: GPUs of each row's job", minimum=1, metavar="N")
    time_limit: int = option(2880, help="slurm: minutes per row's job", minimum=1, metavar="MIN")
    wait: bool = option(
        True, help="slurm: wait for the jobs (--no-wait returns; collect with reproduce table)"
    )


@dataclass(frozen=True)
class TableOptions:
    """`reproduce table` (`posetransfer.experiments.render_table`)."""

    dir: str = option(help="a run's folder", positional=True)
    metric: str | None = option(
        None, help="Fig. 12: the per-pair metric whose worst pairs are shown", metavar="NAME"
    )


@dataclass(frozen=True)
class ListOptions:
    """`reproduce list`."""


OPTIONS = {"list": (ListOptions,), "run": (RunOptions, Device, Progress), "table": (TableOptions,)}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="the paper's tables and figures, one command each, beside the paper's numbers",
        description=(
            "Run one of the paper's experiments (a table or a figure) under a preset and put\n"
            "our numbers beside the paper's."
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    helps = {
        "list": "every experiment",
        "run": "run (or continue) one experiment",
        "table": "render the table and figure of a finished or partial run",
    }
    add_actions(p, OPTIONS, helps, EXAMPLE)
    p.set_defaults(func=run)


def _pairs(items: tuple[str, ...], flag: str) -> dict[str, str]:
    from posetransfer.errors import InputError

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise InputError(f"{flag}: expected NAME=VALUE, got {item!r}")
        out[name] = value
    return out


def run(args: argparse.Namespace) -> int:
    return run_action(args, OPTIONS, {"list": _list, "run": _run, "table": _table}, _FLAGS)


def _list(_: ListOptions) -> int:
    from posetransfer.experiments import USER_STUDY, list_experiments

    for name, kind, title in list_experiments():
        print(f"{name:8} {kind:28} {title}")
    print(f"\n{USER_STUDY}.")
    return 0


def _print(table: dict, out: str) -> None:
    from pathlib import Path

    print((Path(out) / "table.md").read_text())
    done = sum(r["status"] == "done" for r in table["rows"])
    where = Path(out) / "table.md"
    print(f"{done} of {len(table['rows'])} rows done; wrote {where} and table.json")


def _run(o: RunOptions, device: Device, progress: Progress) -> int:
    from posetransfer.experiments import Slurm, run_experiment

    table = run_experiment(
        o.experiment,
        o.preset,
        o.out,
        data=o.data,
        dataset=o.dataset,
        launcher=o.launcher,
        external=_pairs(o.external, "--external"),
        reuse=o.reuse,
        generators=_pairs(o.generator, "--generator") or None,
        weights=_pairs(o.weights, "--weights"),
        device=device.device,
        slurm=Slurm(
            partition=o.partition,
            gpus_per_row=o.gpus_per_row,
            time_limit_min=o.time_limit,
            wait=o.wait,
        ),
        progress=progress.progress,
    )
    _print(table, o.out)
    return 0


def _table(o: TableOptions) -> int:
    from posetransfer.experiments import render_table

    _print(render_table(o.dir, metric=o.metric), o.dir)
    return 0
