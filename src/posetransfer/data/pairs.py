"""Building pairs files: all ordered pairs of two images of the same person.

The public splits drop images missing any torso joint (both shoulders, both hips), then take
every ordered pair (a, b), a != b, of images of one identity, and sample the test pairs down.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from posetransfer.pose import has_torso

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
    """
    by_id: dict[str, list[str]] = defaultdict(list)
    for name in sorted(annotations):
        if is_distractor(name):
            continue
        if require_torso and not has_torso(annotations[name]):
            continue
        by_id[person_id(name)].append(name)
    pairs = [(a, b) for names in by_id.values() for a in names for b in names if a != b]
    if max_pairs is not None and max_pairs < len(pairs):
        keep = sorted(random.Random(seed).sample(range(len(pairs)), max_pairs))
        pairs = [pairs[i] for i in keep]
    return pairs
