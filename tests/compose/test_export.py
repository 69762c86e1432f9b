import json
from pathlib import Path

import numpy as np
import pycolmap
import pytest
import torch
from plyfile import PlyData
from scipy.spatial.transform import Rotation

from compose.export import (ExportConfig, export_plys, export_scene, opengl_camtoworlds, posed_to_gaussians,
                            transforms_json, viewmats_from_opengl, write_colmap_text)
from compose.scene import Scene, SceneObject
from scene4d.contracts.cameras import Cameras
from scene4d.conventions import project_points
from scene4d.dynamic_object import DynamicObject
from scene4d.gaussians import Gaussians
from scene4d.motion.skinning import ControlPointDeformation
from scene4d.motion.trajectory import RigidTrajectory
from scene4d.ply import load_ply

W, H, T = 64, 48, 3


def moving_object(start, end, seed, knots=4):
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(30, 3, generator=g) * 0.2
    gaussians = Gaussians.from_points(points, torch.rand(30, 3, generator=g), sh_degree=0, scale=0.05, opacity=0.7)
    with torch.no_grad():  # varied shapes, orientations and opacities, some near the ends of the range
        gaussians.params["scales"].add_(torch.randn(30, 3, generator=g))
        gaussians.params["quats"].copy_(torch.randn(30, 4, generator=g))
        gaussians.params["opacities"].copy_(torch.randn(30, generator=g) * 6)
    path = torch.stack([torch.lerp(torch.tensor(start), torch.tensor(end), w) for w in torch.linspace(0, 1, knots)])
    trajectory = RigidTrajectory(knots, path)
    with torch.no_grad():
        trajectory.rotation_knots.copy_(torch.linspace(0, 1, knots)[:, None] * torch.tensor([0.0, 0.8, 0.3]))
        trajectory.log_scale_knots.fill_(0.2)
    return DynamicObject(gaussians, ControlPointDeformation(points[:4].clone(), knots, radius=0.3), trajectory)


def make_scene():
    g = torch.Generator().manual_seed(3)
    background = Gaussians.from_points(torch.randn(50, 3, generator=g) + torch.tensor([0.0, 0.0, 5.0]),
                                       torch.rand(50, 3, generator=g), sh_degree=1, scale=0.2, opacity=0.9)
    with torch.no_grad():
        background.params["shN"].copy_(torch.randn(50, 3, 3, generator=g) * 0.1)
    objects = [SceneObject(1, "a", moving_object([-0.5, 0.0, 2.0], [0.0, 0.3, 2.2], 0)),
               SceneObject(2, "b", moving_object([0.7, 0.0, 3.0], [0.4, -0.2, 2.8], 1)),
               SceneObject(3, "hidden", moving_object([0.0, 0.0, 3.0], [0.0, 0.0, 3.0], 2), visible=False)]
    return Scene(background, objects, num_frames=T)


def make_cameras(shared_intrinsics=True):
    rotations = Rotation.from_euler("xyz", [[5, -10, 2], [0, 0, 0], [-8, 20, -4]], degrees=True).as_matrix()
    viewmats = np.tile(np.eye(4), (T, 1, 1))
    viewmats[:, :3, :3] = rotations
    viewmats[:, :3, 3] = [[0.1, -0.2, 0.3], [0.0, 0.0, 0.0], [-0.4, 0.1, 0.5]]
    Ks = np.tile(np.array([[50.0, 0.0, 32.0], [0.0, 52.0, 24.0], [0.0, 0.0, 1.0]]), (T, 1, 1))
    if not shared_intrinsics:
        Ks[2, 0, 0] = Ks[2, 1, 1] = 60.0
    return Cameras(Ks=Ks, viewmats=viewmats, width=W, height=H)


