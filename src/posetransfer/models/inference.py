"""The inference form of a generator: the fastest exact-enough way to run it on a device.

`for_inference(generator, precision="auto", device=None)` returns a module with the generator's
call, ``(image, source_heatmaps, target_heatmaps) -> image``, float32 in and out, that:

- is a copy in eval mode (dropout off, BatchNorm on its running statistics), so the caller's
  generator is left as it was, and runs under ``torch.inference_mode``;
- has every BatchNorm that follows a convolution folded into that convolution's weights and
  bias (done in float32, before any cast): one op instead of two, same result;
- holds its weights in bfloat16 (or float16) and casts the inputs to match, when the precision
  is ``bf16`` (``fp16``). Plain low-precision weights beat autocast on the CPU (measured 1.99x
  against 1.66x over fp32 for PATN at 128x64): autocast re-casts every weight on every call.
  InstanceNorm, softmax and the fused attention accumulate in float32 inside their kernels;
- uses channels_last on CUDA (tensor cores want NHWC); on the CPU oneDNN's bf16 convolutions
  were as fast or faster in NCHW for these layers, so the layout is left alone there;
- optionally goes through ``torch.compile``.

``precision="fp32"`` is the reference path: float32 throughout, eval mode and the BatchNorm fold
only, which changes results by float rounding (under 1e-4 on the authors' Market model;
InstanceNorm models, such as the bundled ones, are not changed at all). ``auto`` resolves with
`posetransfer.core.precision`: bf16 where the device runs it natively, fp16 on other CUDA GPUs,
else fp32.

Exported graphs run by onnxruntime or OpenVINO have the same call (`posetransfer.runtime`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from posetransfer.core.device import resolve_device
from posetransfer.core.precision import check_precision

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def fold_batchnorm(module: nn.Module) -> int:
    """Fold, in place, each BatchNorm2d that directly follows a convolution in a Sequential.

    The convolution's weight is scaled per output channel by gamma / sqrt(var + eps) and its
    bias becomes (bias - mean) * scale + beta; the BatchNorm is replaced by an Identity (so the
    other layers keep their indices). Only valid in eval mode: the module must never be trained
    afterwards.

    Returns:
        The number of BatchNorms folded.
    """
    folded = 0
    for seq in list(module.modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        keys = list(seq._modules)
        for a, b in zip(keys, keys[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if not (
                isinstance(conv, nn.Conv2d | nn.ConvTranspose2d)
                and isinstance(bn, nn.BatchNorm2d)
                and bn.running_mean is not None
                and conv.groups == 1
            ):
                continue
            _fold(conv, bn)
            seq._modules[b] = nn.Identity()
            folded += 1
    return folded


@torch.no_grad()
def _fold(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.running_var.double().add(bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    w = conv.weight.double()
    # Conv2d weights are [out, in, kh, kw]; ConvTranspose2d weights are [in, out, kh, kw].
    axis = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
    shape = [1, 1, 1, 1]
    shape[axis] = -1
    conv.weight.copy_((w * scale.view(shape)).to(conv.weight.dtype))
    bias = shift if conv.bias is None else conv.bias.double() * scale + shift
    if conv.bias is None:
        conv.bias = nn.Parameter(torch.empty_like(bn.running_mean, dtype=conv.weight.dtype))
    conv.bias.copy_(bias.to(conv.bias.dtype))


def _module_device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


class InferenceGenerator(nn.Module):
    """A generator prepared by `for_inference` (torch backend); see the module docstring.

    Attributes:
        precision: the resolved precision ("fp32", "bf16" or "fp16").
        requested: what was asked for ("auto", ...).
        device: where it runs.
        backend: "torch".
        channels_last: whether inputs and weights are in channels_last layout.
        folded: how many BatchNorms were folded into convolutions.
        compiled: whether the forward goes through ``torch.compile``.
        generator: the prepared network itself (eval mode, cast, folded).
    """

    backend = "torch"

    def __init__(
        self,
        generator: nn.Module,
        precision: str,
        device: torch.device,
        requested: str | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.precision = precision
        self.requested = requested or precision
        self.device = device
        self.dtype = _DTYPES[precision]
        self.channels_last = device.type == "cuda"
        model = copy.deepcopy(generator).eval().to(device)
        self.folded = fold_batchnorm(model)
        model = model.to(self.dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.generator = model
        self.compiled = compile
        # torch.compile's default dynamic handling: a second batch size (generate's last,
        # short batch) recompiles once with a dynamic batch dimension, not once per size.
        self._run = torch.compile(model) if compile else model
        self.n_joints = getattr(generator, "n_joints", None)
        self.training = False

    def train(self, mode: bool = True) -> InferenceGenerator:
        # The folded, cast copy is for inference only; train mode would turn dropout back on.
        if mode:
            raise RuntimeError("an inference generator cannot be trained; train the original")
        return super().train(False)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.dtype)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(
        self,
        image: torch.Tensor,
        source_heatmaps: torch.Tensor,
        target_heatmaps: torch.Tensor,
        **kwargs: Any,
    ) -> Any:
        """The generated image [B, 3, H, W] in float32 (with masks or attention when asked,
        in float32 too: keyword arguments go to the generator unchanged)."""
        with torch.inference_mode():
            args = [self._prepare(t) for t in (image, source_heatmaps, target_heatmaps)]
            out = (self.generator if kwargs else self._run)(*args, **kwargs)
        return _to_float(out)


def _to_float(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float().contiguous()
    if isinstance(out, list | tuple):
        return type(out)(_to_float(o) for o in out)
    return out


def for_inference(
    generator: nn.Module,
    precision: str = "auto",
    device: str | torch.device | None = None,
    *,
    compile: bool = False,
) -> nn.Module:
    """The fastest exact-enough form of ``generator`` for ``device`` (see the module docstring).

    Args:
        generator: a PATN, APATN or any registered generator (left unchanged).
        precision: "auto", "fp32" (the exact reference), "bf16" or "fp16" (CUDA).
        device: where to run; None keeps the generator's device; "auto" picks CUDA when present.
        compile: run through ``torch.compile`` (first calls are slow).

    Returns:
        A module called as the generator, float32 in and out; its ``precision`` attribute says
        what ``auto`` resolved to.

    Raises:
        InputError: naming ``precision`` or ``device`` when this machine cannot run them.
    """
    dev = _module_device(generator) if device is None else resolve_device(device)
    resolved = check_precision(precision, dev, "precision")
    return InferenceGenerator(generator, resolved, dev, requested=precision, compile=compile)
