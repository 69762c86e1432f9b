"""The scene section's measurements: on scenes whose every pixel and point is known, and on a tiny pipeline run."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from benchmarks import harness, scene_bench
from benchmarks.synthetic.generate import generate_scene
from benchmarks.synthetic.io import write_scene
from benchmarks.synthetic_eval import object_trajectories
from compose.interactions import InteractionConfig
from compose.pipeline import STAGES
from compose.scene import Scene, SceneObject
from scene4d.contracts.cameras import Cameras
from scene4d.contracts.depth import DepthMaps
from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks
from scene4d.contracts.tracks import PointTracks
from scene4d.conventions import project_points
from scene4d.dynamic_object import DynamicObject
from scene4d.fit.observations import ObjectObservations
from scene4d.gaussians import Gaussians
from scene4d.metrics.lpips import load_lpips_alex
from scene4d.motion.skinning import ControlPointDeformation
from scene4d.motion.trajectory import RigidTrajectory
from tests.test_pipeline_end_to_end import TINY

W, H, T = 64, 48, 8
K = np.array([[60.0, 0.0, 32.0], [0.0, 60.0, 24.0], [0.0, 0.0, 1.0]])
HIDDEN = [3, 7]
MACHINE = {"cpu_count": 2, "cpu_affinity": 2, "cpu_model": "x86_64", "platform": "Linux", "python": "3.11",
           "torch": "2", "torch_threads": 2, "torch_interop_threads": 2, "opencv": "4", "opencv_threads": 2,
           "requested_threads": 2, "load_average": [1.0, 1.0, 1.0], "commit": "abc", "dirty": False}


@pytest.fixture(scope="module")
def model():
    return load_lpips_alex()


def square(start, end, seed, side=9, spacing=0.06, knots=4):
    """A flat opaque square of ``side`` x ``side`` Gaussians facing the camera, moving from ``start`` to ``end``
    (translation knots on a line; constant depth when both share z)."""
    g = torch.Generator().manual_seed(seed)
    offsets = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    ys, xs = torch.meshgrid(offsets, offsets, indexing="ij")
    points = torch.stack([xs.flatten(), ys.flatten(), torch.zeros(side * side)], dim=-1)
    gaussians = Gaussians.from_points(points, torch.rand(side * side, 3, generator=g), sh_degree=0,
                                      scale=0.75 * spacing, opacity=0.99)
    path = torch.stack([torch.lerp(torch.tensor(start), torch.tensor(end), w) for w in torch.linspace(0, 1, knots)])
    return DynamicObject(gaussians, ControlPointDeformation(points[:4].clone(), knots, radius=0.3),
                         RigidTrajectory(knots, path))


def backdrop():
    xs, ys = torch.meshgrid(torch.linspace(-4.5, 4.5, 19), torch.linspace(-3.0, 3.0, 13), indexing="xy")
    plane = torch.stack([xs.flatten(), ys.flatten(), torch.full((xs.numel(),), 6.0)], dim=-1)
    colors = torch.stack([0.5 + 0.4 * torch.sin(2 * plane[:, 0]), 0.5 + 0.4 * torch.cos(3 * plane[:, 1]),
                          torch.full((xs.numel(),), 0.5)], dim=-1)
    return Gaussians.from_points(plane, colors, sh_degree=0, scale=0.35, opacity=0.99)


def known_scene():
    """A backdrop, a square moving across it at depth 3 and a still square in front at depth 2.2 overlapping it."""
    return Scene(backdrop(), [SceneObject(1, "mover", square([-0.4, 0.0, 3.0], [0.2, 0.1, 3.0], 0)),
                              SceneObject(2, "front", square([0.1, 0.15, 2.2], [0.1, 0.15, 2.2], 1, side=5))], T)


def cameras(num_frames=T, step=0.05):
    viewmats = np.tile(np.eye(4), (num_frames, 1, 1))
    viewmats[:, 0, 3] = -step * np.arange(num_frames)
    return Cameras(Ks=np.tile(K, (num_frames, 1, 1)), viewmats=viewmats, width=W, height=H)


def object_masks(scene, cams):
    """(O, T, H, W) each object's rendered alpha > 0.5, alone and as seen (what is in front removed)."""
    alone = {obj.object_id: scene_bench.render_inputs(scene, cams, "torch", include_background=False,
                                                      object_ids=[obj.object_id])[1] > 0.5 for obj in scene.objects}
    return alone, ObjectMasks(torch.stack([alone[1] & ~alone[2], alone[2]]).numpy(), [1, 2])




