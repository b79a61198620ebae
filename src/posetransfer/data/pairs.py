"""Building pairs files: all ordered pairs of two images of the same person.

The public splits drop images missing any torso joint (both shoulders, both hips), then take
every ordered pair (a, b), a != b, of images of one identity, and sample the test pairs down.
`build_pairs` makes the pairs of an annotation table; `make_pairs_file` (`posetransfer pairs`)
reads an annotation CSV, writes the pairs CSV and says what it kept and dropped.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posetransfer.core.files import check_output, image_size
from posetransfer.errors import InputError, require_dir
from posetransfer.pose import has_torso, read_annotations, write_pairs

_FASHION_ID = re.compile(r"^(fashion.*?id\d{8})")


def person_id(name: str) -> str:
    """The identity of an image from its file name.

    Market-1501 (and the synthetic set): the name up to the first ``_`` (``0002_c1s1_...`` ->
    ``0002``). DeepFashion's flattened names: up to the id folder (``fashionWOMEN...id00000693``).
    """
    m = _FASHION_ID.match(name)
    if m:
        return m.group(1)
    return name.split("_", 1)[0]


def is_distractor(name: str) -> bool:
    """Market-1501 junk and distractor images (ids -1 and 0000) belong to no person."""
    return name.startswith("-1") or name.startswith("0000")


def unpaired_reason(name: str, kps: np.ndarray, require_torso: bool = True) -> str | None:
    """Why an annotated image never enters a pair (``"distractor"``, ``"no_torso"``), or None.

    The public splits' rule: Market-1501's distractors and junk images belong to no person, and
    (with ``require_torso``) images missing a shoulder or a hip are dropped.
    """
    if is_distractor(name):
        return "distractor"
    if require_torso and not has_torso(kps):
        return "no_torso"
    return None


def _check_max_pairs(max_pairs: int | None) -> None:
    if max_pairs is not None and max_pairs < 1:
        raise InputError(f"max_pairs={max_pairs}: must be at least 1", arg="max_pairs")


def build_pairs(
    annotations: Mapping[str, np.ndarray],
    max_pairs: int | None = None,
    seed: int = 0,
    require_torso: bool = True,
) -> list[tuple[str, str]]:
    """All ordered same-identity pairs of the annotated images, optionally sampled down.

    Args:
        annotations: ``{name: kps (18, 2)}`` as read by `posetransfer.pose.read_annotations`.
        max_pairs: if set and smaller than the number of pairs, sample this many without
            replacement (deterministic for a given seed); the result keeps a stable order.
        seed: random seed for the sampling.
        require_torso: drop images missing a shoulder or a hip, as the public splits do.

    Raises:
        InputError: for max_pairs < 1.
    """
    _check_max_pairs(max_pairs)
    by_id: dict[str, list[str]] = defaultdict(list)
    for name in sorted(annotations):
        if unpaired_reason(name, annotations[name], require_torso) is None:
            by_id[person_id(name)].append(name)
    pairs = [(a, b) for names in by_id.values() for a in names for b in names if a != b]
    if max_pairs is not None and max_pairs < len(pairs):
        keep = sorted(random.Random(seed).sample(range(len(pairs)), max_pairs))
        pairs = [pairs[i] for i in keep]
    return pairs


def _first_image_size(
    names: Iterable[str], images_dir: str | Path, present: set[str]
) -> tuple[int, int] | None:
    """(height, width) of the first of ``names`` found in ``images_dir``, from its header."""
    for name in names:
        if name in present:
            size = image_size(Path(images_dir) / name)
            if size is not None:
                return size
    return None


@dataclass
class PairsSummary:
    """What `make_pairs_file` kept, dropped and wrote."""

    out: str
    annotated: int
    distractors: int
    no_torso: int
    missing_images: int
    kept: int
    identities: int
    single_image_identities: int
    all_pairs: int
    pairs: int

    def summary(self) -> str:
        """One human-readable paragraph."""
        dropped = self.distractors + self.no_torso + self.missing_images
        return (
            f"{self.annotated} annotated images: kept {self.kept}, dropped {dropped} "
            f"({self.distractors} distractors, {self.no_torso} without a full torso, "
            f"{self.missing_images} missing from the image folder)\n"
            f"{self.identities} identities ({self.single_image_identities} with one image, "
            f"hence no pairs); {self.pairs} pairs written to {self.out}"
            + (f" (sampled from {self.all_pairs})" if self.pairs < self.all_pairs else "")
        )


def make_pairs_file(
    annotations: str | Path,
    out: str | Path,
    images_dir: str | Path | None = None,
    max_pairs: int | None = None,
    seed: int = 0,
    require_torso: bool = True,
) -> PairsSummary:
    """Write a pairs CSV of all ordered same-identity pairs of the annotated images.

    Uses `build_pairs`: distractors and (by default) images missing a
    shoulder or a hip are dropped, then every ordered pair of two images of one person is taken,
    optionally sampled down to ``max_pairs``.

    Args:
        annotations: an annotation CSV (``name:keypoints_y:keypoints_x``).
        out: the pairs CSV to write (header ``from,to``).
        images_dir: if given, annotated images absent from this folder are dropped (counted),
            and annotations of another resolution than its images are refused.
        max_pairs: sample this many pairs (deterministic for a seed); all pairs when None.
        seed: the sampling seed.
        require_torso: drop images missing any of both shoulders and both hips.

    Raises:
        InputError: for a malformed annotation file, a missing images_dir, max_pairs < 1,
            annotations written for another image size, or an ``out`` that is an input (or
            lies inside ``images_dir``).
    """
    _check_max_pairs(max_pairs)  # before reading anything
    check_output(out, {"annotations": annotations, "images_dir": images_dir}, arg="out")
    kps = read_annotations(annotations)
    present = None
    if images_dir is not None:
        present = set(os.listdir(require_dir(images_dir, "image folder")))
        size = _first_image_size(kps, images_dir, present)
        if size is not None:  # read again, checked against the images' size
            kps = read_annotations(annotations, image_size=size)
    kept, dropped = {}, Counter()
    for name, k in kps.items():
        reason = unpaired_reason(name, k, require_torso)
        if reason is None and present is not None and name not in present:
            reason = "missing"
        if reason is None:
            kept[name] = k
        else:
            dropped[reason] += 1
    per_id = Counter(person_id(n) for n in kept)
    # kept holds only pairable images: build_pairs pairs and samples them.
    pairs = build_pairs(kept, max_pairs=max_pairs, seed=seed, require_torso=False)
    write_pairs(out, pairs)
    return PairsSummary(
        out=str(out),
        annotated=len(kps),
        distractors=dropped["distractor"],
        no_torso=dropped["no_torso"],
        missing_images=dropped["missing"],
        kept=len(kept),
        identities=len(per_id),
        single_image_identities=sum(c == 1 for c in per_id.values()),
        all_pairs=sum(c * (c - 1) for c in per_id.values()),
        pairs=len(pairs),
    )
