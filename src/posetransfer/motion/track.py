"""Following one person through the frames of a driving video (BlazePose, helped by OpenCV).

BlazePose finds a person who fills a good part of the frame; in a wide shot (pedestrians a
sixth of the frame high, as in OpenCV's ``vtest.avi``) it finds nobody. So:

1. while the full frame works, BlazePose runs on it in its tracking mode;
2. when it finds nobody, OpenCV's HOG pedestrian detector (Dalal and Triggs; shipped inside
   OpenCV) proposes people: the one nearest the last position (the most confident at first;
   none farther than a body height per frame lost, so as not to jump to a passer-by) is cropped
   with a margin and BlazePose runs on the crop;
3. from then on the crop follows the person: each frame is cropped around the last keypoints.
   A frame where the crop finds nobody asks HOG again, then the full frame (back to step 1 if
   that works); one where all fail is missing (bridged later by `bridge_gaps`).
"""

from __future__ import annotations

import numpy as np

from posetransfer.keypoints.detect import KeypointDetector
from posetransfer.pose import MISSING, N_JOINTS

MARGIN = 0.6
"""A crop adds this much of the person's height above, below and to each side."""
MAX_JUMP = 1.0
"""A person found again is taken within this many of its heights of where it was last seen (per
frame it has been lost), so that the tracker does not jump to someone else nearby."""
HOG_WINDOW = (128, 64)
"""OpenCV's pedestrian window (height, width); it aborts on frames smaller than that."""


def _hog():
    import cv2

    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


class PersonTracker:
    """Keypoints of one person, frame after frame: ``tracker(frame) -> (18, 2)``, -1 missing."""

    def __init__(self, min_confidence: float = 0.5) -> None:
        self._full = KeypointDetector(min_confidence=min_confidence, video=True)
        self._crop = KeypointDetector(min_confidence=min_confidence)
        self._hog = None
        self.box: tuple[int, int, int, int] | None = None  # (top, left, bottom, right)
        self.cropping = False
        self.lost = 0  # frames since the person was last seen
        self.counts = {"full_frame": 0, "cropped": 0, "reacquired": 0, "missed": 0}

    def close(self) -> None:
        self._full.close()
        self._crop.close()

    def __enter__(self) -> PersonTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _in_crop(self, frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
        h, w = frame.shape[:2]
        top, left, bottom, right = box
        m = MARGIN * (bottom - top)
        t, b = max(0, int(top - m)), min(h, int(bottom + m))
        lo, r = max(0, int(left - m)), min(w, int(right + m))
        if b - t < 16 or r - lo < 8:
            return None
        det = self._crop.detect(frame[t:b, lo:r])
        if det is None or not (det.kps[:, 0] >= 0).any():
            return None
        kps = np.where(det.kps >= 0, det.kps + [t, lo], MISSING)
        bt, bl, bb, br = det.box
        self.box = (bt + t, bl + lo, bb + t, br + lo)
        return kps

    def _proposals(self, frame: np.ndarray) -> list[tuple[int, int, int, int]]:
        import cv2

        if frame.shape[0] < 2 * HOG_WINDOW[0] or frame.shape[1] < 2 * HOG_WINDOW[1]:
            return []  # a frame this small is a close-up: nothing for a pedestrian detector
        if self._hog is None:
            self._hog = _hog()
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        rects, weights = self._hog.detectMultiScale(
            gray, winStride=(8, 8), padding=(8, 8), scale=1.05
        )
        order = np.argsort(-np.asarray(weights).ravel()) if len(rects) else []
        boxes = [
            (int(y), int(x), int(y + hh), int(x + ww)) for x, y, ww, hh in (rects[i] for i in order)
        ]
        if self.box is not None and boxes:  # the one nearest the person we follow
            cy, cx = (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2
            dist = [np.hypot((b[0] + b[2]) / 2 - cy, (b[1] + b[3]) / 2 - cx) for b in boxes]
            reach = MAX_JUMP * (self.box[2] - self.box[0]) * (1 + self.lost)  # grows while lost
            boxes = [b for d, b in sorted(zip(dist, boxes)) if d <= reach]
        return boxes

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if not self.cropping:
            det = self._full.detect(frame)
            if det is not None and (det.kps[:, 0] >= 0).any():
                self.box = det.box
                self.counts["full_frame"] += 1
                return det.kps
            self.cropping = True  # a wide shot: follow the person in crops from now on
        if self.box is not None:
            kps = self._in_crop(frame, self.box)
            if kps is not None:
                self.counts["cropped"] += 1
                self.lost = 0
                return kps
        for box in self._proposals(frame)[:3]:
            kps = self._in_crop(frame, box)
            if kps is not None:
                self.counts["reacquired"] += 1
                self.lost = 0
                return kps
        det = self._full.detect(frame)  # a close-up after all: back to the full frame
        if det is not None and (det.kps[:, 0] >= 0).any():
            self.box, self.cropping, self.lost = det.box, False, 0
            self.counts["full_frame"] += 1
            return det.kps
        self.counts["missed"] += 1
        self.lost += 1
        return np.full((N_JOINTS, 2), MISSING, dtype=np.int64)
