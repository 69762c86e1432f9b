"""Standard files of a composed scene: per-frame 3DGS PLYs, nerfstudio ``transforms.json`` and COLMAP text.

Layout written by :func:`export_scene` into its folder::

    ply/scene/<t:05d>.ply          every visible Gaussian at input frame t, world coordinates
    ply/object_<id>/<t:05d>.ply    each visible object alone at frame t
    ply/background.ply             the static background (when the scene has one)
    transforms.json                the input cameras for nerfstudio
    colmap/cameras.txt, images.txt, points3D.txt   the input cameras (and background centres) for COLMAP

Camera conventions at these boundaries (ours: OpenCV world-to-camera, :mod:`scene4d.conventions`):

- nerfstudio: ``transform_matrix`` is camera-to-world with OpenGL camera axes (x right, y up, z backwards),
  i.e. ``inverse(viewmat) @ diag(1, -1, -1, 1)``. The world frame is ours, unchanged. Pixel centres sit at
  +0.5 in nerfstudio as in ours, so ``cx, cy`` carry over as they are.
- COLMAP: ``images.txt`` holds the world-to-camera rotation as a unit quaternion ``QW QX QY QZ`` and the
  translation ``TX TY TZ``, OpenCV axes, which is our viewmat; intrinsics as ``PINHOLE fx fy cx cy``
  (COLMAP's pixel centres are at +0.5 too).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from compose.scene import PosedScene, Scene
from scene4d.atomic import atomic_directory, write_json_atomic
from scene4d.contracts.cameras import Cameras
from scene4d.conventions import normalized_time
from scene4d.gaussians import Gaussians
from scene4d.ply import save_ply
from scene4d.render.sh import sh0_to_rgb

# Camera axes flip between OpenCV (y down, z forward) and OpenGL (y up, z backward).
_OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass
class ExportConfig:
    """Which standard files to write."""

    scene_plys: bool = True
    """A PLY of the whole scene at every exported frame."""
    object_plys: bool = True
    """A PLY of each visible object at every exported frame, and one of the background."""
    frame_stride: int = 1
    """Export every n-th input frame's PLYs (the cameras are always exported for every frame)."""
    transforms_json: bool = True
    """The cameras as nerfstudio ``transforms.json``."""
    colmap_text: bool = True
    """The cameras as COLMAP text files."""
    colmap_points: bool = True
    """Fill COLMAP's ``points3D.txt`` with the background Gaussians' centres and colours (else leave it empty)."""


def posed_to_gaussians(posed: PosedScene, index: torch.Tensor | None = None) -> Gaussians:
    """Raw :class:`Gaussians` whose activations give the posed values back (for :func:`scene4d.ply.save_ply`).

    Scales become logs, opacities logits (clamped 1e-7 away from 0 and 1 so they stay finite), SH colours
    split into ``sh0``/``shN``; ``meta["object_ids"]`` keeps the labels.

    Args:
        posed: activated Gaussians in the world.
        index: optional (N,) bool mask or (M,) long index selecting Gaussians.
    """
    fields = [posed.means, posed.quats, posed.scales, posed.opacities, posed.colors, posed.labels]
    if index is not None:
        fields = [f[index] for f in fields]
    means, quats, scales, opacities, colors, labels = (f.detach() for f in fields)
    params = {
        "means": means.float(),
        "quats": torch.nn.functional.normalize(quats, dim=-1).float(),
        "scales": torch.log(scales.double()).float(),
        "opacities": torch.logit(opacities.double(), eps=1e-7).float(),
        "sh0": colors[:, :1].float().contiguous(),
        "shN": colors[:, 1:].float().contiguous(),
    }
    return Gaussians(params, {"object_ids": labels})


