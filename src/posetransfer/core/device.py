"""Device resolution: one rule for every command and API that takes a ``device``.

``"auto"`` (or None) picks CUDA when torch sees a CUDA device, else the CPU. An explicit device
that this machine cannot provide (``"cuda"`` without CUDA, ``"cuda:3"`` with two GPUs, a name
torch does not know) raises `InputError` naming the argument, never a traceback from torch.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posetransfer.errors import InputError

if TYPE_CHECKING:
    import torch

AUTO = "auto"


BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
"""Where a generator runs: torch (any device), or an exported graph (onnxruntime, OpenVINO; CPU)."""


def resolve_device(device: str | torch.device | None = AUTO, arg: str = "device") -> torch.device:
    """A usable torch device from ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a device.

    Args:
        device: what was asked for; ``"auto"`` or None picks CUDA when available.
        arg: the argument's name, for the error message (e.g. ``"train.device"``).

    Raises:
        InputError: the device is not a torch device, or not present on this machine.
    """
    import torch

    if device is None or str(device) == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"{arg}={str(device)!r}: not a torch device ({e})", arg=arg)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"{arg}={str(device)!r}: no CUDA device is available here; use 'cpu' or 'auto'",
                arg=arg,
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(
                f"{arg}={str(device)!r}: this machine has {torch.cuda.device_count()} CUDA "
                "device(s)",
                arg=arg,
            )
    elif dev.type not in ("cpu", "mps", "xpu"):
        raise InputError(f"{arg}={str(device)!r}: unsupported device type {dev.type!r}", arg=arg)
    elif dev.type != "cpu" and not getattr(torch, dev.type).is_available():
        raise InputError(f"{arg}={str(device)!r}: no {dev.type} device is available here", arg=arg)
    return dev


def device_description(device: str | torch.device) -> dict[str, Any]:
    """The device of a measurement for its report: type, model name, torch threads, load."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        cpuinfo = Path("/proc/cpuinfo")
        if cpuinfo.is_file():
            for line in cpuinfo.read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    desc = {"type": device.type, "name": name, "threads": torch.get_num_threads()}
    if hasattr(os, "getloadavg"):
        # Other processes on the machine slow CPU timings down; the load says how much.
        desc["load_average_1min"] = round(os.getloadavg()[0], 2)
    return desc
