import json

import av
import numpy as np
import pytest
import torch

from compose.novel_views import NovelViewConfig, render_novel_views, render_path, scene_center, standard_paths
from compose.scene import Scene, SceneObject
from compose.video_writer import colorize_depth, colorize_ids, depth_range
from scene4d.contracts.cameras import Cameras
from scene4d.dynamic_object import DynamicObject
from scene4d.errors import InputError
from scene4d.gaussians import Gaussians
from scene4d.motion.skinning import ControlPointDeformation
from scene4d.motion.trajectory import RigidTrajectory

W, H, T = 32, 24, 3
K = np.array([[30.0, 0.0, 16.0], [0.0, 30.0, 12.0], [0.0, 0.0, 1.0]])


def moving_object(start, end, color, seed, knots=4):
    g = torch.Generator().manual_seed(seed)
    points = torch.nn.functional.normalize(torch.randn(40, 3, generator=g), dim=1) * 0.3
    gaussians = Gaussians.from_points(points, torch.tensor(color).expand(40, 3), sh_degree=0, scale=0.08,
                                      opacity=0.95)
    path = torch.stack([torch.lerp(torch.tensor(start), torch.tensor(end), w) for w in torch.linspace(0, 1, knots)])
    return DynamicObject(gaussians, ControlPointDeformation(points[:4].clone(), knots, radius=0.3),
                         RigidTrajectory(knots, path))


def make_scene():
    xs, ys = torch.meshgrid(torch.linspace(-2.5, 2.5, 12), torch.linspace(-2.0, 2.0, 10), indexing="xy")
    plane = torch.stack([xs.flatten(), ys.flatten(), torch.full((120,), 4.0)], dim=-1)
    colors = torch.stack([0.5 + 0.4 * torch.sin(plane[:, 0]), 0.5 + 0.4 * torch.cos(plane[:, 1]),
                          torch.full((120,), 0.5)], dim=-1)
    background = Gaussians.from_points(plane, colors, sh_degree=0, scale=0.3, opacity=0.95)
    objects = [SceneObject(1, "red", moving_object([-0.6, 0.0, 2.0], [-0.3, 0.2, 2.0], (0.9, 0.1, 0.1), 0)),
               SceneObject(2, "blue", moving_object([0.6, 0.0, 2.5], [0.5, -0.2, 2.5], (0.1, 0.2, 0.9), 1))]
    return Scene(background, objects, num_frames=T)


def make_cameras():
    viewmats = np.tile(np.eye(4), (T, 1, 1))
    viewmats[:, 0, 3] = -0.1 * np.arange(T)
    return Cameras(Ks=np.tile(K, (T, 1, 1)), viewmats=viewmats, width=W, height=H)


