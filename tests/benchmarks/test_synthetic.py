import json

import cv2
import numpy as np
import pytest
import torch

from benchmarks.synthetic import generate_scene, read_view, write_scene
from benchmarks.synthetic.generate import BACKDROP_Y
from benchmarks.synthetic.raycast import render
from benchmarks.synthetic.shapes import AnalyticObject
from scene4d.conventions import backproject_depth, project_points

SIZE = {"width": 64, "height": 48}


@pytest.fixture(scope="module")
def scene():
    return generate_scene(seed=0, num_frames=4, num_objects=3, **SIZE)


def _implicit(obj: AnalyticObject, points: np.ndarray, frame: int) -> np.ndarray:
    """1 on the surface, < 1 inside: |p| for the unit sphere, max |p_i| for the unit cube."""
    canonical = obj.to_canonical(points, frame)
    return np.abs(canonical).max(axis=1) if obj.kind == "box" else np.linalg.norm(canonical, axis=1)


def _world_points(view, frame: int) -> np.ndarray:
    depth = torch.from_numpy(view.depth[frame]).double()
    camtoworld = torch.linalg.inv(torch.from_numpy(view.viewmats[frame]))
    return backproject_depth(depth, torch.from_numpy(view.Ks[frame]), camtoworld).numpy()


def test_sphere_depth_matches_the_analytic_value_at_its_centre_pixel():
    centre, radius = np.array([0.3, -0.2, 5.0]), 0.8
    sphere = AnalyticObject("sphere", centre[None], np.eye(3)[None], np.full((1, 3), radius), np.ones((4, 4, 3)))
    # The centre projects to (50 * 0.3 / 5 + 29.5, 50 * -0.2 / 5 + 26.5) = (32.5, 24.5): the centre of pixel (24, 32).
    K = np.array([[50.0, 0, 29.5], [0, 50.0, 26.5], [0, 0, 1]])
    _, depth, label = render([sphere], K, np.eye(4), 64, 48, 0, np.array([0, 0, -1.0]))
    assert depth[24, 32] == pytest.approx(centre[2] * (1 - radius / np.linalg.norm(centre)), rel=1e-6)
    hit = label == 0
    assert 50 < hit.sum() < 48 * 64 and np.all(np.isinf(depth[~hit]))
    points = backproject_depth(torch.from_numpy(np.where(hit, depth, 1.0)).double(), torch.from_numpy(K),
                               torch.eye(4, dtype=torch.float64)).numpy()[hit]
    np.testing.assert_allclose(np.linalg.norm(points - centre, axis=1), radius, rtol=1e-5)


def test_every_pixel_shows_the_nearest_surface(scene):
    """Backprojected depth lies on the surface the masks name, and no other object is in front of it."""
    samples = np.linspace(0.02, 0.98, 48)
    for view in (scene.view, *scene.extra_views):
        assert np.all(view.masks.sum(axis=0) <= 1)
        for frame in range(scene.num_frames):
            points = _world_points(view, frame).reshape(-1, 3)
            labels = np.full(len(points), -1)
            for index in range(len(scene.objects)):
                labels[view.masks[index, frame].ravel()] = index
            for index, obj in enumerate(scene.objects):
                np.testing.assert_allclose(_implicit(obj, points[labels == index], frame), 1.0, atol=1e-4)
            background = points[labels == -1]
            on_plane = np.minimum(np.abs(background[:, 2]), np.abs(background[:, 1] - BACKDROP_Y))
            assert np.all(on_plane < 1e-4)
            centre = np.linalg.inv(view.viewmats[frame])[:3, 3]
            segments = centre + samples[:, None, None] * (points - centre)[None]  # (S, P, 3)
            for index, obj in enumerate(scene.objects):
                inside = _implicit(obj, segments.reshape(-1, 3), frame).reshape(len(samples), -1) < 1 - 1e-3
                assert not inside[:, labels != index].any(), f"object {index + 1} hides behind another surface"


def test_tracks_follow_their_objects_and_project_into_their_masks(scene):
    for frame in range(scene.num_frames):
        for index, obj in enumerate(scene.objects):
            rows = scene.track_labels == index + 1
            np.testing.assert_allclose(_implicit(obj, scene.tracks3d[rows, frame].astype(np.float64), frame), 1.0,
                                       atol=1e-5)
    pixels, depths = project_points(torch.from_numpy(scene.tracks3d.reshape(-1, 3)).double(),
                                    torch.from_numpy(scene.view.viewmats), torch.from_numpy(scene.view.Ks))
    num_tracks = scene.tracks3d.shape[0]
    pixels = pixels.numpy().reshape(scene.num_frames, num_tracks, scene.num_frames, 2)
    for frame in range(scene.num_frames):
        np.testing.assert_allclose(scene.tracks2d[:, frame], pixels[frame, :, frame], atol=1e-3)

    track, frame = np.nonzero(scene.track_visibility)
    assert len(track) > 20
    column, row = np.floor(scene.tracks2d[track, frame]).astype(int).T
    masks = scene.view.masks[scene.track_labels[track] - 1, frame]
    in_mask = masks[np.arange(len(track)), row, column]
    assert in_mask.mean() > 0.8  # objects are ~10 pixels wide here, so many points lie on boundary pixels
    dilated = np.stack([cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0 for m in masks])
    assert dilated[np.arange(len(track)), row, column].all()


