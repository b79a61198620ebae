"""`posetransfer animate`: a photo's person performing the motion of a driving video."""

from __future__ import annotations

import argparse
from pathlib import Path

from posetransfer.commands import (
    add_checkpoint_flag,
    add_inference_flags,
    add_progress_flag,
    checkpoint_or_bundled,
    inference_options,
    int_at_least,
    report_inference,
)

DESCRIPTION = """\
Animate the person of a photo with the motion of a driving video. Each used driving frame gets
its keypoints (MediaPipe BlazePose in tracking mode, the [keypoints] extra); frames without a
person are bridged (short gaps interpolated, long ones held and reported); the poses are
retargeted onto the photo's person and smoothed (One Euro filter); the generator draws every
frame. One output frame per driving frame used, at the driving frame rate (divided by --every).

Driving input: a video PyAV reads (.mp4, .avi, .mov, ...), a folder of frames, an annotation
CSV (rows in order) or a folder of OpenPose *_keypoints.json files. Output by its suffix: .mp4
(H.264), .gif, or a folder of PNG frames; a JSON report is written beside it (OUT.json)."""

EPILOG = """\
examples:
  posetransfer animate --source photo.jpg --driving dance.mp4 --out dance-me.mp4
  posetransfer animate --source photo.jpg --driving /usr/share/doc/opencv-doc/examples/data/vtest.avi \\
      --duration 4 --layout side-by-side --out walk.gif
  posetransfer animate --source photo.jpg --driving frames/ --fps 30 --retarget scale \\
      --checkpoint latest_net_netG.pth --paste-back --out out.mp4

retargeting: none (the driving poses framed as they are), scale (the driving person's size and
ground mapped onto the source's, as Everybody Dance Now), bones (default: scale, then every limb
keeps the source's length along the driving direction).
"""

_FLAGS = {"driving": "--driving", "source": "--source", "driving_kps": "--driving", "source_kps": "--source", "kps": "--driving"}  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    from posetransfer.motion.animate import DEFAULT_HEIGHT
    from posetransfer.motion.smooth import DEFAULT_BETA, DEFAULT_MAX_GAP, DEFAULT_MIN_CUTOFF

    p = subparsers.add_parser(
        "animate",
        help="animate a photo's person with the motion of a driving video",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", required=True, metavar="PHOTO", help="photo of the person")
    p.add_argument("--driving", required=True, metavar="VIDEO",
                   help="video, folder of frames, annotation CSV or OpenPose JSON folder")  # fmt: skip
    p.add_argument("--out", required=True, metavar="OUT", help=".mp4, .gif or a folder of PNGs")
    add_checkpoint_flag(p)
    add_inference_flags(p)
    p.add_argument("--retarget", default="bones", choices=("none", "scale", "bones"),
                   help="how the driving poses fit the source's body (bones)")  # fmt: skip
    p.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=True,
                   help="One Euro filter over the keypoints (on)")  # fmt: skip
    p.add_argument("--min-cutoff", type=float, default=DEFAULT_MIN_CUTOFF,
                   help=f"One Euro cutoff at rest, Hz; lower is smoother ({DEFAULT_MIN_CUTOFF})")  # fmt: skip
    p.add_argument("--beta", type=float, default=DEFAULT_BETA,
                   help=f"One Euro speed coefficient; higher lags less ({DEFAULT_BETA})")  # fmt: skip
    p.add_argument("--max-gap", type=int_at_least(0), default=DEFAULT_MAX_GAP, metavar="N",
                   help=f"frames without a person up to N are interpolated, longer held ({DEFAULT_MAX_GAP})")  # fmt: skip
    p.add_argument("--layout", default="result", choices=("result", "side-by-side"),
                   help="the result, or driving | skeleton | result (result)")  # fmt: skip
    p.add_argument("--paste-back", action="store_true",
                   help="paste each generated frame back into the source photo")  # fmt: skip
    p.add_argument("--start", type=float, default=0.0, metavar="S", help="first second used (0)")
    p.add_argument("--duration", type=float, metavar="S", help="seconds used (all)")
    p.add_argument(
        "--every", type=int_at_least(1), default=1, metavar="N", help="use every N-th frame (1)"
    )
    p.add_argument("--fps", type=float,
                   help="frame rate of a folder or pose-file input (25); a video keeps its own")  # fmt: skip
    p.add_argument("--height", type=int_at_least(16), default=DEFAULT_HEIGHT,
                   help=f"output height without --paste-back ({DEFAULT_HEIGHT})")  # fmt: skip
    p.add_argument(
        "--batch-size", type=int_at_least(1), default=8, help="frames per generator call (8)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (auto)")
    add_progress_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posetransfer.errors import InputError
    from posetransfer.motion.animate import AnimateOptions, animate
    from posetransfer.photos.transfer import PoseTransfer

    try:
        options = AnimateOptions(
            retarget=args.retarget, smooth=args.smooth, min_cutoff=args.min_cutoff,
            beta=args.beta, max_gap=args.max_gap, start=args.start, duration=args.duration,
            every=args.every, fps=args.fps, layout=args.layout, paste_back=args.paste_back,
            height=args.height, batch_size=args.batch_size,
        )  # fmt: skip
        if not Path(args.driving).exists():  # before loading the model
            raise InputError(f"driving={args.driving!r}: not found", arg="driving")
        with PoseTransfer.from_checkpoint(
            checkpoint_or_bundled(args), device=args.device, **inference_options(args)
        ) as pt:
            report_inference(pt.model)
            r = animate(pt, args.source, args.driving, args.out, options, not args.no_progress)
    except InputError as e:
        raise InputError(e.flag_message(_FLAGS)) from None
    print(
        f"wrote {r['out']}: {r['frames_written']} frames at {r['fps']:g} fps, "
        f"{r['size'][1]}x{r['size'][0]}; person in {r['frames_with_person']} of "
        f"{r['frames_used']} driving frames ({r['person_gaps_bridged']} gaps bridged, "
        f"{r['person_gaps_held']} held); jitter {r['jitter_px_before_smoothing']} -> "
        f"{r['jitter_px_after_smoothing']} px; {r['seconds_per_frame']:.3f} s per frame"
    )
    return 0
