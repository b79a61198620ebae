"""posetransfer: pose-guided person image generation (PATN / APATN).

The public API, imported lazily so that ``import posetransfer`` stays light:

- `posetransfer.load_generator`: any model (a bundled name, a run, a checkpoint, the authors'
  ``.pth``, an exported file, ``hf://owner/name``) -> (generator, `GeneratorInfo`).
- `posetransfer.PoseTransfer`: photo + target pose -> generated person (``from_checkpoint``).
- `posetransfer.pose`: joints, heatmaps (`keypoints_to_heatmaps`), drawing, file formats.
- `posetransfer.models`: `PATN`, `APATN`, `create_generator`, `load_original_patn`.
- `posetransfer.metrics`: `ssim`, `body_mask`, `pckh`, the evaluation runner.
- `posetransfer.train.train`, `posetransfer.generate.generate`, `posetransfer.config.load_config`.
"""

from __future__ import annotations

from posetransfer.core import __version__

__all__ = ["GeneratorInfo", "PoseTransfer", "__version__", "load_generator"]


def __getattr__(name: str):
    if name == "PoseTransfer":
        from posetransfer.photos.transfer import PoseTransfer

        return PoseTransfer
    if name in ("GeneratorInfo", "load_generator"):
        from posetransfer.runtime import load

        return getattr(load, name)
    raise AttributeError(f"module 'posetransfer' has no attribute {name!r}")
