"""`animate`: the person of a photo performing a driving clip's motion, as a video and a report.

The chain: the source photo is framed for the model (`PoseTransfer.prepare_source`); every used
driving frame gets its keypoints (`PersonTracker`: BlazePose, in crops that follow the person in
wide shots; or the poses given); frames the
detector missed are bridged (`bridge_gaps`); the poses are retargeted onto the source person in
the model's frame (`retarget`, or framed as they are with ``none``) and smoothed (`smooth`); the
generator runs over them in batches; each output frame is the result (optionally pasted back
into the photo) or driving | skeleton | result side by side.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image
from tqdm import tqdm

from posetransfer.core.device import device_description
from posetransfer.core.files import (
    PART_SUFFIX,
    atomic_write,
    check_output,
    reusable_folder,
    swap_into_place,
)
from posetransfer.core.options import option
from posetransfer.core.report import Report
from posetransfer.core.scratch import pid_alive
from posetransfer.errors import InputError, InputWarning
from posetransfer.motion.retarget import DEFAULT_MODE, MODES, frame_clip, present, retarget
from posetransfer.motion.smooth import (
    DEFAULT_BETA,
    DEFAULT_MAX_GAP,
    DEFAULT_MIN_CUTOFF,
    bridge_gaps,
    jitter,
    smooth,
)
from posetransfer.motion.video import Clip, Writer, iter_frames, open_clip, read_poses
from posetransfer.pose import draw_skeleton
from posetransfer.pose.draw import hstack

if TYPE_CHECKING:
    import torch

    from posetransfer.keypoints.framing import Source
    from posetransfer.keypoints.targets import ImageInput


class PoseTransfer(Protocol):
    """What animating needs of `posetransfer.PoseTransfer` (which the photos layer builds)."""

    height: int
    width: int
    fill: float
    min_confidence: float
    device: torch.device

    def prepare_source(self, image: ImageInput) -> Source: ...

    def generate_batch(
        self, src_img: np.ndarray, src_kps: np.ndarray, tgt_kps: np.ndarray
    ) -> list[np.ndarray]: ...


LAYOUTS: tuple[str, ...] = ("result", "side-by-side")
DEFAULT_HEIGHT = 256


@dataclass(frozen=True)
class AnimateOptions:
    """How a driving clip animates a photo (every field is a flag of `posetransfer animate`)."""

    retarget: str = option(
        DEFAULT_MODE, help="how the driving poses fit the source's body", choices=MODES
    )
    smooth: bool = option(True, help="One Euro filter over the keypoints")
    min_cutoff: float = option(
        DEFAULT_MIN_CUTOFF, help="One Euro cutoff at rest, Hz; lower is smoother"
    )
    beta: float = option(DEFAULT_BETA, help="One Euro speed coefficient; higher lags less")
    max_gap: int = option(
        DEFAULT_MAX_GAP,
        help="frames without a person up to N are interpolated, longer held",
        minimum=0,
        metavar="N",
    )
    start: float = option(0.0, help="first second used", metavar="S")
    duration: float | None = option(None, help="seconds used (all)", metavar="S")
    every: int = option(1, help="use every N-th frame", minimum=1, metavar="N")
    fps: float | None = option(
        None, help="frame rate of a folder or pose-file input (25); a video keeps its own"
    )
    layout: str = option(
        "result", help="the result, or driving | skeleton | result", choices=LAYOUTS
    )
    paste_back: bool = option(False, help="paste each generated frame back into the source photo")
    height: int = option(
        DEFAULT_HEIGHT,
        help="output height without --paste-back (which keeps the photo's size)",
        minimum=16,
    )
    batch_size: int = option(8, help="frames per generator call", minimum=1)

    def __post_init__(self) -> None:
        if self.retarget not in MODES:
            raise InputError(
                f"retarget={self.retarget!r}: choose one of {', '.join(MODES)}", arg="retarget"
            )
        if self.layout not in LAYOUTS:
            raise InputError(
                f"layout={self.layout!r}: choose one of {', '.join(LAYOUTS)}", arg="layout"
            )
        for name, value in (("min_cutoff", self.min_cutoff), ("beta", self.beta)):
            if not np.isfinite(value) or value < 0 or (name == "min_cutoff" and value == 0):
                raise InputError(
                    f"{name}={value!r}: must be {'> 0' if name == 'min_cutoff' else '>= 0'}",
                    arg=name,
                )
        if isinstance(self.max_gap, bool) or not isinstance(self.max_gap, int) or self.max_gap < 0:
            raise InputError(
                f"max_gap={self.max_gap!r}: must be a whole number >= 0", arg="max_gap"
            )
        for name in ("height", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name}={v!r}: must be a positive whole number", arg=name)


@dataclass(frozen=True)
class AnimationReport(Report):
    """What an animation read, bridged, smoothed and wrote; ``<out>.json`` holds `to_dict`."""

    driving: str
    driving_kind: str
    frames_used: int
    first_frame: int
    every: int
    fps: float
    """Frames per second of the output: the driving rate divided by ``every``."""
    seconds_used: float
    """Seconds of the driving clip the used frames span (frames used / fps)."""
    frames_with_person: int
    tracking: dict | None
    """The person tracker's counts (None for a pose-file input)."""
    person_gaps_bridged: int
    person_gaps_held: int
    joint_gaps_bridged: int
    retarget: str
    smooth: dict
    jitter_px_before_smoothing: float | None
    """Mean joint acceleration, pixels of the model's frame (None: too few frames)."""
    jitter_px_after_smoothing: float | None
    pose_seconds_per_frame: float
    # Set once frames are written (`animate`); left out of `to_dict` while None.
    out: str | None = None
    frames_written: int = 0
    complete: bool = False
    generate_seconds_per_frame: float | None = None
    seconds_per_frame: float | None = None
    size: tuple[int, int] | None = None
    encoded_size: tuple[int, int] | None = None
    machine: dict | None = None
    """Where it ran: the CPU or GPU model, torch's threads, the 1-minute load average."""

    def to_dict(self) -> dict:
        """The report as the JSON file holds it (the written frames' fields once set)."""
        d = super().to_dict()
        return {k: v for k, v in d.items() if not (k in _WRITTEN and v is None)}


