"""The fitted object as a rig on disk: re-animate or re-time it without refitting.

Layout of ``<run>/objects/<id>/rig/``::

    canonical.ply   the canonical Gaussians in the object's own frame (standard 3DGS PLY)
    motion.npz      control_points (M, 3), control_radii (M,), deformation_rotation_knots (K, M, 3) axis-angle,
                    deformation_translation_knots (K, M, 3), trajectory_rotation_knots (K, 3) axis-angle,
                    trajectory_translation_knots (K, 3), trajectory_log_scale_knots (K, 1)
    skinning.npz    indices (N, k), weights (N, k): each Gaussian's control points and blend weights
    rig.json        object id and name, frame count, reference frame, extent, neighbours, and the formulas

A Gaussian at canonical ``x`` is at ``s(t) R(t) [sum_k w_k (R_k(t)(x - c_k) + c_k + T_k(t))] + T(t)`` in the
world at normalised time ``t``; every ``*_knots`` array holds the control values of a uniform cubic B-spline
over t in [0, 1] (``scene4d.motion.spline``), and rotations are exponentiated axis-angle vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from scene4d.atomic import atomic_directory
from scene4d.dynamic_object import DynamicObject
from scene4d.errors import InputError
from scene4d.motion.skinning import ControlPointDeformation, skinning_weights
from scene4d.motion.trajectory import RigidTrajectory
from scene4d.ply import load_ply, save_ply

FORMULA = ("world(x, t) = s(t) R(t) sum_k w_k (R_k(t) (x - c_k) + c_k + T_k(t)) + T(t); "
           "knots are uniform cubic B-spline control values over normalised time t in [0, 1]")


def save_rig(model: DynamicObject, folder: str | Path, info: dict) -> None:
    """Write the rig layout above atomically.

    Args:
        model: the fitted object.
        folder: destination (``<run>/objects/<id>/rig``).
        info: extra facts for rig.json (object id, name, num_frames, reference_frame, extent, ...).
    """
    deformation, trajectory = model.deformation, model.trajectory
    with torch.no_grad(), atomic_directory(folder) as tmp:
        save_ply(tmp / "canonical.ply", model.gaussians)
        np.savez(
            tmp / "motion.npz",
            control_points=deformation.control_points.numpy(),
            control_radii=deformation.log_radii.exp().numpy(),
            deformation_rotation_knots=deformation.rotation_knots.numpy(),
            deformation_translation_knots=deformation.translation_knots.numpy(),
            trajectory_rotation_knots=trajectory.rotation_knots.numpy(),
            trajectory_translation_knots=trajectory.translation_knots.numpy(),
            trajectory_log_scale_knots=trajectory.log_scale_knots.numpy(),
        )
        indices, weights = skinning_weights(model.gaussians.get_means(), deformation.control_points,
                                            deformation.log_radii.exp(), deformation.neighbours)
        np.savez(tmp / "skinning.npz", indices=indices.numpy(), weights=weights.numpy())
        meta = {**info, "neighbours": deformation.neighbours, "num_gaussians": model.gaussians.num_gaussians,
                "num_control_points": deformation.num_control_points, "formula": FORMULA}
        (tmp / "rig.json").write_text(json.dumps(meta, indent=2) + "\n")


def load_rig(folder: str | Path) -> tuple[DynamicObject, dict]:
    """Read a rig written by :func:`save_rig`: the model and its rig.json contents."""
    folder = Path(folder)
    for name in ("canonical.ply", "motion.npz", "rig.json"):
        if not (folder / name).is_file():
            raise InputError(f"rig: {folder / name} is missing")
    info = json.loads((folder / "rig.json").read_text())
    motion = {k: torch.from_numpy(v) for k, v in np.load(folder / "motion.npz").items()}
    gaussians = load_ply(folder / "canonical.ply")
    num_knots = motion["deformation_rotation_knots"].shape[0]
    deformation = ControlPointDeformation(motion["control_points"], num_knots, radius=1.0,
                                          neighbours=info["neighbours"])
    trajectory = RigidTrajectory(motion["trajectory_translation_knots"].shape[0])
    with torch.no_grad():
        deformation.log_radii.copy_(motion["control_radii"].log())
        deformation.rotation_knots.copy_(motion["deformation_rotation_knots"])
        deformation.translation_knots.copy_(motion["deformation_translation_knots"])
        trajectory.rotation_knots.copy_(motion["trajectory_rotation_knots"])
        trajectory.translation_knots.copy_(motion["trajectory_translation_knots"])
        trajectory.log_scale_knots.copy_(motion["trajectory_log_scale_knots"])
    return DynamicObject(gaussians, deformation, trajectory), info
