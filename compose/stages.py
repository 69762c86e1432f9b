"""What each pipeline stage does with the run directory: read its inputs' artefacts, call the stage's
function, write its artefacts and a contact sheet, and report the backend it used."""

from __future__ import annotations

import json
import cv2
import numpy as np
import torch

from preprocess.cameras.contact_sheet import contact_sheet_cameras
from preprocess.depth import contact_sheet_depth
from preprocess.masks.contact_sheet import contact_sheet_masks
from preprocess.stages import run_cameras, run_depth, run_masks, run_tracks
from preprocess.tracks import contact_sheet_tracks
from preprocess.video import load_frames
from compose.scene import Scene, SceneObject
from compose.scene_io import load_scene, save_scene
from scene4d.atomic import atomic_directory, write_bytes_atomic, write_json_atomic
from scene4d.contracts.cameras import Cameras
from scene4d.contracts.frames import Frames
from scene4d.contracts.depth import DepthMaps
from scene4d.contracts.masks import ObjectMasks
from scene4d.contracts.tracks import PointTracks
from scene4d.holdout import fitted_frames
from scene4d.ply import load_ply, save_ply
from scene4d.render.render import resolve_backend
from scene4d.rundir import RunDir, StageResult


def save_contact_sheet(run_dir: RunDir, name: str, image: np.ndarray) -> str:
    """Write an RGB picture to ``contact_sheets/<name>.png``; returns its run-relative path."""
    ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"could not encode the {name} contact sheet")
    relative = f"contact_sheets/{name}.png"
    write_bytes_atomic(run_dir.path(relative), png.tobytes())
    return relative


def load_masks(run_dir: RunDir) -> ObjectMasks | None:
    """The masks stage's output, or None when it found no moving object."""
    meta = json.loads(run_dir.path("masks", "objects.json").read_text())
    return ObjectMasks.load(run_dir.path("masks")) if meta["objects"] else None


def decode(inputs, config, run_dir: RunDir) -> StageResult:
    frames = load_frames(inputs.video, config.video)
    frames.save(run_dir.path("frames"))
    metrics = {"num_frames": frames.num_frames, "width": frames.width, "height": frames.height,
               "source_size": list(frames.source_size), "fps": frames.fps}
    folder = inputs.video.is_dir()
    return StageResult(backend="image-folder" if folder else "pyav",
                       reason="input is a folder" if folder else "input is a video file",
                       outputs=["frames"], metrics=metrics)


def masks(inputs, config, run_dir: RunDir) -> StageResult:
    frames = Frames.load(run_dir.path("frames"))
    found, backend, reason = run_masks(frames, config.preprocess, inputs.masks, inputs.prompts)
    if found is None:
        # Nothing moves: say so, and go on with the whole frame as background.
        write_json_atomic(run_dir.path("masks", "objects.json"),
                          {"num_frames": frames.num_frames, "width": frames.width, "height": frames.height,
                           "method": backend, "objects": []})
        summary = []
    else:
        found.save(run_dir.path("masks"))
        summary = found.summary()
    sheet = save_contact_sheet(run_dir, "masks", contact_sheet_masks(frames, found))
    return StageResult(backend=backend, reason=reason, outputs=["masks", sheet],
                       metrics={"num_objects": len(summary), "objects": summary})


def tracks(inputs, config, run_dir: RunDir) -> StageResult:
    frames = Frames.load(run_dir.path("frames"))
    found, backend, reason = run_tracks(frames, load_masks(run_dir), config.preprocess)
    found.save(run_dir.path("tracks"))
    sheet = save_contact_sheet(run_dir, "tracks", contact_sheet_tracks(frames, found))
    labels, counts = np.unique(found.labels, return_counts=True)
    return StageResult(backend=backend, reason=reason, outputs=["tracks", sheet],
                       metrics={"num_tracks": found.num_tracks,
                                "per_label": {str(int(k)): int(v) for k, v in zip(labels, counts)},
                                "visible_fraction": float(found.visibility.mean()) if found.num_tracks else 0.0})


