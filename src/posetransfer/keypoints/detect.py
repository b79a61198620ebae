"""Keypoint detection on photos: MediaPipe BlazePose mapped to the 18 COCO joints.

The detector is MediaPipe's legacy ``solutions.pose.Pose`` graph (mediapipe 0.10.21, the
``[keypoints]`` extra), run with ``static_image_mode=True`` and ``model_complexity=1``: the only
configuration whose model ships inside the wheel, so it runs offline. It finds **one** person per
image (the most prominent) and returns 33 landmarks with a visibility score each. They map to the
OpenPose COCO-18 joints of the datasets as follows (BlazePose index in brackets)::

    nose [0]  neck = midpoint of the shoulders [11, 12], only when both are visible
    right shoulder/elbow/wrist [12, 14, 16]   left shoulder/elbow/wrist [11, 13, 15]
    right hip/knee/ankle [24, 26, 28]         left hip/knee/ankle [23, 25, 27]
    right eye [5]  left eye [2]  right ear [8]  left ear [7]

"Left" and "right" are the person's own sides, as in the datasets: in a frontal view the
person's right shoulder appears at the smaller x.

A joint counts as found when its visibility is at least ``min_confidence`` (default
`DEFAULT_MIN_CONFIDENCE` = 0.5, the value MediaPipe itself uses to decide whether to draw a
landmark) and it lies inside the image; otherwise it is missing (-1). The neck's confidence is the
smaller of the two shoulders'.

Small images (Market-1501's 128x64 crops) are upscaled to at least ``upscale_to`` pixels high
before detection, keeping the aspect ratio; the landmarks are normalised to the image, so they map
back to the original pixels exactly.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from posetransfer.core.files import (
    IMAGE_SUFFIXES,
    atomic_open,
    check_output,
    disk_error,
    list_images,
    read_image,
    save_image,
    to_rgb_array,
)
from posetransfer.core.logs import filtered_stderr
from posetransfer.errors import InputError
from posetransfer.pose import (
    MISSING,
    N_JOINTS,
    check_annotation_name,
    draw_skeleton,
    has_torso,
    in_image,
    missing_torso,
    write_annotations,
)

DEFAULT_MIN_CONFIDENCE = 0.5
DEFAULT_UPSCALE_TO = 256
N_LANDMARKS = 33

# BlazePose landmark feeding each COCO-18 joint; None for the neck, which is derived.
COCO_FROM_BLAZEPOSE: tuple[int | None, ...] = (
    0,
    None,
    12,
    14,
    16,
    11,
    13,
    15,
    24,
    26,
    28,
    23,
    25,
    27,
    5,
    2,
    8,
    7,
)
NECK_JOINT = 1
NECK_LANDMARKS = (11, 12)  # left and right shoulder

MISSING_MEDIAPIPE = "keypoint extraction needs mediapipe: pip install 'posetransfer[keypoints]'"


# --------------------------------------------------------------------------------------------
# Landmarks -> COCO-18


def landmarks_from_result(result: Any) -> np.ndarray | None:
    """Pull the 33 landmarks out of a MediaPipe ``Pose.process`` result.

    Returns:
        float64 array (33, 3) of (x, y, visibility) with x, y normalised to the processed image
        ([0, 1] inside it), or None when no person was found.
    """
    pose_landmarks = getattr(result, "pose_landmarks", None)
    if pose_landmarks is None:
        return None
    marks = list(pose_landmarks.landmark)
    if len(marks) != N_LANDMARKS:
        raise ValueError(f"expected {N_LANDMARKS} BlazePose landmarks, got {len(marks)}")
    return np.array([(m.x, m.y, m.visibility) for m in marks], dtype=np.float64)


def landmarks_to_keypoints(
    landmarks: np.ndarray,
    height: int,
    width: int,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray]:
    """Map 33 normalised BlazePose landmarks to COCO-18 pixel keypoints.

    Args:
        landmarks: (33, 3) (x, y, visibility), x and y normalised to the image.
        height: image height in pixels.
        width: image width in pixels.
        min_confidence: joints with a lower visibility are missing.

    Returns:
        ``(kps, confidence)``: (18, 2) int64 (y, x) with -1 for missing joints (low visibility or
        outside the image), and (18,) float32 confidences (the landmark visibilities; the neck
        gets the smaller of the two shoulders').
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (N_LANDMARKS, 3):
        raise ValueError(f"landmarks must be (33, 3), got {landmarks.shape}")
    conf = np.zeros(N_JOINTS, dtype=np.float32)
    pos = np.zeros((N_JOINTS, 2), dtype=np.float64)  # continuous (y, x) in pixels
    for joint, mark in enumerate(COCO_FROM_BLAZEPOSE):
        if mark is None:
            continue
        conf[joint] = landmarks[mark, 2]
        pos[joint] = landmarks[mark, 1] * height, landmarks[mark, 0] * width
    a, b = NECK_LANDMARKS
    conf[NECK_JOINT] = min(landmarks[a, 2], landmarks[b, 2])
    pos[NECK_JOINT] = (pos[5] + pos[2]) / 2  # shoulders are joints 5 (left) and 2 (right)

    # Pixel i spans [i, i + 1) in continuous coordinates.
    kps = np.floor(pos).astype(np.int64)
    found = (conf >= min_confidence) & in_image(kps, height, width)
    found[NECK_JOINT] &= found[2] & found[5]  # both shoulders found, inside the image too
    kps[~found] = MISSING
    return kps, conf


# --------------------------------------------------------------------------------------------
# Detector


@dataclass(frozen=True, eq=False)
class Detection:
    """One detected person.

    Attributes:
        kps: (18, 2) int64 (y, x) keypoints in the input image, -1 for missing joints.
        confidence: (18,) float32 per-joint visibility in [0, 1] (reported for missing joints too).
        box: person bounding box ``(top, left, bottom, right)`` in pixels (bottom/right
            exclusive), the extent of the confident landmarks clipped to the image.
        landmarks: (33, 3) float64 BlazePose landmarks in pixels, columns (y, x, visibility).
    """

    kps: np.ndarray
    confidence: np.ndarray
    box: tuple[int, int, int, int]
    landmarks: np.ndarray = field(repr=False)

    @property
    def has_torso(self) -> bool:
        """Whether both shoulders and both hips were found (the datasets' pairing rule)."""
        return has_torso(self.kps)


def _release(graph: Any, quiet: contextlib.ExitStack) -> None:
    """Close a detector's graph, then let its log lines through again (also at exit)."""
    try:
        graph.close()
    finally:
        quiet.close()


def _import_mediapipe_pose() -> Any:
    try:
        import mediapipe as mp
    except ImportError:
        raise InputError(MISSING_MEDIAPIPE)
    return mp.solutions.pose


class KeypointDetector:
    """COCO-18 keypoints of the most prominent person in an image (MediaPipe BlazePose).

    One instance holds one MediaPipe graph; reuse it over many images and close it when done
    (or use it as a context manager)::

        with KeypointDetector() as detect:
            kps = detect(image)            # (18, 2) int64 (y, x), -1 missing
            det = detect.detect(image)     # Detection or None

    Args:
        min_confidence: a joint is found when its landmark visibility is at least this.
        upscale_to: images less than this many pixels high are enlarged (bicubic, aspect kept)
            to this height before detection; 0 or None disables it.
        min_detection_confidence: MediaPipe's threshold for accepting a person at all.
        video: frames of one video, in order: MediaPipe's tracking mode, which finds the person
            once and follows it (faster, and steadier from frame to frame).

    Raises:
        InputError: when mediapipe is not installed, or naming the argument out of range.
    """

    def __init__(
        self,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        upscale_to: int | None = DEFAULT_UPSCALE_TO,
        min_detection_confidence: float = 0.5,
        video: bool = False,
    ) -> None:
        for arg, value in (
            ("min_confidence", min_confidence),
            ("min_detection_confidence", min_detection_confidence),
        ):
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{arg}={value}: must be in [0, 1]", arg=arg)
        if upscale_to is not None and upscale_to < 0:
            raise InputError(f"upscale_to={upscale_to}: must be 0 (off) or more", arg="upscale_to")
        self.min_confidence = float(min_confidence)
        self.upscale_to = int(upscale_to or 0)
        mp_pose = _import_mediapipe_pose()
        # MediaPipe's C++ log lines (see core/logs.py) are dropped for as long as the graph
        # lives: a tracking graph logs from its own threads, between and after our calls.
        self._quiet = contextlib.ExitStack()
        self._quiet.enter_context(filtered_stderr())
        # Only complexity 1 ships inside the mediapipe 0.10.21 wheel; 0 and 2 try to download.
        try:
            self._graph: Any = mp_pose.Pose(
                static_image_mode=not video,
                model_complexity=1,
                enable_segmentation=False,
                min_detection_confidence=min_detection_confidence,
            )
        except BaseException:
            self._quiet.close()
            raise
        self._finalizer = weakref.finalize(self, _release, self._graph, self._quiet)

    def __enter__(self) -> KeypointDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release MediaPipe's graph; the detector cannot be used afterwards."""
        if self._graph is not None:
            self._graph = None
            self._finalizer()

    def __call__(self, image: np.ndarray | Image.Image) -> np.ndarray:
        """Keypoints of the most prominent person: (18, 2) int64 (y, x), all -1 if none."""
        det = self.detect(image)
        if det is None:
            return np.full((N_JOINTS, 2), MISSING, dtype=np.int64)
        return det.kps

    def detect(self, image: np.ndarray | Image.Image) -> Detection | None:
        """Detect the most prominent person.

        Args:
            image: uint8 (H, W, 3) RGB array or PIL image.

        Returns:
            A `Detection` in the input image's pixel coordinates, or None if no person was found.
        """
        if self._graph is None:
            raise RuntimeError("KeypointDetector is closed")
        rgb = to_rgb_array(image)
        height, width = rgb.shape[:2]
        if self.upscale_to and height < self.upscale_to:
            factor = self.upscale_to / height
            size = (max(1, round(width * factor)), self.upscale_to)
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BICUBIC))
        result = self._graph.process(rgb)
        landmarks = landmarks_from_result(result)
        if landmarks is None:
            return None
        # Normalised coordinates are relative to the processed image, so scaling by the
        # original size undoes the upscaling.
        kps, conf = landmarks_to_keypoints(landmarks, height, width, self.min_confidence)
        pixels = np.stack(
            [landmarks[:, 1] * height, landmarks[:, 0] * width, landmarks[:, 2]], axis=1
        )
        return Detection(
            kps, conf, _landmark_box(pixels, height, width, self.min_confidence), pixels
        )