_WRITTEN = (
    "out",
    "generate_seconds_per_frame",
    "seconds_per_frame",
    "size",
    "encoded_size",
    "machine",
)


@dataclass
class Animation:
    """A prepared animation: the source, the clip, the poses; `frames` generates it."""

    pt: PoseTransfer
    source: Source
    clip: Clip
    options: AnimateOptions
    detected: np.ndarray
    """(T, 18, 2) driving keypoints as found (-1 missing), in the driving frames' pixels."""
    poses: np.ndarray
    """(T, 18, 2) the poses generated: bridged, retargeted, smoothed, in the model's frame."""
    report: AnimationReport

    def _resize(self, img: np.ndarray, height: int) -> np.ndarray:
        w = max(1, round(img.shape[1] * height / img.shape[0]))
        return np.asarray(Image.fromarray(img).resize((w, height), Image.BICUBIC))

    def output_size(self) -> tuple[int, int]:
        """(height, width) of every output frame."""
        return output_size(self.pt, self.source, self.clip, self.options)

    def _compose(self, fake: np.ndarray, kps: np.ndarray, driving: np.ndarray | None) -> np.ndarray:
        o = self.options
        result = self.source.paste_back(fake) if o.paste_back else self._resize(fake, o.height)
        if o.layout == "result":
            return result
        H = result.shape[0]
        scale = H / self.pt.height
        skel_w = max(1, round(self.pt.width * scale))
        shown = np.where(present(kps)[:, None], np.rint(kps * scale), -1).astype(np.int64)
        panels = [
            draw_skeleton(shown, H, skel_w),
            result if not o.paste_back else self._resize(result, H),
        ]
        if driving is not None:
            panels.insert(0, self._resize(driving, H))
        return hstack(panels)

    def _driving_panel(self, frame: np.ndarray, t: int) -> np.ndarray:
        """The driving frame with the followed person's detected skeleton drawn over it."""
        kps = np.where(present(self.detected[t])[:, None], self.detected[t], -1).astype(np.int64)
        if not present(kps).any():
            return frame
        return draw_skeleton(kps, frame.shape[0], frame.shape[1], background=frame, thickness=2)

    def frames(self, progress: bool = False) -> Iterator[np.ndarray]:
        """The output frames in order, generated in batches."""
        o = self.options
        drivers = (
            iter_frames(self.clip)
            if (o.layout == "side-by-side" and self.clip.has_frames)
            else None
        )
        kps_int = np.where(present(self.poses)[..., None], np.rint(self.poses), -1).astype(np.int64)
        spent = 0.0
        with tqdm(total=len(kps_int), desc="animate", unit="frame", disable=not progress) as bar:
            for start in range(0, len(kps_int), o.batch_size):
                batch = kps_int[start : start + o.batch_size]
                t0 = time.monotonic()
                fakes = self.pt.generate_batch(self.source.image, self.source.kps, batch)
                spent += time.monotonic() - t0
                per_frame = round(spent / (start + len(batch)), 4)
                self.report = replace(self.report, generate_seconds_per_frame=per_frame)
                for t, (fake, kps) in enumerate(
                    zip(fakes, self.poses[start : start + o.batch_size]), start
                ):
                    driving = self._driving_panel(next(drivers), t) if drivers is not None else None
                    yield self._compose(fake, kps, driving)
                bar.update(len(batch))


