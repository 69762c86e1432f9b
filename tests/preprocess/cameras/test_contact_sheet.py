import numpy as np
import pytest

from preprocess.cameras.contact_sheet import OBSERVED, TILE_WIDTH, contact_sheet_cameras, plot_camera_path
from scene4d.contracts.cameras import Cameras
from scene4d.contracts.tracks import PointTracks


def _cameras(num_frames: int, width: int, height: int, moving: bool) -> Cameras:
    viewmats = np.tile(np.eye(4), (num_frames, 1, 1))
    if moving:
        viewmats[:, 0, 3] = -np.linspace(0, 1, num_frames)
    K = np.array([[100.0, 0, width / 2], [0, 100.0, height / 2], [0, 0, 1]])
    return Cameras(Ks=np.tile(K, (num_frames, 1, 1)), viewmats=viewmats, width=width, height=height,
                   method="test", notes="a test path")


def test_sheet_stacks_the_path_plot_over_frames_with_tracks_drawn_where_observed(scenes):
    images = [np.full((160, 320, 3), 90, np.uint8) for _ in range(5)]
    frames = scenes.frames_of(images)
    cameras = _cameras(5, 320, 160, moving=False)
    # Two still background points and one object track (label 1, not drawn).
    tracks = np.array([[[100.5, 60.5]] * 5, [[200.5, 120.5]] * 5, [[10.5, 10.5]] * 5], np.float32)
    point_tracks = PointTracks(tracks, np.ones((3, 5), bool), np.array([0, 0, 1]))
    sheet = contact_sheet_cameras(frames, cameras, point_tracks, num_frames=3)
    assert sheet.dtype == np.uint8 and sheet.shape[1] == 3 * TILE_WIDTH
    row = sheet[-160:]  # the frame tiles are at the bottom, at their original scale here
    for x, y in ((100, 60), (200, 120)):
        assert tuple(row[y, x]) == OBSERVED
        assert tuple(row[y, x + TILE_WIDTH]) == OBSERVED
    assert tuple(row[10, 10]) != OBSERVED


def test_sheet_without_tracks_shows_plain_frames(scenes):
    frames = scenes.frames_of([np.full((80, 160, 3), 90, np.uint8) for _ in range(2)])
    sheet = contact_sheet_cameras(frames, _cameras(2, 160, 80, moving=True), None, num_frames=4)
    tiles = sheet[-160:]  # 160x80 frames are scaled to 320x160 tiles
    assert sheet.shape[1] == 2 * TILE_WIDTH
    assert (tiles[40:, :] == 90).mean() > 0.99  # nothing drawn but the frame label


def test_path_plots_differ_between_a_still_and_a_moving_camera():
    still = plot_camera_path(_cameras(5, 320, 160, moving=False))
    moving = plot_camera_path(_cameras(5, 320, 160, moving=True))
    assert still.shape == moving.shape and still.dtype == np.uint8
    assert np.abs(still.astype(int) - moving.astype(int)).mean() > 1.0


def test_sheet_rejects_cameras_of_another_clip(scenes):
    frames = scenes.frames_of([np.zeros((80, 160, 3), np.uint8)] * 2)
    with pytest.raises(ValueError, match="3 frames, the clip 2"):
        contact_sheet_cameras(frames, _cameras(3, 160, 80, moving=False))
