"""Depth from the scene prior: ground plane and horizon, objects standing on it with a rounded profile."""

import numpy as np
import pytest

from preprocess.depth import DepthConfig, contact_sheet_depth, estimate_depth
from preprocess.depth.stage import BACKDROP_CONFIDENCE, GROUND_CONFIDENCE, OBJECT_CONFIDENCE
from scene4d.contracts.cameras import Cameras
from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks

WIDTH, HEIGHT, FOCAL, NUM_FRAMES = 240, 180, 200.0, 4  # WIDTH x HEIGHT as in conftest
CAMERA_HEIGHT, HORIZON = 1.6, 0.3
HORIZON_ROW = HORIZON * HEIGHT


def _intrinsics():
    return np.array([[FOCAL, 0, WIDTH / 2], [0, FOCAL, HEIGHT / 2], [0, 0, 1.0]])


def _ground_depth(row):
    """Analytic ground depth at a continuous row of a camera without roll whose horizon is at HORIZON_ROW."""
    slope = (HORIZON_ROW - HEIGHT / 2) / FOCAL
    return CAMERA_HEIGHT * FOCAL * np.sqrt(1 + slope ** 2) / (row - HORIZON_ROW)


def _true_viewmat(yaw_deg=0.0):
    """World (y down, ground at y = CAMERA_HEIGHT) to a camera at the origin pitched down to put the horizon at
    HORIZON_ROW, then turned by ``yaw_deg`` about the vertical."""
    pitch = np.arctan((HEIGHT / 2 - HORIZON_ROW) / FOCAL)
    pitch_rotation = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    yaw = np.deg2rad(yaw_deg)
    yaw_rotation = np.array([[np.cos(yaw), 0, -np.sin(yaw)], [0, 1, 0], [np.sin(yaw), 0, np.cos(yaw)]])
    viewmat = np.eye(4)
    viewmat[:3, :3] = pitch_rotation @ yaw_rotation
    return viewmat


def _ground(texture):
    return [(np.array([0, 1.0, 0]), CAMERA_HEIGHT, texture(256, 0), np.array([[1.0, 0, 0], [0, 0, 1.0]]), 40.0, None)]


def _fixed_cameras():
    return Cameras(np.repeat(_intrinsics()[None], NUM_FRAMES, 0), np.repeat(np.eye(4)[None], NUM_FRAMES, 0),
                   WIDTH, HEIGHT, method="fixed")


def _static_frames(image):
    return Frames(np.repeat(image[None], NUM_FRAMES, 0), np.arange(NUM_FRAMES) / 30.0)


def _ellipse(centre, radii):
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    return ((cols + 0.5 - centre[0]) / radii[0]) ** 2 + ((rows + 0.5 - centre[1]) / radii[1]) ** 2 <= 1


@pytest.fixture(scope="module")
def ground_image(texture, render):
    image, _ = render(_intrinsics(), _true_viewmat(), _ground(texture))
    return image


def test_flat_ground_under_a_known_horizon_gets_the_analytic_depth(texture, render, ground_image):
    _, truth = render(_intrinsics(), _true_viewmat(), _ground(texture))
    config = DepthConfig(horizon=HORIZON, camera_height=CAMERA_HEIGHT)
    depth, backend, reason = estimate_depth(_static_frames(ground_image), None, _fixed_cameras(), None, config)
    assert backend == depth.method == "scene-prior" and "do not translate (fixed)" in reason
    assert f"horizon at row {HORIZON_ROW:.1f}" in depth.notes and "1.6 m below" in depth.notes
    rows = np.arange(HEIGHT) + 0.5
    ground = (rows > HORIZON_ROW) & (_ground_depth(np.maximum(rows, HORIZON_ROW + 1e-3)) < 20.0)  # backdrop at 30
    np.testing.assert_allclose(depth.depth[0][ground], truth[ground], rtol=1e-4)
    np.testing.assert_allclose(depth.depth[0][ground], np.repeat(_ground_depth(rows[ground])[:, None], WIDTH, 1),
                               rtol=1e-4)
    assert np.all(depth.confidence[0][ground] == GROUND_CONFIDENCE)
    # Above the horizon: the backdrop, at its distance from the camera centre.
    rays = np.stack([(np.arange(WIDTH) + 0.5 - WIDTH / 2) / FOCAL, np.full(WIDTH, (0.5 - HEIGHT / 2) / FOCAL)], -1)
    np.testing.assert_allclose(depth.depth[0, 0], config.backdrop_distance / np.sqrt(1 + (rays ** 2).sum(-1)),
                               rtol=1e-5)
    assert np.all(depth.confidence[0, 0] == BACKDROP_CONFIDENCE)
    assert np.array_equal(depth.depth[0], depth.depth[-1])


