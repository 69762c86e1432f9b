"""Interactive viewer of a run's composed scene in the browser, with viser.

``python run.py view <run>`` serves the scene at ``http://<host>:<port>``: the background and each object as
Gaussian splats, a time slider that re-poses the objects, a play switch, a checkbox per object and for the
background and the input cameras (drawn as frustums with their frames), and viser's free camera, which
starts at the first input camera.

What is read from the run directory (see :mod:`scene4d.rundir`)::

    background/background.ply   the static background (optional)
    objects/<id>/rig/           each object's rig (:func:`scene4d.fit.rig.load_rig`)
    frames/                     frame count and the frustums' pictures (optional)
    cameras/                    the input cameras (optional)

Viser draws a splat from its centre, covariance, one RGB colour and an opacity: view-dependent colour
(SH degree >= 1) is dropped and each Gaussian shows its degree-0 colour, the colour it has seen head-on
with no view dependence. Viser stores covariances as float16, so Gaussians smaller than about 1e-3 scene
units lose precision in their shape.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from kornia.geometry.conversions import rotation_matrix_to_quaternion

from compose.camera_paths import world_up
from compose.scene_io import load_scene
from compose.scene import PosedScene, Scene, SceneObject
from scene4d.contracts.cameras import Cameras
from scene4d.conventions import normalized_time, quat_to_rotmat
from scene4d.errors import InputError
from scene4d.fit.rig import load_rig
from scene4d.ply import load_ply
from scene4d.render.sh import SH_C0

BACKGROUND_PLY = ("background", "background.ply")


@dataclass
class ViewerConfig:
    """How the viewer draws the scene."""

    playback_fps: float = 10.0
    """Frames per second while "play" is on."""
    frustum_image_width: int = 128
    """Width in pixels of the input frame shown in each camera frustum; 0 draws empty frustums."""
    frustum_size: float = 0.08
    """Frustum depth as a fraction of the median distance from the first camera to the scene."""


def _object_folders(run_root: Path) -> list[Path]:
    folder = run_root / "objects"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit() and (p / "rig" / "rig.json").is_file()]
    return sorted(found, key=lambda p: int(p.name))


def _num_frames(run_root: Path, rig_infos: list[dict]) -> int:
    meta = run_root / "frames" / "frames.json"
    if meta.is_file():
        return int(json.loads(meta.read_text())["num_frames"])
    counts = [int(info["num_frames"]) for info in rig_infos if "num_frames" in info]
    return max(counts, default=1)


def build_viewer_scene(run_root: str | Path) -> Scene:
    """The composed scene of a run: the placed scene of the compose stage when it ran (``scene/``), else the
    background PLY plus every object's fitted rig, unedited.

    Raises:
        InputError: the run has neither ``background/background.ply`` nor any ``objects/<id>/rig``.
    """
    run_root = Path(run_root)
    if (run_root / "scene" / "scene.json").is_file():
        return load_scene(run_root / "scene")
    background_path = run_root.joinpath(*BACKGROUND_PLY)
    background = load_ply(background_path) if background_path.is_file() else None
    objects, infos = [], []
    for folder in _object_folders(run_root):
        model, info = load_rig(folder / "rig")
        object_id = int(info.get("object_id", folder.name))
        objects.append(SceneObject(object_id, str(info.get("name", f"object_{object_id}")), model))
        infos.append(info)
    if background is None and not objects:
        raise InputError(f"view: {run_root} has nothing to show: no {'/'.join(BACKGROUND_PLY)} and no "
                         "objects/<id>/rig (run the fit stage first)")
    return Scene(background, objects, _num_frames(run_root, infos))


def splat_arrays(posed: PosedScene) -> dict[str, np.ndarray]:
    """Viser's splat arrays of posed Gaussians (the keyword arguments of ``add_gaussian_splats``).

    Returns:
        ``centers`` (N, 3), ``covariances`` (N, 3, 3) = R S S^T R^T with R the rotation of the (normalised)
        quaternion and S = diag(scales), ``rgbs`` (N, 3) the degree-0 SH colour ``SH_C0 c_0 + 0.5`` clamped to
        [0, 1], ``opacities`` (N, 1); all float32.
    """
    with torch.no_grad():
        rotations = quat_to_rotmat(posed.quats.double())
        scaled = rotations * posed.scales.double()[:, None, :]
        covariances = scaled @ scaled.transpose(1, 2)
        rgbs = (SH_C0 * posed.colors[:, 0].double() + 0.5).clamp(0.0, 1.0)
        arrays = {"centers": posed.means, "covariances": covariances, "rgbs": rgbs,
                  "opacities": posed.opacities[:, None]}
        return {name: value.detach().cpu().numpy().astype(np.float32) for name, value in arrays.items()}


def camera_frustums(cameras: Cameras) -> dict[str, np.ndarray]:
    """The input cameras as viser frustum poses (viser's frustums use OpenCV axes, as scene4d does).

    Returns:
        ``wxyz`` (T, 4) camera-to-world rotations, ``positions`` (T, 3) camera centres, ``fovs`` (T,) vertical
        field of view in radians, ``aspects`` (T,) width / height.
    """
    camtoworlds = torch.from_numpy(cameras.camtoworlds)
    wxyz = rotation_matrix_to_quaternion(camtoworlds[:, :3, :3].contiguous())
    fovs = 2.0 * np.arctan(cameras.height / (2.0 * cameras.Ks[:, 1, 1]))
    return {"wxyz": wxyz.numpy(), "positions": camtoworlds[:, :3, 3].numpy(), "fovs": fovs,
            "aspects": np.full(cameras.num_frames, cameras.width / cameras.height)}


def _thumbnail(path: Path, width: int) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return cv2.cvtColor(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


class Viewer:
    """A running viser server showing a :class:`Scene`; the GUI drives :meth:`show_frame` and the toggles.

    Args:
        scene: what to show.
        host: interface to listen on (``0.0.0.0`` makes the viewer reachable from other machines).
        port: TCP port (``http://<host>:<port>``).
        config: drawing settings.
        cameras: the input cameras, drawn as frustums, or None.
        frames_dir: folder of the input frames (``00000.png`` ...) shown in the frustums, or None.
    """

    def __init__(self, scene: Scene, host: str = "127.0.0.1", port: int = 8080, config: ViewerConfig | None = None,
                 cameras: Cameras | None = None, frames_dir: Path | None = None):
        import viser  # imported here so that the rest of the package works without it

        self.scene, self.config = scene, config or ViewerConfig()
        self._lock = threading.Lock()
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        try:
            self.frame = 0
            self.background = None
            if scene.background is not None:
                with torch.no_grad():
                    posed = scene.posed(0.0, include_background=True, object_ids=[])
                self.background = self.server.scene.add_gaussian_splats("/background", **splat_arrays(posed))
            self.objects = {obj.object_id: self.server.scene.add_gaussian_splats(
                f"/objects/{obj.object_id}", **self._object_arrays(obj)) for obj in scene.objects}
            self.frustums = self._add_cameras(cameras, frames_dir) if cameras is not None else []
            self._add_gui()
        except BaseException:
            self.server.stop()  # the server runs in its own thread and would keep the process alive
            raise

    def _object_arrays(self, obj: SceneObject) -> dict[str, np.ndarray]:
        time_ = float(normalized_time(self.frame, self.scene.num_frames))
        with torch.no_grad():
            return splat_arrays(self.scene.posed(time_, include_background=False, object_ids=[obj.object_id]))

    def show_frame(self, frame: int) -> None:
        """Re-pose every shown object at input frame ``frame`` (hidden ones are re-posed when shown again)."""
        if not 0 <= frame < self.scene.num_frames:
            raise ValueError(f"frame must lie in [0, {self.scene.num_frames}), got {frame}")
        with self._lock:
            self.frame = frame
            for obj in self.scene.objects:
                handle = self.objects[obj.object_id]
                if handle.visible:
                    handle.set_gaussians(**self._object_arrays(obj))

    def show_object(self, object_id: int, visible: bool) -> None:
        """Show or hide one object (shown objects are posed at the current frame)."""
        with self._lock:
            handle = self.objects[object_id]
            if visible and not handle.visible:
                handle.set_gaussians(**self._object_arrays(self.scene.object(object_id)))
            handle.visible = visible

    def show_background(self, visible: bool) -> None:
        self.background.visible = visible

    def show_cameras(self, visible: bool) -> None:
        for handle in self.frustums:
            handle.visible = visible

    def _add_cameras(self, cameras: Cameras, frames_dir: Path | None) -> list:
        poses = camera_frustums(cameras)
        with torch.no_grad():
            centers = self.scene.posed(0.0).means
        distance = float(torch.linalg.norm(centers - torch.from_numpy(poses["positions"][0]).float(), dim=1).median())
        up = world_up(torch.from_numpy(cameras.viewmats)).numpy()
        forward = cameras.camtoworlds[0, :3, 2]
        initial = self.server.initial_camera
        initial.position = tuple(poses["positions"][0])
        initial.look_at = tuple(poses["positions"][0] + distance * forward)
        initial.up = tuple(up)
        initial.fov = float(poses["fovs"][0])
        self.server.scene.set_up_direction(up)
        handles = []
        for t in range(cameras.num_frames):
            image = None
            if frames_dir is not None and self.config.frustum_image_width > 0:
                image = _thumbnail(frames_dir / f"{t:05d}.png", self.config.frustum_image_width)
            handles.append(self.server.scene.add_camera_frustum(
                f"/cameras/{t:05d}", fov=float(poses["fovs"][t]), aspect=float(poses["aspects"][t]),
                scale=self.config.frustum_size * distance, image=image, wxyz=poses["wxyz"][t],
                position=poses["positions"][t], thickness_units="screen", thickness=1.5))
        return handles

    def _add_gui(self) -> None:
        gui = self.server.gui
        self.time_slider = gui.add_slider("frame", min=0, max=max(self.scene.num_frames - 1, 1), step=1,
                                          initial_value=0, disabled=self.scene.num_frames < 2)
        self.time_slider.on_update(lambda _: self.show_frame(int(self.time_slider.value)))
        self.play = gui.add_checkbox("play", False, disabled=self.scene.num_frames < 2)
        with gui.add_folder("show"):
            self.toggles = {}
            if self.background is not None:
                self.toggles["background"] = gui.add_checkbox("background", True)
                self.toggles["background"].on_update(lambda event: self.show_background(event.target.value))
            for obj in self.scene.objects:
                box = gui.add_checkbox(f"{obj.object_id}: {obj.name}", True)
                box.on_update(lambda event, i=obj.object_id: self.show_object(i, event.target.value))
                self.toggles[obj.object_id] = box
            if self.frustums:
                self.toggles["cameras"] = gui.add_checkbox("input cameras", True)
                self.toggles["cameras"].on_update(lambda event: self.show_cameras(event.target.value))

    def step_playback(self) -> None:
        """Advance the slider by one frame (looping) when "play" is on."""
        if self.play.value and self.scene.num_frames > 1:
            self.time_slider.value = (int(self.time_slider.value) + 1) % self.scene.num_frames

    def stop(self) -> None:
        """Shut the server down and free the port."""
        self.server.stop()


def serve(run_root: str | Path, port: int = 8080, host: str = "127.0.0.1", block: bool = True,
          config: ViewerConfig | None = None) -> Viewer:
    """Serve a run's composed scene (module docstring) until interrupted.

    Args:
        run_root: the run directory.
        port: TCP port.
        host: interface to listen on; the default serves this machine only (reach it from elsewhere through
            an SSH tunnel, or pass ``0.0.0.0``).
        block: run the playback loop until Ctrl-C and stop the server; False returns the running viewer.
        config: drawing settings.

    Returns:
        The viewer (already stopped when ``block``).

    Raises:
        InputError: nothing to show in ``run_root``.
    """
    run_root = Path(run_root)
    config = config or ViewerConfig()
    scene = build_viewer_scene(run_root)
    cameras = Cameras.load(run_root / "cameras") if (run_root / "cameras" / "cameras.npz").is_file() else None
    frames_dir = run_root / "frames" if (run_root / "frames").is_dir() else None
    viewer = Viewer(scene, host, port, config, cameras, frames_dir)
    if not block:
        return viewer
    print(f"viewer: http://{host}:{port}  (Ctrl-C stops it)")
    try:
        while True:
            time.sleep(1.0 / config.playback_fps)
            viewer.step_playback()
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
    return viewer
