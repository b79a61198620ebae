"""Run exported generators with onnxruntime or OpenVINO, behind the generator's own call.

`ExportedGenerator` is an ``nn.Module`` called as the generator: torch tensors in, a float32
torch tensor out, so every command and API can take it where it takes the torch model. It
checks the image size against the one the graph was exported at, and splits a batch into
chunks of the graph's fixed batch size when it has one (padding the last chunk).

Precisions: onnxruntime's CPU provider runs float32 only. OpenVINO runs float32, or bfloat16 /
float16 as its ``INFERENCE_PRECISION_HINT`` (``auto``: bf16 where the CPU has it natively).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from posetransfer.core.device import BACKENDS, resolve_device
from posetransfer.core.precision import AUTO, PRECISIONS, native_bf16
from posetransfer.errors import InputError
from posetransfer.models.inference import for_inference
from posetransfer.runtime.onnx import META_KEY, OV_META_KEY, export_onnx_model

EXPORTED_SUFFIXES: dict[str, str] = {".onnx": "onnxruntime", ".xml": "openvino"}
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


def require_backend(backend: str) -> None:
    """InputError naming ``backend`` when its package is not installed."""
    import importlib.util

    if importlib.util.find_spec(_PACKAGES[backend]) is None:
        raise InputError(
            f"backend={backend!r}: the {_PACKAGES[backend]} package is not installed: "
            "pip install 'posetransfer[export]'",
            arg="backend",
        )


def backend_precision(backend: str, precision: str) -> str:
    """The precision an exported graph runs at on ``backend`` (the CPU), with auto resolved."""
    if precision != AUTO and precision not in PRECISIONS:
        known = ", ".join((*PRECISIONS, AUTO))
        raise InputError(f"precision={precision!r}: choose one of {known}", arg="precision")
    cpu = torch.device("cpu")
    if backend == "onnxruntime":
        if precision not in (AUTO, "fp32"):
            raise InputError(
                f"precision={precision!r}: onnxruntime runs these graphs in fp32 only; use "
                "--backend openvino or torch for bf16",
                arg="precision",
            )
        return "fp32"
    if precision == AUTO:
        return "bf16" if native_bf16(cpu) else "fp32"
    if precision == "fp16":
        raise InputError(
            "precision='fp16': float16 needs a CUDA device; exported models run on the CPU "
            "here: use 'bf16' (OpenVINO) or 'fp32'",
            arg="precision",
        )
    if precision == "bf16" and not native_bf16(cpu):
        raise InputError(
            "precision='bf16': this CPU has no native bfloat16 (AVX512-BF16 or AMX); use 'fp32'",
            arg="precision",
        )
    return precision


class ExportedGenerator(nn.Module):
    """An exported graph run by onnxruntime or OpenVINO (see the module docstring).

    Attributes:
        backend: "onnxruntime" or "openvino".
        precision: the precision it runs at.
        path: the exported file.
        info: the GeneratorInfo stored in the file (a dict), or None.
        height, width: the image size of the graph.
        batch_size: its fixed batch size, or None for any.
    """

    def __init__(self, path: str | Path, backend: str, precision: str = AUTO) -> None:
        super().__init__()
        require_backend(backend)
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no exported model there", arg="checkpoint")
        self.backend = backend
        self.precision = backend_precision(backend, precision)
        self.requested = precision
        self.device = torch.device("cpu")
        if backend == "onnxruntime":
            self._load_onnxruntime()
        else:
            self._load_openvino()
        if (self.info or {}).get("quantization") == "int8":
            self.precision = "int8"  # int8 convolutions, whatever was asked for the floats
        self.height, self.width = self._dims[2], self._dims[3]
        self.batch_size = self._dims[0]
        self.n_joints = self._joints

    def _load_onnxruntime(self) -> None:
        if self.path.suffix != ".onnx":
            raise InputError(
                f"{self.path}: onnxruntime runs .onnx files; export one with "
                "`posetransfer export --format onnx`",
                arg="checkpoint",
            )
        import onnxruntime as ort

        try:
            session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own error types for bad files
            raise InputError(f"{self.path}: not a loadable ONNX model ({_first_line(e)})")
        meta = session.get_modelmeta().custom_metadata_map.get(META_KEY)
        self.info = json.loads(meta) if meta else None
        inputs = session.get_inputs()
        self._names = [i.name for i in inputs]
        self._dims = [d if isinstance(d, int) else None for d in inputs[0].shape]
        self._joints = inputs[1].shape[1]
        self._session = session

    def _load_openvino(self) -> None:
        import openvino as ov

        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except Exception as e:  # OpenVINO raises RuntimeError subclasses for bad files
            raise InputError(f"{self.path}: not a loadable OpenVINO/ONNX model ({_first_line(e)})")
        self.info = None
        if model.has_rt_info(OV_META_KEY):
            self.info = json.loads(model.get_rt_info(OV_META_KEY).astype(str))
        elif self.path.suffix == ".onnx":
            import onnx

            props = {p.key: p.value for p in onnx.load(str(self.path)).metadata_props}
            self.info = json.loads(props[META_KEY]) if META_KEY in props else None
        shape = model.inputs[0].get_partial_shape()
        self._dims = [d.get_length() if d.is_static else None for d in shape]
        self._joints = model.inputs[1].get_partial_shape()[1].get_length()
        self._names = [i.get_any_name() for i in model.inputs]
        config = {
            "INFERENCE_PRECISION_HINT": _OV_PRECISION[self.precision],
            "PERFORMANCE_HINT": "LATENCY",  # one request at a time; THROUGHPUT halves that
        }
        self._compiled = core.compile_model(model, "CPU", config)
        self._request = self._compiled.create_infer_request()

    def _run(self, arrays: list[np.ndarray]) -> np.ndarray:
        if self.backend == "onnxruntime":
            return self._session.run(None, dict(zip(self._names, arrays)))[0]
        return np.array(self._request.infer(arrays)[0], copy=True)

    def forward(
        self,
        image: torch.Tensor,
        source_heatmaps: torch.Tensor,
        target_heatmaps: torch.Tensor,
        **kwargs: Any,
    ) -> torch.Tensor:
        """The generated image [B, 3, H, W], float32 on the input's device."""
        if kwargs:
            raise InputError(
                f"{self.path}: an exported model gives the image only, not "
                f"{', '.join(kwargs)}; use --backend torch with a checkpoint",
                arg="backend",
            )
        size = tuple(image.shape[2:])
        if size != (self.height, self.width):
            raise InputError(
                f"{self.path}: exported for {self.height}x{self.width} images, got "
                f"{size[0]}x{size[1]}: export the model again at this size or resize the data",
                arg="checkpoint",
            )
        n = image.shape[0]
        expected = (n, self.n_joints, self.height, self.width)
        for name, hm in (
            ("source_heatmaps", source_heatmaps),
            ("target_heatmaps", target_heatmaps),
        ):
            if tuple(hm.shape) != expected:
                raise InputError(
                    f"{name}: {self.path} takes [B, {self.n_joints}, {self.height}, "
                    f"{self.width}] with the image's B = {n}, got {tuple(hm.shape)}",
                    arg=name,
                )
        if n == 0:
            raise InputError("image: an empty batch (B = 0)", arg="image")
        arrays = [
            t.detach().float().cpu().contiguous().numpy()
            for t in (image, source_heatmaps, target_heatmaps)
        ]
        step = self.batch_size or n
        outs = []
        for start in range(0, n, step):
            chunk = [a[start : start + step] for a in arrays]
            short = step - chunk[0].shape[0]
            if short:  # a fixed-batch graph: pad the last chunk, drop the padding after
                chunk = [np.concatenate([c, np.repeat(c[-1:], short, 0)]) for c in chunk]
            outs.append(self._run(chunk)[: step - short])
        return torch.from_numpy(np.concatenate(outs)).to(image.device)


