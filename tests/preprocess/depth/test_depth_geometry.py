"""Depth from geometry: triangulation, edge-aware densification, and a ray-cast scene seen by a translating camera."""

import numpy as np
import pytest

from preprocess.depth import DepthConfig, estimate_depth
from preprocess.depth.densify import densify
from preprocess.depth.triangulation import project, triangulate
from scene4d.contracts.cameras import Cameras
from scene4d.contracts.frames import Frames
from scene4d.contracts.tracks import PointTracks
from scene4d.errors import InputError

WIDTH, HEIGHT, FOCAL, NUM_FRAMES, STEP = 240, 180, 220.0, 8, 0.05  # WIDTH x HEIGHT as in conftest


def _intrinsics():
    return np.array([[FOCAL, 0, WIDTH / 2], [0, FOCAL, HEIGHT / 2], [0, 0, 1.0]])


def _translating_viewmats(step=STEP, num_frames=NUM_FRAMES):
    viewmats = np.repeat(np.eye(4)[None], num_frames, axis=0)
    viewmats[:, 0, 3] = -step * np.arange(num_frames)  # camera centre moves along +x
    return viewmats


def _wall_ground_panel(texture):
    """A wall 8 m ahead, ground 1.5 m below the camera, a darker panel 4 m ahead standing on the ground."""
    panel = lambda X: (X[..., 0] > -0.9) & (X[..., 0] < 0.1) & (X[..., 1] > 0.3)  # noqa: E731
    return [
        (np.array([0, 1.0, 0]), 1.5, texture(256, 0), np.array([[1.0, 0, 0], [0, 0, 1.0]]), 40.0, None),
        (np.array([0, 0, 1.0]), 8.0, texture(256, 1), np.array([[1.0, 0, 0], [0, 1.0, 0]]), 30.0, None),
        (np.array([0, 0, 1.0]), 4.0, 0.5 * texture(256, 2), np.array([[1.0, 0, 0], [0, 1.0, 0]]), 40.0, panel),
    ]


@pytest.fixture(scope="module")
def translating_scene(texture, render):
    K, viewmats = _intrinsics(), _translating_viewmats()
    rendered = [render(K, viewmat, _wall_ground_panel(texture)) for viewmat in viewmats]
    frames = Frames(np.stack([r[0] for r in rendered]), np.arange(NUM_FRAMES) / 30.0)
    cameras = Cameras(np.repeat(K[None], NUM_FRAMES, 0), viewmats, WIDTH, HEIGHT, method="colmap-global")
    return frames, cameras, np.stack([r[1] for r in rendered])


def test_triangulation_recovers_points_exactly_and_flags_bad_ones():
    rng = np.random.default_rng(0)
    points = np.c_[rng.uniform(-2, 2, 40), rng.uniform(-1, 1, 40), rng.uniform(4, 10, 40)]
    Ks, viewmats = np.repeat(_intrinsics()[None], NUM_FRAMES, 0), _translating_viewmats(step=0.2)
    pixels, _ = project(points, Ks, viewmats)
    visibility = rng.random((40, NUM_FRAMES)) < 0.7
    visibility[:, :2] = True
    pixels[~visibility] = 1e4  # garbage where not visible must not matter
    result = triangulate(pixels, visibility, Ks, viewmats, max_reprojection_px=0.5, min_parallax_deg=0.5)
    np.testing.assert_allclose(result.points, points, rtol=1e-7, atol=1e-7)
    assert result.valid.all() and result.reprojection.max() < 1e-6

    behind = np.array([[0.0, 0.0, -5.0]])
    seen = np.ones((1, NUM_FRAMES), bool)
    flipped, _ = project(behind, Ks, viewmats)
    assert not triangulate(flipped, seen, Ks, viewmats, 0.5, 0.5).valid[0]
    # A camera that only rotates sees every point along parallel rays: no parallax, nothing valid.
    rotating = np.repeat(np.eye(4)[None], NUM_FRAMES, 0)
    angles = np.deg2rad(np.arange(NUM_FRAMES))
    rotating[:, 0, 0], rotating[:, 0, 2] = np.cos(angles), np.sin(angles)
    rotating[:, 2, 0], rotating[:, 2, 2] = -np.sin(angles), np.cos(angles)
    pixels, _ = project(points, Ks, rotating)
    result = triangulate(pixels, np.ones((40, NUM_FRAMES), bool), Ks, rotating, 0.5, 0.5)
    assert result.parallax_deg.max() < 1e-4 and not result.valid.any()


def test_densify_reproduces_a_plane_and_keeps_a_colour_edge():
    rng = np.random.default_rng(1)
    image = np.full((60, 80, 3), 60, np.uint8)
    image[:, 40:] = 200
    points = rng.uniform([0.5, 0.5], [79.5, 59.5], (300, 2))
    plane = lambda p: 0.2 + 0.002 * p[..., 0] - 0.001 * p[..., 1]  # noqa: E731
    values = np.where(points[:, 0] < 40, plane(points), 0.5)
    dense = densify(image, points, values, np.ones(len(points)), long_side=80, smoothness=1.0, edge_sigma=12.0)
    xs, ys = np.meshgrid(np.arange(80) + 0.5, np.arange(60) + 0.5)
    truth = np.where(xs < 40, plane(np.stack([xs, ys], -1)), 0.5)
    interior = (np.abs(xs - 40) > 2) & (xs > 4) & (xs < 76) & (ys > 4) & (ys < 56)
    assert np.abs(dense - truth)[interior].max() < 0.01
    assert np.abs(dense - truth)[np.abs(xs - 40) <= 2].max() < 0.05  # the value steps at the colour edge


def test_translating_camera_gives_depth_within_a_few_percent(translating_scene):
    frames, cameras, truth = translating_scene
    depth, backend, reason = estimate_depth(frames, None, cameras, None, DepthConfig())
    assert backend == depth.method == "triangulation" and "triangulated" in reason
    assert depth.metric and "cameras' units" in depth.notes
    relative = np.abs(depth.depth - truth) / truth
    confident = depth.confidence > 0.5
    assert confident.mean() > 0.85
    # Errors concentrate in a few pixels around the panel's silhouette, where the textures give no edge.
    assert np.median(relative[confident]) < 0.02 and np.percentile(relative[confident], 90) < 0.06


def test_too_few_triangulated_points_fall_back_to_the_scene_prior(translating_scene):
    frames, cameras, _ = translating_scene
    tracks = PointTracks(np.full((3, NUM_FRAMES, 2), 50.0), np.ones((3, NUM_FRAMES), bool), np.zeros(3))
    depth, backend, reason = estimate_depth(frames, None, cameras, tracks, DepthConfig())
    assert backend == "scene-prior" and "fell back" in reason and "0 of 3" in reason


def test_bad_inputs_are_refused_with_a_message(translating_scene):
    frames, cameras, _ = translating_scene
    wrong_size = Cameras(cameras.Ks, cameras.viewmats, WIDTH // 2, HEIGHT // 2, method="fixed")
    with pytest.raises(InputError, match="cameras"):
        estimate_depth(frames, None, wrong_size, None, DepthConfig())
    short_tracks = PointTracks(np.zeros((2, 3, 2)), np.ones((2, 3), bool), np.zeros(2))
    with pytest.raises(InputError, match="tracks"):
        estimate_depth(frames, None, cameras, short_tracks, DepthConfig())
    with pytest.raises(InputError, match="depth.camera_height"):
        estimate_depth(frames, None, cameras, None, DepthConfig(camera_height=0.0))
