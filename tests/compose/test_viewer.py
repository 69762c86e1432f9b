import json
import math
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from compose.scene import PosedScene
from compose.viewer import Viewer, build_viewer_scene, camera_frustums, splat_arrays
from scene4d.contracts.cameras import Cameras
from scene4d.conventions import normalized_time, project_points
from scene4d.dynamic_object import DynamicObject
from scene4d.errors import InputError
from scene4d.fit.rig import save_rig
from scene4d.gaussians import Gaussians
from scene4d.motion.skinning import ControlPointDeformation
from scene4d.motion.trajectory import RigidTrajectory
from scene4d.ply import save_ply
from scene4d.render.render import render

T = 5


def moving_object(seed: int) -> DynamicObject:
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(20, 3, generator=g) * 0.2
    gaussians = Gaussians.from_points(points, torch.rand(20, 3, generator=g), sh_degree=1, scale=0.05, opacity=0.8)
    with torch.no_grad():
        gaussians.params["quats"].copy_(torch.randn(20, 4, generator=g))
        gaussians.params["scales"].add_(torch.randn(20, 3, generator=g) * 0.5)
    path = torch.tensor([[-0.5, 0.0, 3.0], [-0.2, 0.1, 3.0], [0.2, 0.1, 3.2], [0.5, 0.0, 3.4]])
    trajectory = RigidTrajectory(4, path)
    with torch.no_grad():
        trajectory.rotation_knots[:, 1] = torch.linspace(0.0, 0.8, 4)
    return DynamicObject(gaussians, ControlPointDeformation(points[:4].clone(), 4, radius=0.3), trajectory)


def background() -> Gaussians:
    g = torch.Generator().manual_seed(7)
    return Gaussians.from_points(torch.randn(30, 3, generator=g) + torch.tensor([0.0, 0.0, 6.0]),
                                 torch.rand(30, 3, generator=g), sh_degree=0, scale=0.3, opacity=0.9)


def cameras() -> Cameras:
    viewmats = np.tile(np.eye(4), (T, 1, 1))
    viewmats[:, :3, :3] = Rotation.from_euler("y", np.linspace(-10, 10, T)[:, None], degrees=True).as_matrix()
    viewmats[:, 0, 3] = np.linspace(-0.2, 0.2, T)
    Ks = np.tile(np.array([[40.0, 0.0, 16.0], [0.0, 42.0, 12.0], [0.0, 0.0, 1.0]]), (T, 1, 1))
    return Cameras(Ks=Ks, viewmats=viewmats, width=32, height=24)


def make_run(root):
    model = moving_object(0)
    save_rig(model, root / "objects" / "1" / "rig", {"object_id": 1, "name": "ball", "num_frames": T})
    (root / "objects" / "2").mkdir(parents=True)  # an object whose fit never finished: no rig
    save_ply(root / "background" / "background.ply", background())
    (root / "frames").mkdir()
    (root / "frames" / "frames.json").write_text(json.dumps({"num_frames": T}))
    return model