def test_a_scene_scored_against_its_own_render_is_perfect_and_errors_outside_the_mask_stay_outside(model):
    scene, cams = known_scene(), cameras()
    colors, _ = scene_bench.render_inputs(scene, cams, "torch")
    union = torch.from_numpy(object_masks(scene, cams)[1].union())
    perfect = scene_bench.image_scores(colors, colors, union, model)
    for key in ("psnr", "psnr_mask"):
        assert torch.all(perfect[key] == 100.0)
    for key in ("ssim", "ssim_mask"):
        assert torch.allclose(perfect[key], torch.ones(T), atol=1e-5)
    for key in ("lpips", "lpips_mask"):
        assert torch.all(perfect[key].abs() < 1e-6)

    pred = colors * 0.5
    target = pred + 0.1 * (~union)[..., None]
    scores = scene_bench.image_scores(pred, target, union, model)
    outside = (~union).double().flatten(1).mean(1)
    # MSE over every pixel and channel is 0.1^2 times the share of pixels outside the mask.
    assert scores["psnr"].double() == pytest.approx(-10 * torch.log10(0.01 * outside), abs=1e-3)
    assert torch.all(scores["psnr_mask"] == 100.0)
    assert torch.allclose(scores["ssim_mask"], torch.ones(T), atol=1e-5)
    assert torch.all(scores["lpips_mask"].abs() < 1e-6) and torch.all(scores["lpips"] > 1e-3)

    inside = scene_bench.image_scores(pred, pred + 0.1 * union[..., None], union, model)
    assert torch.all(inside["psnr_mask"] < 21) and torch.all(inside["lpips_mask"] > 1e-3)


def test_masked_lpips_of_a_tiny_mask_looks_at_a_32_pixel_window(model):
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 1, H, W, 3, generator=g)
    corner = torch.zeros(1, H, W, dtype=torch.bool)
    corner[0, 0, 0] = True
    far = torch.zeros_like(corner)
    far[0, H - 1, W - 1] = True
    assert scene_bench._box(corner[0]) == (0, 32, 0, 32)
    assert scene_bench._box(far[0]) == (H - 32, H, W - 32, W)
    # Only the masked pixel is compared: changing everything else leaves the score as it was.
    changed = torch.where(corner[..., None], target, 1.0 - target)
    assert float(scene_bench.masked_lpips(pred, changed, corner, model)) == pytest.approx(
        float(scene_bench.masked_lpips(pred, target, corner, model)), abs=1e-6)
    assert torch.isnan(scene_bench.masked_lpips(pred, target, torch.zeros_like(corner), model)).all()


def test_object_iou_is_one_for_its_own_alpha_and_ignores_what_covers_it():
    scene, cams = known_scene(), cameras()
    alone, masks = object_masks(scene, cams)
    assert (alone[1] & alone[2]).any(), "the front square must hide part of the mover"
    ious = scene_bench.object_ious(scene, cams, masks, "torch")
    assert torch.allclose(ious[1], torch.ones(T)) and torch.allclose(ious[2], torch.ones(T))

    # Alone, a mask shifted by two columns scores the plain IoU of the two silhouettes.
    scene.objects = scene.objects[1:]
    shifted = np.roll(alone[2].numpy(), 2, axis=2)
    ious = scene_bench.object_ious(scene, cams, ObjectMasks(shifted[None], [2]), "torch")
    pred = alone[2].numpy()
    expected = (pred & shifted).sum(axis=(1, 2)) / (pred | shifted).sum(axis=(1, 2))
    assert ious[2].numpy() == pytest.approx(expected) and np.all(expected < 0.8)


def test_novel_view_cameras_turn_45_degrees_about_the_object_centre():
    still = square([0.0, 0.0, 3.0], [0.0, 0.0, 3.0], 0)
    scene, cams = Scene(None, [SceneObject(1, "still", still)], T), cameras(step=0.0)
    path = scene_bench.novel_view_cameras(scene, cams, frame=2)
    centres = torch.linalg.inv(path.viewmats.double())[:, :3, 3]
    # Up is -y (OpenCV y points down); the camera sits 3 in front of the centre (0, 0, 3), offset (0, 0, -3).
    # Azimuth a about up takes the offset to (3 sin a, 0, -3 cos a); elevation e raises it to (0, -3 sin e, -3 cos e).
    r = 3 * math.sin(math.radians(45))
    expected = torch.tensor([[r, 0, 3 - r], [-r, 0, 3 - r], [0, -r, 3 - r], [0, r, 3 - r]], dtype=torch.float64)
    assert torch.allclose(centres, expected, atol=1e-5)
    forward = path.viewmats[:, 2, :3].double()
    towards = torch.nn.functional.normalize(torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64) - centres, dim=-1)
    assert torch.allclose(forward, towards, atol=1e-5)
    assert torch.allclose(path.times, torch.full((4,), 2 / (T - 1)))
    assert torch.allclose(path.Ks, torch.from_numpy(K).float().expand(4, 3, 3))