def cameras(inputs, config, run_dir: RunDir) -> StageResult:
    frames = Frames.load(run_dir.path("frames"))
    estimate = run_cameras(frames, load_masks(run_dir), config.preprocess)
    found = estimate.cameras
    found.save(run_dir.path("cameras"))
    np.save(run_dir.path("cameras_sfm_points.npy"), estimate.points.astype(np.float32))
    write_json_atomic(run_dir.path("cameras_report.json"), estimate.report)
    sheet = save_contact_sheet(run_dir, "cameras", contact_sheet_cameras(frames, found, estimate.tracks))
    return StageResult(backend=estimate.backend, reason=estimate.reason,
                       outputs=["cameras", "cameras_report.json", "cameras_sfm_points.npy", sheet],
                       metrics={"method": found.method, "focal_px": float(found.Ks[0, 0, 0]),
                                "attempts": len(estimate.report.get("attempts", []))})


def depth(inputs, config, run_dir: RunDir) -> StageResult:
    frames = Frames.load(run_dir.path("frames"))
    cams = Cameras.load(run_dir.path("cameras"))
    found, backend, reason = run_depth(frames, load_masks(run_dir), cams, PointTracks.load(run_dir.path("tracks")),
                                       config.preprocess)
    found.save(run_dir.path("depth"))
    sheet = save_contact_sheet(run_dir, "depth", contact_sheet_depth(frames, found))
    confident = found.confidence > 0
    return StageResult(backend=backend, reason=reason, outputs=["depth", sheet],
                       metrics={"metric": found.metric, "confident_fraction": float(confident.mean()),
                                "median_depth": float(np.median(found.depth[confident])) if confident.any() else 0.0,
                                "notes": found.notes})



def fit_objects(inputs, config, run_dir: RunDir) -> StageResult:
    """Fit every object's 4D Gaussians; each object's outputs go to ``objects/<id>/``."""
    from scene4d.fit.fit_object import fit_object
    from scene4d.fit.observations import ObjectObservations
    from scene4d.fit.outputs import write_object_outputs
    from scene4d.guidance.loading import build_guidance

    frames = Frames.load(run_dir.path("frames"))
    found = load_masks(run_dir)
    if found is None:
        return StageResult(backend="none", reason="no moving object: nothing to fit", outputs=[], metrics={})
    depth = DepthMaps.load(run_dir.path("depth"))
    cams = Cameras.load(run_dir.path("cameras"))
    point_tracks = PointTracks.load(run_dir.path("tracks"))
    guidance = build_guidance(config.fit.guidance)
    outputs, per_object = [], {}
    for object_id, name in zip(found.object_ids, found.names):
        observations = ObjectObservations.gather(object_id, frames, found, depth, cams, point_tracks,
                                                 config.holdout_every)
        result = fit_object(observations, config.fit, guidance=guidance)
        info = {"object_id": object_id, "name": name, "num_frames": frames.num_frames,
                "reference_frame": result.init.reference_frame, "extent": result.init.extent}
        per_object[str(object_id)] = write_object_outputs(result, observations, run_dir.path("objects", str(object_id)),
                                                          info)
        outputs.append(f"objects/{object_id}")
    backend = resolve_backend(config.fit.backend, torch.device("cpu"))
    sds = "no SDS guidance" if guidance is None else f"SDS from {config.fit.guidance.kind} {config.fit.guidance.model}"
    return StageResult(backend=backend, reason=f"render backend for fit.backend={config.fit.backend}; {sds}",
                       outputs=outputs, metrics=per_object)


def background(inputs, config, run_dir: RunDir) -> StageResult:
    """Fit the static background's Gaussians over all frames (objects excluded, unseen regions inpainted)."""
    from compose.background import fit_background
    from compose.inpaint_diffusion import available, build_inpainter

    frames = Frames.load(run_dir.path("frames"))
    inpainter = build_inpainter(config.background_inpainting)
    fit_frames = fitted_frames(frames.num_frames, config.holdout_every)
    result = fit_background(frames, load_masks(run_dir), DepthMaps.load(run_dir.path("depth")),
                            Cameras.load(run_dir.path("cameras")), config.background, inpainter=inpainter,
                            fit_frames=fit_frames)
    with atomic_directory(run_dir.path("background")) as tmp:
        save_ply(tmp / "background.ply", result.gaussians)
        (tmp / "fit.json").write_text(json.dumps({"history": result.history, "stage_seconds": result.stage_seconds,
                                                  "metrics": result.metrics, "fit_frames": fit_frames},
                                                 indent=2, default=float) + "\n")
    backend = resolve_backend(config.background.backend, torch.device("cpu"))
    fill = ("Stable Diffusion inpainting" if inpainter is not None
            else f"OpenCV inpainting ({available(config.background_inpainting)[1]})")
    return StageResult(backend=backend, reason=f"{fill} fills regions never seen behind objects",
                       outputs=["background"], metrics=result.metrics)


