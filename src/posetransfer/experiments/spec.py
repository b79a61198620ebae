"""The experiments: one YAML spec per table or figure of the paper, in ``experiments/specs/``.

A spec names the experiment, its kind (what running it means) and its rows. A row of a quality
table (``kind: quality``) is a generator to train (``model``: family, blocks, ablation variant),
other methods' outputs to score (``external: true``, given with ``--external NAME=DIR``), or the
real targets themselves (``real: true``); each carries the paper's numbers per dataset
(``paper: {market: {metric: value}, fashion: {...}}``) under the metric names `evaluate` uses.
A figure (``grid``, ``attention``, ``failures``) draws the rows of another experiment
(``rows_from``, optionally only ``use_rows``). ``speed``, ``blocks``, ``reid`` and
``user_study`` rows hold the paper's numbers of Table 2, Fig. 6, Table 6 and Table 3.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from posetransfer.errors import InputError

KINDS = ("quality", "grid", "attention", "failures", "speed", "blocks", "reid", "user_study")
"""What running an experiment of each kind does (see `posetransfer.experiments`)."""

FAMILIES = ("resnet", "patn", "apatn")
"""Generator families a quality row trains."""

VARIANTS = {"patn": ("wo_add", "wo_cat"), "apatn": ("cat2add", "wo_cat", "wo_res"), "resnet": ()}
"""The ablation variants of each family (Table 5), as in `posetransfer.models.variants`."""

QUALITY_METRICS = ("ssim", "is", "mask_ssim", "mask_is", "ds", "pckh")
"""The paper's columns of Tables 1, 4 and 5, in its order (DeepFashion has no mask columns)."""

EXTRA_METRICS = ("fid", "lpips", "l1", "mask_l1")
"""Today's metrics, measured beside the paper's (the paper reports none of them)."""


@dataclass(frozen=True)
class Model:
    """The generator a quality row trains."""

    family: str
    n_blocks: int
    variant: str | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise InputError(f"model.family={self.family!r}: choose one of {', '.join(FAMILIES)}")
        if self.n_blocks < 1:
            raise InputError(f"model.n_blocks must be at least 1, got {self.n_blocks}")
        if self.variant is not None and self.variant not in VARIANTS[self.family]:
            known = ", ".join(VARIANTS[self.family]) or "none"
            raise InputError(f"model.variant={self.variant!r}: {self.family} variants are {known}")

    def generator(self, dataset: str) -> tuple[str, dict[str, int]]:
        """The registered generator name and its overrides, with the norm of ``dataset``.

        Market-1501 uses BatchNorm (``_market``), DeepFashion and the synthetic people
        InstanceNorm (``_fashion``), as the authors' PATN models do.
        """
        suffix = "market" if dataset == "market" else "fashion"
        if self.family == "resnet":
            return f"resnet{self.n_blocks}_{suffix}", {}
        name = f"{self.family}_{suffix}" + (f"_{self.variant}" if self.variant else "")
        return name, {"n_blocks": self.n_blocks}


def slugify(label: str) -> str:
    """A row's folder name: its label in lower case, "*" as "random", "->" as "to", runs of
    other characters as '-' ("APATB cat -> add" -> "apatb-cat-to-add", "PATN*" ->
    "patn-random")."""
    text = label.lower().replace("->", " to ").replace("*", " random")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


@dataclass(frozen=True)
class Row:
    """One row of an experiment."""

    row: str
    """The row's label (as in the paper)."""
    paper: dict[str, Any] = field(default_factory=dict)
    """The paper's numbers: per dataset for quality rows, else metric -> value."""
    model: Model | None = None
    external: bool = False
    real: bool = False
    generator: str | None = None
    """Table 2: the registered generator measured for this row."""

    @property
    def slug(self) -> str:
        """The row's folder name (`slugify`)."""
        return slugify(self.row)

    @property
    def trains(self) -> bool:
        return self.model is not None

    def paper_numbers(self, dataset: str) -> dict[str, Any]:
        """The paper's numbers for ``dataset`` (quality rows; Market-1501's for the synthetic
        people, who have its size), or the row's numbers as they are (other kinds)."""
        if set(self.paper) <= {"market", "fashion"} and self.paper:
            return dict(self.paper.get("fashion" if dataset == "fashion" else "market", {}))
        return dict(self.paper)