def test_novel_view_lpips_is_zero_without_a_turn_and_positive_with_one(model):
    scene, cams = known_scene(), cameras()
    colors, _ = scene_bench.render_inputs(scene, cams, "torch")
    union = torch.from_numpy(object_masks(scene, cams)[1].union())
    whole, objects = scene_bench.novel_view_lpips(scene, cams, colors, union, model, angles=((0.0, 0.0),),
                                                     backend="torch")
    assert whole.shape == (T, 1) and torch.all(whole.abs() < 1e-5)
    turned, turned_objects = scene_bench.novel_view_lpips(scene, cams, colors, union, model,
                                                          angles=((0.0, 45.0), (45.0, 0.0)), backend="torch")
    assert turned.shape == (T, 2) and torch.all(turned > 0.05)
    # Objects alone over black against the frame blacked out around them differ even unturned, where the
    # backdrop blends into the objects' edge pixels; turning them away costs more.
    assert objects.shape == (T, 1) and torch.all(objects[:, 0] < turned_objects.min(dim=1).values)


def _tracks_on(scene, cams, object_id, indices):
    """(P, T, 2) projections of the object's Gaussians ``indices`` through each frame's camera."""
    with torch.no_grad():
        means = object_trajectories(scene, object_id).double()
    viewmats, Ks = torch.from_numpy(cams.viewmats), torch.from_numpy(cams.Ks)
    return torch.stack([project_points(means[f, indices], viewmats[f:f + 1], Ks[f:f + 1])[0][0]
                        for f in range(T)], dim=1)


def test_tracks_made_by_the_gaussians_are_followed_exactly_and_offsets_are_measured():
    scene = known_scene()
    scene.objects = scene.objects[:1]
    cams = cameras()
    on_object = _tracks_on(scene, cams, 1, torch.tensor([10, 30, 40, 50, 70])).numpy()
    off_object = np.tile([[[2.0, 2.0]]], (1, T, 1))  # the top-left corner: only backdrop there
    xy = np.concatenate([on_object, off_object])
    visible, labels = np.ones(xy.shape[:2], bool), np.ones(len(xy), np.int32)
    errors = scene_bench.track_errors(scene, cams, PointTracks(xy, visible, labels), {1: 1}, HIDDEN, "torch")
    assert errors["tracks_attached"] == 5 and errors["tracks_total"] == 6
    assert errors["track_points"] == 5 * (T - 1)
    assert errors["track_epe_fitted_px"] < 1e-3 and errors["track_epe_hidden_px"] < 1e-3
    # The square moves 0.6 units right at depth 3 while the camera pans 0.35: about 5 px (f = 60) over the clip.
    assert errors["track_epe_still_px"] > 1.0

    moved = xy.copy()
    moved[:, HIDDEN] += [3.0, 4.0]
    errors = scene_bench.track_errors(scene, cams, PointTracks(moved, visible, labels), {1: 1}, HIDDEN, "torch")
    assert errors["track_epe_hidden_px"] == pytest.approx(5.0, abs=1e-3)
    assert errors["track_epe_fitted_px"] < 1e-3


def ball_shell(radius, seed, n=400):
    g = torch.Generator().manual_seed(seed)
    points = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1) * radius
    gaussians = Gaussians.from_points(points, torch.full((n, 3), 0.5), sh_degree=0, scale=0.02, opacity=0.99)
    path = torch.tensor([0.0, 0.0, 3.0]).expand(4, 3)
    return DynamicObject(gaussians, ControlPointDeformation(points[:4].clone(), 4, radius=radius),
                         RigidTrajectory(4, path))


