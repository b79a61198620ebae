"""`posetransfer user-study create|serve|report`: the paper's Table 3, with human raters."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from posetransfer.commands.options import add_actions, run_action
from posetransfer.core.options import option

EXAMPLE = """\
examples (the synthetic test people against the bundled PATN's outputs):
  posetransfer synthetic --out data/synthetic
  posetransfer generate --checkpoint synthetic-patn --dataset data/synthetic --out gen/patn
  posetransfer user-study create --real data/synthetic/test --generated gen/patn \\
      --name "PATN synthetic" --out patn.sqlite
  posetransfer user-study serve patn.sqlite             # prints the raters' URL and admin token
  posetransfer user-study report patn.sqlite --out study-report.md

create draws 55 real and 55 generated images (shuffled; the first 10 trials are practice) and
stores them, re-encoded alike, with their labels in one SQLite file. serve binds to 127.0.0.1
(--host 0.0.0.0 for a lab's network); every answer is on disk before the next image. report
writes R2G and G2R with 95% bootstrap intervals (Markdown, .json and -answers.csv). See
docs/user-study.md.
"""


@dataclass(frozen=True)
class CreateOptions:
    """`user-study create` (`posetransfer.userstudy.create_study`)."""

    real: str = option(help="folder of real images", metavar="DIR")
    generated: str = option(help="folder of one model's generated images", metavar="DIR")
    name: str = option(help="the study's name in the report (model and dataset)")
    out: str = option(help="the study file to write (.sqlite; never overwritten)", metavar="FILE")
    n_real: int = option(55, help="real images", minimum=1, metavar="N")
    n_generated: int = option(55, help="generated images", minimum=1, metavar="N")
    practice: int = option(10, help="first trials for practice (with feedback)", metavar="N")
    exposure_ms: int = option(1000, help="how long each image is shown", minimum=1, metavar="MS")
    min_rt_ms: int = option(150, help="answers sooner are flagged", metavar="MS")
    max_rt_ms: int = option(10000, help="answers later are flagged", minimum=1, metavar="MS")
    seed: int = option(0, help="seed of the draw")


@dataclass(frozen=True)
class ServeOptions:
    """`user-study serve` (`posetransfer.userstudy.server.serve`)."""

    study: str = option(help="the study file", positional=True)
    host: str = option("127.0.0.1", help="interface to listen on (0.0.0.0: the local network)")
    port: int = option(7861, help="port", minimum=1, metavar="N")


@dataclass(frozen=True)
class ReportOptions:
    """`user-study report` (`posetransfer.userstudy.write_report`)."""

    studies: tuple[str, ...] = option(
        help="study files (one model on one dataset each)", positional=True, nargs="+"
    )
    out: str = option(
        help="the report (.md; .json and -answers.csv are written beside it)", metavar="FILE"
    )


OPTIONS = {"create": (CreateOptions,), "serve": (ServeOptions,), "report": (ReportOptions,)}
_FLAGS = {"study": "STUDY", "studies": "STUDY"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "user-study",
        help="the user study of Table 3: real-or-generated judgements by raters, and the report",
        description=(
            "Run the paper's user study: raters see real and generated images for about a\n"
            "second each and say which is which; R2G and G2R with confidence intervals."
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    helps = {
        "create": "draw a study into one file",
        "serve": "serve a study to raters",
        "report": "R2G and G2R of one or more studies",
    }
    add_actions(p, OPTIONS, helps, EXAMPLE)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    handlers = {"create": _create, "serve": _serve, "report": _report}
    return run_action(args, OPTIONS, handlers, _FLAGS)


def _create(o: CreateOptions) -> int:
    from posetransfer.userstudy import Protocol, create_study

    protocol = Protocol(
        n_real=o.n_real,
        n_generated=o.n_generated,
        practice=o.practice,
        exposure_ms=o.exposure_ms,
        min_rt_ms=o.min_rt_ms,
        max_rt_ms=o.max_rt_ms,
        seed=o.seed,
    )
    path = create_study(o.real, o.generated, o.name, o.out, protocol)
    judged = o.n_real + o.n_generated - o.practice
    print(f"wrote {path}: {o.practice} practice and {judged} judged trials per rater")
    return 0


def _serve(o: ServeOptions) -> int:
    from posetransfer.userstudy.server import serve

    serve(o.study, o.host, o.port)
    return 0


def _report(o: ReportOptions) -> int:
    from pathlib import Path

    from posetransfer.userstudy import write_report

    write_report(list(o.studies), o.out)
    print(Path(o.out).read_text())
    return 0
