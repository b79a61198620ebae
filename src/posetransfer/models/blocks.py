"""Building blocks shared by the generators and discriminators: norms, conv stacks, residual blocks.

Layer lists are kept as `nn.Sequential`s in the layer order of docs/models.md (pad, conv, norm,
ReLU, ...) so that module indices match the authors' checkpoints and importing them is a rename
of prefixes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

Norm = Literal["batch", "instance"]


def norm_layer(norm: Norm, channels: int) -> nn.Module:
    """BatchNorm (affine, Market) or InstanceNorm without affine parameters (DeepFashion)."""
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    raise ValueError(f"norm must be 'batch' or 'instance', got {norm!r}")


def conv_bias(norm: Norm) -> bool:
    """Whether a convolution followed by ``norm`` has a bias: only before InstanceNorm.

    BatchNorm has a bias of its own.
    """
    return norm == "instance"


class Dropout(nn.Dropout):
    """`nn.Dropout` with the mask drawn by `torch.rand` on a CPU: the same Bernoulli(1 - p) mask
    scaled by 1 / (1 - p), in a third of the time.

    On a CPU torch's dropout draws its mask with ``bernoulli_``, one element at a time: in the
    `synthetic` recipe's training step that was 16% of the time (10 dropouts of [8, C, 32, 16]),
    against a vectorised uniform draw and a comparison. On CUDA, torch's fused dropout is kept.
    No parameters: checkpoints are those of `nn.Dropout`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not 0 < self.p < 1 or x.device.type != "cpu":
            return super().forward(x)
        keep = torch.rand(x.shape, dtype=torch.float32, device=x.device) >= self.p
        scaled = keep.to(x.dtype) * (1.0 / (1.0 - self.p))
        return x.mul_(scaled) if self.inplace else x * scaled


def dropout_layer(p: float) -> nn.Module:
    # An Identity keeps the module indices of the dropout-free variant equal to the original's.
    return Dropout(p) if p > 0 else nn.Identity()


def encoder(in_channels: int, ngf: int, norm: Norm, n_downsampling: int = 2) -> nn.Sequential:
    """Reflect-pad 3, conv 7x7, norm, ReLU; then per downsampling stride-2 conv 3x3, norm, ReLU."""
    bias = conv_bias(norm)
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3),
        nn.Conv2d(in_channels, ngf, kernel_size=7, bias=bias),
        norm_layer(norm, ngf),
        nn.ReLU(True),
    ]
    for i in range(n_downsampling):
        c = ngf * 2**i
        layers += [
            nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1, bias=bias),
            norm_layer(norm, 2 * c),
            nn.ReLU(True),
        ]
    return nn.Sequential(*layers)


def decoder(ngf: int, norm: Norm, n_upsampling: int = 2, out_channels: int = 3) -> nn.Sequential:
    """Transposed conv 3x3 stride 2 + norm + ReLU per upsampling; reflect-pad 3, conv 7x7, tanh."""
    bias = conv_bias(norm)
    layers: list[nn.Module] = []
    for i in range(n_upsampling):
        c = ngf * 2 ** (n_upsampling - i)
        layers += [
            nn.ConvTranspose2d(
                c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias
            ),
            norm_layer(norm, c // 2),
            nn.ReLU(True),
        ]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, kernel_size=7), nn.Tanh()]
    return nn.Sequential(*layers)


def conv_stack(
    in_channels: int,
    mid_channels: int,
    out_channels: int,
    norm: Norm,
    dropout: float,
    final_norm: bool = True,
) -> nn.Sequential:
    """A residual block's body: pad 1, conv 3x3, norm, ReLU, dropout, pad 1, conv 3x3[, norm]."""
    bias = conv_bias(norm)
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(1),
        nn.Conv2d(in_channels, mid_channels, kernel_size=3, bias=bias),
        norm_layer(norm, mid_channels),
        nn.ReLU(True),
        dropout_layer(dropout),
        nn.ReflectionPad2d(1),
        nn.Conv2d(mid_channels, out_channels, kernel_size=3, bias=bias),
    ]
    if final_norm:
        layers.append(norm_layer(norm, out_channels))
    return nn.Sequential(*layers)


class ResnetBlock(nn.Module):
    """x + conv_stack(x): the vanilla residual block of the discriminators and ResNet generators."""

    def __init__(self, dim: int, norm: Norm, dropout: float = 0.5):
        super().__init__()
        self.conv_block = conv_stack(dim, dim, dim, norm, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """The authors' init: conv weights N(0, std); BatchNorm weight N(1, std), bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with ``model`` in eval mode (no dropout), restoring its mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
