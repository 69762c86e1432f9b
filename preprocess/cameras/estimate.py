"""The camera stage: intrinsics and per-frame world-to-camera poses, with the path taken and why.

Order (``backend=auto``):

1. **fixed** when the background does not move (median flow below ``static_threshold_px`` between consecutive
   frames and from the first frame to later ones). Tested first: SfM on a still camera has no baseline and
   only wastes minutes before failing.
2. **COLMAP** mappers in ``config.mappers`` order (default global, incremental, incremental with a relaxed
   initial pair); the first model that passes every check in :mod:`preprocess.cameras.checks` is used. Global
   mapping comes first because it was 3x faster on the orbit clip and the only mapper that reconstructed the
   horsejump pan.
3. **rotation-only** poses from background homographies when no reconstruction passes.

Intrinsics: known ones from the config are held fixed everywhere. Otherwise COLMAP estimates one focal
length, and when it is unconstrained (re-adjusting with it 1.5x off barely worsens the fit) or the only check
that fails is its plausibility, the mapper is re-run with the prior field of view held fixed. The rotation-only
path measures the focal length from the background tracks when they pin it down, else uses the prior.

World frame: the first camera's, with the median depth of the SfM points as the unit (rotation-only and fixed
cameras have no translation, so no unit). When a few frames (at most ``1 - min_registered_fraction``) are not
registered by an accepted COLMAP model, their poses are interpolated from the neighbouring registered ones
(slerp of rotations, linear centres) and the report says which.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pycolmap

from preprocess.cameras import colmap
from preprocess.cameras.background import BackgroundMotion, background_masks, measure_background
from preprocess.cameras.checks import SfmModel, check_model, failed, median_depth
from preprocess.cameras.config import CamerasConfig, check_config
from preprocess.cameras.intrinsics import centred_intrinsics, focal_from_fov, fov_from_focal, known_intrinsics
from preprocess.cameras.poses import anchor_world, interpolate_poses
from preprocess.cameras.reprojection import summarise_errors, track_reprojection_errors
from preprocess.cameras.rotation import estimate_focal, rotation_only_viewmats
from scene4d.contracts.cameras import Cameras
from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks
from scene4d.contracts.tracks import PointTracks
from scene4d.errors import InputError

MIN_FRAME_CONTRAST = 2.0
"""Gray-level standard deviation below which a frame is a single colour."""


@dataclass
class CameraEstimate:
    """Everything the camera stage found.

    Attributes:
        cameras: intrinsics and poses of every frame.
        backend: the path that produced them (``fixed``, ``colmap-global``, ..., ``homography-rotation``).
        reason: one line on why that path.
        report: JSON-serialisable record of the background motion, every attempt with its checks, the
            intrinsics' source and the reprojection error of background tracks.
        tracks: background point tracks (label 0) followed through the dense flow, in pixel coordinates.
        points: (P, 3) SfM points in the cameras' world frame (empty unless COLMAP produced the cameras).
    """

    cameras: Cameras
    backend: str
    reason: str
    report: dict
    tracks: PointTracks
    points: np.ndarray


def estimate_cameras(frames: Frames, masks: ObjectMasks | None, config: CamerasConfig
                     ) -> tuple[Cameras, str, str, dict]:
    """Stage entry point: ``(cameras, backend, reason, report)``; see :func:`estimate_camera_motion`."""
    estimate = estimate_camera_motion(frames, masks, config)
    return estimate.cameras, estimate.backend, estimate.reason, estimate.report


def estimate_camera_motion(frames: Frames, masks: ObjectMasks | None, config: CamerasConfig) -> CameraEstimate:
    """Estimate the camera of every frame, choosing the path described in the module docstring.

    Args:
        frames: the clip, T frames of H x W.
        masks: moving objects, excluded from every measurement (None: the whole frame is background).
        config: settings; ``backend`` forces a path.

    Returns:
        :class:`CameraEstimate`.

    Raises:
        InputError: bad settings, masks that do not fit the frames, a single-colour clip, or ``backend=colmap``
            when no reconstruction passes the checks.
    """
    check_config(config)
    if masks is not None:
        masks.validate(num_frames=frames.num_frames, size=(frames.width, frames.height))
    _check_contrast(frames.images)
    num_frames, height, width = frames.num_frames, frames.height, frames.width
    background = background_masks(num_frames, height, width, None if masks is None else masks.union(),
                                  config.mask_dilation_px)
    known_K = known_intrinsics(config, width, height, frames.source_size)
    start = time.perf_counter()
    motion = measure_background(frames.images, background, config.flow_preset, config.homography_threshold_px,
                                config.min_homography_inliers, config.track_spacing_px)
    report = {"background": _motion_report(motion, time.perf_counter() - start), "attempts": []}
    tracks = PointTracks(motion.tracks, motion.visibility, np.zeros(len(motion.tracks), dtype=np.int32), "flow")

    shift = motion.largest_shift_px
    if config.backend == "fixed" or (config.backend == "auto" and shift < config.static_threshold_px):
        why = "backend=fixed" if config.backend == "fixed" else (
            f"the background moves at most {shift:.2f} px (< {config.static_threshold_px} px)")
        return _finish(_fixed(known_K, num_frames, width, height, report, config), why, report, tracks,
                       motion, np.zeros((0, 3)))

    if config.backend in ("auto", "colmap"):
        accepted = _try_colmap(frames.images, background, known_K, config, report)
        if accepted is not None:
            cameras, points, why = accepted
            return _finish(cameras, why, report, tracks, motion, points)
        if config.backend == "colmap":
            raise InputError(f"cameras: no COLMAP reconstruction passed the checks ({_attempts_line(report)})")

    cameras = _rotation_only(motion, known_K, width, height, config, report)
    prefix = ("backend=rotation" if config.backend == "rotation"
              else f"no COLMAP model passed ({_attempts_line(report)})")
    return _finish(cameras, prefix, report, tracks, motion, np.zeros((0, 3)))


def _check_contrast(images: np.ndarray) -> None:
    contrast = max(float(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).std()) for image in images)
    if contrast < MIN_FRAME_CONTRAST:
        raise InputError("cameras: every frame is a single colour; there is nothing to measure camera motion on")


def _motion_report(motion: BackgroundMotion, seconds: float) -> dict:
    finite_steps = motion.step_px[np.isfinite(motion.step_px)]
    return {"largest_shift_px": round(motion.largest_shift_px, 4),
            "median_step_px": round(float(np.median(finite_steps)), 4) if len(finite_steps) else None,
            "span_px": [round(float(s), 3) for s in motion.span_px],
            "homographies_failed": int((motion.inliers == 0).sum()),
            "homography_transfer_px": round(float(np.median(motion.transfer_px)), 4) if len(motion.transfer_px)
            else None,
            "num_tracks": int(len(motion.tracks)), "time_s": round(seconds, 2)}


def _intrinsics_report(K: np.ndarray, source: str, width: int, height: int) -> dict:
    return {"source": source, "fx": round(float(K[0, 0]), 3), "fy": round(float(K[1, 1]), 3),
            "cx": round(float(K[0, 2]), 3), "cy": round(float(K[1, 2]), 3),
            "fov_deg": round(fov_from_focal(float(K[0, 0]), width, height), 2)}


def _prior_K(config: CamerasConfig, width: int, height: int) -> np.ndarray:
    return centred_intrinsics(focal_from_fov(config.prior_fov_deg, width, height), width, height)


def _fixed(known_K: np.ndarray | None, num_frames: int, width: int, height: int, report: dict,
           config: CamerasConfig) -> Cameras:
    K = known_K if known_K is not None else _prior_K(config, width, height)
    source = "known" if known_K is not None else f"prior ({config.prior_fov_deg:g} deg diagonal)"
    report["intrinsics"] = _intrinsics_report(K, source, width, height)
    return Cameras(Ks=np.repeat(K[None], num_frames, axis=0), viewmats=np.tile(np.eye(4), (num_frames, 1, 1)),
                   width=width, height=height, method="fixed")


def _try_colmap(images: np.ndarray, background: np.ndarray, known_K: np.ndarray | None, config: CamerasConfig,
                report: dict) -> tuple[Cameras, np.ndarray, str] | None:
    height, width = images.shape[1:3]
    with tempfile.TemporaryDirectory(prefix="scene4d-colmap-") as tmp:
        workdir = Path(tmp)
        start = time.perf_counter()
        database = colmap.build_database(workdir, images, background, known_K, config)
        report["colmap_features_s"] = round(time.perf_counter() - start, 2)
        for mapper in config.mappers:
            found = _attempt(workdir, database, mapper, known_K is not None, len(images), config, report)
            if known_K is not None:
                if found is not None:
                    return _colmap_cameras(found[1], colmap.METHODS[mapper], "known", report)
                continue
            if found is not None:
                start = time.perf_counter()
                sensitivity = colmap.focal_sensitivity(found[0], seed=config.seed)
                report["attempts"][-1]["focal_sensitivity"] = {"value": round(min(sensitivity, 1e3), 3),
                                                               "time_s": round(time.perf_counter() - start, 2)}
                if sensitivity >= config.min_focal_sensitivity:
                    return _colmap_cameras(found[1], colmap.METHODS[mapper], "colmap", report)
                why = f"SfM leaves the focal length unconstrained (x1.5 off raises the error only x{sensitivity:.2f})"
            elif report["attempts"][-1]["failed"] == ["focal"]:
                why = f"SfM's focal length is implausible ({report['attempts'][-1]['checks']['focal']['detail']})"
            else:
                continue
            prior = _prior_K(config, width, height)
            with colmap.prior_focal(database, prior[0, 0]):
                with_prior = _attempt(workdir, database, mapper, True, len(images), config, report, " (prior focal)")
            if with_prior is not None:
                return _colmap_cameras(with_prior[1], colmap.METHODS[mapper],
                                       f"prior ({config.prior_fov_deg:g} deg diagonal): {why}", report)
            if found is not None:
                return _colmap_cameras(found[1], colmap.METHODS[mapper], "colmap", report)
    return None


def _attempt(workdir: Path, database: Path, mapper: str, fixed_intrinsics: bool, num_frames: int,
             config: CamerasConfig, report: dict, suffix: str = ""
             ) -> tuple[pycolmap.Reconstruction, SfmModel] | None:
    """Run one mapper, check its largest model and record the attempt; that model (COLMAP's and converted)
    if it passed every check."""
    start = time.perf_counter()
    models = colmap.run_mapper(workdir, database, mapper, fixed_intrinsics, config)
    best = colmap.largest(models)
    attempt = {"path": colmap.METHODS[mapper] + suffix, "time_s": round(time.perf_counter() - start, 2),
               "num_models": len(models)}
    report["attempts"].append(attempt)
    if best is None:
        attempt.update(accepted=False, failed=["no model"])
        return None
    camera = next(iter(best.cameras.values()))
    model = colmap.to_sfm_model(best, len(models), num_frames, camera.width, camera.height)
    checks = check_model(model, config.checks)
    attempt.update(accepted=not failed(checks), failed=failed(checks), checks=checks)
    return (best, model) if not failed(checks) else None


def _colmap_cameras(model: SfmModel, method: str, intrinsics_source: str, report: dict
                    ) -> tuple[Cameras, np.ndarray, str]:
    missing = np.flatnonzero(~model.registered)
    viewmats = interpolate_poses(model.viewmats, model.registered)
    viewmats, points = anchor_world(viewmats, model.points, median_depth(model))
    report["intrinsics"] = _intrinsics_report(model.K, intrinsics_source, model.width, model.height)
    report["interpolated_frames"] = [int(t) for t in missing]
    why = (f"{int(model.registered.sum())}/{model.num_frames} frames, {len(model.points)} points, "
           f"{model.reprojection_px:.2f} px, passed every check")
    if len(missing):
        why += f"; poses of frames {missing.tolist()} interpolated"
    cameras = Cameras(Ks=np.repeat(model.K[None], model.num_frames, axis=0), viewmats=viewmats,
                      width=model.width, height=model.height, method=method)
    return cameras, points, why


def _attempts_line(report: dict) -> str:
    return "; ".join(f"{a['path']}: {', '.join(a['failed'])}" for a in report["attempts"]) or "none tried"


def _rotation_only(motion: BackgroundMotion, known_K: np.ndarray | None, width: int, height: int,
                   config: CamerasConfig, report: dict) -> Cameras:
    if known_K is not None:
        K, source = known_K, "known"
    else:
        estimate = estimate_focal(motion.matches, motion.tracks, motion.visibility, width, height,
                                  (config.checks.min_fov_deg, config.checks.max_fov_deg))
        report["focal_estimate"] = {"focal": round(estimate.focal, 2), "sharpness": round(estimate.sharpness, 3),
                                    "error_px": round(estimate.error_px, 4), "constrained": estimate.constrained}
        if estimate.constrained:
            K = centred_intrinsics(estimate.focal, width, height)
            source = f"measured from background tracks (sharpness {estimate.sharpness:.1f})"
        else:
            K, source = _prior_K(config, width, height), f"prior ({config.prior_fov_deg:g} deg diagonal)"
    report["intrinsics"] = _intrinsics_report(K, source, width, height)
    viewmats = rotation_only_viewmats(motion.matches, K)
    return Cameras(Ks=np.repeat(K[None], len(viewmats), axis=0), viewmats=viewmats, width=width, height=height,
                   method="homography-rotation")


def _finish(cameras: Cameras, why: str, report: dict, tracks: PointTracks, motion: BackgroundMotion,
            points: np.ndarray) -> CameraEstimate:
    backend = cameras.method
    if backend == "homography-rotation":
        failures = int((motion.inliers == 0).sum())
        why += (f"; rotation-only poses from background homographies, focal {report['intrinsics']['source']}"
                + (f"; {failures} frame pair(s) without a homography kept the previous rotation" if failures else ""))
    errors = track_reprojection_errors(tracks.tracks, tracks.visibility, cameras.Ks, cameras.viewmats)
    report["background_reprojection"] = summarise_errors(errors)
    median = report["background_reprojection"]["median_px"]
    if median is not None:
        why += f"; median reprojection error of background tracks {median:.2f} px"
    report["backend"] = backend
    report["reason"] = why
    cameras.notes = why
    return CameraEstimate(cameras=cameras, backend=backend, reason=why, report=report, tracks=tracks, points=points)
