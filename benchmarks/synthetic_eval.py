"""Synthetic section: run the pipeline on seeded synthetic scenes and score it against their ground truth.

Each scene (:func:`benchmarks.synthetic.generate_scene`, orbiting camera, two held-out views) is written as a clip and
the pipeline runs on its input view with the ground-truth masks given and every other stage weight-free, up to the
composed scene (no videos or exports). Then, against the ground truth:

- cameras: ATE (Sim(3)-aligned camera centres) and RPE (frame to frame), in ground-truth units (the camera orbits
  4.5 units from the scene's centre), and the relative error of the focal length;
- depth: AbsRel of the composed scene's rendered depth in the input view, separately on the objects (union of the
  true masks) and on the background, counted where the render is opaque (alpha > 0.5); each region gets its own
  least-squares scale (``scale``) and, separately, the scale of the camera alignment (``sim3``), which also checks
  that objects sit at the right depth relative to the background; plus AbsRel of the depth stage's maps;
- novel views: PSNR/SSIM/LPIPS on the held-out views, rendering the composed scene from the true held-out cameras
  mapped into the reconstruction's world (the pipeline has no way to take known cameras, so the reconstruction is
  aligned to the true world instead: see :func:`similarity_from_cameras`); for reference, the input view's PSNR
  through the estimated cameras and through the true input cameras mapped the same way (the gap between the two is
  what camera and geometry errors cost before any view extrapolation);
- tracks: each true surface track is attached to one Gaussian of its object at its first visible frame and that
  Gaussian is followed: 3D EPE in ground-truth units (nearest Gaussian after alignment) and 2D EPE in input-view
  pixels (nearest projected Gaussian on the object's front surface, estimated cameras, no alignment), both over the
  visible frames after the attaching one; for scale, the 2D EPE of points that stay where they were attached;
- penetration: the compose stage's own interaction metric (largest mean penetration fraction over object pairs).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmarks.synthetic import generate_scene, read_view, write_scene
from compose.pipeline import STAGES, PipelineConfig, PipelineInputs
from compose.runner import run_pipeline
from compose.scene import Scene
from compose.scene_io import load_scene
from scene4d.config_loading import load_config
from scene4d.contracts.cameras import Cameras
from scene4d.contracts.depth import DepthMaps
from scene4d.conventions import normalized_time
from scene4d.metrics.camera import absolute_trajectory_error, relative_pose_error, umeyama
from scene4d.metrics.depth import abs_rel
from scene4d.metrics.image import psnr, ssim
from scene4d.metrics.lpips import LPIPSAlex, lpips

ROOT = Path(__file__).resolve().parents[1]
RUN_STAGES = ("decode", "masks", "tracks", "cameras", "depth", "fit", "background", "compose")
OPAQUE = 0.5
FRONT_SURFACE_TOLERANCE = 0.1


@dataclass
class SyntheticSettings:
    """What the synthetic section generates and how the pipeline runs on it.

    Attributes:
        seeds: one scene per seed.
        num_frames, width, height: clip size (the pipeline keeps the native size: ``video.long_side`` = width).
            Below about 256x192 too few SIFT features survive for SfM and the camera stage falls back to
            rotation-only, which cannot follow the orbit.
        num_objects: objects per scene (1-3).
        preset: pipeline preset in ``configs/``.
        overrides: extra ``section.key=value`` pipeline overrides.
    """

    seeds: tuple[int, ...] = (0, 1)
    num_frames: int = 16
    width: int = 256
    height: int = 192
    num_objects: int = 2
    preset: str = "quick"
    overrides: list[str] = field(default_factory=list)


def similarity_from_cameras(pred_viewmats: torch.Tensor, target_viewmats: torch.Tensor, pred_depth: float,
                            target_depth: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Similarity taking the reconstruction's world onto the true one: ``x_true = s * R @ x_pred + t``.

    Umeyama (:func:`scene4d.metrics.camera.umeyama`) on corresponding points: the camera centres, and a point on
    each optical axis at the scene's typical depth (``pred_depth`` ahead of the predicted camera, ``target_depth``
    ahead of the true one). Centres alone leave the rotation about a nearly straight camera path (a short orbit
    arc) poorly fixed, and everything unfixed for a rotation-only estimate (all centres equal); the axis points pin
    both. Exact when the prediction is a similarity transform of the truth (depths then differ by the scale).

    Args:
        pred_viewmats: (T, 4, 4) predicted world-to-camera matrices.
        target_viewmats: (T, 4, 4) true ones.
        pred_depth: typical scene depth in the prediction's units (e.g. the median rendered depth).
        target_depth: the same in true units (e.g. the median true depth).

    Returns:
        ``(scale, rotation, translation)``: 0-dim, (3, 3), (3,) float64.
    """
    pred_c2w, target_c2w = torch.linalg.inv(pred_viewmats.double()), torch.linalg.inv(target_viewmats.double())
    pred_points = torch.cat([pred_c2w[:, :3, 3], pred_c2w[:, :3, 3] + pred_depth * pred_c2w[:, :3, 2]])
    target_points = torch.cat([target_c2w[:, :3, 3], target_c2w[:, :3, 3] + target_depth * target_c2w[:, :3, 2]])
    return umeyama(pred_points, target_points)


