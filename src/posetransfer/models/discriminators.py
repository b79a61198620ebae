"""The two discriminators of PATN (docs/models.md, "Discriminators").

D_A ("appearance", the authors' PP) judges cat(image, condition image), 6 channels; D_S ("shape",
PB) judges cat(image, target heatmaps), 21 channels. Both are a ResNet encoder without a final
1-channel conv: the GAN loss is taken element-wise over the 256 x H/4 x W/4 output.
"""

from __future__ import annotations

import torch
from torch import nn

from posetransfer.models.blocks import Norm, ResnetBlock, encoder, init_weights


class ResnetDiscriminator(nn.Module):
    """Encoder (7x7 conv, two stride-2 convs) followed by residual blocks.

    Args:
        in_channels: 6 for D_A, 21 for D_S.
        ndf: base width (64).
        norm: "batch" (Market) or "instance" (DeepFashion).
        n_blocks: residual blocks (3).
        dropout: dropout inside the residual blocks (0.5).
        use_sigmoid: end with a sigmoid (the BCE GAN); the least-squares GAN has none.
    """

    def __init__(
        self,
        in_channels: int,
        ndf: int = 64,
        norm: Norm = "batch",
        n_blocks: int = 3,
        dropout: float = 0.5,
        use_sigmoid: bool = True,
    ):
        super().__init__()
        layers: list[nn.Module] = list(encoder(in_channels, ndf, norm, n_downsampling=2))
        # `features` taps the encoder's output and each residual block's but the last.
        self.taps = frozenset(range(len(layers) - 1, len(layers) - 1 + n_blocks))
        layers += [ResnetBlock(ndf * 4, norm, dropout) for _ in range(n_blocks)]
        if use_sigmoid:
            layers.append(nn.Sigmoid())
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # [B, 4 * ndf, H/4, W/4]

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The inner features (encoder, then every residual block but the last) and the output.

        Feature matching compares the inner features; the GAN loss takes the output.
        """
        inner = []
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i in self.taps:
                inner.append(x)
        return inner, x


def appearance_discriminator(**kw) -> ResnetDiscriminator:
    """D_A: input cat(image, condition image), 6 channels."""
    return ResnetDiscriminator(6, **kw)


def shape_discriminator(n_joints: int = 18, **kw) -> ResnetDiscriminator:
    """D_S: input cat(image, target heatmaps), 3 + 18 channels."""
    return ResnetDiscriminator(3 + n_joints, **kw)
