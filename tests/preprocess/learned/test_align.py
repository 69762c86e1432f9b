import numpy as np
import pytest

from preprocess.learned.align import (align_sequence, align_to_sparse, disparity_to_depth, fit_scale_shift,
                                      normalise)


def test_fit_recovers_scale_and_shift_exactly():
    rng = np.random.default_rng(0)
    source = rng.uniform(0.1, 2.0, 500)
    fit = fit_scale_shift(source, 2.5 * source - 0.3)
    assert fit.scale == pytest.approx(2.5, rel=1e-10)
    assert fit.shift == pytest.approx(-0.3, abs=1e-10)
    assert fit.inliers.all() and fit.rms < 1e-10


def test_fit_rejects_gross_outliers():
    rng = np.random.default_rng(1)
    source = rng.uniform(0.1, 2.0, 400)
    target = 0.7 * source + 0.05
    bad = rng.random(400) < 0.3
    target[bad] += rng.uniform(1.0, 5.0, bad.sum()) * rng.choice([-1, 1], bad.sum())
    fit = fit_scale_shift(source, target)
    assert fit.scale == pytest.approx(0.7, rel=1e-8)
    assert fit.shift == pytest.approx(0.05, abs=1e-8)
    np.testing.assert_array_equal(fit.inliers, ~bad)


def test_fit_with_noise_is_close_and_weights_exclude_points():
    rng = np.random.default_rng(2)
    source = rng.uniform(0.1, 2.0, (40, 50))
    target = 1.5 * source + 0.2 + rng.normal(0, 1e-3, source.shape)
    weights = np.ones_like(source)
    target[:5] = 100.0  # wrong, but excluded by zero weight
    weights[:5] = 0.0
    fit = fit_scale_shift(source, target, weights)
    assert fit.scale == pytest.approx(1.5, abs=2e-3)
    assert fit.shift == pytest.approx(0.2, abs=2e-3)
    assert fit.inliers.shape == source.shape and not fit.inliers[:5].any()


def test_fit_needs_two_distinct_points():
    with pytest.raises(ValueError, match="two or more"):
        fit_scale_shift(np.ones(10), np.arange(10.0))
    with pytest.raises(ValueError, match="shapes differ"):
        fit_scale_shift(np.ones(3), np.ones(4))


def test_align_to_sparse_recovers_inverse_depth_map():
    rng = np.random.default_rng(3)
    disparity = rng.uniform(0.0, 1.0, (30, 40))
    true_inverse = 0.4 * disparity + 0.1
    sparse = np.zeros_like(disparity)
    known = rng.random(disparity.shape) < 0.05
    sparse[known] = 1.0 / true_inverse[known]
    fit = align_to_sparse(disparity, sparse)
    assert (fit.scale, fit.shift) == (pytest.approx(0.4, rel=1e-9), pytest.approx(0.1, abs=1e-9))
    assert fit.inliers.sum() == known.sum()
    depth, confidence = disparity_to_depth(fit.apply(disparity), floor=1e-3)
    np.testing.assert_allclose(depth, 1.0 / true_inverse, rtol=1e-6)
    assert confidence.min() == 1.0


def test_normalise_sets_median_depth_one():
    disparity = np.linspace(0.2, 3.0, 101)
    fit = normalise(disparity)
    assert np.median(fit.apply(disparity)) == pytest.approx(1.0) and fit.shift == 0.0
    signed = np.linspace(-1.0, 1.0, 101)
    aligned = normalise(signed).apply(signed)
    assert np.median(aligned) == pytest.approx(1.0) and np.percentile(aligned, 1) == pytest.approx(0.0, abs=1e-12)


def test_disparity_to_depth_marks_far_and_negative_unknown():
    depth, confidence = disparity_to_depth(np.array([2.0, 0.5, 0.01, -1.0]), floor=0.1)
    np.testing.assert_allclose(depth, [0.5, 2.0, 10.0, 10.0])
    np.testing.assert_array_equal(confidence, [1, 1, 0, 0])
    with pytest.raises(ValueError, match="floor"):
        disparity_to_depth(np.ones(2), floor=0.0)


def _affine_views(inverse_depth, rng, num_frames):
    """Per-frame model disparity d_t with inverse_depth_t = a_t d_t + b_t, and the (a_t, b_t)."""
    scales = rng.uniform(0.5, 2.0, num_frames)
    shifts = rng.uniform(-0.2, 0.2, num_frames)
    return (inverse_depth - shifts[:, None, None]) / scales[:, None, None], scales, shifts


def test_sequence_without_sparse_is_consistent_with_anchor():
    rng = np.random.default_rng(4)
    inverse = np.repeat(rng.uniform(0.2, 1.0, (1, 24, 32)), 4, axis=0)
    disparity, _, _ = _affine_views(inverse, rng, 4)
    result = align_sequence(disparity)
    assert result.anchor == 0 and not result.metric
    for t in range(1, 4):
        np.testing.assert_allclose(result.disparity[t], result.disparity[0], rtol=1e-8)
    assert np.median(result.disparity[0]) == pytest.approx(1.0)


def test_sequence_anchored_on_a_sparse_frame_is_metric_everywhere():
    rng = np.random.default_rng(5)
    inverse = np.repeat(rng.uniform(0.2, 1.0, (1, 24, 32)), 4, axis=0)
    disparity, _, _ = _affine_views(inverse, rng, 4)
    sparse = np.zeros_like(inverse)
    known = rng.random(inverse.shape[1:]) < 0.1
    sparse[2][known] = 1.0 / inverse[2][known]
    result = align_sequence(disparity, sparse, min_points=20)
    assert result.anchor == 2 and result.metric
    np.testing.assert_array_equal(result.sparse_frames, [False, False, True, False])
    np.testing.assert_allclose(result.disparity, inverse, rtol=1e-7)


def test_sequence_follows_motion_through_optical_flow(make_frames):
    """A camera pan by 3 px per frame: each frame's map is fitted on flow-matched pixels."""
    rng = np.random.default_rng(6)
    wide = make_frames(1, 48, 96, seed=6)[0]
    inverse_wide = 0.3 + 0.5 * wide[..., 0].astype(np.float64) / 255.0
    shift = 3
    images = np.stack([wide[:, t * shift:t * shift + 64] for t in range(3)])
    inverse = np.stack([inverse_wide[:, t * shift:t * shift + 64] for t in range(3)])
    disparity, scales, shifts = _affine_views(inverse, rng, 3)
    sparse = np.zeros_like(inverse)
    sparse[0, ::4, ::4] = 1.0 / inverse[0, ::4, ::4]

    with_flow = align_sequence(disparity, sparse, images)
    without_flow = align_sequence(disparity, sparse)
    assert with_flow.metric
    interior = (slice(None), slice(8, -8), slice(8, -8))
    error_flow = np.abs(with_flow.disparity - inverse)[interior].max()
    error_static = np.abs(without_flow.disparity - inverse)[interior].max()
    assert error_flow < 0.01 < error_static