def output_size(pt: PoseTransfer, source: Source, clip: Clip, o: AnimateOptions) -> tuple[int, int]:
    """(height, width) of every output frame of an animation."""
    h, w = pt.height, pt.width
    if o.paste_back:
        res = source.photo.shape[:2]
    else:
        res = (o.height, max(1, round(w * o.height / h)))
    if o.layout == "result":
        return tuple(res)
    H = res[0]
    parts = [
        max(1, round(w * H / h)),
        res[1] if not o.paste_back else max(1, round(res[1] * H / res[0])),
    ]
    if clip.has_frames:
        parts.insert(0, max(1, round(clip.size[1] * H / clip.size[0])))
    return H, sum(parts) + 2 * (len(parts) - 1)


def prepare_animation(
    pt: PoseTransfer,
    source: ImageInput,
    driving: str | Path,
    options: AnimateOptions | None = None,
    progress: bool = False,
    check=None,
) -> Animation:
    """Read the source and the driving clip and compute the poses to generate.

    ``check(size, n_frames)``, when given, runs once the output size is known and before the
    poses are computed (the long part), e.g. to refuse an output file early.

    Raises:
        InputError: naming the argument: no person in the source photo, an unreadable or empty
            driving input, or no person in any driving frame.
    """
    o = options or AnimateOptions()
    clip = open_clip(driving, o.start, o.duration, o.every, o.fps)  # cheap mistakes first
    src = pt.prepare_source(source)
    if check is not None:
        check(output_size(pt, src, clip, o), len(clip.indices))
    t0 = time.monotonic()
    tracking = None
    if clip.has_frames:
        from posetransfer.motion.track import PersonTracker

        found = []
        with PersonTracker(min_confidence=pt.min_confidence) as track:
            for frame in tqdm(
                iter_frames(clip),
                total=len(clip.indices),
                desc="driving poses",
                unit="frame",
                disable=not progress,
            ):
                found.append(track(frame))
            tracking = dict(track.counts)
        detected = np.stack(found).astype(np.float64)
    else:
        detected = read_poses(clip)
    detect_s = time.monotonic() - t0
    with_person = int(present(detected).any(axis=1).sum())
    if with_person == 0:
        raise InputError(
            f"driving={str(clip.path)!r}: no person found in any of its {len(detected)} "
            "frames used",
            arg="driving",
        )
    bridged, gaps = bridge_gaps(detected, o.max_gap)
    if o.retarget == "none":
        placed = frame_clip(bridged, pt.height, pt.width, pt.fill)
    else:
        placed = retarget(bridged, src.kps, o.retarget)
    poses = smooth(placed, clip.fps, o.min_cutoff, o.beta) if o.smooth else placed
    report = AnimationReport(
        driving=str(clip.path),
        driving_kind=clip.kind,
        frames_used=len(clip.indices),
        first_frame=clip.indices[0],
        every=o.every,
        fps=round(clip.fps, 4),
        seconds_used=round(len(clip.indices) / clip.fps, 3),
        frames_with_person=with_person,
        tracking=tracking,
        **gaps,
        retarget=o.retarget,
        smooth={"on": o.smooth, "min_cutoff": o.min_cutoff, "beta": o.beta},
        jitter_px_before_smoothing=_round(jitter(placed)),
        jitter_px_after_smoothing=_round(jitter(poses)),
        pose_seconds_per_frame=round(detect_s / len(clip.indices), 4),
    )
    return Animation(pt, src, clip, o, detected, poses, report)


