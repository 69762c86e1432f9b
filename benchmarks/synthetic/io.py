"""Write a :class:`SyntheticScene` as a clip folder in the layout of ``../shared/data`` (see the package docstring),
and read a view back."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from benchmarks.synthetic.generate import SyntheticScene, SyntheticView
from scene4d.atomic import atomic_directory


def _write_view(view: SyntheticView, object_ids: list[int], folder: Path) -> None:
    (folder / "frames").mkdir(parents=True)
    for t, image in enumerate(view.images):
        cv2.imwrite(str(folder / "frames" / f"{t:05d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    for object_id, masks in zip(object_ids, view.masks):
        (folder / "masks" / f"{object_id:03d}").mkdir(parents=True)
        for t, mask in enumerate(masks):
            cv2.imwrite(str(folder / "masks" / f"{object_id:03d}" / f"{t:05d}.png"), mask.astype(np.uint8) * 255)
    np.save(folder / "depth.npy", view.depth)
    cameras = {"width": int(view.images.shape[2]), "height": int(view.images.shape[1]),
               "num_frames": int(view.images.shape[0]), "Ks": view.Ks.tolist(), "viewmats": view.viewmats.tolist()}
    (folder / "cameras.json").write_text(json.dumps(cameras) + "\n")


def write_scene(scene: SyntheticScene, folder: str | Path) -> None:
    """Write ``scene`` to ``folder`` atomically (replacing an existing one).

    Args:
        scene: from :func:`generate_scene`.
        folder: the clip folder to create.
    """
    with atomic_directory(folder) as tmp:
        _write_view(scene.view, scene.object_ids, tmp)
        for k, view in enumerate(scene.extra_views):
            _write_view(view, scene.object_ids, tmp / "extra_views" / f"{k:02d}")
        np.savez(tmp / "tracks3d.npz", tracks3d=scene.tracks3d, tracks2d=scene.tracks2d,
                 visibility=scene.track_visibility, labels=scene.track_labels)
        height, width = scene.view.depth.shape[1:]
        source = {
            "dir": Path(folder).name, "generator": "benchmarks.synthetic.generate_scene", "seed": scene.seed,
            "license": "synthetic; textures are scikit-image sample images", "n_frames": scene.num_frames,
            "resolution": f"{width}x{height}",
            "content": ", ".join(f"{o.kind}{' (non-rigid)' if o.nonrigid else ''}" for o in scene.objects),
            "gt": "per-object visible masks, z-depth, cameras, 3D/2D tracks with visibility, held-out views",
            "objects": [{"id": i, "kind": o.kind, "nonrigid": o.nonrigid}
                        for i, o in zip(scene.object_ids, scene.objects)],
            "extra_views": len(scene.extra_views),
        }
        (tmp / "SOURCE.json").write_text(json.dumps(source, indent=1) + "\n")


def read_view(folder: str | Path) -> SyntheticView:
    """Read one view written by :func:`write_scene`: the clip folder itself or ``extra_views/<k>``."""
    folder = Path(folder)
    cameras = json.loads((folder / "cameras.json").read_text())
    frames = [f"{t:05d}.png" for t in range(cameras["num_frames"])]
    images = np.stack([cv2.cvtColor(cv2.imread(str(folder / "frames" / name)), cv2.COLOR_BGR2RGB) for name in frames])
    object_dirs = sorted((folder / "masks").iterdir(), key=lambda path: int(path.name))
    masks = np.stack([np.stack([cv2.imread(str(d / name), cv2.IMREAD_GRAYSCALE) > 127 for name in frames])
                      for d in object_dirs])
    return SyntheticView(images=images, depth=np.load(folder / "depth.npy"), masks=masks,
                         Ks=np.asarray(cameras["Ks"]), viewmats=np.asarray(cameras["viewmats"]))