def _landmark_box(
    pixels: np.ndarray, height: int, width: int, min_confidence: float
) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the confident landmarks, clipped to the image."""
    confident = pixels[pixels[:, 2] >= min_confidence]
    if len(confident) == 0:
        confident = pixels
    ys = np.clip(confident[:, 0], 0, height)
    xs = np.clip(confident[:, 1], 0, width)
    top, left = int(np.floor(ys.min())), int(np.floor(xs.min()))
    bottom, right = int(np.ceil(ys.max())), int(np.ceil(xs.max()))
    return top, left, max(bottom, top + 1), max(right, left + 1)


# --------------------------------------------------------------------------------------------
# Annotating a folder


@dataclass
class AnnotationReport:
    """What `annotate_images` did.

    Attributes:
        annotations: ``{file name: kps}`` for every image written to the annotation CSV.
        skipped: ``(file name, path, reason)`` for every image left out.
        annotation_path: the annotation CSV written.
        skipped_path: the CSV listing the skipped images (header ``name,path,reason``).
        seconds_per_image: mean wall time of detection per image.
    """

    annotations: dict[str, np.ndarray]
    skipped: list[tuple[str, str, str]]
    annotation_path: Path
    skipped_path: Path
    seconds_per_image: float = 0.0


def collect_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand files and folders into a list of image paths.

    A folder contributes its image files (by suffix: .jpg .jpeg .png .bmp .webp .tif .tiff,
    not recursive), sorted by name; a file is taken as given, whatever its suffix.

    Raises:
        InputError: for a path that does not exist or a folder holding no images.
    """
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {p}")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            raise InputError(f"image or folder not found: {p}")
    if not paths:
        raise InputError("no images given")
    return paths


