import numpy as np
import pytest
import torch

from preprocess.cameras.reprojection import summarise_errors, track_reprojection_errors, triangulate_tracks
from scene4d.conventions import project_points


def _cameras(num_frames: int, translate: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    viewmats = np.tile(np.eye(4), (num_frames, 1, 1))
    for t in range(num_frames):
        angle = 0.05 * t
        viewmats[t, :3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
        if translate:
            viewmats[t, :3, 3] = [0.3 * t, 0.02 * t, 0.0] + rng.normal(0, 0.01, 3)
    Ks = np.tile(np.array([[300.0, 0, 160], [0, 310.0, 120], [0, 0, 1]]), (num_frames, 1, 1))
    return Ks, viewmats


def _project(points, Ks, viewmats):
    pixels, depths = project_points(torch.as_tensor(points), torch.as_tensor(viewmats), torch.as_tensor(Ks))
    assert (depths > 0).all()
    return pixels.numpy().transpose(1, 0, 2)  # (N, T, 2)


def test_exact_tracks_reproject_with_zero_error_and_the_points_are_recovered():
    Ks, viewmats = _cameras(6, translate=True)
    points = np.random.default_rng(1).uniform([-2, -1, 4], [2, 1, 8], (50, 3))
    tracks = _project(points, Ks, viewmats)
    visibility = np.random.default_rng(2).random(tracks.shape[:2]) < 0.7
    visibility[:, :2] = True
    errors = track_reprojection_errors(tracks, visibility, Ks, viewmats)
    assert np.nanmax(errors) < 1e-6
    assert np.isnan(errors[~visibility]).all()
    homogeneous = triangulate_tracks(tracks, visibility, Ks, viewmats)
    np.testing.assert_allclose(homogeneous[:, :3] / homogeneous[:, 3:], points, atol=1e-6)


def test_an_outlier_observation_shows_up_in_its_track_only():
    Ks, viewmats = _cameras(8, translate=True)
    points = np.random.default_rng(1).uniform([-2, -1, 4], [2, 1, 8], (20, 3))
    tracks = _project(points, Ks, viewmats)
    tracks[3, 5] += [6.0, 0.0]
    errors = track_reprojection_errors(tracks, np.ones(tracks.shape[:2], bool), Ks, viewmats)
    assert np.delete(errors, 3, axis=0).max() < 1e-6
    assert 1.0 < errors[3, 5] < 6.0  # least squares spreads the 6 px over the track's views


def test_rotating_camera_tracks_are_explained_by_directions():
    Ks, viewmats = _cameras(6, translate=False)
    points = np.random.default_rng(3).uniform([-2, -1, 4], [2, 1, 8], (30, 3))
    tracks = _project(points, Ks, viewmats)
    errors = track_reprojection_errors(tracks, np.ones(tracks.shape[:2], bool), Ks, viewmats)
    assert np.nanmax(errors) < 1e-6


def test_fixed_camera_error_measures_how_far_a_track_moves():
    Ks = np.tile(np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]]), (2, 1, 1))
    viewmats = np.tile(np.eye(4), (2, 1, 1))
    tracks = np.array([[[100.0, 50.0], [100.0, 50.0]], [[80.0, 40.0], [84.0, 40.0]]])
    errors = track_reprojection_errors(tracks, np.ones((2, 2), bool), Ks, viewmats)
    assert errors[0] == pytest.approx([0.0, 0.0], abs=1e-9)
    # The best fixed point sits about halfway (algebraic least squares, so not exactly).
    assert errors[1] == pytest.approx([2.0, 2.0], abs=0.01)


def test_tracks_seen_once_get_no_error_and_invisible_garbage_is_ignored():
    Ks, viewmats = _cameras(3, translate=True)
    tracks = _project(np.array([[0.0, 0.0, 5.0], [0.5, 0.2, 6.0]]), Ks, viewmats)
    visibility = np.array([[True, False, False], [True, True, False]])
    tracks[1, 2] = np.nan
    errors = track_reprojection_errors(tracks, visibility, Ks, viewmats)
    assert np.isnan(errors[0]).all()
    assert np.nanmax(errors[1]) < 1e-6
    assert summarise_errors(errors)["num_tracks"] == 1


def test_bad_shapes_are_rejected():
    Ks, viewmats = _cameras(3, translate=True)
    with pytest.raises(ValueError, match="tracks"):
        track_reprojection_errors(np.zeros((4, 3)), np.ones((4, 3), bool), Ks, viewmats)
    with pytest.raises(ValueError, match="Ks"):
        track_reprojection_errors(np.zeros((4, 2, 2)), np.ones((4, 2), bool), Ks, viewmats)


def test_summary_of_no_errors_is_empty():
    assert summarise_errors(np.full((2, 3), np.nan)) == {"median_px": None, "mean_px": None, "p90_px": None,
                                                         "num_tracks": 0}