def export_plys(scene: Scene, folder: str | Path, frame_stride: int = 1, scene_plys: bool = True,
                object_plys: bool = True) -> list[Path]:
    """Per-frame PLYs of the scene and of each visible object, world coordinates (layout in the module docstring).

    Args:
        scene: the composed scene; frames are its input frames ``0, stride, 2 stride, ...``.
        folder: the ``ply`` folder; each file is written atomically.

    Returns:
        The files written.
    """
    if frame_stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    folder = Path(folder)
    written = []
    if object_plys and scene.background is not None:
        save_ply(folder / "background.ply", scene.background)
        written.append(folder / "background.ply")
    objects = [obj.object_id for obj in scene.objects if obj.visible] if object_plys else []
    frames = range(0, scene.num_frames, frame_stride)
    for t in tqdm(frames, desc="export ply", unit="frame", leave=False):
        with torch.no_grad():
            posed = scene.posed(float(normalized_time(t, scene.num_frames)))
        targets = [(folder / "scene" / f"{t:05d}.ply", None)] if scene_plys else []
        targets += [(folder / f"object_{i}" / f"{t:05d}.ply", posed.labels == i) for i in objects]
        for path, index in targets:
            save_ply(path, posed_to_gaussians(posed, index))
            written.append(path)
    return written


def _invert_rigid(matrices: np.ndarray) -> np.ndarray:
    """(T, 4, 4) inverses of rigid transforms, computed as ``[R^T | -R^T t]`` (exact to rounding)."""
    out = np.zeros_like(matrices)
    rotations_t = matrices[:, :3, :3].transpose(0, 2, 1)
    out[:, :3, :3] = rotations_t
    out[:, :3, 3] = -np.einsum("tij,tj->ti", rotations_t, matrices[:, :3, 3])
    out[:, 3, 3] = 1.0
    return out


def opengl_camtoworlds(viewmats: np.ndarray) -> np.ndarray:
    """(T, 4, 4) OpenGL camera-to-world matrices (nerfstudio's ``transform_matrix``) of OpenCV viewmats (T, 4, 4)."""
    return _invert_rigid(viewmats) @ _OPENCV_TO_OPENGL


def viewmats_from_opengl(camtoworlds: np.ndarray) -> np.ndarray:
    """Inverse of :func:`opengl_camtoworlds`: (T, 4, 4) OpenCV world-to-camera matrices."""
    return _invert_rigid(camtoworlds @ _OPENCV_TO_OPENGL)


