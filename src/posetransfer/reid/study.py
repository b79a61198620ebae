"""`run_study`: the paper's Table 6 sweep: re-ID accuracy against the portion of real images kept.

For every cell (an augmentation model x a portion p, or a ratio K at p = 1) it writes the set
(`augment`), trains and ranks a re-ID model (`train_reid`) and appends one line to
``results.jsonl``; ``table.md`` and ``rank1_vs_portion.png`` are redrawn after each cell. A rerun
skips the cells already in ``results.jsonl``, and continues an interrupted one. The folder::

    OUT/study.json        what the study is (data, re-ID config, seed): another one is refused
    OUT/sets/<cell>/      each augmented set (Market-1501 layout, manifest.csv)
    OUT/runs/<cell>/      each re-ID run (results.json, model.safetensors)
    OUT/results.jsonl  OUT/table.md  OUT/rank1_vs_portion.png  OUT/samples.png
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from posetransfer.core.files import atomic_write, check_output, claim_folder
from posetransfer.errors import InputError
from posetransfer.reid.augmentation import (
    augment,
    check_inputs,
    check_options,
    checkpoint_id,
    extract_market,
    set_inputs,
    write_samples,
)
from posetransfer.reid.config import ReidConfig
from posetransfer.reid.train import train_reid

STUDY, RESULTS, TABLE, PLOT, SAMPLES = (
    "study.json",
    "results.jsonl",
    "table.md",
    "rank1_vs_portion.png",
    "samples.png",
)
NONE = "none"


@dataclass(frozen=True)
class Cell:
    """One trained model of the study: its set's recipe."""

    row: str
    """The table row: "none", or the generator's label with "*" for random target poses."""
    checkpoint: str | None
    target_poses: str
    portion: float
    ratio: int = 1

    @property
    def key(self) -> str:
        return f"{self.row} p={self.portion:g} x{self.ratio}"

    @property
    def folder(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", self.row.replace("*", "-random")).strip("-")
        return f"{slug}-p{self.portion:g}-x{self.ratio}"


def generator_label(checkpoint: str) -> str:
    """A short row name for a checkpoint: its folder or file name.

    ``runs/00003-x`` -> ``00003-x``; ``latest_net_netG.pth`` -> ``latest_net_netG``.
    """
    p = Path(checkpoint)
    return p.stem if p.suffix in (".pth", ".pt", ".onnx", ".xml") else p.name or str(checkpoint)


def plan_cells(
    portions: list[float],
    generators: list[str],
    target_poses: list[str],
    ratios: list[int],
) -> list[Cell]:
    """The study's cells in the order they run: every "none" portion first, then each generator.

    A generator at p = 1 with ratio 1 would add nothing: that column is the "none" upper bound.
    """
    for p in portions:
        check_options(p, "removed", 1)
    for rule in target_poses:
        check_options(1.0, rule, 1)
    for k in ratios:
        check_options(1.0, "random", k)
        if k < 2:
            raise InputError(f"ratios={ratios}: each ratio must be at least 2", arg="ratios")
    labels = [generator_label(g) for g in generators]
    if len(set(labels)) != len(labels):
        raise InputError(f"generators={generators}: two have the same name", arg="generators")
    if ratios and not generators:
        raise InputError("ratios need at least one generator", names=("ratios", "generators"))
    cells = [Cell(NONE, None, "removed", p) for p in sorted(set(portions))]
    for g, label in zip(generators, labels):
        for rule in target_poses:
            row = label + ("*" if rule == "random" else "")
            cells += [Cell(row, g, rule, p) for p in sorted(set(portions)) if p < 1]
        cells += [Cell(label, g, "random", 1.0, k) for k in sorted(set(ratios))]
    return cells


def read_results(path: Path) -> list[dict]:
    """The finished cells in ``results.jsonl``; a line torn by a kill is dropped."""
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def _append(path: Path, row: dict) -> None:
    """One line onto ``results.jsonl``, flushed to disk before the next cell starts."""
    rows = read_results(path)  # rewrite without a torn line first: the file stays parseable
    text = "".join(json.dumps(r) + "\n" for r in [*rows, row])
    atomic_write(path, text)


def run_study(
    market_root: str | Path,
    annotations: str | Path,
    out: str | Path,
    portions: list[float] = (0.1, 0.3, 0.5, 1.0),
    generators: list[str] = (),
    target_poses: list[str] = ("removed",),
    ratios: list[int] = (),
    config: ReidConfig | None = None,
    seed: int = 0,
    batch_size: int = 16,
    device: str = "auto",
    progress: bool = True,
) -> list[dict]:
    """Run (or continue) the Table 6 study; the rows of ``results.jsonl``.

    Args:
        market_root: Market-1501 (zip or folder) or a ``synthetic --reid`` folder.
        annotations: keypoints of the training images.
        out: the study folder (see the module docstring).
        portions: the p columns, each in (0, 1]; "none" runs every one.
        generators: checkpoints (or bundled names) to augment with; none gives the bounds only.
        target_poses: "removed" and/or "random" (the starred rows).
        ratios: K >= 2 for the Kx columns (p = 1, K-1 generated per real image).
        config: the re-ID backbone, loss and schedule, the same for every cell (default
            `ReidConfig()`).
        seed: the sets' seed (kept images, sources, poses); the re-ID seed is ``config.seed``.
        batch_size: generator batch.
        device: "auto", "cpu", "cuda", ...
        progress: show progress bars.
    """
    config = config or ReidConfig()
    cells = plan_cells(list(portions), list(generators), list(target_poses), list(ratios))
    out = check_output(out, set_inputs(market_root, annotations))
    for g in generators:
        check_output(out, {"generators": set_inputs(market_root, annotations, g)["checkpoint"]})
    request = {
        "market_root": str(Path(market_root).resolve()),
        "annotations": str(Path(annotations).resolve()),
        "config": asdict(config),
        "seed": seed,
    }
    check_inputs(market_root, annotations, generators, device)  # before anything is written
    claim_folder(out, STUDY, request, "a study")
    atomic_write(out / STUDY, json.dumps(request, indent=2) + "\n")
    if Path(market_root).is_file():  # a zip: its images once, not in every set
        market_root = extract_market(market_root, out / "market", progress)
    done = {r["key"]: r for r in read_results(out / RESULTS)}
    for i, cell in enumerate(cells, 1):
        if cell.key in done:
            found = done[cell.key].get("checkpoint_id")
            if found != checkpoint_id(cell.checkpoint):
                raise InputError(
                    f"generators: {cell.checkpoint} is not the generator of row {cell.row!r} "
                    f"in {out / RESULTS} ({found}); rename it or choose another folder",
                    names=("generators",),
                )
            continue
        print(f"[{i}/{len(cells)}] {cell.key}", flush=True)
        t0 = time.monotonic()
        set_dir = augment(
            market_root,
            annotations,
            cell.checkpoint,
            out / "sets" / cell.folder,
            portion=cell.portion,
            seed=seed,
            target_poses=cell.target_poses,
            ratio=cell.ratio,
            batch_size=batch_size,
            progress=progress,
            device=device,
        )
        t_set = time.monotonic() - t0
        result = train_reid(set_dir, out / "runs" / cell.folder, config, device, progress)
        counts = json.loads((set_dir / "augment.json").read_text())
        row = {
            "key": cell.key,
            **asdict(cell),
            "checkpoint_id": checkpoint_id(cell.checkpoint),
            **{k: getattr(result, k) for k in ("rank1", "rank5", "rank10", "mAP", "queries")},
            "real": counts["kept"],
            "generated": counts["generated"],
            "set_seconds": round(t_set, 1),
            "train_seconds": result.seconds,
        }
        _append(out / RESULTS, row)
        write_outputs(out, cells)
    write_outputs(out, cells)
    first = next((c for c in cells if c.checkpoint is not None), None)
    if first is not None:
        write_samples(out / "sets" / first.folder, out / SAMPLES)
    return read_results(out / RESULTS)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def write_outputs(out: Path, cells: list[Cell] | None = None) -> None:
    """Redraw ``table.md`` and ``rank1_vs_portion.png`` from ``results.jsonl``."""
    rows = read_results(out / RESULTS)
    if not rows:
        return
    atomic_write(out / TABLE, results_table(rows, json.loads((out / STUDY).read_text())))
    plot_results(rows, out / PLOT)


def results_table(rows: list[dict], study: dict) -> str:
    """Table 6's layout: a row per augmentation model, columns p (then Kx), rank-1 / mAP in %."""
    portions = sorted({r["portion"] for r in rows if r["ratio"] == 1})
    ratios = sorted({r["ratio"] for r in rows if r["ratio"] > 1})
    names = list(dict.fromkeys([NONE, *(r["row"] for r in rows)]))
    cells = {(r["row"], r["portion"], r["ratio"]): r for r in rows}
    cfg = study["config"]
    head = [f"p = {p:g}" for p in portions] + [f"{k}x" for k in ratios]
    lines = [
        f"Re-ID rank-1 / mAP (%) of {cfg['backbone']} ({cfg['loss']} loss, weights "
        f"{cfg['pretrained']}, {cfg['steps']} steps of {cfg['batch_size']}, "
        f"{cfg['height']}x{cfg['width']}) on `{study['market_root']}`, sets seed {study['seed']}.",
        "",
        "| augmentation | " + " | ".join(head) + " |",
        "|---|" + "---:|" * len(head),
    ]
    for name in names:
        values = []
        for p in portions:
            r = cells.get((name, p, 1))
            same = name != NONE and p == 1 and (NONE, 1.0, 1) in cells
            values.append(
                f"{_pct(r['rank1'])} / {_pct(r['mAP'])}" if r else "(= none)" if same else ""
            )
        for k in ratios:
            r = cells.get((name, 1.0, k))
            values.append(f"{_pct(r['rank1'])} / {_pct(r['mAP'])}" if r else "")
        if any(values):
            lines.append(f"| {name} | " + " | ".join(values) + " |")
    lines += [
        "",
        "none: the kept real images only (its p = 1 is the upper bound, every image real); a "
        "starred row draws target poses at random from the kept images; Kx: K-1 generated "
        "images per real one. A cell's set keeps the same real images in every row.",
    ]
    return "\n".join(lines) + "\n"


def plot_results(rows: list[dict], path: Path) -> Path:
    """Rank-1 and mAP against p, a line per augmentation model, the bounds marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys([NONE, *(r["row"] for r in rows)]))
    upper = next(
        (r for r in rows if r["row"] == NONE and r["portion"] == 1 and r["ratio"] == 1), None
    )
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    for ax, metric, title in zip(axes, ("rank1", "mAP"), ("rank-1", "mAP")):
        for name in names:
            pts = sorted(
                (r["portion"], r[metric]) for r in rows if r["row"] == name and r["ratio"] == 1
            )
            if name != NONE and upper is not None:
                pts.append((1.0, upper[metric]))  # p = 1: nothing removed, the same set
            if not pts:
                continue
            xs, ys = zip(*sorted(set(pts)))
            style = (
                dict(color="0.3", linestyle="--", marker="s") if name == NONE else dict(marker="o")
            )
            label = "none (lower bound)" if name == NONE else name
            ax.plot(xs, [100 * y for y in ys], label=label, **style)
        if upper is not None:
            ax.axhline(100 * upper[metric], color="0.6", linestyle=":", label="p = 1 (upper bound)")
        ax.set_xlabel("portion p of real training images kept")
        ax.set_ylabel(f"{title} (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    from posetransfer.core.files import atomic_save

    atomic_save(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


__all__ = ["Cell", "plan_cells", "read_results", "results_table", "run_study", "write_outputs"]
