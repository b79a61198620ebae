"""The evaluation report as a table: printed, Markdown and JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from posetransfer.core.files import atomic_write, check_output
from posetransfer.errors import InputError
from posetransfer.metrics.registry import METRICS

# Rows in the order of the paper's Table 1, then the later papers' metrics; any other
# registered metric follows in registration order.
TABLE_ORDER: tuple[str, ...] = (
    "ssim",
    "is",
    "mask_ssim",
    "mask_is",
    "ds",
    "pckh",
    "fid",
    "lpips",
    "l1",
)


def _as_mapping(report: Any) -> Mapping[str, Any]:
    """A report as written to JSON: `metrics.runner.evaluate`'s dataclass or its mapping."""
    return report if isinstance(report, Mapping) else report.to_dict()


def _label(name: str) -> str:
    # A saved report may name a metric that is not registered in this process.
    return METRICS[name].label if name in METRICS else name


def format_value(name: str, result: Mapping[str, Any]) -> str:
    """A metric's cell in the table: the value (IS: mean +- std) or ``unavailable: ...``."""
    if "unavailable" in result:
        return f"unavailable: {result['unavailable']}"
    digits = METRICS[name].digits if name in METRICS else 3
    text = f"{result['value']:.{digits}f}"
    if not math.isnan(result.get("std", math.nan)):
        text += f" ± {result['std']:.3f}"
    if "warning" in result:
        text += " (see warning)"
    return text


def _order(report: Mapping[str, Any]) -> list[str]:
    names = [n for n in TABLE_ORDER if n in report["results"]]
    return names + [n for n in report["results"] if n not in TABLE_ORDER]


def _rows(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for name in _order(report):
        r = report["results"][name]
        rows.append((_label(name), format_value(name, r), str(r.get("n", ""))))
    return rows


def _warning_lines(report: Mapping[str, Any]) -> list[str]:
    """``LABEL: warning`` for every result that carries one (e.g. FID over too few images)."""
    return [
        f"{_label(name)}: {report['results'][name]['warning']}"
        for name in _order(report)
        if "warning" in report["results"][name]
    ]


def _problem_lines(report: Mapping[str, Any], limit: int = 10) -> list[str]:
    lines = []
    for kind, entry in report["problems"].items():
        if not entry["count"]:
            continue
        shown = []
        for f in entry["files"][:limit]:
            if isinstance(f, dict):
                shown.append(
                    f"{f['file']} ({f['size'][0]}x{f['size'][1]}, expected "
                    f"{f['expected'][0]}x{f['expected'][1]})"
                )
            else:
                shown.append(str(f))
        more = f", ... ({entry['count'] - limit} more)" if entry["count"] > limit else ""
        lines.append(f"{kind.replace('_', ' ')}: {entry['count']}: {', '.join(shown)}{more}")
    return lines


def format_table(report: Any) -> str:
    """Plain-text table like the paper's Table 1, followed by the images left out."""
    report = _as_mapping(report)
    rows = _rows(report)
    width = max([len("Metric")] + [len(r[0]) for r in rows])
    done = f"{report['evaluated']} of {report['pairs']} pairs evaluated"
    lines = [
        f"protocol {report['protocol']}: {done}",
        f"{'Metric':<{width}}  Value",
        f"{'-' * width}  {'-' * 5}",
    ]
    lines += [f"{label:<{width}}  {value}" for label, value, _ in rows]
    lines += [f"warning: {w}" for w in _warning_lines(report)]
    problems = _problem_lines(report)
    if problems:
        lines.append("left out:")
        lines += [f"  {p}" for p in problems]
    return "\n".join(lines)


def format_markdown(report: Any) -> str:
    """The report as Markdown: the metric table and the images left out."""
    report = _as_mapping(report)
    lines = [
        "# Evaluation report",
        "",
        f"- protocol: `{report['protocol']}` (padding: {report['padding']})",
        f"- generated images: `{report['generated_dir']}`",
        f"- ground truth: `{report['reference_dir']}`",
        f"- pairs: {report['pairs']}, evaluated: {report['evaluated']}",
        "",
        "| Metric | Value | Images |",
        "|---|---|---|",
    ]
    lines += [f"| {label} | {value.replace('|', '/')} | {n} |" for label, value, n in _rows(report)]
    warnings = _warning_lines(report)
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    problems = _problem_lines(report, limit=50)
    if problems:
        lines += ["", "## Left out", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


def check_report_path(
    out: str | Path, inputs: Mapping[str, str | Path | None] | None = None
) -> tuple[Path, Path]:
    """(JSON path, Markdown path) for ``out``; InputError before any work if unusable.

    ``inputs`` (argument name -> path) are the files the evaluation reads; the report may be
    none of them (nor its Markdown twin).
    """
    out = check_output(out, inputs, arg="out")  # refused now, not after the metrics
    check_output(out.with_suffix(".md"), inputs, arg="out")
    md = out.with_suffix(".md")
    if md == out or out.is_dir():
        raise InputError(
            f"out={out}: use a .json file name (the Markdown goes beside it)", arg="out"
        )
    if out.parent.exists() and not out.parent.is_dir():
        raise InputError(f"out={out}: {out.parent} is not a folder", arg="out")
    return out, md


def write_report(report: Any, out: str | Path) -> tuple[Path, Path]:
    """Write the report as JSON (``out``) and Markdown (same name, ``.md``); returns both paths."""
    report = _as_mapping(report)
    out, md = check_report_path(out)  # atomic_write creates the folder
    atomic_write(out, json.dumps(report, indent=2, allow_nan=True) + "\n")
    atomic_write(md, format_markdown(report))
    return out, md