def test_ground_prior_follows_a_panning_camera(texture, render):
    yaws = np.linspace(0, 12, NUM_FRAMES)
    true_viewmats = np.stack([_true_viewmat(y) for y in yaws])
    rendered = [render(_intrinsics(), v, _ground(texture)) for v in true_viewmats]
    # The cameras stage knows the rotations only relative to the first frame.
    viewmats = true_viewmats @ np.linalg.inv(true_viewmats[0])
    cameras = Cameras(np.repeat(_intrinsics()[None], NUM_FRAMES, 0), viewmats, WIDTH, HEIGHT,
                      method="homography-rotation")
    frames = Frames(np.stack([r[0] for r in rendered]), np.arange(NUM_FRAMES) / 30.0)
    depth, backend, _ = estimate_depth(frames, None, cameras, None, DepthConfig(horizon=HORIZON))
    truth = np.stack([r[1] for r in rendered])
    ground = truth < 20.0  # the backdrop is at 30
    assert backend == "scene-prior" and ground[-1].mean() > 0.5
    np.testing.assert_allclose(depth.depth[ground], truth[ground], rtol=1e-4)


def test_object_stands_where_it_touches_the_ground_and_bulges_towards_the_camera(ground_image):
    mask = _ellipse((120, 130), (20, 30))  # lowest row 159
    masks = ObjectMasks(np.repeat(mask[None, None], NUM_FRAMES, 1), [1])
    config = DepthConfig(horizon=HORIZON, bulge=0.6)
    depth, _, _ = estimate_depth(_static_frames(ground_image), masks, _fixed_cameras(), None, config)
    contact_row = int(np.flatnonzero(mask.any(axis=1))[-1])
    contact_col = int(round(np.flatnonzero(mask[contact_row]).mean()))
    base = _ground_depth(contact_row + 0.5)
    assert depth.depth[0, contact_row, contact_col] == pytest.approx(base, rel=1e-5)
    inside = depth.depth[0][mask]
    assert inside.max() == pytest.approx(base, rel=1e-5) and inside.min() < base
    # The centre is nearest, by bulge x half-thickness (19 pixels from the silhouette pixels) at that depth.
    assert depth.depth[0, 130, 120] == pytest.approx(base * (1 - 0.6 * 19 / FOCAL), rel=2e-3)
    assert depth.depth[0, 130, 120] < depth.depth[0, 130, 104] < depth.depth[0, 130, 101]
    assert np.all(depth.confidence[0][mask] == OBJECT_CONFIDENCE)
    # A static clip: the same depth in every frame.
    assert all(np.array_equal(depth.depth[0], d) for d in depth.depth[1:])


def test_an_object_resting_on_another_takes_its_depth(ground_image):
    below = _ellipse((120, 140), (30, 20))  # touches the ground at row 159
    above = _ellipse((120, 100), (12, 21))  # its lowest pixels lie on top of the other
    assert np.any(below & np.roll(above, 2, axis=0))
    masks = ObjectMasks(np.repeat(np.stack([above, below])[:, None], NUM_FRAMES, 1), [1, 2])
    depth, _, _ = estimate_depth(_static_frames(ground_image), masks, _fixed_cameras(), None,
                                 DepthConfig(horizon=HORIZON))
    base = _ground_depth(159.5)
    assert depth.depth[0][above & ~below].max() == pytest.approx(base, rel=1e-5)


