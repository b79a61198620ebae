"""Reading driving clips and writing animations: video through PyAV, GIFs, folders of frames.

Driving input is a video PyAV can decode, a folder of frames (images, sorted by name), an
annotation CSV (poses only, rows in file order) or a folder of OpenPose ``*_keypoints.json``
files (poses only). Output is chosen by the path: ``.mp4`` (H.264 in fragmented MP4, so a run
stopped midway leaves a playable file of the frames written), ``.gif``, or a folder of PNGs.

Refused with a one-line message: a still image given as the video, a folder of frames of
different sizes. A video that decodes fewer frames than it declares (a truncated download) is
used with a warning giving both counts.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from posetransfer.core.files import (
    IMAGE_ERRORS,
    IMAGE_SUFFIXES,
    atomic_save,
    image_size,
    list_images,
    mark_output,
    read_image,
    reusable_folder,
    save_image,
)
from posetransfer.errors import InputError, InputWarning
from posetransfer.pose import MISSING, N_JOINTS

DEFAULT_FPS = 25.0
"""Frame rate of a folder of frames or poses (no rate of its own)."""
GIF_LIMIT_BYTES = 2 * 1024**3
"""A GIF is built in memory: refused above this many bytes of frames."""


@dataclass
class Clip:
    """The frames to use of a driving input."""

    path: Path
    kind: str
    """"video", "frames", "annotations" or "openpose"."""
    fps: float
    """Frames per second of the frames used (the input's rate divided by ``every``)."""
    indices: list[int]
    """Input frame numbers used."""
    size: tuple[int, int] | None
    """(height, width) of the frames; None for poses only."""
    names: list[str] | None = None
    """Frame files, CSV rows or JSON files by used frame (not for videos)."""

    @property
    def has_frames(self) -> bool:
        return self.kind in ("video", "frames")


def _pick(
    n_or_rate: tuple[int | None, float], start: float, duration: float | None, every: int
) -> list[int]:
    n, fps = n_or_rate
    first = int(round(start * fps))
    last = (
        n
        if duration is None
        else min(n if n is not None else 10**9, first + int(round(duration * fps)))
    )
    return list(range(first, last if last is not None else first, every))


def _check_range(start: float, duration: float | None, every: int, fps: float | None) -> None:
    if not np.isfinite(start) or start < 0:
        raise InputError(f"start={start}: must be >= 0 seconds", arg="start")
    if duration is not None and (not np.isfinite(duration) or duration <= 0):
        raise InputError(f"duration={duration}: must be > 0 seconds", arg="duration")
    if fps is not None and (not np.isfinite(fps) or fps <= 0):
        raise InputError(f"fps={fps}: must be > 0 frames per second", arg="fps")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise InputError(f"every={every!r}: must be a whole number >= 1", arg="every")


def _av():
    try:
        import av
    except ImportError:
        raise InputError("video needs PyAV: pip install 'posetransfer[motion]'") from None
    return av


def open_clip(
    path: str | Path,
    start: float = 0.0,
    duration: float | None = None,
    every: int = 1,
    fps: float | None = None,
) -> Clip:
    """Probe a driving input and choose its frames (``start`` and ``duration`` in seconds).

    Raises:
        InputError: naming ``driving``: missing, unreadable, empty, or no frames in the range.
    """
    _check_range(start, duration, every, fps)
    p = Path(path)
    if not p.exists():
        raise InputError(f"driving={str(p)!r}: not found", arg="driving")
    if p.is_dir():
        images = sorted(list_images(p), key=lambda q: _natural(q.name))
        jsons = sorted(p.glob("*_keypoints.json"), key=lambda q: _natural(q.name))
        if images:
            kind, names = "frames", [q.name for q in images]
        elif jsons:
            kind, names = "openpose", [q.name for q in jsons]
        else:
            raise InputError(
                f"driving={str(p)!r}: a folder without frames "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}) or OpenPose *_keypoints.json files",
                arg="driving",
            )
        rate = fps or DEFAULT_FPS
        idx = _pick((len(names), rate), start, duration, every)
        used = [names[i] for i in idx]
        size = _frames_size(p, used) if kind == "frames" and idx else None
        clip = Clip(p, kind, rate / every, idx, size, used)
    elif p.suffix.lower() == ".csv":
        from posetransfer.pose import read_annotations

        rows = list(read_annotations(p).values())
        rate = fps or DEFAULT_FPS
        idx = _pick((len(rows), rate), start, duration, every)
        clip = Clip(p, "annotations", rate / every, idx, None, [rows[i] for i in idx])
    else:
        _refuse_still_image(p)
        n, rate, size = _probe_video(p, fps)
        clip = Clip(p, "video", rate / every, _pick((n, rate), start, duration, every), size)
    if not clip.indices:
        raise InputError(
            f"driving={str(p)!r}: no frames between {start} s and "
            f"{'the end' if duration is None else f'{start + duration} s'} (--start, --duration)",
            arg="driving",
        )
    return clip


