"""Detection score (DS): how confidently a COCO person detector finds a person in each image.

DS = the highest "person" score per generated image, averaged over the images (0 for an image
with no person detection above the detector's own score threshold). The paper used SSD300;
the default here is torchvision's SSD300-VGG16 trained on COCO (``ssd300_vgg16_coco-b556d3b4.pth``
from torch hub's cache or a given path), with torchvision's post-processing (score threshold
0.01, its own 300x300 resize and normalisation).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from posetransfer.metrics.weights import load_state_dict, load_strict

COCO_PERSON = 1  # torchvision's COCO category index of "person"


def load_person_detector(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """torchvision's SSD300-VGG16 with the COCO weights of ``path``, in eval mode.

    Raises:
        InputError: naming the file when it does not hold SSD300-VGG16 weights.
    """
    from torchvision.models.detection import ssd300_vgg16

    path = Path(path)
    state = load_state_dict(path, "SSD300-VGG16 weights")
    with torch.device("meta"):  # architecture only; the weights come from the file
        model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91)
    load_strict(model, state, path, "torchvision SSD300-VGG16 COCO weights")
    return model.eval().to(device)


@torch.no_grad()
def top_person_scores(
    detector: Callable, images: torch.Tensor, person_label: int = COCO_PERSON
) -> np.ndarray:
    """The best person score of each image.

    Args:
        detector: a torchvision-style detection model: a list of float [3, H, W] images in
            [0, 1] -> a list of dicts with ``labels`` and ``scores``.
        images: uint8 [N, 3, H, W].
        person_label: the detector's label of the person class.

    Returns:
        float array (N,), 0 where no person was detected.
    """
    batch = [img.to(torch.float32) / 255.0 for img in images]
    out = detector(batch)
    scores = []
    for det in out:
        person = det["scores"][det["labels"] == person_label]
        scores.append(float(person.max()) if person.numel() else 0.0)
    return np.asarray(scores, dtype=np.float64)
