"""Weight-free motion segmentation on synthetic clips: objects moving against a panning camera."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess.masks.config import MotionConfig
from preprocess.masks.motion import camera_motion, segment_motion


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_camera_motion_recovers_a_pan():
    height, width = 60, 80
    flow = np.zeros((height, width, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0, -1.5
    flow[20:30, 20:30] = (-5.0, 4.0)
    homography = camera_motion(flow, np.ones((height, width), bool))
    expected = np.array([[1, 0, 3.0], [0, 1, -1.5], [0, 0, 1]])
    np.testing.assert_allclose(homography / homography[2, 2], expected, atol=1e-3)


def test_two_shapes_against_a_panning_camera(synthetic_clip):
    images, labels = synthetic_clip(
        12, (192, 144), (1.5, 0.5), [("disc", (45, 50), (3.0, 1.0), 20), ("square", (150, 100), (-2.5, -1.5), 17)])
    masks, reason = segment_motion(images, MotionConfig())
    assert masks.shape[0] == 2, reason
    for object_id in (1, 2):
        truth = labels == object_id
        per_object = [np.mean([_iou(masks[k, t], truth[t]) for t in range(12)]) for k in range(2)]
        best = int(np.argmax(per_object))
        assert per_object[best] > 0.8, per_object
        # one identity per object in every frame: the matched track is the best match frame by frame too
        assert all(_iou(masks[best, t], truth[t]) > 0.75 for t in range(12))


def test_camera_motion_only_gives_no_object(synthetic_clip):
    images, _ = synthetic_clip(10, (160, 120), (2.0, -1.0), [])
    masks, reason = segment_motion(images, MotionConfig())
    assert masks.shape == (0, 10, 120, 160)
    assert "no independently moving object" in reason


def test_uniform_video_gives_no_object():
    images = np.full((5, 48, 64, 3), 90, np.uint8)
    masks, reason = segment_motion(images)
    assert masks.shape[0] == 0, reason


def test_rejects_bad_images():
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\) uint8"):
        segment_motion(np.zeros((3, 8, 8), np.uint8))