def _first_line(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text[:300]


def exported_for_inference(
    generator: nn.Module,
    backend: str,
    precision: str,
    device: torch.device,
    batch_size: int | None = None,
    image_size: tuple[int, int] | None = None,
) -> ExportedGenerator:
    """Export ``generator`` to a temporary ONNX file and load it on ``backend`` (CPU only)."""
    import tempfile

    require_backend(backend)
    if device.type != "cpu":
        raise InputError(
            f"backend={backend!r} runs on the CPU here; use backend='torch' on {device}",
            arg="backend",
        )
    if image_size is None:
        raise InputError(
            f"backend={backend!r}: give image_size=(height, width) to export at", arg="image_size"
        )
    backend_precision(backend, precision)  # a bad precision fails before the export
    with tempfile.TemporaryDirectory(prefix="posetransfer-export-") as tmp:
        path = export_onnx_model(generator, Path(tmp) / "model.onnx", *image_size, batch_size)
        return ExportedGenerator(path, backend, precision)


def with_backend(
    generator: nn.Module,
    backend: str = "torch",
    precision: str = "auto",
    device: str | torch.device | None = None,
    *,
    compile: bool = False,
    batch_size: int | None = None,
    image_size: tuple[int, int] | None = None,
) -> nn.Module:
    """``generator`` ready to run on ``backend``: `for_inference` or an exported graph.

    Args:
        generator: a PATN, APATN or any registered generator (left unchanged).
        backend: "torch" (`posetransfer.models.for_inference`), or "onnxruntime" / "openvino"
            to export the generator to ONNX and run that graph (CPU; torch tensors in and out).
        precision: "auto", "fp32", "bf16" or "fp16".
        device: where to run; None keeps the generator's device.
        compile: torch backend only: run through ``torch.compile``.
        batch_size: for the exported backends, export with this fixed batch (None: any batch).
        image_size: for the exported backends, the (height, width) to export at.

    Raises:
        InputError: naming ``backend``, ``precision`` or ``device`` when this machine cannot run
            them, or the backend's package is not installed.
    """
    if backend not in BACKENDS:
        raise InputError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}", arg="backend")
    if backend == "torch":
        return for_inference(generator, precision, device, compile=compile)
    dev = torch.device("cpu") if device is None else resolve_device(device)
    return exported_for_inference(generator, backend, precision, dev, batch_size, image_size)
