"""Procedural synthetic people in the Market-1501 layout: the project's built-in dataset.

Each identity gets a fixed appearance (`sample_appearance`: skin, hair, shirt colour and texture,
trousers / shorts / skirt, shoes, maybe a bag, build). Each image poses that person with a small
3D kinematic model (`sample_skeleton`: standing, walking, arms raised or arms out; front, back or
side view), projects it orthographically, draws the body parts as filled polygons at twice the
output size over a per-image background (`render_background`), and downsamples for
anti-aliasing (`render_person`). The keypoints are the projected joints of the drawn figure.

`make_synthetic_dataset` writes the public Market-1501 layout (``train/``, ``test/``, annotation
and pairs CSVs) with held-out test identities; everything is deterministic for a seed. See
docs/synthetic.md.

Modules: `appearance` (identities), `body` (pose and framing), `figure` (drawing a person),
`background` (scenes), `dataset` (writing the folder, the contact sheet), `reid_layout` (the
same people in Market-1501's re-ID folders: ``posetransfer synthetic --reid``).
"""

from posetransfer.data.synthetic.appearance import Appearance, sample_appearance
from posetransfer.data.synthetic.background import render_background
from posetransfer.data.synthetic.body import ACTIONS, VIEWS, Skeleton, sample_pose, sample_skeleton
from posetransfer.data.synthetic.dataset import (
    ANNOTATION_FILES,
    GENERATOR_VERSION,
    META_FILE,
    PAIRS_FILES,
    SyntheticConfig,
    is_complete,
    make_contact_sheet,
    make_image,
    make_synthetic_dataset,
)
from posetransfer.data.synthetic.figure import render_person
from posetransfer.data.synthetic.reid_layout import split_query_gallery, write_reid_layout

__all__ = [
    "ACTIONS",
    "ANNOTATION_FILES",
    "GENERATOR_VERSION",
    "META_FILE",
    "PAIRS_FILES",
    "VIEWS",
    "Appearance",
    "Skeleton",
    "SyntheticConfig",
    "is_complete",
    "make_contact_sheet",
    "make_image",
    "make_synthetic_dataset",
    "render_background",
    "render_person",
    "sample_appearance",
    "sample_pose",
    "sample_skeleton",
    "split_query_gallery",
    "write_reid_layout",
]