def test_horizon_is_raised_when_an_object_would_stand_above_it(ground_image):
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[20:40, 100:120] = True  # contact at row 39, above the assumed horizon row 54
    masks = ObjectMasks(np.repeat(mask[None, None], NUM_FRAMES, 1), [1])
    config = DepthConfig(horizon=HORIZON)
    depth, _, _ = estimate_depth(_static_frames(ground_image), masks, _fixed_cameras(), None, config)
    assert "raised from the assumed row 54.0" in depth.notes
    assert depth.depth[0, 39, 110] <= 0.5 * config.backdrop_distance * (1 + 1e-6)
    assert depth.depth[0, 39, 110] == pytest.approx(depth.depth[0, 39, 10], rel=1e-5)  # the ground there


def test_a_brief_jump_in_the_ground_contact_is_filtered_out(ground_image):
    masks = np.repeat(_ellipse((120, 130), (20, 30))[None, None], 5, 1)
    masks[0, 2] = np.roll(masks[0, 2], -25, axis=0)  # one frame where it appears higher up
    cameras = Cameras(np.repeat(_intrinsics()[None], 5, 0), np.repeat(np.eye(4)[None], 5, 0), WIDTH, HEIGHT,
                      method="fixed")
    frames = Frames(np.repeat(ground_image[None], 5, 0), np.arange(5) / 30.0)
    depth, _, _ = estimate_depth(frames, ObjectMasks(masks, [1]), cameras, None, DepthConfig(horizon=HORIZON))
    assert depth.depth[2][masks[0, 2]].max() == pytest.approx(_ground_depth(159.5), rel=1e-5)


def test_an_object_that_leaves_the_ground_keeps_the_depth_of_its_lowest_frame(ground_image):
    heights = [150, 120, 90, 70, 100]  # a juggled ball, 20 pixels tall, rising and falling by 80 pixels
    masks = np.stack([_ellipse((60, y), (10, 10)) for y in heights])[None]
    cameras = Cameras(np.repeat(_intrinsics()[None], 5, 0), np.repeat(np.eye(4)[None], 5, 0), WIDTH, HEIGHT,
                      method="fixed")
    frames = Frames(np.repeat(ground_image[None], 5, 0), np.arange(5) / 30.0)
    depth, _, _ = estimate_depth(frames, ObjectMasks(masks, [1]), cameras, None, DepthConfig(horizon=HORIZON))
    lowest_row = int(np.flatnonzero(masks[0, 0].any(axis=1))[-1])
    for t in range(5):
        assert depth.depth[t][masks[0, t]].max() == pytest.approx(_ground_depth(lowest_row + 0.5), rel=1e-5)


def test_contact_sheet_colours_near_red_and_far_blue(ground_image):
    masks = ObjectMasks(np.repeat(_ellipse((120, 130), (20, 30))[None, None], NUM_FRAMES, 1), [1])
    frames = _static_frames(ground_image)
    depth, _, _ = estimate_depth(frames, masks, _fixed_cameras(), None, DepthConfig(horizon=HORIZON))
    sheet = contact_sheet_depth(frames, depth, num_frames=2, tile_width=WIDTH)
    assert sheet.shape == (3 * HEIGHT, 2 * WIDTH + 110, 3)
    depth_row = sheet[HEIGHT:2 * HEIGHT, :WIDTH].astype(int)
    near, far = depth_row[HEIGHT - 3, 10], depth_row[5, 120]  # bottom of the ground, the backdrop
    assert near[0] > near[2] and far[2] > far[0]
    confidence_row = sheet[2 * HEIGHT:, :WIDTH]
    assert confidence_row[5, 200, 0] == int(BACKDROP_CONFIDENCE * 255)
