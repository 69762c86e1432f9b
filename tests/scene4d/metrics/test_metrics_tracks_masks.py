import pytest
import torch

from scene4d.metrics.masks import mask_iou, match_objects, object_iou_matrix
from scene4d.metrics.tracks import track_delta_avg, track_epe


def test_track_epe_of_known_offsets_counts_visible_entries_only():
    target = torch.zeros(2, 3, 2)
    pred = target.clone()
    pred[0, :, 0] = 3.0
    pred[0, :, 1] = 4.0  # error 5 on track 0
    pred[1, 2] = 100.0
    visibility = torch.ones(2, 3, dtype=torch.bool)
    visibility[1, 2] = False
    assert track_epe(pred, target, visibility).item() == pytest.approx(5 * 3 / 5)


def test_track_epe_in_3d():
    target = torch.rand(4, 5, 3)
    offset = torch.tensor([1.0, 2.0, 2.0])
    assert track_epe(target + offset, target).item() == pytest.approx(3.0)


def test_delta_avg_of_known_errors():
    target = torch.zeros(1, 4, 2)
    pred = torch.zeros(1, 4, 2)
    pred[0, :, 0] = torch.tensor([0.5, 3.0, 10.0, 50.0])
    # thresholds 1, 2, 4, 8, 16: fractions within are 1/4, 1/4, 2/4, 2/4, 3/4
    assert track_delta_avg(pred, target).item() == pytest.approx((1 + 1 + 2 + 2 + 3) / 20)


def test_track_bad_inputs():
    with pytest.raises(ValueError, match=r"\(N, T, 2\)"):
        track_epe(torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="no visible"):
        track_epe(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), torch.zeros(1, 2, dtype=torch.bool))


def _box(t0, t1, c0, c1, size=(10, 10)):
    mask = torch.zeros(size, dtype=torch.bool)
    mask[t0:t1, c0:c1] = True
    return mask


def test_mask_iou_of_known_overlap_and_empty_pair():
    a, b = _box(0, 4, 0, 4), _box(2, 6, 2, 6)  # 16 and 16 pixels overlapping in 4
    assert mask_iou(a, b).item() == pytest.approx(4 / 28)
    empty = torch.zeros(10, 10, dtype=torch.bool)
    assert mask_iou(torch.stack([a, empty]), torch.stack([a, empty])).tolist() == [1.0, 1.0]
    assert mask_iou(a, empty).item() == 0.0


def test_matching_undoes_a_permutation_of_object_ids():
    objects = torch.stack([
        torch.stack([_box(0, 3, 0, 3), _box(0, 3, 1, 4)]),
        torch.stack([_box(5, 9, 5, 9), _box(5, 9, 4, 8)]),
        torch.stack([_box(0, 2, 6, 10), _box(1, 3, 6, 10)]),
    ])  # (3 objects, 2 frames, 10, 10)
    permutation = torch.tensor([2, 0, 1])
    assignment, iou = match_objects(objects[permutation], objects)
    assert assignment.tolist() == [1, 2, 0]  # objects[permutation][1] is objects[0], ...
    assert iou.tolist() == [1.0, 1.0, 1.0]


def test_matching_with_missing_and_partial_predictions():
    target = torch.stack([_box(0, 4, 0, 4)[None], _box(6, 10, 6, 10)[None]])  # (2, 1, 10, 10)
    pred = _box(6, 10, 6, 8)[None, None]  # half of object 1
    assignment, iou = match_objects(pred, target)
    assert assignment.tolist() == [-1, 0]
    assert iou.tolist() == [0.0, pytest.approx(0.5)]
    matrix = object_iou_matrix(pred, target)
    assert matrix.shape == (1, 2) and matrix[0, 0].item() == 0.0


def _span(start, stop):
    """(1, 1, 100) bool: one frame of a one-row image, set in columns [start, stop)."""
    mask = torch.zeros(1, 1, 100, dtype=torch.bool)
    mask[..., start:stop] = True
    return mask


def test_matching_maximises_the_total_not_greedily():
    target = torch.stack([_span(0, 60), _span(20, 80)])
    pred = torch.stack([_span(5, 65), _span(0, 40)])
    # IoU: pred 0 -> 55/65 and 45/75, pred 1 -> 40/60 and 20/80. Taking the best pair first (0, 0) totals 1.10;
    # the optimum pairs pred 0 with target 1 and pred 1 with target 0 for 1.27.
    assignment, iou = match_objects(pred, target)
    assert assignment.tolist() == [1, 0]
    assert iou.tolist() == [pytest.approx(40 / 60), pytest.approx(45 / 75)]


def test_mask_bad_inputs():
    with pytest.raises(TypeError, match="bool"):
        mask_iou(torch.zeros(4, 4), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="agree"):
        object_iou_matrix(torch.zeros(1, 2, 4, 4, dtype=torch.bool), torch.zeros(1, 3, 4, 4, dtype=torch.bool))
