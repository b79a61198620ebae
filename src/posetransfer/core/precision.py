"""Arithmetic precision: which ones a device runs natively, and autocast for a step.

- ``fp32``: plain float32, the exact reference.
- ``bf16``: autocast to bfloat16 (float32 weights and optimiser state; convolutions and matrix
  products in bfloat16). It needs no loss scaling: bfloat16 has float32's exponent range. Native
  on CUDA GPUs that report bf16 support and on CPUs with AVX512-BF16 or AMX; other CPUs emulate
  it, which is slower than fp32, so asking for it there warns.
- ``fp16``: autocast to float16 with a gradient scaler (float16's range is small, so the loss is
  scaled up before the backward pass and the gradients scaled back). CUDA only.
- ``auto``: the fastest of these that the device runs natively: bf16 on CPUs and GPUs with native
  bfloat16, fp16 on other CUDA GPUs, else fp32.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING

from posetransfer.errors import InputError, InputWarning

if TYPE_CHECKING:
    import torch

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
AUTO = "auto"


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 arithmetic natively (not emulated)."""
    import torch

    if device.type == "cuda":
        # Tensor-core bf16 starts with compute capability 8.0 (Ampere); is_bf16_supported()
        # also says yes where bf16 is only emulated (T4, V100), and looks at the current GPU.
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        cpu = torch.cpu
        return bool(
            getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
            or getattr(cpu, "_is_amx_tile_supported", lambda: False)()
        )
    return False


def check_precision(precision: str, device: torch.device, arg: str = "precision") -> str:
    """The precision to run on ``device``: ``precision`` itself, or what ``auto`` picks there.

    bf16 on a CPU without native support is allowed (autocast emulates it) with a warning that
    it will be slower than fp32.

    Raises:
        InputError: naming ``arg``, for an unknown precision or one the device cannot run.
    """
    if precision == AUTO:
        if native_bf16(device):
            return "bf16"
        return "fp16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        known = ", ".join((*PRECISIONS, AUTO))
        raise InputError(f"{arg}={precision!r}: choose one of {known}", arg=arg)
    if precision == "fp16" and device.type != "cuda":
        raise InputError(
            f"{arg}='fp16': float16 needs a CUDA device (here: {device.type}); "
            "use 'bf16' or 'fp32'",
            arg=arg,
        )
    if precision == "bf16" and not native_bf16(device):
        if device.type == "cuda":
            raise InputError(
                f"{arg}='bf16': this GPU has no bfloat16 support; use 'fp16' or 'fp32'", arg=arg
            )
        warnings.warn(
            f"{arg}='bf16': this {device.type} has no native bfloat16 (AVX512-BF16 or AMX); "
            "autocast emulates it, slower than fp32",
            InputWarning,
            stacklevel=2,
        )
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 (None otherwise: fp32 and bf16 need none)."""
    import torch

    return torch.amp.GradScaler(device.type) if precision == "fp16" else None
