"""Pose transfer on your own photos in one call: detect, frame, generate, paste back.

    from posetransfer.photos.transfer import PoseTransfer

    with PoseTransfer.from_checkpoint("runs/00000-patn_small-synthetic") as pt:
        pt("photo.jpg", "walking").save("walking.png")           # a named pose
        pt("photo.jpg", "other.jpg").save("as_other.png")        # the pose of another photo
        pt("photo.jpg", "pose_keypoints.json")                   # an OpenPose JSON file
        pt("photo.jpg", "market-annotation-test.csv:0002_c1s1_000451_03.jpg")  # an annotation row

The source photo goes through `KeypointDetector` (MediaPipe BlazePose) and `frame_person`: the
person is cut out, centred and resized to the model's frame (``info.height x info.width``),
exactly as the datasets' images look. The target pose is brought into the same frame:

- a named pose (`posetransfer.keypoints.named_poses.POSE_NAMES`) is defined in the frame already;
- keypoints of another image (a photo, an OpenPose JSON file, an annotation row) are in that
  image's pixels, so the skeleton itself is framed with the same rule as the photo
  (`posetransfer.keypoints.framing.frame_skeleton`): the person spans the same 90% of the frame
  height, centred;
- an (18, 2) array is taken as frame coordinates, unless ``target_size`` says which image it
  belongs to.

The forms of target pose are read by `posetransfer.keypoints.targets`; `PoseTransfer` only chains
the steps. The result is the generated frame (``height x width``) or, with ``paste_back=True``,
that frame resized into its window of the original photo.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from posetransfer.checkpoint import GeneratorInfo
from posetransfer.checkpoint.bundled import DEFAULT_PRETRAINED, PRETRAINED
from posetransfer.core.device import resolve_device
from posetransfer.data.datasets import image_to_tensor, tensor_to_image
from posetransfer.errors import InputError
from posetransfer.keypoints import targets
from posetransfer.keypoints.framing import (
    DEFAULT_FILL,
    DEFAULT_PAD,
    PadMode,
    Source,
    check_keypoints,
    frame_person,
)
from posetransfer.keypoints.targets import ImageInput, TargetPose, read_photo
from posetransfer.models.inference import for_inference
from posetransfer.pose import draw_skeleton, keypoints_to_heatmaps, require_torso
from posetransfer.pose.draw import hstack
from posetransfer.runtime.load import load_generator

if TYPE_CHECKING:
    from posetransfer.keypoints.detect import Detection, KeypointDetector

# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, eq=False)
class TransferResult:
    """Everything one transfer made.

    Attributes:
        image: the output: the generated frame, or the original photo with the generated frame
            pasted back, uint8 (H, W, 3).
        generated: the generator's output at the model's size, uint8 (height, width, 3).
        source: the framed source (`Source`).
        tgt_kps: the target pose in the frame, (18, 2) int64.
    """

    image: np.ndarray
    generated: np.ndarray
    source: Source
    tgt_kps: np.ndarray

    def strip(self) -> np.ndarray:
        """framed source | its skeleton | target skeleton | generated, side by side."""
        h, w = self.generated.shape[:2]
        return hstack(
            [
                self.source.image,
                draw_skeleton(self.source.kps, h, w),
                draw_skeleton(self.tgt_kps, h, w),
                self.generated,
            ]
        )


# --------------------------------------------------------------------------------------------
# The API


class PoseTransfer:
    """A trained generator plus everything needed to run it on arbitrary photos.

    Build it with `from_checkpoint` or `from_pretrained`; call it with a photo and a target
    pose::

        pt = PoseTransfer.from_checkpoint("runs/00000-patn_small-synthetic")
        pt = PoseTransfer.from_pretrained("synthetic-patn")  # bundled, synthetic people only
        out = pt("photo.jpg", "arms_up")          # PIL image at the model's size
        out = pt(photo_array, "pose.json", paste_back=True)  # the photo with the person replaced

    The keypoint detector (MediaPipe, the ``[keypoints]`` extra) starts on first use and is
    reused; `close` (or a ``with`` block) releases it. Calls are serialised by a lock, so one
    instance can serve a web app's worker threads.

    Args:
        model: a generator taking (image, source heatmaps, target heatmaps); a plain network
            is prepared with `posetransfer.models.for_inference` at ``precision``, one that
            already is (or an exported model) is used as it is.
        info: what the generator expects (frame size, heatmap sigma and style).
        device: where the model runs: "cpu", "cuda", "cuda:1", ... or "auto" (CUDA when
            available).
        fill: fraction of the frame height the person spans after framing.
        pad: "edge" or an RGB colour for the parts of the frame outside the photo.
        min_confidence: the detector's per-joint visibility threshold.
        precision: "auto", "fp32" (exact), "bf16" or "fp16", for a plain network.

    Raises:
        InputError: naming ``device`` (or ``precision``) when this machine does not have it.
    """

    def __init__(
        self,
        model: nn.Module,
        info: GeneratorInfo,
        device: str | torch.device = "cpu",
        fill: float = DEFAULT_FILL,
        pad: PadMode = DEFAULT_PAD,
        min_confidence: float = 0.5,
        precision: str = "auto",
    ) -> None:
        self.device = resolve_device(device)
        if not hasattr(model, "backend"):  # a plain network, not yet prepared for inference
            model = for_inference(model, precision, self.device)
        self.model = model
        self.info = info
        self.fill = fill
        self.pad = pad
        self.min_confidence = min_confidence
        self._detector: KeypointDetector | None = None
        self._lock = threading.RLock()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        precision: str = "auto",
        backend: str = "torch",
        compile: bool = False,
        **kwargs: Any,
    ) -> PoseTransfer:
        """Load any model `posetransfer.load_generator` reads: a checkpoint or run directory, an
        authors' ``latest_net_netG.pth``, a bundled model's name, an exported ``.onnx`` /
        ``.xml`` or a Hub repository ``hf://owner/name``.

        Args:
            path: the model (a ``spec`` of `posetransfer.load_generator`).
            device: "cpu", "cuda", ... ("auto": CUDA when available).
            precision: "auto", "fp32" (exact), "bf16" or "fp16" (`for_inference`).
            backend: "torch", or "onnxruntime" / "openvino" for an exported file.
            compile: torch backend: run through ``torch.compile``.
            **kwargs: passed to the constructor (fill, pad, min_confidence).

        Raises:
            InputError: the device is not present here, or the checkpoint is missing or does not
                fit its architecture.
        """
        device = resolve_device(device)
        model, info = load_generator(
            path, device=device, precision=precision, backend=backend, compile=compile
        )
        return cls(model, info, device, **kwargs)

    @classmethod
    def from_pretrained(
        cls, name: str = DEFAULT_PRETRAINED, device: str | torch.device = "cpu", **kwargs: Any
    ) -> PoseTransfer:
        """Load a model bundled with the package: ``"synthetic-patn"`` or ``"synthetic-apatn"``.

        They were trained on the procedural synthetic people only (`posetransfer.pretrained`):
        on photos of real people, use the authors' weights (`from_checkpoint`) or a model
        trained on real data.

        Raises:
            InputError: ``name`` is not a bundled model, or the device is not present here.
        """
        if name not in PRETRAINED:
            raise InputError(
                f"name={name!r}: no bundled model of that name; there are: {', '.join(PRETRAINED)}",
                arg="name",
            )
        return cls.from_checkpoint(name, device, **kwargs)

    @property
    def pretrained(self) -> str | None:
        """The bundled model's name when this is one, else None."""
        return self.info.pretrained

    @property
    def height(self) -> int:
        """The model's frame height."""
        return self.info.height

    @property
    def width(self) -> int:
        """The model's frame width."""
        return self.info.width

    # Detection -------------------------------------------------------------------------------

    @property
    def detector(self) -> KeypointDetector:
        """The `KeypointDetector`, started on first use."""
        if self._detector is None:
            from posetransfer.keypoints.detect import KeypointDetector

            self._detector = KeypointDetector(min_confidence=self.min_confidence)
        return self._detector

    def close(self) -> None:
        """Release the keypoint detector (the model stays usable; detection restarts it)."""
        with self._lock:
            if self._detector is not None:
                self._detector.close()
                self._detector = None

    def __enter__(self) -> PoseTransfer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def detect(self, photo: np.ndarray, what: str = "image") -> Detection:
        """Detect the person in a photo; InputError naming ``what`` if there is none."""
        with self._lock:
            det = self.detector.detect(photo)
        if det is None:
            raise InputError(f"{what}: no person found")
        return det

    # Source ------------------------------------------------------------------------------

    def prepare_source(
        self, image: ImageInput, kps: np.ndarray | None = None, what: str | None = None
    ) -> Source:
        """Read a source photo, find the person and frame it for the model.

        Args:
            image: a path, PIL image or uint8 array.
            kps: the person's (18, 2) keypoints in the photo, to skip detection; joints outside
                the photo are treated as missing, with a `KeypointWarning`.
            what: how messages name the photo (default: its path, or "source image").

        Raises:
            InputError: unreadable image, no person found, or a shoulder or hip missing.
        """
        what = what or (str(image) if isinstance(image, str | Path) else "source image")
        photo = read_photo(image, what)
        include_box = None
        if kps is None:
            det = self.detect(photo, what)
            kps, include_box = det.kps, det.box
        kps = check_keypoints(kps, f"{what} keypoints", photo.shape[:2])
        require_torso(kps, what)
        framed, framed_kps, frame = frame_person(
            photo, kps, self.height, self.width, self.fill, self.pad, include_box=include_box
        )
        return Source(photo, framed, framed_kps, frame, kps)

    # Target ------------------------------------------------------------------------------

    def target_keypoints(
        self, target_pose: TargetPose, target_size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """The target pose as (18, 2) keypoints in the model's frame.

        Args:
            target_pose: one of
                - a named pose, e.g. ``"walking"``
                  (see `posetransfer.keypoints.named_poses.POSE_NAMES`);
                - ``"annotation.csv:NAME"``: row NAME of an annotation CSV;
                - a path to an OpenPose ``*.json`` file (its first person);
                - a path to a photo, a PIL image or a uint8 (H, W, 3) array: its person's pose;
                - an (18, 2) (y, x) keypoint array, in the model's frame.
            target_size: (height, width) of the image an (18, 2) array belongs to; the skeleton
                is then framed like a photo's. Ignored for the other forms.

        Joints outside their image (or the frame) are treated as missing, with an
        `KeypointWarning` (see `posetransfer.keypoints.targets`).

        Raises:
            InputError: unknown pose name (the message lists the known ones), missing or
                unreadable file, no person in a target photo, too few joints.
        """
        return targets.target_keypoints(
            target_pose, self.height, self.width, self.detect, self.fill, target_size
        )

    def target_from_photo(self, photo: np.ndarray, what: str = "target image") -> np.ndarray:
        """The pose of the person in a photo, framed; InputError naming ``what`` if none."""
        return targets.photo_target(photo, self.height, self.width, self.detect, self.fill, what)

    # Generation -----------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, src_img: np.ndarray, src_kps: np.ndarray, tgt_kps: np.ndarray) -> np.ndarray:
        """Run the generator on a framed image.

        Args:
            src_img: uint8 (height, width, 3), the person framed (`prepare_source`).
            src_kps: its (18, 2) keypoints in the frame.
            tgt_kps: the target (18, 2) keypoints in the frame.

        Returns:
            uint8 (height, width, 3), the person in the target pose.
        """
        return self.generate_batch(src_img, src_kps, np.asarray(tgt_kps)[None])[0]

    @torch.no_grad()
    def generate_batch(
        self, src_img: np.ndarray, src_kps: np.ndarray, tgt_kps: np.ndarray
    ) -> list[np.ndarray]:
        """One framed source in every pose of ``tgt_kps`` (B, 18, 2), in one generator call.

        Returns:
            B uint8 (height, width, 3) images.
        """
        h, w = self.height, self.width
        if src_img.shape != (h, w, 3):
            raise InputError(f"framed image must be {h}x{w}x3, got {src_img.shape}")
        info = self.info
        tgt_kps = np.asarray(tgt_kps)
        n = len(tgt_kps)
        src_pose = keypoints_to_heatmaps(src_kps, h, w, info.sigma, info.legacy_heatmaps)
        tgt_pose = keypoints_to_heatmaps(tgt_kps, h, w, info.sigma, info.legacy_heatmaps)
        img = image_to_tensor(np.array(src_img))[None].to(self.device)  # [1, 3, H, W]
        with self._lock:
            fake = self.model(
                img.expand(n, -1, -1, -1),
                src_pose[None].expand(n, -1, -1, -1).to(self.device),
                tgt_pose.to(self.device),
            )
        assert fake.shape == (n, 3, h, w), fake.shape
        return [tensor_to_image(f) for f in fake]

    def animate(self, source: ImageInput, driving: str | Path, **options: Any):
        """Yield the frames (PIL images) of ``source`` performing the motion of ``driving``.

        Args:
            source: the photo (path, PIL image or uint8 array).
            driving: a video, a folder of frames, an annotation CSV or an OpenPose JSON folder.
            **options: fields of `posetransfer.motion.animate.AnimateOptions` (retarget,
                smooth, min_cutoff, beta, start, duration, every, layout, paste_back, ...).
        """
        from posetransfer.motion.animate import AnimateOptions, prepare_animation

        anim = prepare_animation(self, source, driving, AnimateOptions(**options))
        for frame in anim.frames():
            yield Image.fromarray(frame)

    def transfer(
        self,
        image: ImageInput,
        target_pose: TargetPose,
        *,
        paste_back: bool = False,
        source_kps: np.ndarray | None = None,
        target_size: tuple[int, int] | None = None,
    ) -> TransferResult:
        """Generate the person of ``image`` in ``target_pose``, keeping the intermediate steps.

        Args:
            image: the source photo (path, PIL image or uint8 array).
            target_pose: see `target_keypoints`.
            paste_back: return the original photo with the generated frame pasted into the
                person's window, instead of the frame alone.
            source_kps: the source person's (18, 2) keypoints in the photo (skips detection).
            target_size: see `target_keypoints`.

        Raises:
            InputError: see `prepare_source` and `target_keypoints`.
        """
        tgt_kps = self.target_keypoints(target_pose, target_size)  # cheap mistakes first
        source = self.prepare_source(image, source_kps)
        fake = self.generate(source.image, source.kps, tgt_kps)
        out = fake
        if paste_back:
            out = source.paste_back(fake)
        return TransferResult(out, fake, source, tgt_kps)

    def __call__(
        self,
        image: ImageInput,
        target_pose: TargetPose,
        *,
        paste_back: bool = False,
        source_kps: np.ndarray | None = None,
        target_size: tuple[int, int] | None = None,
    ) -> Image.Image:
        """The person of ``image`` in ``target_pose``, as a PIL image (see `transfer`)."""
        result = self.transfer(
            image,
            target_pose,
            paste_back=paste_back,
            source_kps=source_kps,
            target_size=target_size,
        )
        return Image.fromarray(result.image)