def decode(path):
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def direct_render(scene, cameras, **select):
    """The input path rendered straight through Scene.render: colours, depths and ids per frame."""
    rgb, depth, ids = [], [], []
    for t in range(T):
        out, labels = scene.render(t / (T - 1), torch.from_numpy(cameras.viewmats[t:t + 1]).float(),
                                   torch.from_numpy(cameras.Ks[t:t + 1]).float(), W, H, with_labels=True,
                                   backend="torch", **select)
        rgb.append((out.colors[0].detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy())
        depth.append(torch.where(out.alphas[0, ..., 0] > 0.5, out.depths[0, ..., 0], 0.0).detach().numpy())
        ids.append(labels[0].numpy())
    return np.stack(rgb), np.stack(depth), np.stack(ids)


def test_standard_videos_are_written_with_their_frame_counts_and_content(tmp_path):
    scene, cameras = make_scene(), make_cameras()
    camera_path = tmp_path / "path.json"
    camera_path.write_text(json.dumps({"fps": 4, "keyframes": [
        {"time": 0.0, "position": [0.0, 0.0, -1.0], "look_at": [0.0, 0.0, 2.0]},
        {"time": 1.0, "position": [0.5, -0.3, -1.0], "look_at": [0.0, 0.0, 2.0]}]}))
    config = NovelViewConfig(frames_per_path=4, camera_path=str(camera_path), backend="torch", fps=10)
    written = render_novel_views(scene, cameras, tmp_path / "videos", config)

    counts = {"input": 3, "ids": 3, "depth": 3, "fixed": 3, "orbit": 4, "bullet_time": 4, "path": 5,
              "object_1": 3, "object_2": 3, "background": 3}
    assert [v.name for v in written] == list(counts)
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == sorted(f"{n}.mp4" for n in counts)
    decoded = {}
    for video in written:
        assert video.path == tmp_path / "videos" / f"{video.name}.mp4"
        decoded[video.name] = decode(video.path)
        assert decoded[video.name].shape == (counts[video.name], H, W, 3), video.name
        assert video.num_frames == counts[video.name]

    rgb, depth, ids = direct_render(scene, cameras)
    near, far = depth_range(depth)
    references = {"input": rgb, "ids": colorize_ids(ids), "depth": colorize_depth(depth, near, far),
                  "object_1": direct_render(scene, cameras, include_background=False, object_ids=[1])[0],
                  "background": direct_render(scene, cameras, object_ids=[])[0]}
    for name, reference in references.items():
        error = np.abs(decoded[name].astype(float).mean(axis=(1, 2)) - reference.astype(float).mean(axis=(1, 2)))
        assert error.max() < 4.0, name
    # The fixed camera holds frame 0's view: its first frame is the input's first frame.
    assert np.abs(decoded["fixed"][0].astype(float) - decoded["input"][0]).mean() < 2.0
    # Both objects and the background show up in the id video, each where it is in front.
    assert set(np.unique(ids)) == {0, 1, 2}
    with av.open(str(tmp_path / "videos" / "path.mp4")) as container:
        assert container.streams.video[0].average_rate == 4


def test_orbit_of_zero_degrees_is_the_input_view():
    scene, cameras = make_scene(), make_cameras()
    config = NovelViewConfig(frames_per_path=3, orbit_azimuth_deg=0.0, orbit_elevation_deg=(0.0, 0.0),
                             frozen_time=0.5, backend="torch")
    paths, _, width, height = standard_paths(scene, cameras, config)
    assert (width, height) == (W, H)
    assert torch.equal(paths["orbit"].viewmats, paths["input"].viewmats[1].expand(3, 4, 4))
    orbit = [f.rgb for f in render_path(scene, paths["orbit"], W, H, backend="torch")]
    assert len(orbit) == 3
    input_view = direct_render(scene, cameras)[0][1]
    for frame in orbit:
        assert np.array_equal(frame, input_view)


def test_resolution_scale_and_centre():
    scene, cameras = make_scene(), make_cameras()
    paths, _, width, height = standard_paths(scene, cameras, NovelViewConfig(resolution_scale=0.5))
    assert (width, height) == (W // 2, H // 2)
    assert torch.allclose(paths["input"].Ks[0, :2], torch.from_numpy(K[:2] / 2).float())
    # The orbit turns about the median of the objects' Gaussians at the frozen time.
    with torch.no_grad():
        posed = scene.posed(0.5, include_background=False)
    assert torch.equal(scene_center(scene, 0.5), posed.means.median(dim=0).values)
    scene.object(1).visible = scene.object(2).visible = False
    assert torch.allclose(scene_center(scene, 0.5)[2], torch.tensor(4.0))  # only the background is left


def test_bad_configs_are_input_errors(tmp_path):
    scene, cameras = make_scene(), make_cameras()
    with pytest.raises(InputError, match="unknown videos"):
        render_novel_views(scene, cameras, tmp_path, NovelViewConfig(videos=("input", "spin")))
    with pytest.raises(InputError, match="fixed_frame must be in"):
        render_novel_views(scene, cameras, tmp_path, NovelViewConfig(fixed_frame=T))
    scene.num_frames = T + 1
    with pytest.raises(InputError, match="3 cameras for a scene of 4 frames"):
        render_novel_views(scene, cameras, tmp_path, NovelViewConfig())
    assert list(tmp_path.iterdir()) == []