def _intrinsics(K: np.ndarray) -> dict[str, float]:
    return {"fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2])}


def transforms_json(cameras: Cameras, file_paths: Sequence[str]) -> dict:
    """The cameras in nerfstudio's ``transforms.json`` format (a pinhole ``OPENCV`` model without distortion).

    Intrinsics shared by every frame go at the top; when they change over the clip each frame carries its own
    ``fl_x, fl_y, cx, cy``.

    Args:
        cameras: T cameras.
        file_paths: T image paths, relative to the folder the file will be written to.
    """
    if len(file_paths) != cameras.num_frames:
        raise ValueError(f"file_paths: expected {cameras.num_frames}, got {len(file_paths)}")
    shared = bool(np.all(cameras.Ks == cameras.Ks[:1]))
    out: dict = {"camera_model": "OPENCV", "w": cameras.width, "h": cameras.height}
    if shared:
        out.update(_intrinsics(cameras.Ks[0]))
    frames = []
    for path, matrix, K in zip(file_paths, opengl_camtoworlds(cameras.viewmats), cameras.Ks):
        frame = {"file_path": str(path), "transform_matrix": matrix.tolist()}
        if not shared:
            frame.update(_intrinsics(K))
        frames.append(frame)
    out["frames"] = frames
    return out


def write_colmap_text(cameras: Cameras, folder: str | Path, image_names: Sequence[str],
                      points: np.ndarray | None = None, colors: np.ndarray | None = None) -> None:
    """Write COLMAP's text model (``cameras.txt``, ``images.txt``, ``points3D.txt``) atomically.

    One ``PINHOLE`` camera per distinct intrinsics; images have no 2D points; 3D points have empty tracks.

    Args:
        cameras: T cameras.
        folder: destination folder (replaced as a whole).
        image_names: T image file names (COLMAP resolves them against the image folder it is given).
        points: optional (P, 3) world points for ``points3D.txt``; colors: (P, 3) uint8 RGB for them.
    """
    if len(image_names) != cameras.num_frames:
        raise ValueError(f"image_names: expected {cameras.num_frames}, got {len(image_names)}")
    points = np.zeros((0, 3)) if points is None else np.asarray(points, np.float64)
    colors = np.full((len(points), 3), 128, np.uint8) if colors is None else np.asarray(colors, np.uint8)
    if points.ndim != 2 or points.shape[1] != 3 or colors.shape != points.shape:
        raise ValueError(f"points and colors: expected (P, 3) each, got {points.shape} and {colors.shape}")
    distinct, camera_index = np.unique(cameras.Ks.reshape(-1, 9), axis=0, return_inverse=True)
    camera_lines = ["# CAMERA_ID MODEL WIDTH HEIGHT fx fy cx cy"]
    for i, K in enumerate(distinct.reshape(-1, 3, 3).tolist()):
        camera_lines.append(f"{i + 1} PINHOLE {cameras.width} {cameras.height} "
                            f"{K[0][0]!r} {K[1][1]!r} {K[0][2]!r} {K[1][2]!r}")
    quats = Rotation.from_matrix(cameras.viewmats[:, :3, :3]).as_quat(scalar_first=True)
    image_lines = ["# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, then a line of 2D points (none here)"]
    for t, (q, viewmat, name) in enumerate(zip(quats, cameras.viewmats, image_names)):
        values = " ".join(repr(float(v)) for v in (*q, *viewmat[:3, 3]))
        image_lines += [f"{t + 1} {values} {int(camera_index.reshape(-1)[t]) + 1} {name}", ""]
    point_lines = ["# POINT3D_ID X Y Z R G B ERROR (empty tracks)"]
    point_lines += [f"{i + 1} {p[0]!r} {p[1]!r} {p[2]!r} {c[0]} {c[1]} {c[2]} 0"
                    for i, (p, c) in enumerate(zip(points.tolist(), colors.tolist()))]
    with atomic_directory(folder) as tmp:
        for name, lines in (("cameras.txt", camera_lines), ("images.txt", image_lines),
                            ("points3D.txt", point_lines)):
            (tmp / name).write_text("\n".join(lines) + "\n")


def export_scene(scene: Scene, cameras: Cameras, folder: str | Path, frames_dir: str | Path,
                 config: ExportConfig | None = None) -> list[Path]:
    """Write the standard files (layout in the module docstring) into ``folder``.

    Args:
        scene: the composed scene.
        cameras: its input cameras.
        folder: output folder (created).
        frames_dir: the run's ``frames/`` folder (``<t:05d>.png``, see :mod:`scene4d.contracts.frames`);
            ``transforms.json`` points at it by relative paths.
        config: which files (defaults when None).

    Returns:
        The files written.
    """
    folder, config = Path(folder), config or ExportConfig()
    written = export_plys(scene, folder / "ply", config.frame_stride, config.scene_plys, config.object_plys)
    names = [f"{t:05d}.png" for t in range(cameras.num_frames)]
    if config.transforms_json:
        folder.mkdir(parents=True, exist_ok=True)
        relative = os.path.relpath(Path(frames_dir).resolve(), folder.resolve())
        write_json_atomic(folder / "transforms.json",
                          transforms_json(cameras, [Path(relative, n).as_posix() for n in names]))
        written.append(folder / "transforms.json")
    if config.colmap_text:
        points = colors = None
        if config.colmap_points and scene.background is not None:
            background = scene.background
            points = background.get_means().detach().cpu().double().numpy()
            rgb = sh0_to_rgb(background.params["sh0"][:, 0].detach().cpu()).clamp(0.0, 1.0)
            colors = (rgb * 255.0 + 0.5).to(torch.uint8).numpy()
        write_colmap_text(cameras, folder / "colmap", names, points, colors)
        written += [folder / "colmap" / n for n in ("cameras.txt", "images.txt", "points3D.txt")]
    return written