def assert_same_activations(loaded: Gaussians, posed, index):
    assert torch.equal(loaded.get_means(), posed.means[index])
    assert torch.allclose(loaded.get_quats(), torch.nn.functional.normalize(posed.quats[index], dim=-1), atol=1e-6)
    assert torch.allclose(loaded.get_scales(), posed.scales[index], rtol=1e-5)
    assert torch.allclose(loaded.get_opacities(), posed.opacities[index], atol=1e-6)
    assert torch.equal(loaded.colors(), posed.colors[index])


def test_plys_parse_and_round_trip_to_the_posed_gaussians(tmp_path):
    scene = make_scene()
    written = export_plys(scene, tmp_path / "ply")
    expected = {tmp_path / "ply" / "background.ply"}
    expected |= {tmp_path / "ply" / d / f"{t:05d}.ply" for t in range(T) for d in ("scene", "object_1", "object_2")}
    assert set(written) == expected and len(written) == len(expected)
    for t in range(T):
        with torch.no_grad():
            posed = scene.posed(t / (T - 1))
        assert posed.sh_degree == 1  # the objects' degree-0 colours are padded to the background's degree
        scene_file = tmp_path / "ply" / "scene" / f"{t:05d}.ply"
        assert PlyData.read(str(scene_file))["vertex"].count == 50 + 30 + 30
        assert_same_activations(load_ply(scene_file), posed, slice(None))
        for object_id in (1, 2):
            loaded = load_ply(tmp_path / "ply" / f"object_{object_id}" / f"{t:05d}.ply")
            assert_same_activations(loaded, posed, posed.labels == object_id)
    # Objects move: the world coordinates differ between frames.
    first, last = (load_ply(tmp_path / "ply" / "object_1" / f"{t:05d}.ply").get_means() for t in (0, T - 1))
    assert (last - first).norm(dim=1).min() > 0.1
    background = load_ply(tmp_path / "ply" / "background.ply")
    assert torch.equal(background.params["shN"], scene.background.params["shN"].detach())


def test_posed_to_gaussians_keeps_saturated_opacities_finite():
    scene = make_scene()
    posed = scene.posed(0.0)
    posed.opacities = posed.opacities.detach().clone()
    posed.opacities[:2] = torch.tensor([0.0, 1.0])
    gaussians = posed_to_gaussians(posed)
    assert torch.isfinite(gaussians.params["opacities"]).all()
    assert torch.allclose(gaussians.get_opacities()[:2], torch.tensor([0.0, 1.0]), atol=1e-6)
    assert torch.equal(gaussians.meta["object_ids"], posed.labels)


def test_opengl_conversion_known_value_and_round_trip():
    assert np.array_equal(opengl_camtoworlds(np.eye(4)[None])[0], np.diag([1.0, -1.0, -1.0, 1.0]))
    viewmats = make_cameras().viewmats
    assert np.allclose(viewmats_from_opengl(opengl_camtoworlds(viewmats)), viewmats, atol=1e-14, rtol=0)


@pytest.mark.parametrize("shared", [True, False])
def test_transforms_json_gives_back_our_cameras(tmp_path, shared):
    cameras = make_cameras(shared)
    scene = make_scene()
    frames_dir = tmp_path / "run" / "frames"
    written = export_scene(scene, cameras, tmp_path / "run" / "export", frames_dir,
                           ExportConfig(scene_plys=False, object_plys=False, colmap_text=False))
    assert written == [tmp_path / "run" / "export" / "transforms.json"]
    data = json.loads(written[0].read_text())
    assert (data["camera_model"], data["w"], data["h"]) == ("OPENCV", W, H)
    assert ("fl_x" in data) == shared
    assert len(data["frames"]) == T
    matrices = np.array([f["transform_matrix"] for f in data["frames"]])
    assert np.allclose(viewmats_from_opengl(matrices), cameras.viewmats, atol=1e-14, rtol=0)
    # file_path is relative to the folder of transforms.json and reaches the run's frames.
    for t, frame in enumerate(data["frames"]):
        assert (written[0].parent / frame["file_path"]).resolve() == (frames_dir / f"{t:05d}.png").resolve()

    # A point projects to the same pixel through nerfstudio's convention (OpenGL camera looking down -z).
    point = np.array([0.3, -0.2, 4.0])
    ours, _ = project_points(torch.tensor(point[None]), torch.from_numpy(cameras.viewmats),
                             torch.from_numpy(cameras.Ks))
    for t, (frame, matrix) in enumerate(zip(data["frames"], matrices)):
        intrinsics = data if shared else frame
        x, y, z = (np.linalg.inv(matrix) @ np.append(point, 1.0))[:3]
        assert z < 0
        pixel = [intrinsics["cx"] + intrinsics["fl_x"] * x / -z, intrinsics["cy"] - intrinsics["fl_y"] * y / -z]
        assert np.allclose(pixel, ours[t, 0].numpy(), atol=1e-9)


