"""PATN: the Progressive Pose Attention Transfer Network (Zhu et al., CVPR 2019 / TPAMI).

Two encoders map the condition image and the pose pair (source and target heatmaps, 36 channels)
to H/4 x W/4 codes. A chain of Pose-Attentional Transfer Blocks (PATBs) moves the image code
towards the target pose one step at a time: each block turns the pose code into a mask
M = sigmoid(s) that gates a residual update of the image code, and feeds the next block the
pre-sigmoid pose code concatenated with the updated image code. A decoder turns the last image
code into the generated image.

With the paper's defaults (ngf 64, 9 blocks) the network has exactly 41,365,763 parameters with
BatchNorm (Market-1501) and 41,358,019 with InstanceNorm (DeepFashion), as the authors' code.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from posetransfer.models.blocks import Norm, conv_stack, decoder, encoder, init_weights
from posetransfer.models.registry import register_generator
from posetransfer.pose import N_JOINTS


class PATB(nn.Module):
    """One Pose-Attentional Transfer Block.

    Args:
        dim: channels of the image code (256 with ngf 64).
        norm: "batch" or "instance".
        dropout: dropout probability inside both paths (0.5 in the paper).
        pose_in: channels of the incoming pose code: dim for the first block, 2*dim after it
            (pose code concatenated with the image code), dim again when ``use_cat`` is off.
        use_add: residual update F_P + M * f(F_P); off is the "w/o add" ablation (M * f(F_P)).
        use_cat: pass cat(s, F_P') to the next block; off is the "w/o cat" ablation (s alone).
    """

    def __init__(
        self,
        dim: int,
        norm: Norm,
        dropout: float = 0.5,
        pose_in: int | None = None,
        use_add: bool = True,
        use_cat: bool = True,
    ):
        super().__init__()
        pose_in = pose_in or dim
        self.use_add = use_add
        self.use_cat = use_cat
        self.image_path = conv_stack(dim, dim, dim, norm, dropout)
        # The pose path ends without a norm: its output goes through a sigmoid.
        self.pose_path = conv_stack(pose_in, pose_in, dim, norm, dropout, final_norm=False)

    def forward(
        self, image_code: torch.Tensor, pose_code: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image code [B, C, h, w], pose code [B, C or 2C, h, w]) -> (image, pose code, mask)."""
        s = self.pose_path(pose_code)  # [B, C, h, w]
        mask = torch.sigmoid(s)
        update = mask * self.image_path(image_code)
        image_code = image_code + update if self.use_add else update
        pose_code = torch.cat([s, image_code], dim=1) if self.use_cat else s
        return image_code, pose_code, mask


class PATN(nn.Module):
    """The PATN generator: (condition image, source heatmaps, target heatmaps) -> image.

    Args:
        norm: "batch" (the paper's Market-1501 model) or "instance" (DeepFashion).
        ngf: channels after the first conv; the block code has ngf * 2**n_downsampling.
        n_blocks: number of PATBs (9 in the paper).
        n_downsampling: stride-2 convolutions in each encoder (2 in the paper).
        dropout: dropout probability inside the blocks (0.5; active only in train mode).
        n_joints: heatmap channels per pose (18).
        use_add, use_cat: the PATB ablations of the paper (see `PATB`).
    """

    # What ``return_attention`` maps lie over: each block gives [B, N, h*w], N maps over the
    # h x w code cells of the target (PATN: its mask, one map per channel) or of the condition
    # image (APATN: one map per target cell).
    attention_over: ClassVar[str] = "target"

    def __init__(
        self,
        norm: Norm = "batch",
        ngf: int = 64,
        n_blocks: int = 9,
        n_downsampling: int = 2,
        dropout: float = 0.5,
        n_joints: int = N_JOINTS,
        use_add: bool = True,
        use_cat: bool = True,
    ):
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be at least 1, got {n_blocks}")
        self.n_joints = n_joints
        dim = ngf * 2**n_downsampling
        self.image_encoder = encoder(3, ngf, norm, n_downsampling)
        self.pose_encoder = encoder(2 * n_joints, ngf, norm, n_downsampling)
        self.blocks = nn.ModuleList(
            PATB(
                dim,
                norm,
                dropout,
                pose_in=dim if (i == 0 or not use_cat) else 2 * dim,
                use_add=use_add,
                use_cat=use_cat,
            )
            for i in range(n_blocks)
        )
        self.decoder = decoder(ngf, norm, n_downsampling)
        init_weights(self)

    def forward(
        self,
        image: torch.Tensor,
        source_heatmaps: torch.Tensor,
        target_heatmaps: torch.Tensor,
        return_attention: bool = False,
        *,
        return_masks: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Generate the person of ``image`` in the target pose.

        Args:
            image: condition image [B, 3, H, W] in [-1, 1].
            source_heatmaps: its pose [B, 18, H, W].
            target_heatmaps: the target pose [B, 18, H, W].
            return_attention: also return each block's attention, its mask M = sigmoid(s), as
                [B, C, h*w] (h, w = H/4, W/4): one map per channel over the target's code
                cells in row-major order (see `attention_over`).
            return_masks: deprecated alias, warned once: the masks as [B, C, H/4, W/4].

        Returns:
            The generated image [B, 3, H, W] in [-1, 1] (and the per-block list if asked).
        """
        if return_masks:
            _warn_return_masks()
        check_generator_inputs(image, source_heatmaps, target_heatmaps, self.n_joints)
        image_code = self.image_encoder(image)  # [B, C, H/4, W/4]
        pose_code = self.pose_encoder(torch.cat([source_heatmaps, target_heatmaps], dim=1))
        masks = []
        for block in self.blocks:
            image_code, pose_code, mask = block(image_code, pose_code)
            masks.append(mask)
        out = self.decoder(image_code)  # the last block's pose code is discarded
        if return_masks:
            return out, masks
        return (out, [m.flatten(2) for m in masks]) if return_attention else out


_warned = False
_SKIPPED = (str(Path(__file__).parent), str(Path(nn.__file__).parent))  # models/, torch.nn


def _warn_return_masks() -> None:
    # Once per process: a training or evaluation loop would otherwise repeat it every call.
    global _warned
    if _warned:
        return
    _warned = True
    # Point at the caller's line, past our models (inference wrappers) and Module.__call__.
    frame, level = sys._getframe(1), 2
    while frame.f_back and frame.f_code.co_filename.startswith(_SKIPPED):
        frame, level = frame.f_back, level + 1
    warnings.warn(
        "PATN(return_masks=True) is deprecated; use return_attention=True, which gives the "
        "same masks as [B, C, h*w] like every generator",
        DeprecationWarning,
        stacklevel=level,
    )


def check_generator_inputs(
    image: torch.Tensor, src: torch.Tensor, tgt: torch.Tensor, n_joints: int
) -> None:
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be [B, 3, H, W], got {tuple(image.shape)}")
    for name, hm in (("source_heatmaps", src), ("target_heatmaps", tgt)):
        if hm.shape != (image.shape[0], n_joints, *image.shape[2:]):
            raise ValueError(
                f"{name} must be [B, {n_joints}, H, W] matching the image "
                f"{tuple(image.shape)}, got {tuple(hm.shape)}"
            )


# --------------------------------------------------------------------------------------------
# Registered variants


@register_generator
def patn_market(**kw) -> PATN:
    """The paper's Market-1501 PATN: BatchNorm, ngf 64, 9 blocks (41,365,763 parameters)."""
    return PATN(**{"norm": "batch", **kw})


@register_generator
def patn_fashion(**kw) -> PATN:
    """The paper's DeepFashion PATN: InstanceNorm, ngf 64, 9 blocks (41,358,019 parameters)."""
    return PATN(**{"norm": "instance", **kw})


@register_generator
def patn_small(**kw) -> PATN:
    """A CPU-trainable PATN for the synthetic demo: InstanceNorm, ngf 16, 5 blocks."""
    return PATN(**{"norm": "instance", "ngf": 16, "n_blocks": 5, **kw})


@register_generator
def patn_tiny(**kw) -> PATN:
    """A test-size PATN: InstanceNorm, ngf 8, 2 blocks."""
    return PATN(**{"norm": "instance", "ngf": 8, "n_blocks": 2, **kw})
