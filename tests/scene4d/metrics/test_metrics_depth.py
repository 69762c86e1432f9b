import pytest
import torch

from scene4d.metrics.depth import abs_rel, align_depth, delta_accuracy


def _depth(shape=(3, 12, 16), seed=0):
    return 1 + 4 * torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_scaled_depth_has_zero_error_after_scale_alignment():
    target = _depth()
    assert abs_rel(0.37 * target, target).item() == pytest.approx(0.0, abs=1e-12)
    assert delta_accuracy(0.37 * target, target).item() == 1.0
    assert abs_rel(0.37 * target, target, align="none").item() == pytest.approx(0.63)


def test_affine_depth_needs_scale_and_shift():
    target = _depth()
    pred = 2.0 * target - 0.5
    assert abs_rel(pred, target, align="scale_shift").item() == pytest.approx(0.0, abs=1e-10)
    assert abs_rel(pred, target, align="scale").item() > 1e-3


def test_scale_is_the_least_squares_solution():
    target, pred = _depth(seed=1), _depth(seed=2)
    aligned = align_depth(pred, target)
    scale = (aligned / pred).flatten()[0]
    loss = lambda s: ((s * pred - target) ** 2).sum()  # noqa: E731
    assert loss(scale) < loss(scale * 1.001) and loss(scale) < loss(scale * 0.999)
    assert torch.allclose(aligned / pred, scale.expand_as(pred))


def test_abs_rel_of_known_errors_and_masking():
    target = torch.full((4, 4), 2.0)
    pred = torch.full((4, 4), 2.2)
    pred[0, 0] = 100.0
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[0, 0] = False
    assert abs_rel(pred, target, mask, align="none").item() == pytest.approx(0.1)
    target[1, 1] = 0.0  # unknown ground truth does not count either
    assert abs_rel(pred, target, mask, align="none").item() == pytest.approx(0.1)


def test_delta_accuracy_counts_the_pixels_within_threshold():
    target = torch.ones(1, 10)
    pred = torch.tensor([[1.0, 1.1, 1.2, 1.3, 0.7, 0.85, 1.0, -1.0, 1.0, 1.0]])
    assert delta_accuracy(pred, target, align="none").item() == pytest.approx(0.7)


def test_bad_inputs():
    depth = _depth((4, 4))
    with pytest.raises(ValueError, match="differ in shape"):
        abs_rel(depth, _depth((4, 5)))
    with pytest.raises(ValueError, match="mode"):
        align_depth(depth, depth, mode="median")
    with pytest.raises(ValueError, match="no valid pixels"):
        abs_rel(depth, depth, torch.zeros(4, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="floating point"):
        abs_rel(depth.long(), depth)
