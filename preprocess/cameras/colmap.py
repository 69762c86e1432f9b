"""pycolmap structure-from-motion on a clip: SIFT on the background, one shared pinhole camera, mapping.

Conventions at this boundary (checked by tests):
- COLMAP's ``cam_from_world`` is a world-to-camera transform with x right, y down, z forward, i.e. already
  scene4d's OpenCV viewmat; only the storage differs (a ``Rigid3d`` instead of a 4x4 matrix).
- COLMAP's image coordinates put the top-left image corner at (0, 0) and the centre of the top-left pixel at
  (0.5, 0.5), as scene4d does, so K and keypoints carry over without a half-pixel shift.
- A COLMAP mask is a PNG named ``<image name>.png``; features are dropped where it is 0 (objects here).
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pycolmap

from preprocess.cameras.checks import SfmModel
from preprocess.cameras.config import CamerasConfig

METHODS = {"global": "colmap-global", "incremental": "colmap-incremental",
           "incremental-relaxed": "colmap-incremental-relaxed"}
"""Backend name of each mapper, as reported in the manifest."""


@contextlib.contextmanager
def quiet_logs():
    """Hold COLMAP's log back while inside; print it only if the block raises.

    Its INFO log is hundreds of lines per run, and its errors ("Global mapping failed") are answered by the
    fallbacks here. Some of its libraries keep their own copy of the log settings, so lowering
    ``pycolmap.logging.minloglevel`` does not silence them all: the process's standard error is redirected.
    """
    previous = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 2
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            pycolmap.logging.minloglevel = previous


def viewmat_from_rigid(cam_from_world: pycolmap.Rigid3d) -> np.ndarray:
    """(4, 4) scene4d world-to-camera matrix of a COLMAP ``cam_from_world``."""
    viewmat = np.eye(4)
    viewmat[:3, :] = cam_from_world.matrix()
    return viewmat


def rigid_from_viewmat(viewmat: np.ndarray) -> pycolmap.Rigid3d:
    """COLMAP ``cam_from_world`` of a (4, 4) scene4d world-to-camera matrix."""
    return pycolmap.Rigid3d(np.ascontiguousarray(viewmat[:3, :], dtype=np.float64))


def image_name(frame: int) -> str:
    return f"{frame:05d}.png"


def frame_of(name: str) -> int:
    return int(Path(name).stem)


def _camera_options(K: np.ndarray | None) -> pycolmap.ImageReaderOptions:
    options = pycolmap.ImageReaderOptions()
    if K is None:
        options.camera_model = "SIMPLE_PINHOLE"
    else:
        options.camera_model = "PINHOLE"
        options.camera_params = ",".join(f"{v:.6f}" for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))
    return options


def build_database(workdir: Path, images: np.ndarray, background: np.ndarray, K: np.ndarray | None,
                   config: CamerasConfig) -> Path:
    """Write frames and masks, extract SIFT on the background and match.

    Args:
        workdir: an empty folder, kept by the caller until mapping is done.
        images: (T, H, W, 3) uint8 RGB.
        background: (T, H, W) bool; features are extracted only where True.
        K: (3, 3) known intrinsics (then fixed) or None (one focal length, estimated).
        config: extraction and matching settings.

    Returns:
        The path of the COLMAP database.
    """
    image_dir, mask_dir = workdir / "images", workdir / "masks"
    image_dir.mkdir()
    mask_dir.mkdir()
    for t, (image, keep) in enumerate(zip(images, background)):
        cv2.imwrite(str(image_dir / image_name(t)), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(mask_dir / f"{image_name(t)}.png"), keep.astype(np.uint8) * 255)
    database = workdir / "database.db"
    reader = _camera_options(K)
    reader.mask_path = str(mask_dir)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = config.num_threads
    extraction.sift.max_num_features = config.max_features
    extraction.sift.first_octave = config.first_octave
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = config.num_threads
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = config.seed
    with quiet_logs():
        pycolmap.extract_features(database, image_dir, camera_mode=pycolmap.CameraMode.SINGLE,
                                  reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)
        if len(images) <= config.exhaustive_max_frames:
            pycolmap.match_exhaustive(database, matching_options=matching, verification_options=verification,
                                      device=pycolmap.Device.cpu)
        else:
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = config.sequential_overlap
            pycolmap.match_sequential(database, matching_options=matching, pairing_options=pairing,
                                      verification_options=verification, device=pycolmap.Device.cpu)
    return database


def _incremental_options(relaxed: bool, fixed_intrinsics: bool, config: CamerasConfig
                         ) -> pycolmap.IncrementalPipelineOptions:
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads = config.num_threads
    options.random_seed = config.seed
    options.extract_colors = False
    if fixed_intrinsics:
        options.ba_refine_focal_length = False
        options.ba_refine_principal_point = False
        options.ba_refine_extra_params = False
        options.mapper.abs_pose_refine_focal_length = False
    if relaxed:
        # Pans with little depth variation never offer an initial pair with COLMAP's default 16 degrees of
        # triangulation angle and 100 inliers; 4 degrees got vda_davis_rollercoaster started.
        options.mapper.init_min_tri_angle = 4.0
        options.mapper.init_min_num_inliers = 50
        options.mapper.abs_pose_min_num_inliers = 20
    return options


def _global_options(fixed_intrinsics: bool, config: CamerasConfig) -> pycolmap.GlobalPipelineOptions:
    options = pycolmap.GlobalPipelineOptions()
    options.num_threads = config.num_threads
    options.random_seed = config.seed
    options.mapper.track_required_tracks_per_view = config.max_tracks_per_view
    if fixed_intrinsics:
        options.mapper.bundle_adjustment.refine_focal_length = False
        options.mapper.bundle_adjustment.refine_principal_point = False
        options.mapper.bundle_adjustment.refine_extra_params = False
    return options


def run_mapper(workdir: Path, database: Path, mapper: str, fixed_intrinsics: bool, config: CamerasConfig
               ) -> list[pycolmap.Reconstruction]:
    """Reconstruct with one mapper (``global``, ``incremental`` or ``incremental-relaxed``).

    Returns:
        Every model it produced (possibly none).
    """
    output = Path(tempfile.mkdtemp(prefix=f"sparse-{mapper}-", dir=workdir))
    with quiet_logs():
        if mapper == "global":
            models = pycolmap.global_mapping(database, workdir / "images", output,
                                             _global_options(fixed_intrinsics, config))
        else:
            models = pycolmap.incremental_mapping(
                database, workdir / "images", output,
                _incremental_options(mapper == "incremental-relaxed", fixed_intrinsics, config))
    return list(models.values())


def largest(models: list[pycolmap.Reconstruction]) -> pycolmap.Reconstruction | None:
    """The model registering the most frames (then the most points); None when none registers any."""
    best = max(models, key=lambda m: (m.num_reg_images(), m.num_points3D()), default=None)
    return best if best is not None and best.num_reg_images() > 0 else None


def to_sfm_model(model: pycolmap.Reconstruction, num_models: int, num_frames: int, width: int, height: int
                 ) -> SfmModel:
    """A COLMAP model in scene4d conventions (frames found by image name)."""
    viewmats = np.tile(np.eye(4), (num_frames, 1, 1))
    registered = np.zeros(num_frames, dtype=bool)
    for image in model.images.values():
        if image.has_pose:
            frame = frame_of(image.name)
            viewmats[frame] = viewmat_from_rigid(image.cam_from_world())
            registered[frame] = True
    camera = next(iter(model.cameras.values()))
    points = np.array([p.xyz for p in model.points3D.values()]).reshape(-1, 3)
    return SfmModel(K=np.asarray(camera.calibration_matrix(), dtype=np.float64), viewmats=viewmats,
                    registered=registered, points=points,
                    reprojection_px=float(model.compute_mean_reprojection_error()) if len(points) else float("inf"),
                    num_models=num_models, width=width, height=height)


def _error_with_focal(model: pycolmap.Reconstruction, focal: float) -> float:
    trial = pycolmap.Reconstruction(model)
    for camera in trial.cameras.values():
        params = camera.params.copy()
        params[list(camera.focal_length_idxs())] = focal
        camera.params = params
    options = pycolmap.BundleAdjustmentOptions()
    options.refine_focal_length = False
    options.print_summary = False
    options.ceres.solver_options.max_num_iterations = 30
    with quiet_logs():
        pycolmap.bundle_adjustment(trial, options)
    error = trial.compute_mean_reprojection_error()
    return float(error) if np.isfinite(error) else float("inf")


def focal_sensitivity(model: pycolmap.Reconstruction, step: float = 1.5, max_points: int = 300,
                      seed: int = 0) -> float:
    """How much worse the model fits with its focal length ``step`` times off (fixed), re-adjusted.

    Bundle adjustment of poses and points with the focal length held at ``f``, ``f / step`` and ``f * step``,
    on a random subset of at most ``max_points`` points (for speed); returns
    ``min(error(f / step), error(f * step)) / error(f)`` of the mean reprojection errors. Near 1: the
    reconstruction does not constrain the focal length (little depth variation, little rotation).
    """
    subset = pycolmap.Reconstruction(model)
    ids = np.array(sorted(subset.point3D_ids()))
    if len(ids) > max_points:
        dropped = np.random.default_rng(seed).choice(ids, len(ids) - max_points, replace=False)
        for point_id in dropped:
            subset.delete_point3D(int(point_id))
    focal = float(next(iter(subset.cameras.values())).mean_focal_length())
    reference = _error_with_focal(subset, focal)
    off = min(_error_with_focal(subset, focal / step), _error_with_focal(subset, focal * step))
    return off / max(reference, 1e-9)


@contextlib.contextmanager
def prior_focal(database: Path, focal: float):
    """Inside, every camera in the database has this focal length as a prior; restored on exit."""
    db = pycolmap.Database.open(database)
    try:
        originals = db.read_all_cameras()
        for camera in originals:
            changed = copy.copy(camera)
            params = changed.params.copy()
            params[list(changed.focal_length_idxs())] = focal
            changed.params = params
            changed.has_prior_focal_length = True
            db.update_camera(changed)
        yield
    finally:
        for camera in originals:
            db.update_camera(camera)
        db.close()
