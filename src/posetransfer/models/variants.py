"""The paper's ablation generators, each a registered variant.

* ResNet generator (PATN paper, ablation "Resnet generator"): the PATBs replaced by vanilla
  residual blocks. As in the ResNet generators of earlier pose-transfer work, the condition image
  and both poses are concatenated at the input (3 + 18 + 18 = 39 channels) and go through one
  encoder; the blocks work at 4 * ngf channels and PATN's decoder follows. The paper tries 5, 9
  and 13 blocks: ``resnet5_fashion``, ``resnet9_fashion``, ``resnet13_fashion`` (and ``_market``).
* PATB ablations: ``patn_*_wo_add`` (F_P' = M * f(F_P), no residual add) and ``patn_*_wo_cat``
  (the next block sees only the pose code, not cat(pose, image)): `PATN` with use_add / use_cat
  off.
* APATB ablations: ``apatn_*_cat2add`` (F_hat + F_P instead of the concatenation),
  ``apatn_*_wo_cat`` (conv_P(F_hat) alone) and ``apatn_*_wo_res`` (no conv_S: the pose codes stay
  as the encoders made them): `APATN` with fusion / use_res.

``_market`` variants use BatchNorm and ``_fashion`` InstanceNorm, as the authors' PATN models do.
Any block count is an override: ``create_generator("patn_fashion", n_blocks=5)``. A checkpoint
rebuilds any of them from the name and the keyword overrides it stores.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from posetransfer.models.apatn import APATN
from posetransfer.models.blocks import Norm, ResnetBlock, decoder, encoder, init_weights
from posetransfer.models.patn import PATN, check_generator_inputs
from posetransfer.models.registry import register_generator
from posetransfer.pose import N_JOINTS


class ResnetGenerator(nn.Module):
    """The ResNet baseline: cat(image, source and target pose) -> encoder -> res blocks -> decoder.

    Args:
        norm: "batch" (Market-1501) or "instance" (DeepFashion).
        ngf: channels after the first conv; the blocks have ngf * 2**n_downsampling.
        n_blocks: number of vanilla residual blocks (5, 9 or 13 in the paper).
        n_downsampling: stride-2 convs in the encoder, transposed convs in the decoder.
        dropout: dropout probability inside the residual blocks (0.5).
        n_joints: heatmap channels per pose (18).
    """

    def __init__(
        self,
        norm: Norm = "batch",
        ngf: int = 64,
        n_blocks: int = 9,
        n_downsampling: int = 2,
        dropout: float = 0.5,
        n_joints: int = N_JOINTS,
    ):
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be at least 1, got {n_blocks}")
        self.n_joints = n_joints
        dim = ngf * 2**n_downsampling
        self.encoder = encoder(3 + 2 * n_joints, ngf, norm, n_downsampling)
        self.blocks = nn.ModuleList(ResnetBlock(dim, norm, dropout) for _ in range(n_blocks))
        self.decoder = decoder(ngf, norm, n_downsampling)
        init_weights(self)

    # No block attends to anything: ``return_attention`` gives an empty list.
    attention_over: ClassVar[str | None] = None

    def forward(
        self,
        image: torch.Tensor,
        source_heatmaps: torch.Tensor,
        target_heatmaps: torch.Tensor,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """([B, 3, H, W], [B, 18, H, W], [B, 18, H, W]) -> generated image [B, 3, H, W].

        With ``return_attention``, (image, []) like the other generators' (image, per-block
        attention): its residual blocks have none.
        """
        check_generator_inputs(image, source_heatmaps, target_heatmaps, self.n_joints)
        x = self.encoder(torch.cat([image, source_heatmaps, target_heatmaps], dim=1))
        for block in self.blocks:
            x = block(x)
        out = self.decoder(x)
        return (out, []) if return_attention else out


# --------------------------------------------------------------------------------------------
# ResNet generators


@register_generator
def resnet5_market(**kw) -> ResnetGenerator:
    """ResNet baseline, 5 blocks, BatchNorm."""
    return ResnetGenerator(**{"norm": "batch", "n_blocks": 5, **kw})


@register_generator
def resnet9_market(**kw) -> ResnetGenerator:
    """ResNet baseline, 9 blocks, BatchNorm."""
    return ResnetGenerator(**{"norm": "batch", "n_blocks": 9, **kw})


@register_generator
def resnet13_market(**kw) -> ResnetGenerator:
    """ResNet baseline, 13 blocks, BatchNorm."""
    return ResnetGenerator(**{"norm": "batch", "n_blocks": 13, **kw})


@register_generator
def resnet5_fashion(**kw) -> ResnetGenerator:
    """ResNet baseline, 5 blocks, InstanceNorm."""
    return ResnetGenerator(**{"norm": "instance", "n_blocks": 5, **kw})


@register_generator
def resnet9_fashion(**kw) -> ResnetGenerator:
    """ResNet baseline, 9 blocks, InstanceNorm."""
    return ResnetGenerator(**{"norm": "instance", "n_blocks": 9, **kw})


@register_generator
def resnet13_fashion(**kw) -> ResnetGenerator:
    """ResNet baseline, 13 blocks, InstanceNorm."""
    return ResnetGenerator(**{"norm": "instance", "n_blocks": 13, **kw})


# --------------------------------------------------------------------------------------------
# PATB ablations


@register_generator
def patn_market_wo_add(**kw) -> PATN:
    """PATN (Market) whose blocks drop the residual add: F_P' = M * f(F_P)."""
    return PATN(**{"norm": "batch", "use_add": False, **kw})


