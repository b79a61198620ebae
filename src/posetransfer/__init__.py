"""posetransfer: pose-guided person image generation (PATN / APATN).

The public API, imported lazily so that ``import posetransfer`` stays light:

- `posetransfer.PoseTransfer`: photo + target pose -> generated person (``from_checkpoint``).
- `posetransfer.pose`: joints, heatmaps (`keypoints_to_heatmaps`), drawing, file formats.
- `posetransfer.models`: `PATN`, `APATN`, `create_generator`, `load_original_patn`.
- `posetransfer.metrics`: `ssim`, `body_mask`, `pckh`, the evaluation runner.
- `posetransfer.train.train`, `posetransfer.generate.generate`, `posetransfer.config.load_config`.
"""

from __future__ import annotations

from posetransfer.core import __version__

__all__ = ["PoseTransfer", "__version__"]


def __getattr__(name: str):
    if name == "PoseTransfer":
        from posetransfer.photos.transfer import PoseTransfer

        return PoseTransfer
    raise AttributeError(f"module 'posetransfer' has no attribute {name!r}")
