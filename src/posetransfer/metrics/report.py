"""The evaluation report as a table: printed, Markdown and JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from posetransfer.errors import InputError
from posetransfer.files import atomic_write

LABELS: dict[str, str] = {
    "ssim": "SSIM", "is": "IS", "mask_ssim": "mask-SSIM", "mask_is": "mask-IS", "ds": "DS",
    "pckh": "PCKh", "fid": "FID", "lpips": "LPIPS", "l1": "L1 (0..255)",
}  # fmt: skip
# Rows in the order of the paper's Table 1, then the later papers' metrics.
TABLE_ORDER: tuple[str, ...] = (
    "ssim", "is", "mask_ssim", "mask_is", "ds", "pckh", "fid", "lpips", "l1",
)  # fmt: skip


def format_value(name: str, result: Mapping[str, Any]) -> str:
    """A metric's cell in the table: the value (IS: mean +- std) or ``unavailable: ...``."""
    if "unavailable" in result:
        return f"unavailable: {result['unavailable']}"
    value = result["value"]
    digits = {"fid": 2, "l1": 2, "lpips": 4}.get(name, 3)
    text = f"{value:.{digits}f}"
    if name in ("is", "mask_is") and not math.isnan(result.get("std", math.nan)):
        text += f" ± {result['std']:.3f}"
    return text


def _rows(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for name in TABLE_ORDER:
        if name in report["results"]:
            r = report["results"][name]
            rows.append((LABELS[name], format_value(name, r), str(r.get("n", ""))))
    return rows


def _problem_lines(report: Mapping[str, Any], limit: int = 10) -> list[str]:
    lines = []
    for kind, entry in report["problems"].items():
        if not entry["count"]:
            continue
        shown = []
        for f in entry["files"][:limit]:
            if isinstance(f, dict):
                shown.append(f"{f['file']} ({f['size'][0]}x{f['size'][1]}, expected "
                             f"{f['expected'][0]}x{f['expected'][1]})")  # fmt: skip
            else:
                shown.append(str(f))
        more = f", ... ({entry['count'] - limit} more)" if entry["count"] > limit else ""
        lines.append(f"{kind.replace('_', ' ')}: {entry['count']}: {', '.join(shown)}{more}")
    return lines


def format_table(report: Mapping[str, Any]) -> str:
    """Plain-text table like the paper's Table 1, followed by the images left out."""
    rows = _rows(report)
    width = max([len("Metric")] + [len(r[0]) for r in rows])
    done = f"{report['evaluated']} of {report['pairs']} pairs evaluated"
    lines = [
        f"protocol {report['protocol']}: {done}",
        f"{'Metric':<{width}}  Value",
        f"{'-' * width}  {'-' * 5}",
    ]
    lines += [f"{label:<{width}}  {value}" for label, value, _ in rows]
    problems = _problem_lines(report)
    if problems:
        lines.append("left out:")
        lines += [f"  {p}" for p in problems]
    return "\n".join(lines)


def format_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: the metric table and the images left out."""
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
    problems = _problem_lines(report, limit=50)
    if problems:
        lines += ["", "## Left out", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


def check_report_path(out: str | Path) -> tuple[Path, Path]:
    """(JSON path, Markdown path) for ``out``; InputError before any work if unusable."""
    out = Path(out)
    md = out.with_suffix(".md")
    if md == out or out.is_dir():
        raise InputError(f"--out {out}: use a .json file name (the Markdown goes beside it)")
    if out.parent.exists() and not out.parent.is_dir():
        raise InputError(f"--out {out}: {out.parent} is not a folder")
    return out, md


def write_report(report: Mapping[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write the report as JSON (``out``) and Markdown (same name, ``.md``); returns both paths."""
    out, md = check_report_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(report, indent=2, allow_nan=True) + "\n")
    atomic_write(md, format_markdown(report))
    return out, md
