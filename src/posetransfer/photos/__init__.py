"""Your own photos: `PoseTransfer` (detect, frame, generate, paste back in one call).

Detection, framing, named poses and the forms of a target pose live one layer down, in
`posetransfer.keypoints`, where metrics and motion use them too.
"""
