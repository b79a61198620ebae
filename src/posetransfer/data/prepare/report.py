"""What `posetransfer prepare` found and did: per-split counts, problems, and the JSON report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from posetransfer.core.files import atomic_write
from posetransfer.data.prepare.layout import REPORT_NAME


@dataclass
class SplitReport:
    """What one split folder holds, checked against its annotation and pairs files."""

    split: str
    images: int = 0
    """JPEG images in ROOT/<split>."""
    annotation_file: str | None = None
    """The annotation CSV checked against, None when it is not in ROOT."""
    annotated: int | None = None
    missing: list[str] = field(default_factory=list)
    """Annotated images absent from ROOT/<split> (e.g. a partial download)."""
    unannotated: list[str] = field(default_factory=list)
    """Images with no annotation (Market distractors are counted apart, below)."""
    unannotated_distractors: int = 0
    wrong_size: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Images of another size than the dataset's, name -> (height, width)."""
    unreadable: list[str] = field(default_factory=list)
    pairs_file: str | None = None
    pairs: int | None = None
    pairs_missing_images: int = 0
    """Pairs naming an image absent from ROOT/<split>."""
    written: int = 0
    """Images written by this run."""
    already_present: int = 0
    """Images skipped because a complete output already existed (resume)."""
    source_problems: list[str] = field(default_factory=list)
    """Source images that could not be used: unreadable, or of the wrong size (fashion)."""
    listed_not_found: list[str] = field(default_factory=list)
    """Names in the split's list (DeepFashion) found nowhere in the source."""


@dataclass
class PrepareReport:
    """Result of preparing or checking a dataset root; `to_json` gives counts and examples."""

    dataset: str
    root: str
    image_size: tuple[int, int]
    splits: dict[str, SplitReport] = field(default_factory=dict)
    source: str | None = None
    files_copied: list[str] = field(default_factory=list)
    files_missing: list[str] = field(default_factory=list)
    """Annotation/pairs files of the dataset that are not in ROOT."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Source images deliberately not written, by reason (e.g. ``not_in_lists``)."""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every annotation file is present and matches the images exactly."""
        return not self.files_missing and not any(
            s.missing
            or s.unannotated
            or s.wrong_size
            or s.unreadable
            or s.pairs_missing_images
            or s.source_problems
            or s.listed_not_found
            for s in self.splits.values()
        )

    def to_dict(self, examples: int = 10) -> dict:
        """A JSON-ready dict; name lists become ``{"count": n, "examples": [first names]}``."""
        out = asdict(self)
        out["ok"] = self.ok
        for split in out["splits"].values():
            for key, value in split.items():
                if key == "wrong_size":
                    items = [f"{n} ({h}x{w})" for n, (h, w) in sorted(value.items())]
                    split[key] = {"count": len(items), "examples": items[:examples]}
                elif isinstance(value, list):
                    split[key] = {"count": len(value), "examples": value[:examples]}
        return out

    def to_json(self, examples: int = 10) -> str:
        """The report as indented JSON (see `to_dict`)."""
        return json.dumps(self.to_dict(examples), indent=2)

    def summary(self) -> str:
        """A few human-readable lines: counts per split and every problem found."""
        h, w = self.image_size
        lines = [f"{self.dataset} at {self.root} (images {h}x{w})"]
        for s in self.splits.values():
            parts = [f"{s.images} images"]
            if s.written or s.already_present:
                parts.append(f"{s.written} written, {s.already_present} already present")
            if s.annotated is not None:
                parts.append(f"{s.annotated} annotated")
            if s.pairs is not None:
                parts.append(f"{s.pairs} pairs")
            lines.append(f"  {s.split}: " + ", ".join(parts))
            problems = [
                (s.missing, "annotated images are MISSING (partial download?)"),
                (s.unannotated, "images are not annotated"),
                (
                    [f"{n} ({a}x{b})" for n, (a, b) in sorted(s.wrong_size.items())],
                    f"images are not {h}x{w}",
                ),
                (s.unreadable, "images cannot be read"),
                (s.source_problems, "source images were unusable"),
                (s.listed_not_found, "listed names were not found in the source"),
            ]
            for names, what in problems:
                if names:
                    lines.append(f"    {len(names)} {what}, e.g. {', '.join(names[:3])}")
            if s.pairs_missing_images:
                lines.append(f"    {s.pairs_missing_images} pairs name a missing image")
        for reason, n in sorted(self.skipped.items()):
            lines.append(f"  skipped {n} source images: {reason.replace('_', ' ')}")
        if self.files_copied:
            lines.append(f"  copied: {', '.join(self.files_copied)}")
        if self.files_missing:
            lines.append(f"  not found (download them separately): {', '.join(self.files_missing)}")
        lines += [f"  WARNING: {w}" for w in self.warnings]
        lines.append("  all checks passed" if self.ok else "  some checks FAILED (see above)")
        return "\n".join(lines)

    def write(self, path: str | Path | None = None) -> Path:
        """Write the JSON report (default ``ROOT/prepare-report.json``) and return its path."""
        path = Path(path) if path is not None else Path(self.root) / REPORT_NAME
        atomic_write(path, self.to_json() + "\n")
        return path