def _outward_normals(obj: AnalyticObject, points: np.ndarray, frame: int) -> np.ndarray:
    """Unnormalised outward normals as gradients of the implicit function (boxes: of the face's plane)."""
    rotation, axes = obj.rotations[frame], obj.axes[frame]
    canonical = obj.to_canonical(points, frame)
    if obj.kind == "box":
        face = np.abs(canonical).argmax(axis=1)
        gradient = np.zeros_like(canonical)
        gradient[np.arange(len(points)), face] = np.sign(canonical[np.arange(len(points)), face])
    else:
        gradient = canonical
    return (gradient / axes) @ rotation.T


def test_track_visibility_agrees_with_an_independent_occlusion_test(scene):
    """Visible = in the image, facing the camera (the objects are convex) and no other object on the line of
    sight (sampled), computed without the ray caster."""
    samples = np.linspace(0.0, 0.995, 400)
    expected = np.zeros_like(scene.track_visibility)
    for frame in range(scene.num_frames):
        viewmat = scene.view.viewmats[frame]
        centre = np.linalg.inv(viewmat)[:3, 3]
        points = scene.tracks3d[:, frame].astype(np.float64)
        xy = scene.tracks2d[:, frame]
        visible = np.all((xy >= 0) & (xy < [SIZE["width"], SIZE["height"]]), axis=1)
        segments = centre + samples[:, None, None] * (points - centre)[None]
        for index, obj in enumerate(scene.objects):
            rows = scene.track_labels == index + 1
            facing = np.einsum("ni,ni->n", _outward_normals(obj, points[rows], frame), centre - points[rows])
            visible[rows] &= facing > 0
            inside = _implicit(obj, segments.reshape(-1, 3), frame).reshape(len(samples), -1) < 1
            visible[~rows] &= ~inside[:, ~rows].any(axis=0)
        expected[:, frame] = visible
    assert expected.sum() > 50 and (~expected).sum() > 50
    np.testing.assert_array_equal(scene.track_visibility, expected)


def test_one_object_deforms_and_the_others_stay_rigid(scene):
    assert [obj.nonrigid for obj in scene.objects] == [True, False, False]
    for index, obj in enumerate(scene.objects):
        points = scene.tracks3d[scene.track_labels == index + 1].astype(np.float64)
        distances = np.linalg.norm(points[:, None] - points[None], axis=-1)  # (P, P, T)
        change = np.abs(distances - distances[..., :1]).max()
        assert (change > 0.05) if obj.nonrigid else (change < 1e-5)


def test_same_seed_same_scene_and_different_seed_different_scene(scene):
    again = generate_scene(seed=0, num_frames=4, num_objects=3, **SIZE)
    for name in ("images", "depth", "masks", "Ks", "viewmats"):
        np.testing.assert_array_equal(getattr(again.view, name), getattr(scene.view, name))
    np.testing.assert_array_equal(again.extra_views[1].images, scene.extra_views[1].images)
    np.testing.assert_array_equal(again.tracks3d, scene.tracks3d)
    np.testing.assert_array_equal(again.track_visibility, scene.track_visibility)
    other = generate_scene(seed=1, num_frames=4, num_objects=3, **SIZE)
    assert np.abs(other.view.images.astype(int) - scene.view.images).mean() > 5


def test_cameras_orbit_or_stay_and_extra_views_differ(scene):
    centres = np.linalg.inv(scene.view.viewmats)[:, :3, 3]
    assert np.linalg.norm(centres[-1] - centres[0]) > 0.5
    for extra in scene.extra_views:
        extra_centres = np.linalg.inv(extra.viewmats)[:, :3, 3]
        assert np.linalg.norm(extra_centres - centres, axis=1).min() > 1.0
    static = generate_scene(seed=0, num_frames=3, num_objects=1, camera_motion="static", num_extra_views=0, **SIZE)
    np.testing.assert_array_equal(static.view.viewmats, static.view.viewmats[:1].repeat(3, axis=0))
    assert static.extra_views == []


def test_write_scene_layout_and_round_trip(scene, tmp_path):
    folder = tmp_path / "synthetic_0"
    write_scene(scene, folder)
    mask_png = cv2.imread(str(folder / "masks" / "002" / "00003.png"), cv2.IMREAD_UNCHANGED)
    assert mask_png.dtype == np.uint8 and set(np.unique(mask_png)) <= {0, 255}
    for view, path in ((scene.view, folder), (scene.extra_views[0], folder / "extra_views" / "00")):
        loaded = read_view(path)
        for name in ("images", "depth", "masks"):
            np.testing.assert_array_equal(getattr(loaded, name), getattr(view, name))
        np.testing.assert_allclose(loaded.viewmats, view.viewmats)
        np.testing.assert_allclose(loaded.Ks, view.Ks)
    tracks = np.load(folder / "tracks3d.npz")
    np.testing.assert_array_equal(tracks["tracks3d"], scene.tracks3d)
    np.testing.assert_array_equal(tracks["visibility"], scene.track_visibility)
    source = json.loads((folder / "SOURCE.json").read_text())
    assert source["seed"] == 0 and [o["id"] for o in source["objects"]] == [1, 2, 3]


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_objects"):
        generate_scene(seed=0, num_objects=4, **SIZE)
    with pytest.raises(ValueError, match="camera_motion"):
        generate_scene(seed=0, camera_motion="dolly", **SIZE)