def test_covariances_are_rotated_squared_scales():
    g = torch.Generator().manual_seed(1)
    quats, scales = torch.randn(10, 4, generator=g), torch.rand(10, 3, generator=g) + 0.05
    posed = PosedScene(means=torch.randn(10, 3, generator=g), quats=quats, scales=scales,
                       opacities=torch.rand(10, generator=g), colors=torch.randn(10, 4, 3, generator=g),
                       labels=torch.zeros(10, dtype=torch.long), sh_degree=1)
    arrays = splat_arrays(posed)
    rotations = Rotation.from_quat(quats[:, [1, 2, 3, 0]].numpy()).as_matrix()  # scipy is xyzw
    expected = rotations @ np.stack([np.diag(s ** 2) for s in scales.numpy()]) @ rotations.transpose(0, 2, 1)
    np.testing.assert_allclose(arrays["covariances"], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(arrays["centers"], posed.means.numpy())
    np.testing.assert_allclose(arrays["opacities"][:, 0], posed.opacities.numpy())
    assert {k: v.dtype for k, v in arrays.items()} == dict.fromkeys(arrays, np.float32)
    assert arrays["rgbs"].min() >= 0.0 and arrays["rgbs"].max() <= 1.0


def test_colours_are_the_rendered_degree_zero_colours():
    # One Gaussian seen head-on; the centre pixel's colour divided by its alpha is the Gaussian's colour.
    target = torch.tensor([[0.2, 0.7, 0.4]])
    gaussians = Gaussians.from_points(torch.tensor([[0.0, 0.0, 3.0]]), target, sh_degree=0, scale=0.3, opacity=0.6)
    posed = PosedScene(gaussians.get_means(), gaussians.get_quats(), gaussians.get_scales(),
                       gaussians.get_opacities(), gaussians.colors(), torch.zeros(1, dtype=torch.long), 0)
    K = torch.tensor([[[30.0, 0.0, 8.5], [0.0, 30.0, 8.5], [0.0, 0.0, 1.0]]])
    with torch.no_grad():
        out = render(posed.means, posed.quats, posed.scales, posed.opacities, posed.colors, torch.eye(4)[None], K,
                     17, 17, sh_degree=0, backend="reference")
    rendered = out.colors[0, 8, 8] / out.alphas[0, 8, 8]
    arrays = splat_arrays(posed)
    np.testing.assert_allclose(arrays["rgbs"][0], rendered.numpy(), atol=1e-5)
    np.testing.assert_allclose(arrays["rgbs"][0], target[0].numpy(), atol=1e-5)


def test_frustums_look_where_the_cameras_look():
    cams = cameras()
    poses = camera_frustums(cams)
    rotations = Rotation.from_quat(poses["wxyz"][:, [1, 2, 3, 0]]).as_matrix()
    np.testing.assert_allclose(rotations, cams.camtoworlds[:, :3, :3], atol=1e-6)
    ahead = poses["positions"] + 2.0 * rotations[:, :, 2]  # two units along each camera's +z
    pixels, depth = project_points(torch.from_numpy(ahead), torch.from_numpy(cams.viewmats),
                                   torch.from_numpy(cams.Ks))  # every point in every camera: keep camera t's own
    np.testing.assert_allclose(pixels.diagonal().T.numpy(), cams.Ks[:, :2, 2], atol=1e-6)
    np.testing.assert_allclose(depth.diagonal().numpy(), 2.0, atol=1e-6)
    np.testing.assert_allclose(poses["fovs"], 2 * math.atan(12 / 42))
    np.testing.assert_allclose(poses["aspects"], 32 / 24)


def test_build_viewer_scene_from_a_run(tmp_path):
    model = make_run(tmp_path)
    scene = build_viewer_scene(tmp_path)
    assert scene.num_frames == T
    assert [(o.object_id, o.name) for o in scene.objects] == [(1, "ball")]
    torch.testing.assert_close(scene.background.get_means(), background().get_means())
    time = float(normalized_time(3, T))
    with torch.no_grad():
        posed = scene.posed(time, include_background=False)
        expected = model.posed(torch.tensor([time]))
    torch.testing.assert_close(posed.means, expected.means[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(posed.scales, expected.scales[0], rtol=1e-5, atol=1e-7)


def test_build_viewer_scene_without_anything_to_show(tmp_path):
    (tmp_path / "objects" / "1").mkdir(parents=True)
    with pytest.raises(InputError, match="nothing to show"):
        build_viewer_scene(tmp_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_scrubs_toggles_and_stops(tmp_path):
    pytest.importorskip("viser", reason="viser is not installed (pip install viser)")
    make_run(tmp_path)
    scene = build_viewer_scene(tmp_path)
    port = _free_port()
    viewer = Viewer(scene, "127.0.0.1", port, cameras=cameras())
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.status == 200 and b"<html" in response.read().lower()
        handle = viewer.objects[1]
        viewer.time_slider.value = 3
        with torch.no_grad():
            expected = splat_arrays(scene.posed(float(normalized_time(3, T)), include_background=False))
            first = splat_arrays(scene.posed(0.0, include_background=False))
        np.testing.assert_allclose(handle.centers, expected["centers"], atol=1e-6)
        assert not np.allclose(expected["centers"], first["centers"])
        viewer.toggles[1].value = False
        assert not handle.visible
        viewer.time_slider.value = 0  # hidden objects are not re-posed ...
        np.testing.assert_allclose(handle.centers, expected["centers"], atol=1e-6)
        viewer.toggles[1].value = True  # ... until they are shown again
        np.testing.assert_allclose(handle.centers, first["centers"], atol=1e-6)
        viewer.toggles["background"].value = False
        assert not viewer.background.visible
        assert len(viewer.frustums) == T
        viewer.play.value = True
        viewer.step_playback()
        assert viewer.frame == 1
    finally:
        viewer.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