@register_generator
def patn_market_wo_cat(**kw) -> PATN:
    """PATN (Market) whose blocks pass on the pose code alone, not cat(pose, image)."""
    return PATN(**{"norm": "batch", "use_cat": False, **kw})


@register_generator
def patn_fashion_wo_add(**kw) -> PATN:
    """PATN (DeepFashion) whose blocks drop the residual add: F_P' = M * f(F_P)."""
    return PATN(**{"norm": "instance", "use_add": False, **kw})


@register_generator
def patn_fashion_wo_cat(**kw) -> PATN:
    """PATN (DeepFashion) whose blocks pass on the pose code alone, not cat(pose, image)."""
    return PATN(**{"norm": "instance", "use_cat": False, **kw})


# --------------------------------------------------------------------------------------------
# APATB ablations


@register_generator
def apatn_market_cat2add(**kw) -> APATN:
    """APATN (Market, BatchNorm) fusing F_hat + F_P instead of cat(F_hat, F_P)."""
    return APATN(**{"norm": "batch", "fusion": "add", **kw})


@register_generator
def apatn_market_wo_cat(**kw) -> APATN:
    """APATN (Market, BatchNorm) with F_P' = conv_P(F_hat): the image code is not fused."""
    return APATN(**{"norm": "batch", "fusion": "none", **kw})


@register_generator
def apatn_market_wo_res(**kw) -> APATN:
    """APATN (Market, BatchNorm) without conv_S: every block sees the encoders' pose codes."""
    return APATN(**{"norm": "batch", "use_res": False, **kw})


@register_generator
def apatn_fashion_cat2add(**kw) -> APATN:
    """APATN (DeepFashion) fusing F_hat + F_P instead of cat(F_hat, F_P)."""
    return APATN(**{"norm": "instance", "fusion": "add", **kw})


@register_generator
def apatn_fashion_wo_cat(**kw) -> APATN:
    """APATN (DeepFashion) with F_P' = conv_P(F_hat): the image code is not fused."""
    return APATN(**{"norm": "instance", "fusion": "none", **kw})


@register_generator
def apatn_fashion_wo_res(**kw) -> APATN:
    """APATN (DeepFashion) without conv_S: every block sees the encoders' pose codes."""
    return APATN(**{"norm": "instance", "use_res": False, **kw})
