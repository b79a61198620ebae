"""Export a generator to ONNX (torch's dynamo exporter) and to OpenVINO IR.

The graph has inputs ``image`` [B, 3, H, W], ``source_heatmaps`` and ``target_heatmaps``
[B, 18, H, W] and the output ``generated`` [B, 3, H, W], all float32. B is dynamic unless a
fixed batch is asked for; H and W are fixed at the size the generator was trained at. The
generator is exported in eval mode (dropout off, BatchNorm on its running statistics: exporting
a pix2pix-style network in training mode is the usual cause of mismatches).

What the generator expects (name, image size, heatmap sigma and style) travels inside the file:
as the ONNX metadata entry ``posetransfer.generator`` and as the OpenVINO runtime-info entry of
the same name, JSON in both. Files are written in a scratch folder beside the output
(``.export-<pid>-*``, `posetransfer.core.scratch`) and renamed into place: a failed or killed
export leaves nothing under the final name, and the next export sweeps a killed one's folder.
Written files get the user's usual mode (0644 under umask 022).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posetransfer.core.files import disk_error
from posetransfer.core.scratch import new_scratch_dir
from posetransfer.errors import InputError

META_KEY = "posetransfer.generator"
OV_META_KEY = "posetransfer_generator"
INPUT_NAMES: tuple[str, ...] = ("image", "source_heatmaps", "target_heatmaps")
OUTPUT_NAME = "generated"
OPSET = 20


def example_inputs(
    batch: int, height: int, width: int, n_joints: int = 18
) -> tuple[torch.Tensor, ...]:
    """Deterministic inputs of the generator's shapes (image in [-1, 1], heatmaps in [0, 1])."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, height, width, generator=g) * 2 - 1
    src, tgt = torch.rand(2, batch, n_joints, height, width, generator=g)
    return image, src, tgt


def info_json(info: Any) -> str:
    """A GeneratorInfo (or dict) as the JSON stored in exported files."""
    data = dataclasses.asdict(info) if dataclasses.is_dataclass(info) else dict(info)
    return json.dumps(data, sort_keys=True)


def _require(module: str, what: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise InputError(
            f"{what} needs the {module} package: pip install 'posetransfer[export]'",
            arg="format",
        )


def export_onnx_model(
    generator: nn.Module,
    out: str | Path,
    height: int,
    width: int,
    batch_size: int | None = None,
    info: Any = None,
    stage: Callable[[str], None] | None = None,
) -> Path:
    """Write ``generator`` as an ONNX file at ``out`` (see the module docstring).

    Args:
        generator: the network (a copy is exported in eval mode on the CPU, float32).
        out: the ``.onnx`` file to write.
        height, width: the image size the graph takes.
        batch_size: a fixed batch size; None exports a dynamic batch dimension.
        info: a GeneratorInfo stored in the file's metadata.
        stage: called with the name of each step as it starts (progress display).

    Raises:
        InputError: onnx/onnxscript are not installed, or the file cannot be written.
    """
    _require("onnxscript", "ONNX export")
    import onnx

    out = Path(out)
    model = _export_copy(generator)
    n_joints = getattr(generator, "n_joints", 18)
    inputs = example_inputs(batch_size or 2, height, width, n_joints)
    dynamic = None
    if batch_size is None:
        batch = torch.export.Dim("batch", min=1, max=4096)
        dynamic = {name: {0: batch} for name in INPUT_NAMES}
    try:
        tmp_dir = new_scratch_dir(out.parent)
    except OSError as e:
        raise disk_error(out, e) from None
    tmp = tmp_dir / "model.onnx"
    try:
        if stage is not None:
            stage("tracing the generator to an ONNX graph")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's own deprecation and trace notes
            torch.onnx.export(
                model,
                inputs,
                str(tmp),
                dynamo=True,
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_shapes=dynamic,
                opset_version=OPSET,
                external_data=False,
                verbose=False,
            )
        proto = onnx.load(str(tmp))
        if info is not None:
            entry = proto.metadata_props.add()
            entry.key, entry.value = META_KEY, info_json(info)
        onnx.save(proto, str(tmp))
        os.replace(tmp, out)
    except OSError as e:
        raise disk_error(out, e) from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return out


def export_openvino_model(
    generator: nn.Module,
    out: str | Path,
    height: int,
    width: int,
    batch_size: int | None = None,
    info: Any = None,
    stage: Callable[[str], None] | None = None,
) -> Path:
    """Write ``generator`` as OpenVINO IR: ``out`` (``.xml``) and its ``.bin`` beside it.

    The IR is converted from the ONNX export (one exporter, one graph to check) and keeps
    float32 weights; the precision to run at is chosen when it is loaded. An earlier ``.xml``
    is removed before its ``.bin`` is replaced, so that a kill between the two renames leaves
    no ``.xml`` describing another ``.bin``.
    """
    _require("openvino", "OpenVINO export")
    _require("onnxscript", "OpenVINO export (through ONNX)")
    import openvino as ov

    out = Path(out)
    if out.suffix != ".xml":
        raise InputError(f"out={str(out)!r}: an OpenVINO model is an .xml file", arg="out")
    try:
        tmp_dir = new_scratch_dir(out.parent)
    except OSError as e:
        raise disk_error(out, e) from None
    try:
        onnx_path = export_onnx_model(
            generator, tmp_dir / "model.onnx", height, width, batch_size, stage=stage
        )
        if stage is not None:
            stage("converting the ONNX graph to OpenVINO IR")
        model = ov.convert_model(str(onnx_path))
        if info is not None:
            model.set_rt_info(info_json(info), OV_META_KEY)
        tmp_xml = tmp_dir / "model.xml"
        if stage is not None:
            stage("writing the OpenVINO IR")
        try:
            ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
            out.unlink(missing_ok=True)  # no .xml of the old .bin survives a kill below
            os.replace(tmp_xml.with_suffix(".bin"), out.with_suffix(".bin"))
            os.replace(tmp_xml, out)  # the .xml last: it is what a reader opens
        except OSError as e:
            raise disk_error(out, e) from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return out


def _export_copy(generator: nn.Module) -> nn.Module:
    import copy

    inner = getattr(generator, "generator", generator)  # an InferenceGenerator's network
    return copy.deepcopy(inner).float().cpu().eval()
