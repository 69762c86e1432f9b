"""Kubric-like synthetic scenes with exact ground truth, ray-cast independently of the Gaussian rasterizer.

``generate_scene(seed, num_frames, width, height, ...)`` builds 1-3 textured analytic objects (object 1 an ellipsoid
whose axes pulse, i.e. non-rigid; the others rigid spheres, ellipsoids or boxes that translate and spin) over a
textured ground plane in front of a textured backdrop, filmed by an orbiting or static pinhole camera, plus up to two
held-out cameras at the same times. Conventions are ``scene4d.conventions``' (world-to-camera OpenCV viewmats, K in
pixels, pixel centres at +0.5); the world is z up with the ground at ``z = 0``. Same seed, same scene.

``write_scene(scene, folder)`` writes the layout of the real clips in ``../shared/data`` plus the ground truth::

    <folder>/frames/00000.png ...           input view, RGB 8 bit
    <folder>/masks/001/00000.png ...        visible mask of object 1 (0/255), one folder per object id (3 digits)
    <folder>/depth.npy                      (T, H, W) float32 z-depth at pixel centres
    <folder>/cameras.json                   {"width", "height", "num_frames", "Ks": (T, 3, 3), "viewmats": (T, 4, 4)}
    <folder>/tracks3d.npz                   tracks3d (N, T, 3) float32 world points, tracks2d (N, T, 2) float32
                                            input-view pixels, visibility (N, T) bool (input view), labels (N,) int32
    <folder>/extra_views/00/...             a held-out camera: frames/, masks/, depth.npy, cameras.json as above
    <folder>/SOURCE.json                    seed, objects (id, kind, nonrigid), what ground truth there is

``read_view(folder)`` reads the input view (or ``folder/extra_views/<k>``) back.
"""

from benchmarks.synthetic.generate import SyntheticScene, SyntheticView, generate_scene
from benchmarks.synthetic.io import read_view, write_scene

__all__ = ["SyntheticScene", "SyntheticView", "generate_scene", "read_view", "write_scene"]
