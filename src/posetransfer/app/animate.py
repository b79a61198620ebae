"""The web page's Animate tab: a photo and a short video in, the animation out.

`run_animation` does the work (and is what the tests call); `add_animate_tab` lays out the tab
inside `posetransfer.app.build_app`'s page.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from posetransfer.core.options import spec
from posetransfer.errors import InputError
from posetransfer.motion.animate import AnimateOptions, prepare_animation
from posetransfer.motion.retarget import DEFAULT_MODE, present
from posetransfer.motion.video import Writer
from posetransfer.photos.transfer import PoseTransfer
from posetransfer.pose import draw_skeleton
from posetransfer.pose.draw import hstack

DEFAULT_SECONDS = 4.0
PREVIEW_POSES = 6


def skeleton_preview(
    poses: np.ndarray, height: int, width: int, n: int = PREVIEW_POSES
) -> np.ndarray:
    """``n`` retargeted skeletons spread over the clip, side by side."""
    picks = np.linspace(0, len(poses) - 1, min(n, len(poses))).round().astype(int)
    tiles = []
    for i in picks:
        kps = np.where(present(poses[i])[:, None], np.rint(poses[i]), -1).astype(np.int64)
        tiles.append(draw_skeleton(kps, height, width))
    return hstack(tiles)


def run_animation(
    pt: PoseTransfer,
    photo: np.ndarray | str | None,
    video: str | None,
    out_dir: str | Path,
    retarget: str = DEFAULT_MODE,
    smooth: bool = True,
    seconds: float | None = DEFAULT_SECONDS,
    layout: str = "side-by-side",
) -> tuple[np.ndarray, Path, str]:
    """(skeleton preview, the MP4 written in ``out_dir``, a status line) of one animation.

    Raises:
        InputError: no photo or video, no person in either, an unreadable video.
    """
    if photo is None or video is None:
        raise InputError("upload a source photo and a driving video")
    options = AnimateOptions(
        retarget=retarget, smooth=smooth, duration=seconds or None, layout=layout
    )
    anim = prepare_animation(pt, photo, video, options)
    out = Path(out_dir) / "posetransfer-animation.mp4"
    with Writer(out, anim.clip.fps, anim.output_size(), len(anim.poses)) as writer:
        for frame in anim.frames():
            writer.write(frame)
    r = anim.report
    preview = skeleton_preview(anim.poses, pt.height * 2, pt.width * 2)
    status = (
        f"Done: {writer.count} frames at {r.fps:g} fps; person in {r.frames_with_person} of "
        f"{r.frames_used} frames; jitter {r.jitter_px_before_smoothing} -> "
        f"{r.jitter_px_after_smoothing} px."
    )
    return preview, out, status


def add_animate_tab(gr, pt: PoseTransfer, downloads: str, warn) -> None:
    """The Animate tab's widgets and handler, inside an open ``gr.Blocks``."""
    import tempfile

    def on_animate(photo, video, retarget, smooth, seconds, layout):
        try:
            preview, path, status = run_animation(
                pt, photo, video, tempfile.mkdtemp(dir=downloads), retarget, smooth, seconds, layout
            )
        except InputError as e:
            return None, None, warn(e)
        return preview, str(path), status

    with gr.Tab("Animate", elem_id="animate-tab"):
        gr.Markdown(
            "Animate the photo's person with the motion of a short video: its poses are "
            "detected, retargeted onto the person's body and smoothed, then every frame is "
            "generated (`posetransfer animate` on the command line)."
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=220):
                photo = gr.Image(
                    label="Source photo",
                    type="numpy",
                    sources=["upload", "clipboard"],
                    height=300,
                    elem_id="animate-photo",
                )
                video = gr.Video(label="Driving video", sources=["upload"], elem_id="animate-video")
            with gr.Column(scale=1, min_width=220):
                retarget = _radio(gr, "retarget", "Retargeting")
                o, default = spec(AnimateOptions, "smooth")
                smooth = gr.Checkbox(default, label="Smooth the keypoints", info=o.help)
                seconds = gr.Number(
                    DEFAULT_SECONDS, label="Seconds of video used (0: all)", minimum=0
                )
                layout = _radio(gr, "layout", "Layout", value="side-by-side")
                go = gr.Button("Animate", variant="primary", elem_id="animate")
            with gr.Column(scale=2, min_width=300):
                preview = gr.Image(
                    label="Retargeted skeletons",
                    interactive=False,
                    format="png",
                    elem_id="animate-skeletons",
                )
                result = gr.Video(label="Animation", interactive=False, elem_id="animate-result")
        status = gr.Markdown("Upload a photo and a video.", elem_id="animate-status")
        go.click(
            on_animate,
            [photo, video, retarget, smooth, seconds, layout],
            [preview, result, status],
            concurrency_limit=1,
        )


def _radio(gr, name: str, label: str, value: str | None = None):
    """A radio control of an `AnimateOptions` field: its choices, its default unless ``value``."""
    o, default = spec(AnimateOptions, name)
    return gr.Radio(list(o.choice_list()), value=value or default, label=label, info=o.help)
