"""APATN: the Aligned Pose-Attentional Transfer Network (Zhu, Huang et al., TPAMI).

No public code exists for APATN; this is a reconstruction from the paper's text and its parameter
counts (one APATB 2.76M, APATN 16.93M). What is read from the paper, and what is chosen here:

* Encoders. The condition image goes through PATN's image encoder (reflect-pad 3, conv 7x7,
  two stride-2 convs). The condition pose S_c and the target pose S_t (18 channels each) are
  encoded *separately and kept separate*: two encoders of the same layout with their own weights
  (one shared encoder would be 425,536 parameters lighter and put the total 2.5% under the
  paper's). Both codes are [B, C, H/4, W/4] with C = 4 * ngf = 256.
* Aligned Pose-Attentional Transfer Block (APATB), per block:

  1. Pose codes: ``F_Sc' = conv_S(F_Sc)``, ``F_St' = conv_S(F_St)``; conv_S is one residual
     block (two 3x3 convs) shared by both codes.
  2. Pose alignment: ``A = softmax_rows(theta(F_St') @ phi(F_Sc')^T)``, theta and phi 1x1 convs
     C -> C/2; A is (HW) x (HW): row q says where in the condition image target location q looks.
     As in the paper there is no 1/sqrt(C) scaling.
  3. Image code: ``F_hat = A @ gamma(F_P)`` (gamma a 1x1 conv C -> C), then
     ``F_P' = conv_P(cat(F_hat, F_P))`` with conv_P = [conv 1x1 2C->2C, norm, ReLU, dropout,
     reflect-pad 1, conv 3x3 2C->C, norm].

  The paper lists the pose-code update after the alignment. Done that way, the last block's
  conv_S would feed nothing (its output is discarded), yet the paper's 5 x 2.76M counts it; so,
  as in PATB, where the transformed pose code both drives the block's attention and goes on to
  the next block, the updated codes are computed first and used for the alignment.
* Decoder: per upsampling, a bilinear x2 upsampling, a residual block at the upsampled resolution
  (no dropout), and a 3x3 conv halving the channels (norm, ReLU); then reflect-pad 3, conv 7x7 to
  RGB, tanh. The paper names the upsamplings, the residual blocks after them and the final conv;
  where the channels are halved is our choice, and this one reaches the paper's total.

Parameter counts with ngf 64, InstanceNorm (``apatn_fashion``):

=============================  ===========
image encoder                      378,496
2 pose encoders (18 ch each)       851,072
one APATB                        2,754,304
5 APATBs                        13,771,520
decoder                          1,853,571
APATN total                     16,854,659  (paper: 16.93M, -0.45%)
=============================  ===========

One APATB: theta, phi 32,896 each; gamma 65,792; conv_P 1,442,560; conv_S 1,180,160.

The alignment never materialises A unless asked: it runs
`torch.nn.functional.scaled_dot_product_attention` with ``scale=1``. On the CPU that function
uses its memory-efficient kernel only when query, key and value share one head dimension; with
C/2-channel queries and keys against C-channel values it silently falls back to computing the
full (HW) x (HW) matrix (2.2 GB extra at 128 x 88, batch 2). Queries and keys are therefore
zero-padded to the value's width, which leaves every score q . k unchanged. The same fallback
happens when an input is not contiguous (a transposed view), so all three are made contiguous.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from posetransfer.models.blocks import (
    Norm,
    ResnetBlock,
    conv_bias,
    dropout_layer,
    encoder,
    init_weights,
    norm_layer,
)
from posetransfer.models.patn import check_generator_inputs
from posetransfer.models.registry import register_generator
from posetransfer.pose import N_JOINTS

Fusion = Literal["cat", "add", "none"]
FUSIONS: tuple[str, ...] = ("cat", "add", "none")


def pose_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, return_weights: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``softmax_rows(query @ key^T) @ value`` without the usual 1/sqrt(d) scaling.

    Args:
        query: [B, L, Dq], one row per target location.
        key: [B, L, Dq], one row per condition location.
        value: [B, L, Dv].
        return_weights: compute the attention matrix explicitly and return it too (for
            visualisation; costs B * L^2 floats). Otherwise the fused
            `scaled_dot_product_attention` runs with query and key zero-padded to Dv, which keeps
            the scores and lets its memory-efficient kernel run, so no L x L matrix is stored.

    Returns:
        The attended values [B, L, Dv] (and the weights [B, L, L], rows summing to 1, if asked).
    """
    if return_weights:
        # Scores in float32 whatever the inputs: the logits are unscaled, and bf16 / fp16 would
        # coarsen (or overflow) them. The weights come back in float32 too.
        scores = query.float() @ key.float().transpose(1, 2)  # [B, L, L]
        weights = torch.softmax(scores, dim=-1)
        return (weights @ value.float()).to(value.dtype), weights
    if query.device.type == "cpu" and value.dtype in (torch.bfloat16, torch.float16):
        return chunked_attention(query, key, value)
    dq, dv = query.shape[-1], value.shape[-1]
    d = max(dq, dv)
    # Zero columns add nothing to any dot product q . k, so padding leaves the scores unchanged.
    # The CPU's memory-efficient kernel also wants contiguous rows: a transposed (strided) value
    # sends it back to the math path, which stores the L x L matrix.
    q = F.pad(query, (0, d - dq)).contiguous().unsqueeze(1)  # [B, 1, L, d]: one attention head
    k = F.pad(key, (0, d - dq)).contiguous().unsqueeze(1)
    v = F.pad(value, (0, d - dv)).contiguous().unsqueeze(1)
    out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
    return out.squeeze(1)[..., :dv]