def _frames_size(folder: Path, names: list[str]) -> tuple[int, int]:
    """The size shared by a folder's used frames (headers only), or InputError naming one that
    differs: stretching it to the others would distort the person."""
    first = None
    for name in names:
        size = image_size(folder / name)
        if size is None:
            read_image(folder / name)  # raises, naming the file and why
        if first is None:
            first = (name, size)
        elif size != first[1]:
            raise InputError(
                f"driving={str(folder)!r}: frame {name} is {size[0]}x{size[1]} (HxW) while "
                f"{first[0]} is {first[1][0]}x{first[1][1]}; the frames of a clip must share one "
                "size (resize or crop them alike first)",
                arg="driving",
            )
    return first[1]


# PyAV's demuxers that read a single picture as a one-frame "video".
_PICTURE_FORMATS = ("image2", "image2pipe")


def _still_image(p: Path, what: str) -> InputError:
    return InputError(
        f"driving={str(p)!r}: a still image ({what}), not a video; give a video, or a folder of "
        "frames",
        arg="driving",
    )


def _refuse_still_image(p: Path) -> None:
    """Refuse a photo given as the driving video, whatever its name says (an animated GIF or
    WebP is a video)."""
    try:
        with Image.open(p) as im:
            fmt, frames = im.format, getattr(im, "n_frames", 1)
    except IMAGE_ERRORS:
        return
    if frames <= 1:
        raise _still_image(p, f"{fmt} picture")


def _probe_video(p: Path, fps: float | None) -> tuple[int, float, tuple[int, int]]:
    """(frames that decode, frame rate, (height, width)) of a video; warns when it declares more
    frames than decode (a truncated file), refuses one that decodes none."""
    av = _av()
    n, error = 0, None
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise InputError(f"driving={str(p)!r}: no video stream", arg="driving")
            fmt = container.format.name
            if fmt in _PICTURE_FORMATS or fmt.endswith("_pipe"):
                raise _still_image(p, fmt)
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = float(stream.average_rate or stream.guessed_rate or fps or DEFAULT_FPS)
            # Frames declared: the header's count, or (fragmented MP4 has none) the packets
            # stored; a truncated file's last packet is cut short and does not decode.
            packets = 0
            for packet in container.demux(stream):  # decoded: exact, whatever the header says
                packets += packet.size > 0
                try:
                    n += len(packet.decode())
                except av.error.FFmpegError as e:
                    error = e  # a damaged packet: the frames around it are used
            declared = max(stream.frames, packets)
            size = (stream.codec_context.height, stream.codec_context.width)
    except av.error.FFmpegError as e:
        raise InputError(
            f"driving={str(p)!r}: not a video PyAV can read ({e}); damaged or cut short?",
            arg="driving",
        ) from None
    if n == 0 and error is not None:
        raise InputError(
            f"driving={str(p)!r}: not a video PyAV can read ({error}); damaged or cut short?",
            arg="driving",
        )
    if n == 0:
        raise InputError(f"driving={str(p)!r}: the video has no frames", arg="driving")
    if error is not None or declared > n:
        count = f"{n} of {declared}" if declared > n else f"{n}"
        warnings.warn(
            InputWarning(
                f"driving={str(p)!r}: {count} frames decodable; the file looks truncated "
                f"(using the {n} frames that decode)"
            ),
            stacklevel=3,
        )
    return n, rate, size


def iter_frames(clip: Clip) -> Iterator[np.ndarray]:
    """The used frames of a clip with frames, uint8 (H, W, 3), in order."""
    if clip.kind == "frames":
        for name in clip.names:  # `open_clip` checked that they share one size
            yield read_image(clip.path / name, *clip.size)
        return
    if clip.kind != "video":
        raise ValueError(f"{clip.kind} input has no frames")
    av = _av()
    wanted = iter(clip.indices)
    nxt = next(wanted, None)
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        i = 0  # frames numbered as `open_clip` counted them: damaged packets skipped
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for frame in frames:
                if i == nxt:
                    yield frame.to_ndarray(format="rgb24")
                    nxt = next(wanted, None)
                    if nxt is None:
                        return
                i += 1


def read_poses(clip: Clip) -> np.ndarray:
    """(T, 18, 2) keypoints of a poses-only clip (annotation rows or OpenPose files)."""
    from posetransfer.pose import read_openpose_json

    if clip.kind == "annotations":
        return np.stack(clip.names).astype(np.float64)
    poses = []
    for name in clip.names:
        try:
            poses.append(read_openpose_json(clip.path / name))
        except InputError as e:
            if "no 'people'" not in str(e):
                raise
            poses.append(np.full((N_JOINTS, 2), MISSING))  # a frame without a person: bridged
    return np.stack(poses).astype(np.float64)