def cameras_into_prediction(target_viewmats: torch.Tensor, scale: torch.Tensor, rotation: torch.Tensor,
                            translation: torch.Tensor) -> torch.Tensor:
    """True cameras (C, 4, 4) as rigid world-to-camera matrices of the reconstruction's world.

    With ``x_true = s R x_pred + t``: ``V_true (s R x + t) = s (R_c R x + (R_c t + t_c) / s)``, so the camera with
    rotation ``R_c R`` and translation ``(R_c t + t_c) / s`` sees the prediction exactly as the true camera sees the
    truth (same pixels, depths divided by ``s``).
    """
    out = torch.zeros_like(target_viewmats, dtype=torch.float64)
    r_c, t_c = target_viewmats[:, :3, :3].double(), target_viewmats[:, :3, 3].double()
    out[:, :3, :3] = r_c @ rotation
    out[:, :3, 3] = (r_c @ translation + t_c) / scale
    out[:, 3, 3] = 1.0
    return out


def points_into_target(points: torch.Tensor, scale: torch.Tensor, rotation: torch.Tensor,
                       translation: torch.Tensor) -> torch.Tensor:
    """(..., 3) reconstruction-world points in the true world."""
    return scale * points.double() @ rotation.T + translation


def _project(points: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3) world points -> (N, 2) pixels and (N,) z-depths through one camera."""
    camera = points.double() @ viewmat[:3, :3].double().T + viewmat[:3, 3].double()
    z = camera[:, 2]
    return camera[:, :2] / z[:, None].clamp(min=1e-9) @ K[:2, :2].double().T + K[:2, 2].double(), z


def object_trajectories(scene: Scene, object_id: int) -> torch.Tensor:
    """(T, N, 3) world means of one object's Gaussians at every frame (edits applied)."""
    return torch.stack([scene.posed(float(normalized_time(f, scene.num_frames)), include_background=False,
                                    object_ids=[object_id]).means for f in range(scene.num_frames)])


def _attach_in_2d(scene: Scene, object_id: int, frame: int, means: torch.Tensor, viewmat: torch.Tensor,
                  K: torch.Tensor, points: torch.Tensor, width: int, height: int) -> list[int]:
    """Index of the Gaussian (of ``means`` (N, 3) at ``frame``) nearest to each of ``points`` (P, 2) in pixels among
    those on the object's front surface there (no farther than its rendered depth, with some tolerance)."""
    time = float(normalized_time(frame, scene.num_frames))
    rendered, _ = scene.render(time, viewmat[None].float(), K[None].float(), width, height,
                               include_background=False, object_ids=[object_id])
    pixels, z = _project(means, viewmat, K)
    chosen = []
    for point in points:
        x, y = (int(min(max(v, 0), size - 1)) for v, size in zip(point.tolist(), (width, height)))
        front = float(rendered.depths[0, y, x, 0])
        candidates = (z > 0) & (z <= front * (1 + FRONT_SURFACE_TOLERANCE)) if front > 0 else z > 0
        chosen.append(int((pixels - point).norm(dim=1).masked_fill(~candidates, math.inf).argmin()))
    return chosen