ATTENTION_SCORES = 2**21
"""Scores per chunk of `chunked_attention`: 8 MB in float32 (512 query rows at 64 x 64)."""


def chunked_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, chunk: int | None = None
) -> torch.Tensor:
    """`pose_attention` a block of query rows at a time: scores in float32, A V in low precision.

    The CPU's fused attention pads queries and keys to the value's width and gains nothing from
    bf16; here Q K^T runs in float32 at the queries' own width (the scores are unscaled logits)
    and A V as a bf16 matrix product on the CPU's bf16 units, and only ``chunk`` rows of scores
    exist at a time. Under autograd each chunk is recomputed in the backward pass (activation
    checkpointing) instead of keeping its scores, so training never holds the (HW) x (HW)
    matrix either.

    Args:
        query, key: [B, L, Dq]; value: [B, L, Dv], all of one dtype.
        chunk: query rows per step (default: `ATTENTION_SCORES` scores, at least 64 rows).
    """
    chunk = chunk or max(64, ATTENTION_SCORES // key.shape[1])
    key_t = key.transpose(1, 2).float().contiguous()  # [B, Dq, L], float32 (see `_attend`)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
    rows = []
    for start in range(0, query.shape[1], chunk):
        q = query[:, start : start + chunk]
        if grad:
            rows.append(checkpoint(_attend, q, key_t, value, use_reentrant=False))
        else:
            rows.append(_attend(q, key_t, value))
    return torch.cat(rows, dim=1)


def _attend(query: torch.Tensor, key_t: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """One chunk: scores and softmax in float32, then the weighted sum in the values' precision.

    The logits are unscaled (no 1/sqrt(d)): rounded to bf16 they would move the softmax, and in
    fp16 they can overflow. Q K^T is a third of the attention's products (Dq = C/2), so keeping
    it in float32 costs less than the bf16 A V saves.
    """
    with torch.autocast(query.device.type, enabled=False):
        scores = torch.bmm(query.float(), key_t)
        weights = torch.softmax(scores, dim=-1).to(value.dtype)
    return torch.bmm(weights, value)


class APATB(nn.Module):
    """One Aligned Pose-Attentional Transfer Block (see the module docstring).

    Args:
        dim: channels C of the image and pose codes (256 with ngf 64).
        norm: "instance" (the paper) or "batch".
        dropout: dropout probability inside conv_P and conv_S (0.5 in the paper).
        attn_channels: channels of theta and phi (C/2 by default).
        fusion: how the aligned code F_hat meets the image code F_P: "cat" (the paper,
            conv_P(cat(F_hat, F_P))), "add" (the "cat -> add" ablation, conv_P(F_hat + F_P)) or
            "none" (the "w/o cat" ablation, conv_P(F_hat)). conv_P's input width follows.
        use_res: update the pose codes with conv_S; off is the "w/o res" ablation, where every
            block sees the encoders' pose codes.
    """

    def __init__(
        self,
        dim: int,
        norm: Norm,
        dropout: float = 0.5,
        attn_channels: int | None = None,
        fusion: Fusion = "cat",
        use_res: bool = True,
    ):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        attn_channels = attn_channels or dim // 2
        self.fusion = fusion
        self.theta = nn.Conv2d(dim, attn_channels, kernel_size=1)  # target pose -> queries
        self.phi = nn.Conv2d(dim, attn_channels, kernel_size=1)  # condition pose -> keys
        self.gamma = nn.Conv2d(dim, dim, kernel_size=1)  # image code -> values
        width = 2 * dim if fusion == "cat" else dim
        bias = conv_bias(norm)
        self.conv_p = nn.Sequential(
            nn.Conv2d(width, width, kernel_size=1, bias=bias),
            norm_layer(norm, width),
            nn.ReLU(True),
            dropout_layer(dropout),
            nn.ReflectionPad2d(1),
            nn.Conv2d(width, dim, kernel_size=3, bias=bias),
            norm_layer(norm, dim),
        )
        self.conv_s = ResnetBlock(dim, norm, dropout) if use_res else None

    def forward(
        self,
        image_code: torch.Tensor,
        src_code: torch.Tensor,
        tgt_code: torch.Tensor,
        return_attention: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Codes [B, C, h, w] -> (image code, condition pose code, target pose code, A or None).

        A is [B, h*w, h*w] (row = target location, column = condition location, both in
        row-major order) when ``return_attention`` is set, else None.
        """
        if self.conv_s is not None:
            # Applied to each code on its own: with BatchNorm a joint batch would mix statistics.
            src_code = self.conv_s(src_code)
            tgt_code = self.conv_s(tgt_code)
        b, c, h, w = image_code.shape
        query = self.theta(tgt_code).flatten(2).transpose(1, 2)  # [B, hw, C/2]
        key = self.phi(src_code).flatten(2).transpose(1, 2)  # [B, hw, C/2]
        value = self.gamma(image_code).flatten(2).transpose(1, 2)  # [B, hw, C]
        attn = None
        if return_attention:
            aligned, attn = pose_attention(query, key, value, return_weights=True)
        else:
            aligned = pose_attention(query, key, value)
        aligned = aligned.transpose(1, 2).reshape(b, c, h, w)  # F_hat [B, C, h, w]
        if self.fusion == "cat":
            fused = torch.cat([aligned, image_code], dim=1)
        elif self.fusion == "add":
            fused = aligned + image_code
        else:
            fused = aligned
        return self.conv_p(fused), src_code, tgt_code, attn


def upsampling_decoder(ngf: int, norm: Norm, n_upsampling: int = 2) -> nn.Sequential:
    """Per upsampling: bilinear x2, residual block, conv 3x3 halving channels, norm, ReLU; then
    reflect-pad 3, conv 7x7 to RGB (with bias), tanh."""
    bias = conv_bias(norm)
    layers: list[nn.Module] = []
    for i in range(n_upsampling):
        c = ngf * 2 ** (n_upsampling - i)
        layers += [
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            ResnetBlock(c, norm, dropout=0.0),
            nn.ReflectionPad2d(1),
            nn.Conv2d(c, c // 2, kernel_size=3, bias=bias),
            norm_layer(norm, c // 2),
            nn.ReLU(True),
        ]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, kernel_size=7), nn.Tanh()]
    return nn.Sequential(*layers)


class APATN(nn.Module):
    """The APATN generator: (condition image, source heatmaps, target heatmaps) -> image.

    Args:
        norm: "instance" (the paper's DeepFashion model) or "batch".
        ngf: channels after the first conv; the block code has ngf * 2**n_downsampling.
        n_blocks: number of APATBs (5 in the paper).
        n_downsampling: stride-2 convs in each encoder, bilinear upsamplings in the decoder.
        dropout: dropout probability inside the blocks (0.5; active only in train mode).
        n_joints: heatmap channels per pose (18).
        attn_channels: channels of theta and phi (half the code width by default).
        fusion: "cat" (the paper), "add" or "none": the APATB ablations (see `APATB`).
        use_res: update the pose codes in every block (off: the "w/o res" ablation).
    """

    # ``return_attention`` gives per block [B, h*w, h*w]: one map per target cell over the
    # condition image's code cells (PATN's masks, [B, C, h*w], lie over the target instead).
    attention_over: ClassVar[str] = "condition"

    def __init__(
        self,
        norm: Norm = "instance",
        ngf: int = 64,
        n_blocks: int = 5,
        n_downsampling: int = 2,
        dropout: float = 0.5,
        n_joints: int = N_JOINTS,
        attn_channels: int | None = None,
        fusion: Fusion = "cat",
        use_res: bool = True,
    ):
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be at least 1, got {n_blocks}")
        self.n_joints = n_joints
        dim = ngf * 2**n_downsampling
        self.image_encoder = encoder(3, ngf, norm, n_downsampling)
        self.src_pose_encoder = encoder(n_joints, ngf, norm, n_downsampling)
        self.tgt_pose_encoder = encoder(n_joints, ngf, norm, n_downsampling)
        self.blocks = nn.ModuleList(
            APATB(dim, norm, dropout, attn_channels, fusion, use_res) for _ in range(n_blocks)
        )
        self.decoder = upsampling_decoder(ngf, norm, n_downsampling)
        init_weights(self)

    def forward(
        self,
        image: torch.Tensor,
        source_heatmaps: torch.Tensor,
        target_heatmaps: torch.Tensor,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Generate the person of ``image`` in the target pose.

        Args:
            image: condition image [B, 3, H, W] in [-1, 1]; H and W divisible by 4.
            source_heatmaps: its pose [B, 18, H, W].
            target_heatmaps: the target pose [B, 18, H, W].
            return_attention: also return each block's alignment matrix A
                [B, h*w, h*w] (h, w = H/4, W/4; rows: target locations, columns: condition
                locations). Costs B * (h*w)^2 floats per block; leave off for training.

        Returns:
            The generated image [B, 3, H, W] in [-1, 1] (and the attention matrices if asked).
        """
        check_generator_inputs(image, source_heatmaps, target_heatmaps, self.n_joints)
        image_code = self.image_encoder(image)  # [B, C, H/4, W/4]
        src_code = self.src_pose_encoder(source_heatmaps)  # [B, C, H/4, W/4]
        tgt_code = self.tgt_pose_encoder(target_heatmaps)  # [B, C, H/4, W/4]
        attentions = []
        for block in self.blocks:
            image_code, src_code, tgt_code, attn = block(
                image_code, src_code, tgt_code, return_attention
            )
            if return_attention:
                attentions.append(attn)
        out = self.decoder(image_code)
        return (out, attentions) if return_attention else out


# --------------------------------------------------------------------------------------------
# Registered variants (the ablations live in models/variants.py)


@register_generator
def apatn_fashion(**kw) -> APATN:
    """The paper's APATN (DeepFashion): InstanceNorm, ngf 64, 5 blocks (16,854,659 parameters)."""
    return APATN(**{"norm": "instance", **kw})


@register_generator
def apatn_market(**kw) -> APATN:
    """APATN for Market-1501 with BatchNorm, the norm of the authors' Market PATN (16,863,363)."""
    return APATN(**{"norm": "batch", **kw})


@register_generator
def apatn_small(**kw) -> APATN:
    """A CPU-trainable APATN for the synthetic demo: InstanceNorm, ngf 16, 5 blocks."""
    return APATN(**{"norm": "instance", "ngf": 16, "n_blocks": 5, **kw})


@register_generator
def apatn_tiny(**kw) -> APATN:
    """A test-size APATN: InstanceNorm, ngf 8, 2 blocks."""
    return APATN(**{"norm": "instance", "ngf": 8, "n_blocks": 2, **kw})