def _load_fitted_scene(run_dir: RunDir, num_frames: int) -> Scene:
    from scene4d.fit.rig import load_rig

    background_ply = run_dir.path("background", "background.ply")
    objects = []
    found = load_masks(run_dir)
    for object_id, name in (zip(found.object_ids, found.names) if found is not None else ()):
        model, _ = load_rig(run_dir.path("objects", str(object_id), "rig"))
        objects.append(SceneObject(object_id, name, model))
    return Scene(load_ply(background_ply) if background_ply.is_file() else None, objects, num_frames)


def compose_scene(inputs, config, run_dir: RunDir) -> StageResult:
    """Place the objects in the background's metric frame, apply edits, refine interactions, save the scene."""
    from compose.edits import apply_edits, load_edits
    from compose.placement import place_objects
    from compose.refine import refine_scene

    frames = Frames.load(run_dir.path("frames"))
    cams = Cameras.load(run_dir.path("cameras"))
    found = load_masks(run_dir)
    scene = _load_fitted_scene(run_dir, frames.num_frames)
    fit_frames = fitted_frames(frames.num_frames, config.holdout_every)
    metrics = {"fit_frames": fit_frames}
    if found is not None and scene.objects:
        scene, fits = place_objects(scene, found, DepthMaps.load(run_dir.path("depth")), cams, config.compose.placement,
                                    fit_frames)
        metrics["placement"] = {str(k): {"scale": f.scale, "reliable": f.reliable, "pixels": f.pixels,
                                         "inlier_fraction": f.inlier_fraction,
                                         "trajectory_residual": f.trajectory_residual} for k, f in fits.items()}
        if inputs.edits is not None:
            scene = apply_edits(scene, load_edits(inputs.edits))
            metrics["edits"] = str(inputs.edits)
        if config.compose.refine.iterations > 0:
            refined = refine_scene(scene, torch.from_numpy(frames.images).float() / 255.0,
                                   torch.from_numpy(found.union()), torch.from_numpy(cams.viewmats).float(),
                                   torch.from_numpy(cams.Ks).float(), config.compose.refine, fit_frames=fit_frames)
            scene = refined.scene
            metrics["interactions_before"], metrics["interactions_after"] = refined.before, refined.after
    save_scene(scene, run_dir.path("scene"), metrics)
    return StageResult(backend="placement+refine" if scene.objects else "background-only",
                       reason="robust depth-scale placement, then interaction refinement",
                       outputs=["scene"], metrics=metrics)


def views(inputs, config, run_dir: RunDir) -> StageResult:
    """Novel-view videos of the composed scene."""
    from compose.novel_views import render_novel_views

    scene = load_scene(run_dir.path("scene"))
    written = render_novel_views(scene, Cameras.load(run_dir.path("cameras")), run_dir.path("videos"),
                                 config.views)
    return StageResult(backend=resolve_backend(config.views.backend, torch.device("cpu")), reason="novel views",
                       outputs=["videos"], metrics={v.name: v.num_frames for v in written})


def export(inputs, config, run_dir: RunDir) -> StageResult:
    """Standard files: per-frame 3DGS PLYs, nerfstudio transforms.json, COLMAP text."""
    from compose.export import export_scene

    scene = load_scene(run_dir.path("scene"))
    files = export_scene(scene, Cameras.load(run_dir.path("cameras")), run_dir.path("export"),
                         run_dir.path("frames"), config.export)
    return StageResult(backend="plyfile+json+colmap-text", reason="standard formats", outputs=["export"],
                       metrics={"files": len(files)})
