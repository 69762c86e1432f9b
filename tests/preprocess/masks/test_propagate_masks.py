"""Mask propagation from annotated frames on synthetic clips with known motion."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess.masks.propagate import propagate_labels


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_disc_translating_over_panning_background_forward(synthetic_clip):
    images, labels = synthetic_clip(11, (160, 120), (1.0, 0.5), [("disc", (45, 55), (4.0, 1.5), 18)])
    out = propagate_labels(images, labels[:1], np.array([0]), [1])
    assert np.array_equal(out[0], labels[0])
    ious = [_iou(out[t] == 1, labels[t] == 1) for t in range(11)]
    assert ious[10] > 0.9, ious
    assert min(ious) > 0.9, ious


def test_backwards_from_last_frame_and_two_objects(synthetic_clip):
    images, labels = synthetic_clip(8, (160, 120), (-1.0, 0.0),
                                    [("disc", (40, 40), (3.0, 0.0), 15), ("square", (110, 85), (-2.0, -1.0), 14)])
    out = propagate_labels(images, labels[-1:], np.array([7]), [1, 2])
    for object_id in (1, 2):
        assert _iou(out[0] == object_id, labels[0] == object_id) > 0.9


def test_nearest_annotated_frame_is_used(synthetic_clip):
    images, labels = synthetic_clip(6, (96, 96), (0.0, 0.0), [("disc", (30, 48), (6.0, 0.0), 12)])
    anchors = labels[[0, 5]].copy()
    anchors[1][anchors[1] == 1] = 0
    anchors[1][40:56, 70:86] = 1
    out = propagate_labels(images, anchors, np.array([0, 5]), [1])
    # frames 3 and 4 are nearer to the (deliberately wrong) annotation of frame 5 and follow it
    assert out[4][48, 78] == 1 and out[4][48, 54] == 0
    assert _iou(out[2] == 1, labels[2] == 1) > 0.9


def test_bad_anchor_frames(synthetic_clip):
    images, labels = synthetic_clip(3, (64, 64), (0.0, 0.0), [("disc", (30, 30), (1.0, 0.0), 8)])
    with pytest.raises(ValueError, match="anchor_frames"):
        propagate_labels(images, labels[:2], np.array([1, 0]), [1])
