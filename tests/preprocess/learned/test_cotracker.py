import importlib.util

import numpy as np
import pytest

from preprocess.learned.cotracker import (CoTrackerBackendConfig, available, build_cotracker,
                                          from_cotracker_tracks, grid_queries, to_cotracker_queries)
from preprocess.learned.weights import WeightsUnavailable
from scene4d.contracts.masks import ObjectMasks

COTRACKER_INSTALLED = importlib.util.find_spec("cotracker") is not None


def _masks():
    masks = np.zeros((2, 3, 40, 60), dtype=bool)
    masks[0, 0, 5:15, 5:25] = True      # 200 px on frame 0
    masks[0, 2, 5:25, 5:25] = True      # 400 px on frame 2: the query frame of object 4
    masks[1, 1, 20:36, 30:58] = True    # object 9, only on frame 1
    return ObjectMasks(masks, [4, 9])


def test_grid_queries_lie_on_pixel_centres_inside_their_region():
    masks = _masks()
    queries, labels = grid_queries(masks, 3, 60, 40, points_per_object=25, background_points=100)
    assert queries.shape == (len(labels), 3) and set(np.unique(labels)) == {0, 4, 9}
    np.testing.assert_array_equal(queries[:, 1:] % 1, 0.5)
    for label, frame in ((4, 2), (9, 1)):
        mine = queries[labels == label]
        assert (mine[:, 0] == frame).all()
        cols, rows = (mine[:, 1] - 0.5).astype(int), (mine[:, 2] - 0.5).astype(int)
        assert masks.of(label)[frame, rows, cols].all()
        assert 0.5 * 25 <= len(mine) <= 2 * 25
    background = queries[labels == 0]
    frame = int(background[0, 0])
    cols, rows = (background[:, 1] - 0.5).astype(int), (background[:, 2] - 0.5).astype(int)
    assert not masks.union()[frame, rows, cols].any()
    assert 0.5 * 100 <= len(background) <= 2 * 100


def test_grid_queries_without_masks_cover_the_frame():
    queries, labels = grid_queries(None, 2, 60, 40, points_per_object=10, background_points=24)
    assert (labels == 0).all() and (queries[:, 0] == 0).all()
    # 2400 px / 24 points: a 10 px grid at rows/columns 5, 15, ... -> 4 x 6 points.
    assert len(queries) == 24
    np.testing.assert_array_equal(np.unique(queries[:, 1]), np.arange(5, 60, 10) + 0.5)
    np.testing.assert_array_equal(np.unique(queries[:, 2]), np.arange(5, 40, 10) + 0.5)


def test_a_tiny_object_still_gets_a_query():
    masks = np.zeros((1, 1, 10, 10), dtype=bool)
    masks[0, 0, 3, 7] = True
    queries, labels = grid_queries(ObjectMasks(masks, [1]), 1, 10, 10, points_per_object=50, background_points=0)
    np.testing.assert_array_equal(queries, [[0, 7.5, 3.5]])
    np.testing.assert_array_equal(labels, [1])


def test_coordinate_conversions():
    # CoTracker puts pixel j at x = j; ours at j + 0.5.
    queries = np.array([[2, 10.5, 4.5], [0, 0.5, 0.5]], dtype=np.float32)
    np.testing.assert_array_equal(to_cotracker_queries(queries), [[2, 10, 4], [0, 0, 0]])
    tracks = np.arange(12, dtype=np.float32).reshape(3, 2, 2)  # (T, N, 2)
    ours = from_cotracker_tracks(tracks)
    assert ours.shape == (2, 3, 2)
    np.testing.assert_array_equal(ours[1, 2], tracks[2, 1] + 0.5)
    np.testing.assert_array_equal(from_cotracker_tracks(to_cotracker_queries(queries)[None, :, 1:]),
                                  queries[:, None, 1:])


@pytest.mark.skipif(COTRACKER_INSTALLED, reason="the cotracker package is installed here")
def test_unavailable_without_the_package_says_how_to_install():
    ok, reason = available(CoTrackerBackendConfig())
    assert not ok and "not on PyPI" in reason and "facebookresearch/co-tracker" in reason
    with pytest.raises(WeightsUnavailable, match="cotracker package is not installed"):
        build_cotracker(CoTrackerBackendConfig())


@pytest.mark.skipif(not COTRACKER_INSTALLED, reason="needs the cotracker package")
def test_unavailable_without_weights(tmp_path):
    ok, reason = available(CoTrackerBackendConfig(cache_dir=str(tmp_path)))
    assert not ok and "facebook/cotracker3/scaled_offline.pth is not in" in reason
