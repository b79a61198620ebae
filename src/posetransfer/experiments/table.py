"""An experiment's table: ours beside the paper's, per row and metric, with the difference.

`collect_table` reads what is on disk (finished rows' ``row.json``; rows not finished are listed
as pending), so a partial table can be rendered at any time, and `write_table` writes
``table.json`` (the contract: experiment, preset, rows of row / ours / paper) and ``table.md``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from posetransfer.core.files import atomic_write
from posetransfer.experiments.rows import read_row
from posetransfer.experiments.spec import EXTRA_METRICS, QUALITY_METRICS, Experiment

NOT_GIVEN = "not given (--external NAME=DIR)"
"""The status of an external row whose outputs were not given: not counted as missing."""

MEASURED_HERE = ("speed", "blocks")
"""Kinds measured on this device with random inputs (the paper's: one Titan Xp)."""

RUN_FILE = "experiment.json"
"""The run's request and settings, written when it starts."""

LABELS = {
    "ssim": "SSIM",
    "is": "IS",
    "mask_ssim": "mask-SSIM",
    "mask_is": "mask-IS",
    "ds": "DS",
    "pckh": "PCKh",
    "fid": "FID",
    "lpips": "LPIPS",
    "l1": "L1",
    "mask_l1": "body L1",
    "params_m": "params (M)",
    "fps": "fps",
    "us": "µs",
}


def read_run(out: Path) -> dict[str, Any]:
    """The run's ``experiment.json``."""
    return json.loads((Path(out) / RUN_FILE).read_text())


def _number(result: Any) -> float | None:
    if isinstance(result, dict):
        result = result.get("value")
    if isinstance(result, (int, float)) and not math.isnan(result):
        return float(result)
    return None


def quality_columns(dataset: str) -> list[str]:
    """The paper's columns for ``dataset`` (DeepFashion has no mask columns), then today's."""
    paper = [m for m in QUALITY_METRICS if dataset != "fashion" or not m.startswith("mask_")]
    return [*paper, *EXTRA_METRICS]


def collect_table(out: Path, exp: Experiment, run: dict[str, Any]) -> dict[str, Any]:
    """The table of the run in ``out`` as it stands on disk."""
    dataset = run["dataset"]
    columns = run.get("columns") or quality_columns(dataset)
    rows = []
    for row in exp.rows:
        record = read_row(Path(out) / "rows" / row.slug)
        paper = row.paper_numbers(dataset)
        entry: dict[str, Any] = {"row": row.row}
        if record is None:
            entry["status"] = run.get("skipped", {}).get(row.row, "pending")
            entry["ours"] = {m: None for m in columns}
        else:
            results = record.get("results", {})
            entry["status"] = "paper only" if record.get("note") else "done"
            entry["ours"] = {m: _number(results.get(m)) for m in columns}
            why = {m: r["unavailable"] for m, r in results.items() if "unavailable" in r}
            measured = run.get("settings", {}).get("metrics")
            if measured is not None and exp.kind == "quality":
                for m in columns:
                    if m not in measured and m not in results:
                        why[m] = f"not measured by the {run['preset']} preset"
            if why:
                entry["unavailable"] = why
            warn = {m: r["warning"] for m, r in results.items() if "warning" in r}
            if warn:
                entry["warnings"] = warn
            for key in ("training", "evaluated", "pairs", "note"):
                if key in record:
                    entry[key] = record[key]
        entry["paper"] = {m: paper.get(m) for m in columns}
        # Speeds measured on another device than the paper's: no difference is meaningful.
        comparable = exp.kind not in MEASURED_HERE
        entry["difference"] = {
            m: round(entry["ours"][m] - paper[m], 4)
            if comparable and entry["ours"][m] is not None and paper.get(m) is not None
            else None
            for m in columns
        }
        rows.append(entry)
    return {
        "experiment": exp.name,
        "title": exp.title,
        "preset": run["preset"],
        "dataset": dataset,
        "paper_dataset": "fashion" if dataset == "fashion" else "market",
        "columns": columns,
        "kind": exp.kind,
        "complete": all(
            r["status"] in ("done", "paper only") for r in rows if r["status"] != NOT_GIVEN
        ),
        "rows": rows,
        "settings": run.get("settings", {}),
        "commit": run.get("commit"),
        "machine": run.get("machine"),
    }


def _cell(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _digits(metric: str) -> int:
    return {"fid": 1, "l1": 1, "mask_l1": 1, "lpips": 3, "fps": 2, "us": 0, "params_m": 2}.get(
        metric, 3
    )


def _table_lines(table: dict[str, Any], cols: list[str], status: bool) -> list[str]:
    header = " | ".join(LABELS.get(c, c) for c in cols)
    lines = [
        f"| row | {header} |" + (" status |" if status else ""),
        "|---|" + "---:|" * len(cols) + ("---|" if status else ""),
    ]
    for r in table["rows"]:
        cells = []
        for c in cols:
            ours, paper, diff = r["ours"][c], r["paper"][c], r["difference"][c]
            d = _digits(c)
            text = _cell(ours, d) or ("n/a" if c in r.get("unavailable", {}) else "-")
            if paper is not None:
                text += f" / {paper:.{d}f}"
                if diff is not None:
                    text += f" ({diff:+.{d}f})"
            cells.append(text)
        line = f"| {r['row']} | " + " | ".join(cells) + " |"
        if status:
            t = r.get("training")
            extra = f", {t['steps']} steps in {t['seconds'] / 60:.1f} min" if t else ""
            line += f" {r['status']}{extra} |"
        lines.append(line)
    return lines


def format_table(table: dict[str, Any]) -> str:
    """``table.md``: per metric, ours / the paper's (difference), then how it was made."""
    cols = table["columns"]
    paper_cols = [c for c in cols if any(r["paper"][c] is not None for r in table["rows"])]
    own_cols = [c for c in cols if c not in paper_cols]
    paper_name = "DeepFashion" if table["paper_dataset"] == "fashion" else "Market-1501"
    s = table.get("settings", {})
    preset = s.get("preset", {})
    if table.get("kind") in MEASURED_HERE:
        machine = table.get("machine") or {}
        intro = (
            f"Preset `{table['preset']}`, measured on this machine ({machine.get('name', '?')}, "
            f"{machine.get('type', '?')}) with random inputs; the paper's on one Titan Xp (GPU "
            "time only). Each cell: ours / the paper's; the devices differ, so no difference "
            "is given."
        )
        if table["kind"] == "speed":
            h, w = preset["speed_size"]
            intro += (
                f" fps: images/s of the eager float32 network at {h}x{w}, batch 1, median of "
                f"{preset['speed_repeats']} calls (`bench --compare` times the faster paths)."
            )
        else:
            intro += (
                f" One block on a 1x{preset['block_dim']}x{preset['block_size'][0]}x"
                f"{preset['block_size'][1]} code, median of {preset['speed_repeats']} calls; "
                "by operation in fig6.png."
            )
    else:
        intro = (
            f"Preset `{table['preset']}` on {table['dataset']}; the paper's numbers are its "
            f"{paper_name} ones. Each cell: ours / the paper's (ours minus the paper's); "
            "- = not measured, n/a = unavailable (below)."
        )
    lines = [f"# {table['title']}", "", intro]
    if preset.get("iterations") and table.get("kind") == "quality":
        lines[-1] += (
            f" Every trained row: {preset['iterations']} iterations of batch "
            f"{preset['batch_size']}"
            + (f", at most {preset['max_minutes']:g} minutes." if preset["max_minutes"] else ".")
        )
    lines += ["", *_table_lines(table, paper_cols, status=not own_cols)]
    if own_cols:
        lines += ["", "Today's metrics (not in the paper):", ""]
        lines += _table_lines(table, own_cols, status=True)
    notes: dict[str, list[str]] = {}
    for r in table["rows"]:
        for metric, why in r.get("unavailable", {}).items():
            notes.setdefault(f"{LABELS.get(metric, metric)}: {why}", []).append(r["row"])
    if notes:
        lines += ["", "Unavailable (n/a):", ""]
        done = [r["row"] for r in table["rows"] if r["status"] == "done"]
        lines += [
            f"- {why} ({'every row' if rows == done else 'rows: ' + ', '.join(rows)})"
            for why, rows in notes.items()
        ]
    warnings = [
        f"- {r['row']}, {LABELS.get(m, m)}: {text}"
        for r in table["rows"]
        for m, text in r.get("warnings", {}).items()
    ]
    if warnings:
        lines += ["", "Warnings of the evaluation:", "", *warnings]
    machine = table.get("machine") or {}
    lines += [
        "",
        f"Commit {table.get('commit') or 'unknown'}; machine: {machine.get('name', '?')} "
        f"({machine.get('type', '?')}, {machine.get('threads', '?')} threads).",
        "",
    ]
    for key, value in s.items():
        if not isinstance(value, dict):
            lines.append(f"- {key}: {value}")
    return "\n".join(lines) + "\n"


def write_table(out: Path, table: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``table.json`` and ``table.md`` in ``out``."""
    out = Path(out)
    return (
        atomic_write(out / "table.json", json.dumps(table, indent=2) + "\n"),
        atomic_write(out / "table.md", format_table(table)),
    )
