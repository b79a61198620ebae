"""Deployment: export generators to ONNX / OpenVINO and check them.

- `export_generator(checkpoint, format, out)`: our checkpoints, bundled models, Hub models and
  the authors' ``.pth`` files to an ``.onnx`` file or OpenVINO IR (``.xml`` + ``.bin``), see
  `posetransfer.runtime.onnx`.
- The output is refused (before anything is written) when it is, contains or lies inside the
  checkpoint or the calibration root (`posetransfer.core.files.check_output`). Files are written
  in a scratch folder beside it (``.export-<pid>-*``) and renamed into place; progress is shown
  as one line per stage (an int8 or OpenVINO export takes 20-60 s).
- An exported file loads like any model: `posetransfer.load_generator("patn.onnx")` runs it
  through onnxruntime / OpenVINO. `load_for_inference` is the name that call had before
  (`posetransfer.runtime.load`), kept for one release.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from posetransfer.checkpoint.bundled import pretrained_dir
from posetransfer.core.files import check_output, disk_error
from posetransfer.core.scratch import new_scratch_dir
from posetransfer.data.datasets import split_file
from posetransfer.errors import InputError
from posetransfer.export.check import pair_batches
from posetransfer.export.quantize import quantize_int8
from posetransfer.runtime.load import HUB_PREFIX, GeneratorInfo, describe, load_generator
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
    progress: bool = False,
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
        calibration_pairs: how many.
        progress: print a line per stage (tracing, converting, calibrating, writing) to stderr.

    Returns:
        The written file.

    Raises:
        InputError: naming ``format``, ``out``, ``batch_size`` or ``calibration``, or the
            checkpoint at fault; ``out`` is refused when it is, contains or lies inside an input.
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
    if int8 and calibration is not None:
        _check_calibration(calibration)
    text = str(checkpoint)
    source = None if text.startswith(HUB_PREFIX) else pretrained_dir(text) or Path(text)
    check_output(out, {"checkpoint": source, "calibration": calibration})
    if format == "openvino":
        check_output(out.with_suffix(".bin"), {"checkpoint": source})
    stages = ["loading the generator", "tracing the generator to an ONNX graph"]
    if int8:
        stages[1:1] = ["building the calibration pairs"]
        stages += ["calibrating and quantising to int8", "writing"]
    elif format == "openvino":
        stages += ["converting the ONNX graph to OpenVINO IR", "writing the OpenVINO IR"]
    with _stages(stages, str(out), progress) as stage:
        stage("loading the generator")
        model, info = load_generator(checkpoint, device="cpu", precision=None)
        if int8:
            return _export_int8(model, info, out, batch_size, calibration, calibration_pairs, stage)
        export = export_onnx_model if format == "onnx" else export_openvino_model
        return export(model, out, info.height, info.width, batch_size, info, stage=stage)


def _check_calibration(calibration: str | Path) -> None:
    """A calibration root must hold the train pairs (calibration) and test pairs (the check)."""
    root = Path(calibration)
    if not root.is_dir():
        raise InputError(
            f"calibration={str(calibration)!r}: no such folder (a dataset root in the public "
            "layout, e.g. data/market; leave calibration out to calibrate on synthetic people)",
            arg="calibration",
            names=("calibration",),
        )
    for kind in ("annotation", "pairs"):
        for split in ("train", "test"):
            try:
                split_file(root, kind, split)
            except InputError:
                raise InputError(
                    f"calibration={str(calibration)!r}: not a dataset root in the public layout: "
                    f"it needs exactly one *-{kind}-{split}.csv (`posetransfer prepare` writes "
                    "them)",
                    arg="calibration",
                ) from None


@contextmanager
def _stages(names: list[str], what: str, progress: bool) -> Iterator[Callable[[str], None]]:
    """A callback that moves a one-line progress display to the named stage (tqdm, stderr)."""
    bar = tqdm(total=len(names), disable=not progress, bar_format="{desc} [{elapsed}]")
    seen: list[str] = []

    def stage(name: str) -> None:
        if name in seen or name not in names:
            return
        seen.append(name)
        bar.set_description_str(f"export {what}: {len(seen)}/{len(names)} {name}")

    try:
        yield stage
        bar.set_description_str(f"export {what}: done")
    except BaseException:
        bar.leave = False  # the error's one line says what happened
        raise
    finally:
        bar.close()


def _export_int8(model, info, out: Path, batch_size, calibration, pairs: int, stage) -> Path:
    # A fixed-batch graph takes only full batches: the calibration drops a short last one.
    stage("building the calibration pairs")
    calib = pair_batches(info, calibration, "train", pairs, batch_size or 8, full=bool(batch_size))
    try:
        tmp = new_scratch_dir(out.parent)
    except OSError as e:
        raise disk_error(out, e) from None
    try:
        fp32 = export_onnx_model(
            model, tmp / "fp32.onnx", info.height, info.width, batch_size, info, stage=stage
        )
        stage("calibrating and quantising to int8")
        int8 = quantize_int8(fp32, tmp / "int8.onnx", calib)
        stage("writing")
        os.replace(int8, out)
    except OSError as e:
        raise disk_error(out, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
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