def _round(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 3)


def report_path(out: str | Path) -> Path:
    """Where the report of an animation written to ``out`` goes: ``OUT.json`` beside a video,
    ``OUT/report.json`` inside a folder of PNGs."""
    out = Path(out)
    if Writer.kind_of(out) == "png":
        return out / "report.json"
    return out.with_name(out.name + ".json")


def check_paths(source: ImageInput, driving: str | Path, out: str | Path) -> Path:
    """Refuse, before anything is read or written, an output that would destroy or mix with an
    input (it is one, contains one or lies in an input folder), lies below a file, has no
    known suffix, or is a folder of files this package did not write.

    Returns:
        ``out`` as a Path.
    """
    inputs = {"source": source if isinstance(source, str | Path) else None, "driving": driving}
    out = check_output(out, inputs, arg="out")
    kind = Writer.kind_of(out)
    if kind is None:
        raise InputError(f"out={str(out)!r}: write .mp4, .gif or a folder of PNG frames", arg="out")
    if kind == "png":
        reusable_folder(out, "animation frames", arg="out")
    elif out.is_dir():
        raise InputError(f"out={str(out)!r}: is a folder; give a file name", arg="out")
    return out


def _temporary(path: Path) -> Path:
    """The name a run writes ``path`` under until it is done: ``.NAME.PID.posetransfer-part``."""
    return path.with_name(f".{path.name}.{os.getpid()}{PART_SUFFIX}")


