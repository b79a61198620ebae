"""Any generator, ready for inference: a checkpoint through `for_inference`, or an exported file.

`load_for_inference` is what `generate`, `transfer`, the app and `PoseTransfer` call: one call
whatever the model is, returning a module called as the generator and its `GeneratorInfo`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from posetransfer.errors import InputError
from posetransfer.runtime.exported import BACKENDS, EXPORTED_SUFFIXES, ExportedGenerator

if TYPE_CHECKING:
    import torch
    from torch import nn

    from posetransfer.checkpoint import GeneratorInfo


def load_for_inference(
    path: str | Path,
    backend: str = "torch",
    precision: str = "auto",
    device: str | torch.device = "auto",
    compile: bool = False,
) -> tuple[nn.Module, GeneratorInfo]:
    """Any generator, ready for inference: (module called as the generator, its GeneratorInfo).

    Args:
        path: a checkpoint, run, bundled model name or authors' ``.pth`` (backend "torch"), or an
            exported ``.onnx`` (onnxruntime or openvino) or ``.xml`` (openvino) file.
        backend: "torch", "onnxruntime" or "openvino"; for an exported file, "torch" means the
            backend its suffix implies.
        precision: "auto", "fp32", "bf16" or "fp16" (see `posetransfer.models.for_inference`).
        device: "auto", "cpu", "cuda", ... (exported files run on the CPU).
        compile: torch backend only: run through ``torch.compile``.

    Raises:
        InputError: naming ``backend``, ``precision``, ``device`` or the file at fault; a
            checkpoint asked to run on onnxruntime/OpenVINO says how to export it.
    """
    from posetransfer.checkpoint import GeneratorInfo, load_generator
    from posetransfer.core.device import resolve_device
    from posetransfer.models.inference import for_inference

    if backend not in BACKENDS:
        raise InputError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}", arg="backend")
    p = Path(path)
    if p.suffix in EXPORTED_SUFFIXES:
        if backend == "torch":
            backend = EXPORTED_SUFFIXES[p.suffix]
        # Exported models run on the CPU: "auto" means the CPU for them, even beside a GPU.
        if device is not None and str(device) != "auto" and resolve_device(device).type != "cpu":
            raise InputError(
                f"device={str(device)!r}: exported models run on the CPU here; use a "
                "checkpoint with backend 'torch' on a GPU",
                arg="device",
            )
        model = ExportedGenerator(p, backend, precision)
        if model.info is None:
            raise InputError(
                f"{p}: no posetransfer metadata (image size, heatmaps): export it with "
                "`posetransfer export`",
                arg="checkpoint",
            )
        fields = set(GeneratorInfo.__dataclass_fields__)
        kept = {k: v for k, v in model.info.items() if k in fields}
        info = GeneratorInfo(**{**kept, "source": str(p)})
        return model, info
    if backend != "torch":
        fmt = "onnx" if backend == "onnxruntime" else "openvino"
        raise InputError(
            f"backend={backend!r} runs an exported model, and {path} is a checkpoint: export it "
            f"first with `posetransfer export --checkpoint {path} --format {fmt} --out "
            f"model{'.onnx' if fmt == 'onnx' else '.xml'}` and pass that file as the checkpoint",
            arg="backend",
        )
    dev = resolve_device(device)
    model, info = load_generator(path, dev)
    return for_inference(model, precision, dev, compile=compile), info


def describe(model: Any) -> str:
    """One line saying how a generator from `load_for_inference` runs, for the logs."""
    backend = getattr(model, "backend", "torch")
    precision = getattr(model, "precision", "fp32")
    requested = getattr(model, "requested", precision)
    picked = f"{precision} (auto)" if requested == "auto" else precision
    device = getattr(model, "device", "cpu")
    return f"inference: {backend} on {device}, {picked}"
