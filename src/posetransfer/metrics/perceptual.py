"""LPIPS (Zhang et al. 2018) as later pose-transfer papers report it.

AlexNet backbone, version 0.1, inputs in [-1, 1].

The ``lpips`` wheel ships only the small linear heads; the AlexNet backbone is torchvision's
ImageNet weights (``alexnet-owt-7be5be79.pth``), read from torch hub's cache or a given path.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from posetransfer.metrics.weights import MetricUnavailable, load_state_dict, load_strict


def load_alexnet(path: str | Path) -> nn.Module:
    """torchvision's AlexNet with the ImageNet weights of ``path``.

    Raises:
        InputError: naming the file when it does not hold AlexNet weights.
    """
    import torchvision

    path = Path(path)
    state = load_state_dict(path, "AlexNet weights")
    with torch.device("meta"):  # architecture only; the weights come from the file
        net = torchvision.models.alexnet(weights=None)
    load_strict(net, state, path, "torchvision AlexNet weights")
    return net.eval()


def load_lpips(alexnet_path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The LPIPS v0.1 metric with the AlexNet backbone of ``alexnet_path``.

    Returns:
        ``lpips.LPIPS`` module: ``model(a, b)`` with a, b float [N, 3, H, W] in [-1, 1] gives
        distances [N, 1, 1, 1].

    Raises:
        MetricUnavailable: when the ``lpips`` package is not installed.
        InputError: naming the file when it does not hold AlexNet weights.
    """
    try:
        import lpips
    except ImportError:
        raise MetricUnavailable("needs the lpips package: pip install lpips")
    alexnet = load_alexnet(alexnet_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's `pretrained=` deprecation
        # pnet_rand: build the backbone without torchvision downloading anything; its
        # weights are copied from `alexnet` below. The linear heads come from the wheel.
        model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    for slice_ in (
        model.net.slice1,
        model.net.slice2,
        model.net.slice3,
        model.net.slice4,
        model.net.slice5,
    ):
        for index, layer in slice_.named_children():
            layer.load_state_dict(alexnet.features[int(index)].state_dict())
    return model.eval().requires_grad_(False).to(device)


@torch.no_grad()
def lpips_distance(
    model: nn.Module, generated: torch.Tensor, reference: torch.Tensor
) -> torch.Tensor:
    """Per-pair LPIPS of uint8 image batches [N, 3, H, W], mapped to [-1, 1]; returns [N]."""
    a = generated.to(torch.float32) / 127.5 - 1.0
    b = reference.to(torch.float32) / 127.5 - 1.0
    return model(a, b).reshape(-1)