def track_errors(scene: Scene, cameras: Cameras, gt_tracks: dict, similarity: tuple, width: int, height: int
                 ) -> dict[str, float | None]:
    """3D and 2D end-point errors of the fitted Gaussians that start on the true tracks (module docstring).

    Args:
        scene: the composed scene; cameras: its input cameras.
        gt_tracks: ``tracks3d.npz`` of :func:`write_scene` as a dict (tracks3d, tracks2d, visibility, labels).
        similarity: ``(s, R, t)`` of :func:`similarity_from_cameras`.
        width, height: input view size.

    Returns:
        ``track_epe3d`` (true units), ``track_epe2d_px``, ``track_epe2d_static_px`` (points left where they were
        attached), None without a scored entry, and ``track_points`` (scored entries).
    """
    viewmats, Ks = torch.from_numpy(cameras.viewmats), torch.from_numpy(cameras.Ks)
    errors3d, errors2d, still = [], [], []
    for obj in scene.objects:
        rows = np.flatnonzero(gt_tracks["labels"] == obj.object_id)
        if not rows.size:
            continue
        visible = torch.from_numpy(gt_tracks["visibility"][rows])
        starts = visible.float().argmax(dim=1)
        means = object_trajectories(scene, obj.object_id).double()
        means_true = points_into_target(means, *similarity)
        true3d = torch.from_numpy(gt_tracks["tracks3d"][rows]).double()
        true2d = torch.from_numpy(gt_tracks["tracks2d"][rows]).double()
        for start in torch.unique(starts).tolist():
            group = (starts == start) & visible[:, start]
            if not group.any():
                continue
            scored = visible[group].clone()
            scored[:, start] = False
            nearest = torch.cdist(true3d[group, start], means_true[start]).argmin(dim=1)
            errors3d.append((means_true[:, nearest].transpose(0, 1) - true3d[group]).norm(dim=-1)[scored])
            chosen = _attach_in_2d(scene, obj.object_id, start, means[start], viewmats[start], Ks[start],
                                   true2d[group, start], width, height)
            followed = torch.stack([_project(means[f, chosen], viewmats[f], Ks[f])[0]
                                    for f in range(scene.num_frames)], dim=1)
            errors2d.append((followed - true2d[group]).norm(dim=-1)[scored])
            still.append((true2d[group, start:start + 1] - true2d[group]).norm(dim=-1)[scored])
    epe3d = torch.cat(errors3d) if errors3d else torch.zeros(0)
    epe2d = torch.cat(errors2d) if errors2d else torch.zeros(0)
    epe_still = torch.cat(still) if still else torch.zeros(0)
    return {"track_epe3d": float(epe3d.mean()) if epe3d.numel() else None,
            "track_epe2d_px": float(epe2d.mean()) if epe2d.numel() else None,
            "track_epe2d_static_px": float(epe_still.mean()) if epe_still.numel() else None,
            "track_points": int(epe3d.numel())}


def _depth_errors(rendered_depth: torch.Tensor, alphas: torch.Tensor, truth: torch.Tensor, objects: torch.Tensor,
                  scale: float) -> dict[str, float | None]:
    """AbsRel on objects and background, own least-squares scale and the camera alignment's scale."""
    opaque = alphas > OPAQUE
    result = {}
    for region, mask in (("objects", objects & opaque), ("background", ~objects & opaque)):
        if not mask.any():
            result[f"depth_absrel_{region}"] = result[f"depth_absrel_{region}_sim3"] = None
            continue
        result[f"depth_absrel_{region}"] = float(abs_rel(rendered_depth, truth, mask, align="scale"))
        result[f"depth_absrel_{region}_sim3"] = float(abs_rel(rendered_depth * scale, truth, mask, align="none"))
    result["opaque_fraction"] = float(opaque.float().mean())
    return result


