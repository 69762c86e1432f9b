"""The fitted object as a rig on disk: re-animate or re-time it without refitting.

Layout of ``<run>/objects/<id>/rig/``::

    canonical.ply   the canonical Gaussians in the object's own frame (standard 3DGS PLY)
    motion.npz      trajectory_rotation_knots (K, 3) axis-angle, trajectory_translation_knots (K, 3),
                    trajectory_log_scale_knots (K, 1), and the deformation's arrays (below)
    rig.json        object id and name, frame count, reference frame, extent, num_gaussians, the deformation's
                    kind (``deformation``; a rig without it has control points), its settings and the formula

With ``"deformation": "control_points"``::

    motion.npz      control_points (M, 3), control_radii (M,), deformation_rotation_knots (K, M, 3) axis-angle,
                    deformation_translation_knots (K, M, 3)
    skinning.npz    indices (N, k), weights (N, k): each Gaussian's control points and blend weights
    rig.json        neighbours, num_control_points

A Gaussian at canonical ``x`` is at ``s(t) R(t) [sum_k w_k (R_k(t)(x - c_k) + c_k + T_k(t))] + T(t)`` in the
world at normalised time ``t``; every ``*_knots`` array holds the control values of a uniform cubic B-spline
over t in [0, 1] (``scene4d.motion.spline``), and rotations are exponentiated axis-angle vectors.

With ``"deformation": "hexplane"`` (``scene4d.motion.hexplane``)::

    motion.npz      hexplane.bounds (2, 3) the box's lower and upper corners;
                    hexplane.planes.<i> (C, R_b, R_a), i = 6 * level + p with p the plane over axes (a, b) in
                    the order xy, xz, yz, xt, yt, zt (R_t rows along time);
                    hexplane.decoder.<j>.weight (out, in) and .bias (out,) for the MLP's linear layers
                    j = 0, 2, 4 (ReLU between them)
    rig.json        hexplane: {resolutions, time_resolution, channels, hidden}

A Gaussian at canonical ``x`` is at ``s(t) R(t) (x + h d(x, t)[:3]) + T(t)`` with ``d`` the decoded features
and ``h`` half the box's largest side; ``d[3:6]`` is an axis-angle rotation composed before the Gaussian's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from scene4d.atomic import atomic_directory
from scene4d.dynamic_object import DynamicObject
from scene4d.errors import InputError
from scene4d.motion.hexplane import HexPlaneDeformation
from scene4d.motion.skinning import ControlPointDeformation, skinning_weights
from scene4d.motion.trajectory import RigidTrajectory
from scene4d.ply import load_ply, save_ply

FORMULA = ("world(x, t) = s(t) R(t) sum_k w_k (R_k(t) (x - c_k) + c_k + T_k(t)) + T(t); "
           "knots are uniform cubic B-spline control values over normalised time t in [0, 1]")
HEXPLANE_FORMULA = ("world(x, t) = s(t) R(t) (x + h d(x, t)[:3]) + T(t); d = MLP(concat over levels of the product "
                    "of the six planes' bilinear samples at the box coordinates of (x, t)); h = half the box's largest "
                    "side; trajectory knots are uniform cubic B-spline control values over normalised time t in [0, 1]")
HEXPLANE_PREFIX = "hexplane."


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
        arrays = {
            "trajectory_rotation_knots": trajectory.rotation_knots.numpy(),
            "trajectory_translation_knots": trajectory.translation_knots.numpy(),
            "trajectory_log_scale_knots": trajectory.log_scale_knots.numpy(),
        }
        meta = {**info, "num_gaussians": model.gaussians.num_gaussians}
        if isinstance(deformation, HexPlaneDeformation):
            arrays.update({HEXPLANE_PREFIX + k: v.numpy() for k, v in deformation.state_dict().items()})
            meta.update(deformation="hexplane", formula=HEXPLANE_FORMULA, hexplane={
                "resolutions": deformation.resolutions, "time_resolution": deformation.time_resolution,
                "channels": deformation.channels, "hidden": deformation.hidden})
        else:
            arrays.update(control_points=deformation.control_points.numpy(),
                          control_radii=deformation.log_radii.exp().numpy(),
                          deformation_rotation_knots=deformation.rotation_knots.numpy(),
                          deformation_translation_knots=deformation.translation_knots.numpy())
            indices, weights = skinning_weights(model.gaussians.get_means(), deformation.control_points,
                                                deformation.log_radii.exp(), deformation.neighbours)
            np.savez(tmp / "skinning.npz", indices=indices.numpy(), weights=weights.numpy())
            meta.update(deformation="control_points", neighbours=deformation.neighbours,
                        num_control_points=deformation.num_control_points, formula=FORMULA)
        np.savez(tmp / "motion.npz", **arrays)
        (tmp / "rig.json").write_text(json.dumps(meta, indent=2) + "\n")


def load_rig(folder: str | Path) -> tuple[DynamicObject, dict]:
    """Read a rig written by :func:`save_rig`: the model and its rig.json contents."""
    folder = Path(folder)
    for name in ("canonical.ply", "motion.npz", "rig.json"):
        if not (folder / name).is_file():
            raise InputError(f"rig: {folder / name} is missing")
    info = json.loads((folder / "rig.json").read_text())
    motion = {k: torch.from_numpy(v) for k, v in np.load(folder / "motion.npz").items()}
    kind = info.get("deformation", "control_points")
    if kind == "hexplane":
        deformation = _hexplane(motion, info["hexplane"], folder)
    elif kind == "control_points":
        deformation = _control_points(motion, info["neighbours"])
    else:
        raise InputError(f"rig: unknown deformation {kind!r} in {folder / 'rig.json'}")
    trajectory = RigidTrajectory(motion["trajectory_translation_knots"].shape[0])
    with torch.no_grad():
        trajectory.rotation_knots.copy_(motion["trajectory_rotation_knots"])
        trajectory.translation_knots.copy_(motion["trajectory_translation_knots"])
        trajectory.log_scale_knots.copy_(motion["trajectory_log_scale_knots"])
    return DynamicObject(load_ply(folder / "canonical.ply"), deformation, trajectory), info


def _control_points(motion: dict, neighbours: int) -> ControlPointDeformation:
    num_knots = motion["deformation_rotation_knots"].shape[0]
    deformation = ControlPointDeformation(motion["control_points"], num_knots, radius=1.0, neighbours=neighbours)
    with torch.no_grad():
        deformation.log_radii.copy_(motion["control_radii"].log())
        deformation.rotation_knots.copy_(motion["deformation_rotation_knots"])
        deformation.translation_knots.copy_(motion["deformation_translation_knots"])
    return deformation


def _hexplane(motion: dict, settings: dict, folder: Path) -> HexPlaneDeformation:
    state = {k[len(HEXPLANE_PREFIX):]: v for k, v in motion.items() if k.startswith(HEXPLANE_PREFIX)}
    if "bounds" not in state:
        raise InputError(f"rig: {folder / 'motion.npz'} has no {HEXPLANE_PREFIX}bounds")
    deformation = HexPlaneDeformation(state["bounds"], settings["resolutions"], settings["time_resolution"],
                                      settings["channels"], settings["hidden"])
    try:
        deformation.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # torch's message: a heading line, then one line per kind of mismatch
        detail = str(exc).strip().splitlines()[-1].strip()
        raise InputError(f"rig: {folder / 'motion.npz'} does not match rig.json's hexplane settings "
                         f"({detail})") from None
    return deformation
