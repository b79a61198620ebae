"""`posetransfer transfer`: one photo, one target pose, one generated image."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from posetransfer.commands import checkpoint_or_bundled, report_inference
from posetransfer.commands.options import (
    Checkpoint,
    Device,
    Inference,
    add_options,
    options_from_args,
)
from posetransfer.core.options import option

if TYPE_CHECKING:
    import numpy as np

DESCRIPTION = """\
Generate the person of a photo in another pose. The person's keypoints are detected
(MediaPipe BlazePose, the [keypoints] extra), the person is framed to the model's size, and the
generator draws them in the target pose. The target pose is one of:

  NAME              a named pose: front, back, walking, arms_up, ... (--list-poses)
  PHOTO             another photo (jpg, png, ...): its person's pose
  FILE.json         an OpenPose JSON file (COCO-18 model), its first person
  FILE.csv:NAME     row NAME of an annotation CSV (name:keypoints_y:keypoints_x)

Keypoints of another image are framed the same way as the photo, so the target person fills the
frame as the source does. The output is the model's frame (e.g. 128x64), or with --paste-back the
original photo with the person's window replaced.

Without --checkpoint it uses the bundled synthetic-patn, trained on synthetic people only: it
shows the pipeline working, but for photos of real people load the authors' Market-1501 or
DeepFashion weights (--checkpoint latest_net_netG.pth) or a model trained on real data."""

EPILOG = """\
examples:
  posetransfer transfer --source photo.jpg --target-pose walking --out walking.png
  posetransfer transfer --source photo.jpg --target-pose walking \\
      --checkpoint runs/00000-patn_small-synthetic --out walking.png
  posetransfer transfer --source photo.jpg --target-pose other.jpg \\
      --checkpoint latest_net_netG.pth --out out.png --paste-back --strip strip.png
  posetransfer transfer --source photo.jpg \\
      --target-pose data/market/market-annotation-test.csv:0002_c1s1_000451_03.jpg \\
      --checkpoint runs/00001-patn_market-market --out out.png
  posetransfer transfer --list-poses
"""


@dataclass(frozen=True)
class TransferOptions:
    """`posetransfer transfer`: the photo, the pose, the outputs (`PoseTransfer.transfer`)."""

    source: str | None = option(None, help="photo of the person", metavar="PHOTO")
    target_pose: str | None = option(
        None,
        help="named pose, photo, OpenPose .json, or annotation.csv:NAME (see above)",
        metavar="POSE",
    )
    out: str | None = option(None, help="image to write (.png, .jpg, ...)", metavar="PNG")
    paste_back: bool = option(
        False, help="write the original photo with the generated person pasted into its window"
    )
    strip: str | None = option(
        None,
        help="also write framed source | source skeleton | target skeleton | generated",
        metavar="PNG",
    )
    list_poses: bool = option(False, help="list the named poses and exit")


OPTIONS = (Checkpoint, Inference, TransferOptions, Device)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "transfer",
        help="generate the person of a photo in another pose",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(p, *OPTIONS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from posetransfer.errors import InputError

    ckpt, inference, o, device = options_from_args(args, *OPTIONS)
    if o.list_poses:
        from posetransfer.keypoints.named_poses import POSE_DESCRIPTIONS

        for name, desc in POSE_DESCRIPTIONS.items():
            print(f"{name:15} {desc}")
        return 0
    absent = [
        flag
        for flag, value in (
            ("--source", o.source),
            ("--target-pose", o.target_pose),
            ("--out", o.out),
        )
        if not value
    ]
    if absent:
        raise InputError(f"missing {', '.join(absent)} (see posetransfer transfer --help)")

    from posetransfer.photos.transfer import PoseTransfer

    check_image_path(o.out, "--out")
    if o.strip:
        check_image_path(o.strip, "--strip")
    t0 = time.perf_counter()
    checkpoint = checkpoint_or_bundled(ckpt)
    with PoseTransfer.from_checkpoint(checkpoint, device=device.device, **inference.kwargs()) as pt:
        t_load = time.perf_counter() - t0
        report_inference(pt.model)
        # Keypoint warnings (joints outside the image) print as one line each (see cli).
        result = pt.transfer(o.source, o.target_pose, paste_back=o.paste_back)
    out = write_image(result.image, o.out, "--out")
    h, w = result.image.shape[:2]
    print(f"wrote {out} ({h}x{w}{', pasted back' if o.paste_back else ''})")
    if o.strip:
        strip = write_image(result.strip(), o.strip, "--strip")
        print(f"wrote {strip}")
    total = time.perf_counter() - t0
    print(f"model load {t_load:.2f} s, detection + generation {total - t_load:.2f} s")
    return 0


def check_image_path(path: str, flag: str) -> Path:
    """``path`` as a Path if its suffix names an image format PIL writes; else InputError."""
    from PIL import Image

    from posetransfer.core.files import refuse_special
    from posetransfer.errors import InputError

    out = Path(path)
    ext = out.suffix.lower()
    if ext not in Image.registered_extensions():
        raise InputError(f"{flag} {out}: unknown image format {ext or '(no suffix)'}; use .png")
    if out.is_dir():
        raise InputError(f"{flag} {out}: is a folder")
    refuse_special(out, flag)
    return out


def write_image(image: np.ndarray, path: str, flag: str) -> Path:
    """Save an image atomically in the format its suffix names; InputError naming ``flag``."""
    from posetransfer.core.files import save_image
    from posetransfer.errors import InputError

    out = check_image_path(path, flag)
    try:
        return save_image(image, out)
    except InputError as e:
        raise InputError(f"{flag} {e}") from None
