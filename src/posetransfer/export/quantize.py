"""Int8 post-training quantisation of an exported generator (``export --format onnx --int8``).

onnxruntime's static quantisation: QDQ format, per-channel int8 weights, int8 activations with
ranges calibrated on a few hundred pairs (`quantize_dynamic` would leave the convolutions,
nearly all the work, in float). Only the convolutions are quantised; APATN's attention stays in
float. The result is measured against the torch fp32 model on other pairs than the calibration
ones: `int8_study` gives size, onnxruntime speed and PSNR (docs/performance.md); an export prints
its PSNR and warns under 30 dB.

Calibration pairs come from a dataset root in the public layout (its ``train`` split; the
checks use its ``test`` split), or by default from the synthetic people at the model's size,
which is right for the bundled models and a rough stand-in for models of real people.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posetransfer.export.check import pair_batches
from posetransfer.runtime.load import load_generator
from posetransfer.runtime.onnx import INPUT_NAMES, export_onnx_model


def quantize_int8(
    onnx_in: str | Path, onnx_out: str | Path, calibration: list[list[np.ndarray]]
) -> Path:
    """Static int8 quantisation (QDQ, per-channel, MinMax calibration) of an ONNX generator.

    The metadata of ``onnx_in`` (what the generator expects) is carried over, marked int8.
    """
    import json

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from posetransfer.runtime.onnx import META_KEY

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            arrays = next(self.items, None)
            return None if arrays is None else dict(zip(INPUT_NAMES, arrays))

    pre = Path(onnx_out).with_name(f".{Path(onnx_out).stem}.pre.onnx")  # beside, not in /tmp
    try:
        quant_pre_process(str(onnx_in), str(pre))
        quantize_static(
            str(pre),
            str(onnx_out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            # Convolutions only: they are nearly all the work, and APATN's attention (MatMul,
            # Softmax) stays in float, where its shape inference also survives.
            op_types_to_quantize=["Conv", "ConvTranspose"],
        )
    finally:
        pre.unlink(missing_ok=True)
    meta = {p.key: p.value for p in onnx.load(str(onnx_in)).metadata_props}
    if META_KEY in meta:
        proto = onnx.load(str(onnx_out))
        entry = proto.metadata_props.add()
        entry.key = META_KEY
        entry.value = json.dumps({**json.loads(meta[META_KEY]), "quantization": "int8"})
        onnx.save(proto, str(onnx_out))
    return Path(onnx_out)


def int8_study(
    checkpoint: str = "synthetic-patn",
    calibration_pairs: int = 256,
    test_pairs: int = 64,
    batch: int = 8,
    repeats: int = 5,
) -> dict[str, Any]:
    """Size, onnxruntime speed and PSNR against torch fp32 of fp32 and int8 exports."""
    import onnxruntime as ort

    from posetransfer.export.check import psnr

    model, info = load_generator(checkpoint, device="cpu", precision=None)
    calib = pair_batches(info, None, "train", calibration_pairs, batch)
    test = pair_batches(info, None, "test", test_pairs, batch)
    with torch.inference_mode():
        ref = torch.cat([model(*(torch.from_numpy(a) for a in b)) for b in test])
    result: dict[str, Any] = {"checkpoint": checkpoint, "calibration_pairs": calibration_pairs}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx_model(model, Path(tmp) / "fp32.onnx", info.height, info.width)
        int8 = quantize_int8(fp32, Path(tmp) / "int8.onnx", calib)
        for label, path in (("fp32", fp32), ("int8", int8)):
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

            def run(b: list[np.ndarray], session=session) -> np.ndarray:
                return session.run(None, dict(zip(INPUT_NAMES, b)))[0]

            out = torch.from_numpy(np.concatenate([run(b) for b in test]))
            run(test[0])
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                run(test[0])
                times.append(time.perf_counter() - t0)
            result[label] = {
                "mb": path.stat().st_size / 1e6,
                "ms_per_image": 1000 * float(np.median(times)) / test[0][0].shape[0],
                "psnr_db": psnr(ref, out),
            }
    return result


def write_int8_samples(
    checkpoint: str | Path, int8_model: str | Path, out: str | Path, n: int = 6
) -> Path:
    """A PNG of held-out pairs, one per row: condition | torch fp32 | int8 | |difference| x4."""
    from PIL import Image

    from posetransfer.data.datasets import tensor_to_image
    from posetransfer.pose.draw import save_png

    model, info = load_generator(checkpoint, device="cpu", precision=None)
    quantized, _ = load_generator(int8_model)
    inputs = [torch.from_numpy(a) for a in pair_batches(info, None, "test", n, n)[0]]
    with torch.inference_mode():
        ref = model(*inputs)
    got = quantized(*inputs)
    rows = []
    for i in range(inputs[0].shape[0]):
        a, b = tensor_to_image(ref[i]), tensor_to_image(got[i])
        diff = np.clip(np.abs(a.astype(int) - b.astype(int)) * 4, 0, 255).astype(np.uint8)
        rows.append(np.concatenate([tensor_to_image(inputs[0][i]), a, b, diff], 1))
    grid = np.concatenate(rows, 0)
    big = Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST)
    return save_png(np.asarray(big), Path(out))
