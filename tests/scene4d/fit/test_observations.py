"""Windows around the object: rendering through cropped observations is the crop of the full render."""

from __future__ import annotations

import pytest
import torch

from scene4d.conventions import normalized_time
from scene4d.fit.observations import object_windows
from tests.scene4d.fit.test_outputs import FRAMES, HEIGHT, WIDTH, _object, _observations


def test_windows_have_one_size_follow_the_shape_and_stay_inside():
    shapes = torch.zeros(3, 40, 50, dtype=torch.bool)
    shapes[0, 5:15, 2:8] = True  # 10 x 6
    shapes[1, 20:26, 30:42] = True  # 6 x 12
    shapes[2, 34:40, 44:50] = True  # touches the bottom-right corner
    boxes = object_windows(shapes, margin=2, relative_margin=0.5)
    # largest extents 10 x 12, margins 2 + 5 and 2 + 6 on each side
    assert {(b - t, r - l) for t, b, l, r in boxes} == {(24, 28)}
    assert all(0 <= t and b <= 40 and 0 <= l and r <= 50 for t, b, l, r in boxes)
    assert boxes[1] == (11, 35, 22, 50)  # centred on rows 20..26 and columns 30..42, then pushed inside
    assert boxes[2][1] == 40 and boxes[2][3] == 50


def test_empty_frames_keep_the_last_window_and_no_shape_keeps_the_frame():
    shapes = torch.zeros(3, 20, 20, dtype=torch.bool)
    shapes[0, 2:6, 2:6] = True
    boxes = object_windows(shapes, margin=1)
    assert boxes[1] == boxes[2] == boxes[0]
    assert object_windows(torch.zeros(2, 8, 9, dtype=torch.bool), margin=3) == [(0, 8, 0, 9)] * 2


def test_cropped_observations_render_the_crop_of_the_full_frame():
    model = _object()
    full = _observations(model)
    full.tracks = torch.tensor([[[10.0, 12.0]] * FRAMES])
    full.track_visibility = torch.ones(1, FRAMES, dtype=torch.bool)
    boxes = object_windows(full.masks[..., 0] > 0.5, margin=3)
    crop = full.cropped(boxes)
    box_h, box_w = boxes[0][1] - boxes[0][0], boxes[0][3] - boxes[0][2]
    assert box_h < HEIGHT or box_w < WIDTH
    times = normalized_time(torch.arange(FRAMES), FRAMES)
    with torch.no_grad():
        whole = model.render(times, full.viewmats, full.Ks, WIDTH, HEIGHT, torch.zeros(FRAMES, 3), backend="torch")
        windowed = model.render(times, crop.viewmats, crop.Ks, box_w, box_h, torch.zeros(FRAMES, 3), backend="torch")
    for t, (top, bottom, left, right) in enumerate(boxes):
        torch.testing.assert_close(windowed[t].colors[0], whole[t].colors[0, top:bottom, left:right], atol=1e-5, rtol=0)
        torch.testing.assert_close(crop.images[t], full.images[t, top:bottom, left:right])
        torch.testing.assert_close(crop.tracks[0, t], torch.tensor([10.0 - left, 12.0 - top]))
    torch.testing.assert_close(crop.masks.sum(), full.masks.sum())  # the margin keeps the whole silhouette


def test_cropped_rejects_windows_of_different_sizes():
    full = _observations(_object())
    with pytest.raises(ValueError, match="one size"):
        full.cropped([(0, 10, 0, 10)] * (FRAMES - 1) + [(0, 12, 0, 10)])
