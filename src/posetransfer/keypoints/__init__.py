"""Keypoints of people in photos: detection (BlazePose), framing a person for the model, the
forms a target pose comes in, and named poses. Shared by metrics (PCKh, DS), transfer and motion.
"""