@dataclass(frozen=True)
class Experiment:
    """One table or figure of the paper."""

    name: str
    title: str
    kind: str
    rows: tuple[Row, ...] = ()
    rows_from: str | None = None
    """Figures: the experiment whose rows they draw."""
    use_rows: tuple[str, ...] = ()
    """Figures: only these rows of ``rows_from`` (all when empty)."""
    figures: tuple[str, ...] = ()
    """Quality tables: the figures drawn from the same rows after the table."""
    dataset: str | None = None
    """Fixes the dataset of the ``paper`` preset (Fig. 4: DeepFashion)."""
    pairs: int = 8
    """Figures: pairs shown."""
    metric: str = "mask_ssim"
    """Fig. 12: the per-pair metric whose worst pairs are shown."""


def _rows(items: Any, where: str) -> tuple[Row, ...]:
    if not isinstance(items, list):
        raise InputError(f"{where}: rows must be a list")
    rows = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "row" not in item:
            raise InputError(f"{where}: row {i + 1} needs a 'row' label")
        item = dict(item)
        model = item.pop("model", None)
        try:
            rows.append(Row(**item, model=Model(**model) if model else None))
        except TypeError as e:
            raise InputError(f"{where}: row {item['row']!r}: {e}") from None
    labels = [r.row for r in rows]
    if len(set(labels)) != len(labels) or len({r.slug for r in rows}) != len(rows):
        raise InputError(f"{where}: two rows have the same label")
    return tuple(rows)


def load_spec(text: str, where: str) -> Experiment:
    """Parse one spec (YAML text); ``where`` names it in messages."""
    d = yaml.safe_load(text)
    if not isinstance(d, dict):
        raise InputError(f"{where}: expected a mapping")
    d = dict(d)
    rows = _rows(d.pop("rows", []), where)
    d["use_rows"] = tuple(d.get("use_rows", ()))
    d["figures"] = tuple(d.get("figures", ()))
    try:
        exp = Experiment(**d, rows=rows)
    except TypeError as e:
        raise InputError(f"{where}: {e}") from None
    if exp.kind not in KINDS:
        raise InputError(f"{where}: kind {exp.kind!r}; known: {', '.join(KINDS)}")
    return exp


def _spec_files() -> dict[str, Any]:
    folder = resources.files("posetransfer.experiments") / "specs"
    return {p.name[: -len(".yaml")]: p for p in folder.iterdir() if p.name.endswith(".yaml")}


def _order(name: str) -> tuple[int, int]:
    m = re.fullmatch(r"(table|fig)(\d+)", name)
    return (0 if name.startswith("table") else 1, int(m.group(2))) if m else (2, 0)


def experiment_names() -> list[str]:
    """Every experiment, tables first, in the paper's numbering."""
    return sorted(_spec_files(), key=_order)


@functools.cache
def load_experiment(name: str) -> Experiment:
    """The experiment ``name`` (``table1`` ... ``fig12``), its figure rows resolved.

    Read once per process: a row job asks for its spec many times, and a long run keeps the
    specs it started with even if the files change meanwhile."""
    files = _spec_files()
    if name not in files:
        raise InputError(
            f"experiment={name!r}: unknown; known: {', '.join(experiment_names())}",
            arg="experiment",
        )
    exp = load_spec(files[name].read_text(), f"experiment {name}")
    if exp.rows_from:
        source = load_experiment(exp.rows_from)
        picked = tuple(r for r in source.rows if not exp.use_rows or r.row in exp.use_rows)
        missing = set(exp.use_rows) - {r.row for r in picked}
        if missing:
            raise InputError(f"experiment {name}: rows {sorted(missing)} not in {source.name}")
        exp = Experiment(**{**exp.__dict__, "rows": picked})
    return exp