def test_colmap_text_reads_back_with_pycolmap(tmp_path):
    cameras = make_cameras(shared_intrinsics=False)
    scene = make_scene()
    export_scene(scene, cameras, tmp_path, tmp_path / "frames",
                 ExportConfig(scene_plys=False, object_plys=False, transforms_json=False))
    reconstruction = pycolmap.Reconstruction(str(tmp_path / "colmap"))
    assert reconstruction.num_images() == T
    assert len(reconstruction.cameras) == 2  # frames 0 and 1 share intrinsics, frame 2 zooms in
    for image in reconstruction.images.values():
        t = int(image.name.split(".")[0])
        assert image.name == f"{t:05d}.png"
        assert np.allclose(image.cam_from_world().matrix(), cameras.viewmats[t, :3], atol=1e-12, rtol=0)
        camera = reconstruction.cameras[image.camera_id]
        assert (camera.model.name, camera.width, camera.height) == ("PINHOLE", W, H)
        assert np.allclose(camera.calibration_matrix(), cameras.Ks[t])
    assert len(reconstruction.points3D) == 50
    points = [reconstruction.points3D[i] for i in sorted(reconstruction.points3D)]
    xyz = np.array([p.xyz for p in points])
    assert np.array_equal(xyz, scene.background.get_means().detach().double().numpy())
    rgb = np.array([p.color for p in points])
    expected = (scene.background.params["sh0"][:, 0].detach() * 0.28209479177387814 + 0.5).clamp(0, 1) * 255
    assert np.abs(rgb - expected.numpy()).max() <= 0.5 + 1e-4


def test_colmap_text_without_points(tmp_path):
    cameras = make_cameras()
    write_colmap_text(cameras, tmp_path / "colmap", [f"img{t}.jpg" for t in range(T)])
    reconstruction = pycolmap.Reconstruction(str(tmp_path / "colmap"))
    assert len(reconstruction.points3D) == 0 and len(reconstruction.cameras) == 1
    assert sorted(i.name for i in reconstruction.images.values()) == ["img0.jpg", "img1.jpg", "img2.jpg"]
    with pytest.raises(ValueError, match="image_names: expected 3"):
        write_colmap_text(cameras, tmp_path / "other", ["a.png"])
    with pytest.raises(ValueError, match="file_paths: expected 3"):
        transforms_json(cameras, ["a.png"])


def test_export_scene_writes_everything_by_default(tmp_path):
    written = export_scene(make_scene(), make_cameras(), tmp_path / "export", tmp_path / "frames",
                           ExportConfig(frame_stride=2))
    relative = sorted(str(Path(p).relative_to(tmp_path / "export")) for p in written)
    assert relative == sorted(["ply/background.ply", "transforms.json", "colmap/cameras.txt", "colmap/images.txt",
                               "colmap/points3D.txt"] + [f"ply/{d}/{t:05d}.ply" for t in (0, 2)
                                                         for d in ("scene", "object_1", "object_2")])
    assert all(Path(p).is_file() for p in written)
