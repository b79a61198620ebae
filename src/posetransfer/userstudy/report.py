"""`posetransfer user-study report`: the paper's R2G and G2R per study, with 95% intervals.

R2G is the share of real images judged generated, G2R the share of generated images judged
real, over the judged trials (practice excluded) of every rater, in %. Answers flagged as
outside the answer window are counted (they are answers the rater gave) and listed per rater;
trials closed unanswered ("abandoned", a reloaded page) are not answers and are left out.

The interval is a two-level bootstrap: raters resampled with replacement, then each drawn
rater's trials resampled with replacement, the shares recomputed over the pooled draw; the 2.5th
and 97.5th percentiles of 2,000 such draws (seeded) bound it. Raters differ more than trials do,
so resampling trials alone would give intervals that are too narrow.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posetransfer.core.files import atomic_write, check_output
from posetransfer.errors import InputError
from posetransfer.experiments.spec import load_experiment
from posetransfer.userstudy.store import open_study, settings

BOOTSTRAP = 2000
COLUMNS = (
    "rater",
    "position",
    "practice",
    "label",
    "answer",
    "correct",
    "rt_ms",
    "flag",
    "source",
    "trial",
)


def answer_rows(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every trial given to a rater, answered or not, in the order given."""
    rows = db.execute(
        "SELECT r.name AS rater, t.position, t.practice, i.label, t.answer, t.rt_ms, t.flag, "
        "i.source, t.trial FROM trials t JOIN raters r ON r.session = t.session "
        "JOIN images i ON i.id = t.image_id ORDER BY r.created, t.position"
    ).fetchall()
    out = []
    for r in rows:
        d = dict(r)
        d["practice"] = bool(d["practice"])
        d["correct"] = None if d["answer"] is None else d["answer"] == d["label"]
        d["rt_ms"] = None if d["rt_ms"] is None else round(d["rt_ms"], 1)
        out.append(d)
    return out


def answers_csv(db: sqlite3.Connection) -> str:
    """Every trial as CSV (`COLUMNS`)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(answer_rows(db))
    return out.getvalue()


def shares(labels: np.ndarray, answers: np.ndarray) -> tuple[float, float]:
    """(R2G, G2R) in % of boolean arrays: label is real, answer is real (nan without any)."""
    real, fake = labels, ~labels
    r2g = 100 * float((~answers[real]).mean()) if real.any() else float("nan")
    g2r = 100 * float(answers[fake].mean()) if fake.any() else float("nan")
    return r2g, g2r


def bootstrap(
    per_rater: Sequence[tuple[np.ndarray, np.ndarray]], draws: int = BOOTSTRAP, seed: int = 0
) -> tuple[list[float], list[float]]:
    """95% intervals of (R2G, G2R): raters resampled, then each drawn rater's trials."""
    rng = np.random.default_rng(seed)
    stats = np.empty((draws, 2))
    n = len(per_rater)
    for b in range(draws):
        labels, answers = [], []
        for i in rng.integers(0, n, n):
            lab, ans = per_rater[i]
            pick = rng.integers(0, len(lab), len(lab))
            labels.append(lab[pick])
            answers.append(ans[pick])
        stats[b] = shares(np.concatenate(labels), np.concatenate(answers))
    lo, hi = np.nanpercentile(stats, [2.5, 97.5], axis=0)
    return [round(float(lo[0]), 2), round(float(hi[0]), 2)], [
        round(float(lo[1]), 2),
        round(float(hi[1]), 2),
    ]


