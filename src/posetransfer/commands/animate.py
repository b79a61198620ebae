"""`posetransfer animate`: a photo's person performing the motion of a driving video."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from posetransfer.commands import checkpoint_or_bundled, report_inference
from posetransfer.commands.options import (
    Checkpoint,
    Device,
    Inference,
    Progress,
    add_options,
    options_from_args,
)
from posetransfer.core.options import flags, option
from posetransfer.motion.animate import AnimateOptions

DESCRIPTION = """\
Animate the person of a photo with the motion of a driving video. Each used driving frame gets
its keypoints (MediaPipe BlazePose in tracking mode, the [keypoints] extra); frames without a
person are bridged (short gaps interpolated, long ones held and reported); the poses are
retargeted onto the photo's person and smoothed (One Euro filter); the generator draws every
frame. One output frame per driving frame used, at the driving frame rate (divided by --every).

Driving input: a video PyAV reads (.mp4, .avi, .mov, ...), a folder of frames, an annotation
CSV (rows in order) or a folder of OpenPose *_keypoints.json files. Output by its suffix: .mp4
(H.264), .gif, or a folder of PNG frames; a JSON report is written beside it (OUT.json). The
output is written under a temporary name and renamed in with its report when done: an earlier
OUT is replaced only then. An output that is, contains or lies in an input is refused."""

EPILOG = """\
examples:
  posetransfer animate --source photo.jpg --driving dance.mp4 --out dance-me.mp4
  posetransfer animate --source photo.jpg \\
      --driving /usr/share/doc/opencv-doc/examples/data/vtest.avi --duration 4 \\
      --layout side-by-side --out walk.gif
  posetransfer animate --source photo.jpg --driving frames/ --fps 30 --retarget scale \\
      --checkpoint latest_net_netG.pth --paste-back --out out.mp4

retargeting: none (the driving poses framed as they are), scale (the driving person's size and
ground mapped onto the source's, as Everybody Dance Now), bones (default: scale, then every limb
keeps the source's length along the driving direction).
"""


@dataclass(frozen=True)
class AnimateCommand:
    """The inputs and output of `posetransfer animate` (`AnimateOptions` says how)."""

    source: str = option(help="photo of the person", metavar="PHOTO")
    driving: str = option(
        help="video, folder of frames, annotation CSV or OpenPose JSON folder", metavar="VIDEO"
    )
    out: str = option(help=".mp4, .gif or a folder of PNGs", metavar="OUT")


OPTIONS = (AnimateCommand, Checkpoint, Inference, AnimateOptions, Device, Progress)
_FLAGS = {**flags(*OPTIONS), "driving_kps": "--driving", "source_kps": "--source"}
_FLAGS["kps"] = "--driving"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "animate",
        help="animate a photo's person with the motion of a driving video",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(p, *OPTIONS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.errors import InputError
    from posetransfer.motion.animate import animate, check_paths
    from posetransfer.photos.transfer import PoseTransfer

    try:
        cmd, ckpt, inference, options, device, progress = options_from_args(args, *OPTIONS)
        if not Path(cmd.driving).exists():  # before loading the model
            raise InputError(f"driving={cmd.driving!r}: not found", arg="driving")
        check_paths(cmd.source, cmd.driving, cmd.out)
        with PoseTransfer.from_checkpoint(
            checkpoint_or_bundled(ckpt), device=device.device, **inference.kwargs()
        ) as pt:
            report_inference(pt.model)
            r = animate(pt, cmd.source, cmd.driving, cmd.out, options, progress.progress)
    except InputError as e:
        raise InputError(e.flag_message(_FLAGS)) from None
    print(
        f"wrote {r.out}: {r.frames_written} frames at {r.fps:g} fps, "
        f"{r.size[1]}x{r.size[0]}; person in {r.frames_with_person} of "
        f"{r.frames_used} driving frames ({r.person_gaps_bridged} gaps bridged, "
        f"{r.person_gaps_held} held); jitter {r.jitter_px_before_smoothing} -> "
        f"{r.jitter_px_after_smoothing} px; {r.seconds_per_frame:.3f} s per frame"
    )
    return 0