@torch.no_grad()
def evaluate_run(clip: Path, run: Path, lpips_model: LPIPSAlex) -> dict:
    """Score a finished run (``run``) of the clip written by :func:`write_scene` (``clip``)."""
    truth = read_view(clip)
    num_frames, height, width = truth.depth.shape
    scene = load_scene(run / "scene")
    cameras = Cameras.load(run / "cameras")
    gt_viewmats = torch.from_numpy(truth.viewmats)
    pred_viewmats = torch.from_numpy(cameras.viewmats)
    rpe_translation, rpe_rotation = relative_pose_error(pred_viewmats, gt_viewmats)
    result = {
        "camera_method": cameras.method,
        "ate": float(absolute_trajectory_error(pred_viewmats, gt_viewmats)),
        "rpe_translation": float(rpe_translation), "rpe_rotation_deg": float(rpe_rotation),
        "focal_error": float(abs(cameras.Ks[0, 0, 0] / truth.Ks[0, 0, 0] - 1)),
    }

    times = [float(normalized_time(f, num_frames)) for f in range(num_frames)]
    renders = [scene.render(t, pred_viewmats[f:f + 1].float(), torch.from_numpy(cameras.Ks[f:f + 1]).float(),
                            width, height)[0] for f, t in enumerate(times)]
    colors = torch.cat([r.colors for r in renders]).clamp(0, 1)
    depths = torch.cat([r.depths for r in renders])[..., 0]
    alphas = torch.cat([r.alphas for r in renders])[..., 0]
    images = torch.from_numpy(truth.images).float() / 255
    true_depth = torch.from_numpy(truth.depth)
    result["input_psnr"] = float(psnr(colors, images).mean())
    opaque = alphas > OPAQUE
    pred_depth = float(depths[opaque].median()) if opaque.any() else 1.0
    similarity = similarity_from_cameras(pred_viewmats, gt_viewmats, pred_depth, float(true_depth.median()))
    result["alignment_scale"] = float(similarity[0])
    aligned = cameras_into_prediction(gt_viewmats, *similarity).float()
    true_Ks = torch.from_numpy(truth.Ks).float()
    aligned_colors = torch.cat([scene.render(t, aligned[f:f + 1], true_Ks[f:f + 1], width, height)[0].colors
                                for f, t in enumerate(times)]).clamp(0, 1)
    result["input_psnr_aligned"] = float(psnr(aligned_colors, images).mean())
    result.update(_depth_errors(depths, alphas, true_depth, torch.from_numpy(truth.masks.any(axis=0)),
                                float(similarity[0])))
    depth_maps = DepthMaps.load(run / "depth")
    confident = torch.from_numpy(depth_maps.confidence > 0)
    result["depth_stage_absrel"] = (float(abs_rel(torch.from_numpy(depth_maps.depth), true_depth, confident))
                                    if confident.any() else None)

    views = []
    for folder in sorted((clip / "extra_views").iterdir()):
        extra = read_view(folder)
        mapped = cameras_into_prediction(torch.from_numpy(extra.viewmats), *similarity).float()
        Ks = torch.from_numpy(extra.Ks).float()
        pred = torch.cat([scene.render(t, mapped[f:f + 1], Ks[f:f + 1], width, height)[0].colors
                          for f, t in enumerate(times)]).clamp(0, 1)
        target = torch.from_numpy(extra.images).float() / 255
        views.append({"view": folder.name, "psnr": float(psnr(pred, target).mean()),
                      "ssim": float(ssim(pred, target).mean()),
                      "lpips": float(lpips(pred, target, lpips_model).mean())})
    result["novel_views"] = views
    for key in ("psnr", "ssim", "lpips"):
        result[f"novel_{key}"] = float(np.mean([v[key] for v in views])) if views else None

    result.update(track_errors(scene, cameras, dict(np.load(clip / "tracks3d.npz")), similarity, width, height))
    metrics = json.loads((run / "scene" / "scene.json").read_text())["metrics"]
    result["penetration"] = metrics.get("interactions_after", {}).get("max_penetration")
    return result


def run_scene(seed: int, settings: SyntheticSettings, work: Path, lpips_model: LPIPSAlex) -> dict:
    """Generate, write, reconstruct and score one scene; returns its row (with per-stage time and memory)."""
    scene = generate_scene(seed, num_frames=settings.num_frames, width=settings.width, height=settings.height,
                           num_objects=settings.num_objects, camera_motion="orbit", num_extra_views=2)
    clip, run = work / f"synthetic_{seed}", work / f"synthetic_{seed}_run"
    write_scene(scene, clip)
    overrides = [f"video.long_side={max(settings.width, settings.height)}", "video.max_frames=0",
                 *settings.overrides]
    config = load_config(PipelineConfig, ROOT / "configs", settings.preset, overrides)
    # By name from STAGES: select_stages("compose") would also take the compose group's views and export.
    records = run_pipeline(PipelineInputs(video=clip / "frames", masks=clip / "masks"), config, run,
                           [stage for stage in STAGES if stage.name in RUN_STAGES])
    row = {"scene": f"seed {seed}", "frames": settings.num_frames, "size": f"{settings.width}x{settings.height}",
           "objects": ", ".join(f"{o.kind}{' (non-rigid)' if o.nonrigid else ''}" for o in scene.objects),
           "stages": {stage.name: {"backend": record["backend"], "wall_s": record["wall_time_s"],
                                   "peak_rss_mb": record["peak_rss_mb"]} for stage, record, _ in records}}
    row.update(evaluate_run(clip, run, lpips_model))
    return row
