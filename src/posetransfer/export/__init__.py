"""Deployment: export generators to ONNX / OpenVINO and check them.

- `export_generator(checkpoint, format, out)`: our checkpoints, bundled models, Hub models and
  the authors' ``.pth`` files to an ``.onnx`` file or OpenVINO IR (``.xml`` + ``.bin``), see
  `posetransfer.runtime.onnx`.
- An exported file loads like any model: `posetransfer.load_generator("patn.onnx")` runs it
  through onnxruntime / OpenVINO. `load_for_inference` is the name that call had before
  (`posetransfer.runtime.load`), kept for one release.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from posetransfer.errors import InputError
from posetransfer.runtime.load import GeneratorInfo, describe, load_generator
from posetransfer.runtime.onnx import export_onnx_model, export_openvino_model

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
        checkpoint: anything `posetransfer.load_generator` reads but an exported file.
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
    model, info = load_generator(checkpoint, device="cpu", precision=None)
    if int8:
        return _export_int8(model, info, out, batch_size, calibration, calibration_pairs)
    export = export_onnx_model if format == "onnx" else export_openvino_model
    return export(model, out, info.height, info.width, batch_size, info)


def _export_int8(model, info, out: Path, batch_size, calibration, pairs: int) -> Path:
    import os
    import tempfile

    from posetransfer.core.files import disk_error
    from posetransfer.export.check import pair_batches
    from posetransfer.export.quantize import quantize_int8

    # A fixed-batch graph takes only full batches: the calibration drops a short last one.
    calib = pair_batches(info, calibration, "train", pairs, batch_size or 8, full=bool(batch_size))
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
    """The former name of `posetransfer.load_generator` (kept for one release), same call."""
    return load_generator(
        path, device=device, precision=precision, backend=backend, compile=compile
    )


__all__ = ["FORMATS", "describe", "export_generator", "load_for_inference", "load_generator"]