def test_penetration_counts_a_ball_inside_another_and_keeps_the_background_apart():
    scene = Scene(backdrop(), [SceneObject(1, "big", ball_shell(0.3, 0)), SceneObject(2, "small", ball_shell(0.1, 1))],
                  num_frames=2)
    result = scene_bench.remaining_penetration(scene, cameras(num_frames=2), InteractionConfig())
    assert result["pairs"]["2-1"] == pytest.approx(1.0) and result["pairs"]["1-2"] == 0.0
    assert result["pairs"]["1-0"] == 0.0 and result["pairs"]["2-0"] == 0.0  # 3 units in front of the backdrop
    assert result["objects"] == result["max"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, model):
    """The end-to-end test's tiny clip (8 frames so two are hidden) through every stage, then measured."""
    root = tmp_path_factory.mktemp("scene_bench")
    clip = generate_scene(seed=3, num_frames=T, width=W, height=H, num_objects=1, camera_motion="static",
                          num_extra_views=0)
    write_scene(clip, root / "clip")
    config = scene_bench.pipeline_config(None, 0, TINY)
    row = scene_bench.run_clip(root / "clip", root / "run", config, model)
    return root / "run", config, row


def test_the_object_fit_never_sees_the_frames_the_section_calls_hidden(tiny_run):
    run, config, row = tiny_run
    assert config.holdout_every == 4 and row["frames"] == f"{T - len(HIDDEN)}+{len(HIDDEN)}"
    masks = ObjectMasks.load(run / "masks")
    observations = ObjectObservations.gather(1, Frames.load(run / "frames"), masks, DepthMaps.load(run / "depth"),
                                             Cameras.load(run / "cameras"), PointTracks.load(run / "tracks"),
                                             config.holdout_every)
    visible = [f for f in range(T) if masks.of(1)[f].any()]
    assert sorted(observations.train_frames.tolist()) == [f for f in visible if f not in HIDDEN]
    assert len(row["object_iou_hidden"]) == 1 and 0.0 <= row["object_iou_hidden"][0] <= 1.0


def test_the_row_carries_the_manifest_stages_and_a_leaked_frame_is_refused(tiny_run, model, tmp_path):
    run, config, row = tiny_run
    manifest = json.loads((run / "manifest.json").read_text())
    assert list(row["stages"]) == [stage.name for stage in STAGES]
    for name, record in row["stages"].items():
        assert record["wall_s"] == manifest["stages"][name]["wall_time_s"]
        assert row["backends"][name] == manifest["stages"][name]["backend"]
    assert row["total_s"] == pytest.approx(sum(r["wall_time_s"] for r in manifest["stages"].values()))
    assert row["resumed"] == []

    section = {"name": "scene", "title": "Whole pipeline", "about": scene_bench.ABOUT, "settings": {},
               "tables": scene_bench.TABLES, "rows": [row], "errors": [], "wall_s": 1.0, "cpu_s": 1.0,
               "load_before": 0.0, "load_after": 0.0}
    report = {"command": "test", "date": "today", "json": "b.json", "preset": "full", "machine": MACHINE,
              "sections": [section], "wall_s": 1.0, "cpu_s": 1.0}
    harness.write_outputs(report, tmp_path / "B.md", tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text())["sections"][0]["rows"][0]["stages"] == row["stages"]
    markdown = (tmp_path / "B.md").read_text()
    assert all(key in row for columns in scene_bench.TABLES for key, _, _ in columns)
    for name, record in row["stages"].items():
        assert f"| clip | {name} | {record['backend']} | {record['wall_s']:.1f} |" in markdown

    leaked = tmp_path / "leaked"
    shutil.copytree(run, leaked)
    fit_json = leaked / "objects" / "1" / "fit.json"
    fit = json.loads(fit_json.read_text())
    for frame in fit["metrics"]["per_frame"]:
        frame["seen"] = frame["seen"] or frame["frame"] == HIDDEN[0]
    fit_json.write_text(json.dumps(fit))
    with pytest.raises(RuntimeError, match="object 1 was fitted on hidden frames"):
        scene_bench.evaluate_run(leaked, config, model)
    shutil.copy(run / "objects" / "1" / "fit.json", fit_json)
    background_json = leaked / "background" / "fit.json"
    background = json.loads(background_json.read_text())
    assert HIDDEN[0] not in background["fit_frames"] and len(background["fit_frames"]) == T - len(HIDDEN)
    background_json.write_text(json.dumps({**background, "fit_frames": list(range(T))}))
    with pytest.raises(RuntimeError, match="background was fitted on hidden frames"):
        scene_bench.evaluate_run(leaked, config, model)
