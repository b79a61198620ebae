"""Your own photos: keypoint detection, person framing, named poses and `PoseTransfer`.

- `detect`: MediaPipe BlazePose mapped to the 18 joints; annotating folders of photos.
- `framing`: a photo of any size to the model's frame around the person, and back.
- `named_poses`: the shipped library of target poses (``walking``, ``arms_up``, ...).
- `targets`: any target-pose input (a name, a photo, a CSV row, OpenPose JSON) to keypoints.
- `transfer`: `PoseTransfer`, detect + frame + generate + paste back in one call.
"""
