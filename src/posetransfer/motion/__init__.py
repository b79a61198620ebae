"""Motion transfer: a person's photo performing the motion of a driving video.

- `retarget` (``none | scale | bones``) puts the driving poses on the source person's body;
  `frame_clip` frames a clip without retargeting.
- `smooth` (One Euro filter), `jitter` (mean joint acceleration) and `bridge_gaps` (frames the
  detector missed) work on (T, 18, 2) keypoint arrays.
- `animate` (in `posetransfer.motion.animate`) runs the whole chain; `PoseTransfer.animate`
  yields its frames.

Retargeting and smoothing import numpy only. See docs/motion.md.
"""

from posetransfer.motion.retarget import DEFAULT_MODE, MODES, frame_clip, retarget
from posetransfer.motion.smooth import bridge_gaps, jitter, smooth

__all__ = ["DEFAULT_MODE", "MODES", "bridge_gaps", "frame_clip", "jitter", "retarget", "smooth"]