def study_result(path: str | Path) -> dict[str, Any]:
    """One study's R2G, G2R, intervals, per-rater figures and flags."""
    db = open_study(path)
    try:
        s = settings(db)
        rows = answer_rows(db)
    finally:
        db.close()
    judged = [r for r in rows if not r["practice"] and r["answer"] is not None]
    raters: dict[str, list[dict]] = {}
    for r in judged:
        raters.setdefault(r["rater"], []).append(r)
    per_rater, figures = [], []
    for name, trials in raters.items():
        labels = np.array([t["label"] == "real" for t in trials])
        answers = np.array([t["answer"] == "real" for t in trials])
        per_rater.append((labels, answers))
        r2g, g2r = shares(labels, answers)
        flags: dict[str, int] = {}
        for t in trials:
            if t["flag"]:
                flags[t["flag"]] = flags.get(t["flag"], 0) + 1
        abandoned = sum(1 for r in rows if r["rater"] == name and r["flag"] == "abandoned")
        figures.append(
            {
                "rater": name,
                "judged": len(trials),
                "r2g": round(r2g, 2),
                "g2r": round(g2r, 2),
                "flags": flags,
                "abandoned": abandoned,
                "one_key": len({t["answer"] for t in trials}) == 1,
            }
        )
    result: dict[str, Any] = {
        "name": s["name"],
        "file": str(path),
        "raters": len(raters),
        "judged_answers": len(judged),
        "protocol": s["protocol"],
    }
    if judged:
        labels = np.concatenate([lab for lab, _ in per_rater])
        answers = np.concatenate([ans for _, ans in per_rater])
        r2g, g2r = shares(labels, answers)
        r2g_ci, g2r_ci = bootstrap(per_rater)
        result.update(r2g=round(r2g, 2), g2r=round(g2r, 2), r2g_ci=r2g_ci, g2r_ci=g2r_ci)
    else:
        result.update(r2g=None, g2r=None, r2g_ci=None, g2r_ci=None)
    result["per_rater"] = figures
    return result


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_report(studies: list[dict[str, Any]]) -> str:
    """The Markdown report: ours, then the paper's Table 3, then per rater."""
    lines = [
        "# User study: real or generated (Table 3)",
        "",
        "R2G: real images judged generated; G2R: generated images judged real; % of the judged "
        "trials (practice excluded), with 95% bootstrap intervals (raters, then trials).",
        "",
        "| study | raters | judged answers | R2G (%) | 95% interval | G2R (%) | 95% interval |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for s in studies:
        ci = [f"{c[0]:.1f} to {c[1]:.1f}" if c else "-" for c in (s["r2g_ci"], s["g2r_ci"])]
        lines.append(
            f"| {s['name']} | {s['raters']} | {s['judged_answers']} | {_pct(s['r2g'])} | {ci[0]} "
            f"| {_pct(s['g2r'])} | {ci[1]} |"
        )
    lines += [
        "",
        "The paper's Table 3 (30 volunteers, 55 real and 55 generated images, 10 for practice):",
        "",
        "| model | Market R2G | Market G2R | DeepFashion R2G | DeepFashion G2R |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in load_experiment("table3").rows:
        p = row.paper
        lines.append(
            f"| {row.row} | {p['market_r2g']} | {p['market_g2r']} | {p['fashion_r2g']} | "
            f"{p['fashion_g2r']} |"
        )
    for s in studies:
        lines += [
            "",
            f"## {s['name']}: per rater",
            "",
            "| rater | judged | R2G (%) | G2R (%) | flagged answers | abandoned | one key |",
            "|---|---:|---:|---:|---|---:|---|",
        ]
        for r in s["per_rater"]:
            flags = ", ".join(f"{k}: {v}" for k, v in r["flags"].items()) or "-"
            lines.append(
                f"| {r['rater']} | {r['judged']} | {_pct(r['r2g'])} | {_pct(r['g2r'])} | "
                f"{flags} | {r['abandoned']} | {'yes' if r['one_key'] else 'no'} |"
            )
    return "\n".join(lines) + "\n"


def write_report(studies: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """Report on ``studies``: ``out`` (Markdown), ``.json`` beside it and ``-answers.csv``.

    Returns:
        The JSON report: ``{"studies": [{"name", "r2g", "g2r", "r2g_ci", "g2r_ci", "raters",
        ...}]}``.
    """
    if not studies:
        raise InputError("studies: give at least one study file", names=("studies",))
    out = Path(out)
    if out.suffix.lower() != ".md":
        raise InputError(f"out={str(out)!r}: use a .md file name", arg="out")
    inputs = {f"study {i + 1}": s for i, s in enumerate(studies)}
    for path in (out, out.with_suffix(".json"), out.with_name(out.stem + "-answers.csv")):
        check_output(path, inputs, kind="file")
    results = [study_result(s) for s in studies]
    names = [r["name"] for r in results]
    if len(set(names)) != len(names):
        raise InputError(f"studies: two studies are named alike ({names})", names=("studies",))
    report = {"studies": results}
    atomic_write(out, format_report(results))
    atomic_write(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    table = io.StringIO()
    writer = csv.DictWriter(table, ("study", *COLUMNS), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for path, result in zip(studies, results):
        db = open_study(path)
        try:
            for row in answer_rows(db):
                writer.writerow({"study": result["name"], **row})
        finally:
            db.close()
    atomic_write(out.with_name(out.stem + "-answers.csv"), table.getvalue())
    return report