def skipped_path_for(out: str | Path) -> Path:
    """Where the skipped-images list goes: ``annotation.csv`` -> ``annotation.skipped.csv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.skipped.csv")


def check_outputs(
    out: str | Path,
    overlays: str | Path | None = None,
    inputs: Sequence[str | Path] = (),
) -> tuple[Path, Path | None]:
    """Check, before any work, that `annotate_images` can write its files.

    Args:
        out: the annotation CSV: a file name ending in ``.csv`` (annotation files are known by
            that suffix, e.g. in a ``FILE.csv:NAME`` target pose), not a folder, in a folder
            that exists or can be made.
        overlays: the overlay folder, if any: not a file, nor the path of the CSVs.
        inputs: the images and folders read: neither output may be, contain or lie inside one
            (overlays written into the photo folder would replace photos named ``<stem>.png``).

    Returns:
        ``(out, overlays)`` as Paths.

    Raises:
        InputError: naming ``out`` or ``overlays``.
    """
    out = Path(out)
    if out.is_dir():
        raise InputError(f"out={out}: is a folder; give the annotation file to write", arg="out")
    if out.suffix.lower() != ".csv":
        raise InputError(
            f"out={out}: an annotation file must end in .csv (it is found by that suffix, "
            "e.g. as FILE.csv:NAME)",
            arg="out",
        )
    skipped = skipped_path_for(out)
    if skipped.is_dir():
        raise InputError(f"out={out}: {skipped} (the skipped-images list) is a folder", arg="out")
    _check_parent(out, "out")
    for given in inputs:
        check_output(out, {"inputs": given}, arg="out")
    if overlays is None:
        return out, None
    overlay_dir = Path(overlays)
    if overlay_dir.exists() and not overlay_dir.is_dir():
        raise InputError(f"overlays={overlay_dir}: is a file, not a folder", arg="overlays")
    if overlay_dir.resolve() in (out.resolve(), skipped.resolve()):
        raise InputError(f"overlays={overlay_dir}: is the annotation CSV's path", arg="overlays")
    _check_parent(overlay_dir, "overlays")
    for given in inputs:
        check_output(overlay_dir, {"inputs": given}, arg="overlays", kind="folder")
    return out, overlay_dir


def _check_parent(path: Path, arg: str) -> None:
    """InputError naming ``arg`` unless the nearest existing folder above ``path`` is writable."""
    parent = next(p for p in path.absolute().parents if p.exists())  # the root always does
    if not parent.is_dir():
        raise InputError(f"{arg}={path}: {parent} is a file, not a folder", arg=arg)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{arg}={path}: no permission to write in {parent}", arg=arg)


def name_problems(paths: Sequence[Path]) -> dict[int, str]:
    """Why some images cannot be annotated by file name: ``{index in paths: reason}``.

    An annotation row is named after the image's file name, so a name the annotation format
    cannot hold (`check_annotation_name`: a ':' or a line break, leading or trailing spaces,
    bytes that are not UTF-8), or one that repeats an earlier image's, cannot be written.
    """
    problems: dict[int, str] = {}
    seen: dict[str, Path] = {}
    for i, path in enumerate(paths):
        try:
            check_annotation_name(path.name)
        except InputError as e:
            problems[i] = str(e)
            continue
        if path.name in seen:
            problems[i] = f"same file name as {seen[path.name]}"
        else:
            seen[path.name] = path
    return problems


def overlay_names(paths: Sequence[Path]) -> list[str]:
    """Overlay file names: ``<stem>.png``, or ``<name>.png`` where two images share a stem."""
    stems = Counter(p.stem for p in paths)
    return [f"{p.stem if stems[p.stem] == 1 else p.name}.png" for p in paths]


def annotate_images(
    inputs: Sequence[str | Path],
    out: str | Path,
    overlays: str | Path | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    upscale_to: int | None = DEFAULT_UPSCALE_TO,
    progress: bool = True,
) -> AnnotationReport:
    """Detect keypoints in images and write them as an annotation CSV in the public format.

    An image is annotated when a person with all torso joints (both shoulders and hips) is
    found. Images with no person, with torso joints missing, that cannot be read, whose file
    name repeats an earlier one or cannot be an annotation row's name (a ':' or a line break,
    leading or trailing spaces, bytes that are not UTF-8;
    `posetransfer.pose.check_annotation_name`) are skipped; their reasons go to
    `skipped_path_for(out)`. The outputs, the file names and the detector's arguments are
    checked (and mediapipe imported) before any detection or any folder is made, so a mistake
    there costs nothing and leaves nothing behind.

    Args:
        inputs: image files and/or folders of images (see `collect_images`).
        out: the annotation CSV to write (names are the images' file names); see
            `check_outputs`.
        overlays: if given, a folder receiving skeleton overlays (`overlay_names`) of every
            image where a person was found (annotated or not).
        min_confidence: per-joint visibility threshold of the detector.
        upscale_to: see `KeypointDetector`.
        progress: show a tqdm progress bar.

    Returns:
        An `AnnotationReport`.

    Raises:
        InputError: for missing inputs, an output that cannot be written, or when mediapipe is
            not installed.
    """
    from tqdm import tqdm

    out, overlay_dir = check_outputs(out, overlays, inputs)
    paths = collect_images(inputs)
    problems = name_problems(paths)
    kept = [i for i in range(len(paths)) if i not in problems]
    overlay_files = dict(zip(kept, overlay_names([paths[i] for i in kept])))
    annotations: dict[str, np.ndarray] = {}
    skipped: list[tuple[str, str, str]] = []
    detect_time, n_detected = 0.0, 0
    # The detector checks its arguments and imports mediapipe: a mistake there creates nothing.
    with KeypointDetector(min_confidence=min_confidence, upscale_to=upscale_to) as detector:
        if overlay_dir is not None:
            try:
                overlay_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise disk_error(overlay_dir, e) from None
        bar = tqdm(
            enumerate(paths), total=len(paths), desc="keypoints", unit="img", disable=not progress
        )
        for i, path in bar:
            name = path.name
            if i in problems:
                skipped.append((name, str(path), problems[i]))
                continue
            try:
                image = read_image(path)
            except InputError as e:
                skipped.append((name, str(path), f"unreadable image ({e})"))
                continue
            start = time.perf_counter()
            det = detector.detect(image)
            detect_time += time.perf_counter() - start
            n_detected += 1
            if det is None:
                skipped.append((name, str(path), "no person found"))
            elif not det.has_torso:
                names = ", ".join(missing_torso(det.kps))
                skipped.append((name, str(path), f"torso joints not found: {names}"))
            else:
                annotations[name] = det.kps
            if det is not None and overlay_dir is not None:
                _write_overlay(overlay_dir / overlay_files[i], image, det)
            bar.set_postfix(ok=len(annotations), skipped=len(skipped))
    write_annotations(out, annotations)
    skipped_path = _write_skipped(skipped_path_for(out), skipped)
    return AnnotationReport(
        annotations=annotations,
        skipped=skipped,
        annotation_path=out,
        skipped_path=skipped_path,
        seconds_per_image=detect_time / max(n_detected, 1),
    )


def _write_overlay(path: Path, image: np.ndarray, det: Detection) -> None:
    top, _, bottom, _ = det.box
    thickness = max(1, round((bottom - top) / 60))
    h, w = image.shape[:2]
    save_image(draw_skeleton(det.kps, h, w, background=image, thickness=thickness), path)


def _write_skipped(path: Path, skipped: Iterable[tuple[str, str, str]]) -> Path:
    # A file name that is not UTF-8 (skipped for that reason) is listed with its undecodable
    # bytes escaped (\udcff), so the list stays a UTF-8 text file.
    with atomic_open(path, "w", newline="", errors="backslashreplace") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("name", "path", "reason"))
        writer.writerows(skipped)
    return path