def _sweep(path: Path) -> None:
    """Remove what killed runs left for ``path`` (temporaries of processes that are gone)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+){re.escape(PART_SUFFIX)}")
    if not path.parent.is_dir():
        return
    for p in path.parent.iterdir():
        m = pattern.fullmatch(p.name)
        pid = None if m is None else int(m.group(1))
        if pid is None or (pid != os.getpid() and pid_alive(pid)):  # this process: an earlier run
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _publish(tmp: Path, out: Path, kind: str, report: AnimationReport) -> None:
    """Put the written frames and their report in place, so that the report beside ``out``
    always describes ``out``, whenever the process is killed.

    A folder holds its report and is swapped in whole. A file's report is written to a
    temporary name first; the earlier report is removed before the earlier video is replaced,
    and the new report renamed in last (renames take no space on a full disk).
    """
    text = json.dumps(report.to_dict(), indent=2) + "\n"
    if kind == "png":
        atomic_write(tmp / "report.json", text)
        swap_into_place(tmp, out)
        return
    final = report_path(out)
    tmp_report = _temporary(final)
    try:
        atomic_write(tmp_report, text)
        final.unlink(missing_ok=True)
        os.replace(tmp, out)
        os.replace(tmp_report, final)
    finally:
        tmp_report.unlink(missing_ok=True)


def _failure(error: BaseException, out: Path, written: int, n: int, outcome: str) -> BaseException:
    """The error to raise for a run that stopped while writing: the disk-full or write error
    reworded to say what is on disk (``outcome``), an InputError with ``outcome`` added."""
    cause = error if isinstance(error, OSError) else error.__context__
    if isinstance(error, InputError | OSError) and isinstance(cause, OSError):
        why = (
            "no space left on the device (disk full)"
            if cause.errno in (errno.ENOSPC, errno.EDQUOT)
            else f"cannot write ({cause.strerror or cause})"
        )
        return InputError(
            f"out={str(out)!r}: {why} after {written} of {n} frames; {outcome}", arg="out"
        )
    if isinstance(error, InputError):
        return InputError(f"{error}; {outcome}", arg=error.arg, names=error.names)
    return error


def animate(
    pt: PoseTransfer,
    source: ImageInput,
    driving: str | Path,
    out: str | Path,
    options: AnimateOptions | None = None,
    progress: bool = True,
) -> AnimationReport:
    """Write the animation to ``out`` (``.mp4``, ``.gif`` or a PNG folder) and its report.

    The report (``<out>.json``, or ``report.json`` in a PNG folder) counts the frames read and
    with a person, the gaps bridged and held, the keypoint jitter before and after smoothing
    (mean joint acceleration, pixels of the model's frame) and the time per frame.

    The output is refused before anything is read when it is, contains or lies in an input
    (`check_paths`). Frames are written under a temporary name beside ``out`` and renamed in
    with their report at the end, so the report beside ``out`` always describes it: a killed
    run (even by SIGKILL) leaves an earlier ``out`` and its report as they were (its partial
    file, ``.OUT.PID.posetransfer-part``, is removed by the next run to ``out``). A run stopped
    by Ctrl-C or an error keeps the frames written, as ``out`` with a report saying
    ``"complete": false``, only when there was no earlier ``out`` to replace.

    Returns:
        The report (`AnimationReport`), as written beside ``out``.

    Raises:
        InputError: naming the argument (see `check_paths`, `prepare_animation`); a full disk
            or a failed write, saying what was left on disk.
    """
    out = check_paths(source, driving, out)
    t0 = time.monotonic()
    anim = prepare_animation(
        pt, source, driving, options, progress, check=lambda size, n: Writer.check(out, size, n)
    )
    kind, n = Writer.kind_of(out), len(anim.poses)
    _sweep(out)
    _sweep(report_path(out))
    earlier = report_path(out).exists() or (
        out.exists() and not (out.is_dir() and not any(out.iterdir()))
    )
    outcome = f"{out} was left as it was" if earlier else "nothing was written"
    tmp = _temporary(out)
    try:
        writer = Writer(out, anim.clip.fps, anim.output_size(), n, path=tmp)
    except (OSError, InputError) as e:
        _remove(tmp)
        raise _failure(e, out, 0, n, outcome) from None
    anim.report = replace(anim.report, out=str(out))
    stopped: BaseException | None = None
    try:
        for frame in anim.frames(progress):
            writer.write(frame)
    except BaseException as e:  # Ctrl-C too: the frames written may still be kept
        stopped = e
    closed = True
    try:
        writer.close()
    except (OSError, InputError) as e:
        closed = False
        stopped = stopped or e
    anim.report = replace(
        anim.report,
        frames_written=writer.count,
        complete=stopped is None and writer.count == n,
        seconds_per_frame=round((time.monotonic() - t0) / max(1, writer.count), 4),
        size=tuple(anim.output_size()),
        encoded_size=tuple(writer.encoded_size),
        machine=device_description(getattr(anim.pt, "device", "cpu")),
    )
    keep = stopped is None or (closed and writer.count > 0 and not earlier)
    if keep:
        try:
            _publish(tmp, out, kind, anim.report)
            outcome = f"{out} holds the {writer.count} frames written (report: not complete)"
        except (OSError, InputError) as e:
            _remove(tmp)
            raise _failure(e, out, writer.count, n, outcome) from None
    else:
        _remove(tmp)
    if stopped is None:
        return anim.report
    if isinstance(stopped, KeyboardInterrupt):
        warnings.warn(
            InputWarning(f"stopped after {writer.count} of {n} frames: {outcome}"), stacklevel=2
        )
        raise stopped
    raise _failure(stopped, out, writer.count, n, outcome) from None