def _natural(name: str) -> list:
    """Sort key putting frame_2 before frame_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


# --------------------------------------------------------------------------------------------
# Writing


class Writer:
    """Frames to ``out``: ``.mp4`` (H.264), ``.gif`` or a folder of PNGs (no suffix or ``.png``).

    Use as a context manager; frames written before an exception stay readable. ``path``, when
    given, is where the frames go instead (a temporary name that the caller renames to ``out``,
    which decides the kind). A PNG folder is marked as this package's (`mark_output`); an
    existing one is cleared of its frames only when it carries that mark, and refused otherwise.
    """

    def __init__(
        self,
        out: str | Path,
        fps: float,
        size: tuple[int, int],
        n_frames: int,
        path: str | Path | None = None,
    ) -> None:
        self.out, self.fps, self.size = Path(out), float(fps), size
        self.path = Path(path) if path is not None else self.out
        self.kind = self.check(out, size, n_frames)
        h, w = size
        self.encoded_size = (h + h % 2, w + w % 2) if self.kind == "mp4" else size
        self.count = 0
        self._gif: list[Image.Image] = []
        self._container = self._stream = None
        if self.kind == "mp4":
            self._open_mp4()
        elif self.kind == "png":
            ours = reusable_folder(self.path, "animation frames", arg="out")
            self.path.mkdir(parents=True, exist_ok=True)
            mark_output(self.path)
            if ours:
                for old in self.path.glob("frame_*.png"):  # a previous run's frames
                    old.unlink()

    @staticmethod
    def kind_of(out: str | Path) -> str | None:
        """ "mp4", "gif", "png" (a folder: no suffix, or ``.png``), or None."""
        suffix = Path(out).suffix.lower()
        return {".mp4": "mp4", ".gif": "gif", "": "png", ".png": "png"}.get(suffix)

    @staticmethod
    def check(out: str | Path, size: tuple[int, int], n_frames: int) -> str:
        """The kind of ``out``, or InputError naming ``out``: an unknown suffix, a GIF too
        large for memory, no H.264 encoder in this PyAV build."""
        kind = Writer.kind_of(out)
        if kind is None:
            raise InputError(
                f"out={str(out)!r}: write .mp4, .gif or a folder of PNG frames", arg="out"
            )
        h, w = size
        if kind == "gif" and h * w * 3 * n_frames > GIF_LIMIT_BYTES:
            raise InputError(
                f"out={str(out)!r}: a GIF of {n_frames} frames of {w}x{h} needs "
                f"{h * w * 3 * n_frames / 1024**3:.1f} GB of memory; write .mp4, use --every or "
                "--duration, or --layout result",
                arg="out",
            )
        if kind == "mp4" and "libx264" not in _av().codecs_available:
            raise InputError(
                f"out={str(out)!r}: this PyAV build has no H.264 encoder (libx264); write .gif "
                "or a folder of PNG frames",
                arg="out",
            )
        return kind

    def _open_mp4(self) -> None:
        av = _av()
        from fractions import Fraction

        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Fragmented MP4 flushed as it goes, and an encoder without lookahead (zerolatency): a
        # process killed midway leaves a file that plays up to the frame before last.
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
        self._container = av.open(str(self.path), "w", format="mp4", options=options)
        rate = Fraction(self.fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        h, w = self.size
        self._stream.height, self._stream.width = h + h % 2, w + w % 2  # yuv420p wants even sizes
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {
            "crf": "20",
            "g": str(max(1, round(self.fps))),
            "tune": "zerolatency",
        }

    def write(self, frame: np.ndarray) -> None:
        if frame.shape[:2] != self.size:
            raise ValueError(f"frame {frame.shape[:2]} != {self.size}")
        if self.kind == "mp4":
            av = _av()
            h, w = self.size
            padded = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            for packet in self._stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
                self._container.mux(packet)
        elif self.kind == "gif":
            self._gif.append(Image.fromarray(frame))
        else:
            save_image(frame, self.path / f"frame_{self.count:06d}.png")
        self.count += 1

    def close(self) -> None:
        if self.kind == "mp4" and self._container is not None:
            container, self._container = self._container, None
            try:
                for packet in self._stream.encode():
                    container.mux(packet)
            finally:
                container.close()
        elif self.kind == "gif" and self._gif:
            frames, self._gif = self._gif, []
            ms = max(20, round(1000 / self.fps))
            atomic_save(
                self.path,
                lambda f: frames[0].save(
                    f, format="GIF", save_all=True, append_images=frames[1:], duration=ms, loop=0
                ),
            )

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_video_info(path: str | Path) -> dict:
    """Frames, frame rate and size of a written video or GIF (for checks and tests)."""
    av = _av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(stream)]
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        return {
            "frames": len(frames),
            "fps": rate,
            "height": frames[0].height if frames else 0,
            "width": frames[0].width if frames else 0,
        }
