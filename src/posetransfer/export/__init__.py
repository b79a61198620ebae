"""Deployment: export generators to ONNX / OpenVINO and load any generator ready for inference.

- `export_generator(checkpoint, format, out)`: our checkpoints, bundled models and the authors'
  ``.pth`` files to an ``.onnx`` file or OpenVINO IR (``.xml`` + ``.bin``), see
  `posetransfer.export.onnx`.
- `load_for_inference(path, backend, precision, device)`: a checkpoint through
  `posetransfer.models.for_inference` (backend "torch"), or an exported file through
  onnxruntime / OpenVINO (`posetransfer.export.runtime`); the same call either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from posetransfer.errors import InputError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from posetransfer.checkpoint import GeneratorInfo

FORMATS: tuple[str, ...] = ("onnx", "openvino")
_SUFFIX = {"onnx": ".onnx", "openvino": ".xml"}


def export_generator(
    checkpoint: str | Path,
    format: str,
    out: str | Path,
    batch_size: int | None = None,
    int8: bool = False,
    calibration: str | Path | None = None,
    calibration_pairs: int = 256,
) -> Path:
    """Export a checkpoint, run, bundled model or authors' ``.pth`` to ``out``.

    Args:
        checkpoint: anything `posetransfer.checkpoint.load_generator` reads.
        format: "onnx" (one ``.onnx`` file) or "openvino" (``.xml`` and ``.bin``).
        out: the file to write (``.onnx`` / ``.xml``).
        batch_size: a fixed batch size; None (the default) exports any batch size.
        int8: ONNX only: quantise the convolutions to int8 (`posetransfer.export.quantize`),
            calibrated on ``calibration_pairs`` training pairs of the dataset root
            ``calibration`` (default: synthetic people at the model's size).

    Returns:
        The written file.

    Raises:
        InputError: naming ``format``, ``out`` or ``batch_size``, or the checkpoint at fault.
    """
    from posetransfer.checkpoint import load_generator
    from posetransfer.export.onnx import export_onnx_model, export_openvino_model

    if format not in FORMATS:
        raise InputError(f"format={format!r}: choose one of {', '.join(FORMATS)}", arg="format")
    out = Path(out)
    if out.suffix != _SUFFIX[format]:
        raise InputError(
            f"out={str(out)!r}: a {format} model is written as a {_SUFFIX[format]} file",
            arg="out",
        )
    if batch_size is not None and batch_size < 1:
        raise InputError(f"batch_size={batch_size}: must be at least 1", arg="batch_size")
    if int8 and format != "onnx":
        raise InputError("int8: quantised models are ONNX files (run by onnxruntime)", arg="int8")
    if calibration_pairs < 1:
        raise InputError(
            f"calibration_pairs={calibration_pairs}: must be at least 1", arg="calibration_pairs"
        )
    model, info = load_generator(checkpoint)
    if int8:
        return _export_int8(model, info, out, batch_size, calibration, calibration_pairs)
    export = export_onnx_model if format == "onnx" else export_openvino_model
    return export(model, out, info.height, info.width, batch_size, info)


def _export_int8(model, info, out: Path, batch_size, calibration, pairs: int) -> Path:
    import os
    import tempfile

    from posetransfer.export.onnx import export_onnx_model
    from posetransfer.export.quantize import pair_batches, quantize_int8
    from posetransfer.files import disk_error

    calib = pair_batches(info, calibration, "train", pairs, batch_size or 8)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out.parent) as tmp:
        fp32 = export_onnx_model(
            model, Path(tmp) / "fp32.onnx", info.height, info.width, batch_size, info
        )
        int8 = quantize_int8(fp32, Path(tmp) / "int8.onnx", calib)
        try:
            os.replace(int8, out)
        except OSError as e:
            raise disk_error(out, e) from None
    return out


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
    from posetransfer.device import resolve_device
    from posetransfer.export.runtime import EXPORTED_SUFFIXES, ExportedGenerator
    from posetransfer.models.inference import BACKENDS, for_inference

    if backend not in BACKENDS:
        raise InputError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}", arg="backend")
    p = Path(path)
    if p.suffix in EXPORTED_SUFFIXES:
        if backend == "torch":
            backend = EXPORTED_SUFFIXES[p.suffix]
        dev = resolve_device(device)
        if dev.type != "cpu":
            raise InputError(
                f"device={str(device)!r}: exported models run on the CPU here", arg="device"
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
            f"model{_SUFFIX[fmt]}` and pass that file as the checkpoint",
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


__all__ = ["FORMATS", "describe", "export_generator", "load_for_inference"]
