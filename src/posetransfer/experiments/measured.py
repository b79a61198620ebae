"""The experiments that measure rather than train: Table 2 (size and speed), Fig. 6 (one
block's time by operation) and Table 6 (the re-ID study, through `posetransfer.reid.study`).

Each writes its rows' ``row.json`` (``results``: metric -> number) so that the table of every
experiment is collected the same way (`posetransfer.experiments.table`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from posetransfer.analysis.bench import block_timings, generator_speed, parameter_counts
from posetransfer.core.files import atomic_write
from posetransfer.data.synthetic import SyntheticConfig
from posetransfer.experiments.presets import Preset
from posetransfer.experiments.rows import ROW_DONE, read_row
from posetransfer.experiments.spec import Experiment, slugify
from posetransfer.reid.config import ReidConfig
from posetransfer.reid.study import generator_label, run_study

NOT_OURS = "not in posetransfer: only the paper's numbers are shown"


def _write_row(out: Path, slug: str, record: dict[str, Any]) -> None:
    atomic_write(out / "rows" / slug / ROW_DONE, json.dumps(record, indent=2) + "\n")


def run_speed(out: Path, exp: Experiment, preset: Preset, device: str) -> None:
    """Table 2: parameters (at the paper's size) and images/s at the preset's image size."""
    for row in exp.rows:
        if read_row(out / "rows" / row.slug) is not None:
            continue
        if row.generator is None:
            _write_row(out, row.slug, {"row": row.row, "results": {}, "note": NOT_OURS})
            continue
        params = parameter_counts([row.generator])[row.generator]
        speed = generator_speed(row.generator, preset.speed_size, 1, device, preset.speed_repeats)
        _write_row(
            out,
            row.slug,
            {
                "row": row.row,
                "results": {
                    "params_m": {"value": round(params / 1e6, 2)},
                    "fps": {"value": round(speed["images_per_s"], 3)},
                },
                "speed": speed,
            },
        )


def run_blocks(out: Path, exp: Experiment, preset: Preset, device: str) -> None:
    """Fig. 6: one PATB and one APATB, whole and by operation, and the bar chart."""
    if all(read_row(out / "rows" / r.slug) for r in exp.rows):
        return
    cases = block_timings(
        preset.block_dim, preset.block_size, device, preset.speed_repeats, warmup=1
    )
    by_block = {c["block"]: c for c in cases if c["attention"] in (None, "sdpa")}
    for row in exp.rows:
        c = by_block[row.row]
        _write_row(
            out,
            row.slug,
            {
                "row": row.row,
                "results": {"us": {"value": round(c["us"]["median"], 1)}},
                "breakdown_us": c["breakdown_us"],
                "input": c["input"],
                "params": c["params"],
            },
        )
    plot_blocks(out, exp)


def plot_blocks(out: Path, exp: Experiment) -> Path | None:
    """``fig6.png``: each block's time as bars stacked by operation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [read_row(out / "rows" / r.slug) for r in exp.rows]
    if not all(records):
        return None
    ops = sorted({op for r in records for op in r["breakdown_us"]})
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    left = [0.0] * len(records)
    for op in ops:
        values = [r["breakdown_us"].get(op, 0.0) / 1000 for r in records]
        ax.barh([r["row"] for r in records], values, left=left, label=op)
        left = [a + b for a, b in zip(left, values)]
    for y, total in enumerate(left):
        ax.text(total, y, f" {total:.1f} ms", va="center", fontsize=8)
    ax.set_xlim(0, max(left) * 1.18)
    ax.set_xlabel("ms per call on this device, by operation (torch.profiler)")
    ax.legend(
        fontsize=8, ncol=len(ops), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False
    )
    fig.tight_layout()
    path = out / "fig6.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


REID_GRIDS: dict[str, dict[str, Any]] = {
    "smoke": {
        "portions": [0.5, 1.0],
        "ratios": [],
        "reid": {
            "backbone": "resnet18",
            "pretrained": "none",
            "steps": 2,
            "batch_size": 8,
            "num_instances": 2,
            "height": 128,
            "width": 64,
        },
        "people": SyntheticConfig(n_train_ids=6, n_test_ids=4, images_per_id=6, max_test_pairs=8),
    },
    "cpu": {
        "portions": [0.1, 0.3, 1.0],
        "ratios": [],
        "reid": {
            "backbone": "resnet18",
            "pretrained": "none",
            "steps": 300,
            "height": 128,
            "width": 64,
        },
        "people": SyntheticConfig(n_test_ids=50),
    },
    "paper": {
        "portions": [round(0.1 * i, 1) for i in range(1, 11)],
        "ratios": [2, 3],
        "reid": {"backbone": "resnet50"},
        "people": None,
    },
}
"""Table 6's grid per preset: the paper's ten portions and x2, x3 on Market-1501; three portions
and a ResNet-18 from scratch on the synthetic people (as `make reid-study`: 50 held-out people
for the ranking, so that rank-1 is not decided by a handful of queries)."""


def run_reid(
    out: Path,
    preset: Preset,
    market: Path,
    annotations: Path,
    generators: dict[str, str],
    device: str,
    progress: bool,
) -> None:
    """Table 6 through `run_study` in ``out/study`` (resumable), then one row per study row."""
    grid = REID_GRIDS[preset.name]
    config = ReidConfig(**grid["reid"])
    rows = run_study(
        market,
        annotations,
        out / "study",
        portions=grid["portions"],
        generators=list(generators.values()),
        target_poses=["removed", "random"],
        ratios=grid["ratios"],
        config=config,
        device=device,
        progress=progress,
    )
    _reid_rows(out, rows, generators)


def _reid_rows(out: Path, rows: list[dict], generators: dict[str, str]) -> None:
    """The study's cells as Table 6's rows: "none", then each generator by its name here, "*"
    for random target poses; columns are the portions and x2, x3; rank-1 in %."""
    names = {generator_label(ckpt): name for name, ckpt in generators.items()}
    table: dict[str, dict[str, Any]] = {}
    for r in rows:
        base = r["row"].rstrip("*")
        name = names.get(base, base) + ("*" if r["row"].endswith("*") else "")
        column = f"x{r['ratio']}" if r.get("ratio", 1) > 1 else f"{r['portion']:.1f}"
        table.setdefault(name, {})[column] = {"value": round(100 * r["rank1"], 1)}
    for name, results in table.items():
        _write_row(out, slugify(name), {"row": name, "results": results})
