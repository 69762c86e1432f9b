"""The static background: Gaussians in world coordinates fitted over every frame with the objects left out.

1. fill: the dilated union of the object masks is each frame's hole; holes get background colour and depth
   from :mod:`compose.inpaint` (weight-free inpainting, or a clean plate with a fixed camera);
2. init: background pixels (outside holes, depth confidence > 0) of a few evenly spaced frames are lifted to
   the world with their depth and camera; filled pixels are lifted too, but only where no other of those frames
   observes the same point, so Gaussians exist in regions never seen; points are de-duplicated on a voxel grid
   (observations win over fill) and subsampled to a budget;
3. fit: RGB L1 + D-SSIM against the filled frames with per-pixel weights 1 outside holes and
   ``inpaint_weight`` inside (the objects' colours never enter the loss; the fill only decides what nothing
   else constrains), a depth term, an opacity term (the background covers every pixel), an occlusion term,
   and gsplat's densification.

Occlusion: each input frame shows its objects in front of the background, so behind an object's pixels the
background must be farther than the object (:func:`compose.inpaint.occluder_depth`: the object's depth plus
``object_depth_ratio`` times its half width). Fills are raised to that bound, and with absolute depth a hinge
(:func:`occlusion_hinge`) pushes back any background drawn nearer there -- Gaussians lifted from other frames
at a depth the maps got wrong would otherwise hide the object once the scene is composed.

Depth term: with depth tied to the cameras (``DepthMaps.metric``) the loss is absolute, ``|d - d*| / d*``: the
depth then carries the same scale as the camera translations, and an absolute term keeps the background where
the objects' placement (which reads the same depth) expects it. Relative depth has an unknown scale and shift
per frame, so it only constrains shape: the loss is then scale-shift invariant per frame.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from gsplat.strategy import DefaultStrategy
from tqdm import tqdm

from compose.inpaint import (BackgroundFill, InpaintConfig, Inpainter, fill_background, object_holes,
                             occluder_depth)
from scene4d import losses
from scene4d.contracts.cameras import Cameras
from scene4d.contracts.depth import DepthMaps
from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks
from scene4d.conventions import backproject_depth, project_points
from scene4d.densify import Densifier, make_optimizers
from scene4d.errors import InputError
from scene4d.gaussians import Gaussians, knn_scales
from scene4d.metrics.image import psnr
from scene4d.render.render import RenderOutput, render

# 3DGS's rates, colours x4: a background fit runs hundreds of steps, not tens of thousands.
GAUSSIAN_LRS = {"scales": 5e-3, "quats": 1e-3, "opacities": 5e-2, "sh0": 1e-2, "shN": 1e-2 / 20}
DEPTH_MODES = ("auto", "absolute", "scale-shift-invariant", "off")
DRAWN_ALPHA = 0.01
"""Rendered opacity above which the background counts as drawn at a pixel (occlusion term and metric)."""
OCCLUSION_TOLERANCE = 0.98
"""``behind_objects`` counts background depth within 2 % of the occluder bound as behind it."""


@dataclass
class BackgroundLossWeights:
    """Weight of each loss term of the background fit (0 turns a term off)."""

    rgb: float = 1.0
    """Weighted L1 colour error against the filled frames."""
    dssim: float = 0.2
    """Weighted structural dissimilarity against the filled frames."""
    depth: float = 0.1
    """Depth error (absolute or scale-shift invariant, see ``depth_mode``)."""
    opacity: float = 0.1
    """Mean transparency ``1 - alpha`` over every pixel: the background has no holes."""
    occlusion: float = 1.0
    """Background drawn nearer than the objects it lies behind (absolute depth only; :func:`occlusion_hinge`);
    0 also leaves the lifted points where their depth puts them (:func:`push_behind_occluders`). Filled depth
    is raised to the bound either way."""
    anisotropy: float = 0.01
    """Penalty on needle-like Gaussians."""


@dataclass
class BackgroundConfig:
    """How the static background Gaussians are initialised and fitted."""

    iterations: int = 1200
    """Optimisation steps. On ``ds4d_stroller`` at 256 px (same object fits, centres' lr decayed to 0.01) 300 / 600 /
    1200 steps gave a composed PSNR of 26.5 / 27.1 / 27.6 dB on the fitted frames and 26.0 / 26.4 / 26.5 on hidden
    ones, in 28 / 46 / 109 s; 300 steps without the decay 26.0 / 25.6."""
    frames_per_step: int = 1
    """Frames rendered per step (cycling through a shuffled order of all frames)."""
    init_frames: int = 4
    """Evenly spaced frames whose pixels are lifted to initialise the Gaussians."""
    init_points: int = 20000
    """At most this many initial Gaussians, after voxel de-duplication."""
    voxel_pixels: float = 1.0
    """Edge of the de-duplication voxel, in pixels at the median background depth."""
    object_depth_ratio: float = 1.0
    """Assumed depth of an object relative to its width: behind an object's pixels the background is kept at
    least its depth plus this times its half width farther (0: only behind the object's own depth)."""
    inpaint_weight: float = 0.05
    """Loss weight of filled pixels (inside object regions) relative to observed background pixels."""
    depth_mode: str = "auto"
    """``absolute``, ``scale-shift-invariant``, ``off``, or ``auto``: absolute when the depth is tied to the cameras."""
    init_opacity: float = 0.5
    """Initial opacity of every Gaussian."""
    sh_degree: int = 0
    """Spherical-harmonics degree of the colours (0: view-independent)."""
    max_gaussians: int = 40000
    """Densification stops adding Gaussians beyond this count."""
    densify: bool = True
    """Clone, split and prune Gaussians (gsplat's default strategy)."""
    lr_means: float = 4e-4
    """Learning rate of Gaussian centres, relative to the scene depth."""
    lr_means_final: float = 0.01
    """The centres' learning rate decays exponentially to this fraction of ``lr_means`` by the last step (as 3DGS
    does); 1 keeps it constant."""
    seed: int = 0
    """Random seed (initial sampling, frame order, background colours)."""
    backend: str = "auto"
    """Render backend: auto, cpu-kernel, torch, gsplat."""
    inpaint: InpaintConfig = field(default_factory=InpaintConfig)
    """How object regions are filled."""
    weights: BackgroundLossWeights = field(default_factory=BackgroundLossWeights)
    """Loss weights."""


@dataclass
class BackgroundResult:
    """A fitted background.

    Attributes:
        gaussians: static Gaussians in world coordinates.
        fill: the filled frames, depth and holes the fit used (for the report).
        history: logged rows ``{"step", "total", <loss name>: value, "gaussians", "lr_means"}`` (``lr_means``: the
            centres' learning rate that step, in world units).
        stage_seconds: wall time of ``fill``, ``init``, ``fit`` and ``evaluate``.
        metrics: ``psnr_background`` (dB, observed background pixels), ``psnr_filled`` (dB, holes against the
            fill; NaN without holes), ``coverage`` (mean rendered opacity), ``behind_objects`` (share of object
            pixels where the background is drawn at or behind :func:`compose.inpaint.occluder_depth`; NaN
            without objects or absolute depth), ``init_observed``/``init_filled``
            (initial Gaussians from observed/filled pixels), ``gaussians``, ``seconds_per_iteration``,
            ``fixed_camera`` (0/1), ``depth_mode``.
    """

    gaussians: Gaussians
    fill: BackgroundFill
    history: list[dict] = field(default_factory=list)
    stage_seconds: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


def pixel_weights(holes: torch.Tensor, inpaint_weight: float) -> torch.Tensor:
    """Loss weight of every pixel: 1 outside holes, ``inpaint_weight`` inside.

    Args:
        holes: (T, H, W) bool dilated object regions.
        inpaint_weight: weight in [0, 1] of filled pixels.

    Returns:
        (T, H, W, 1) float32.
    """
    if not 0.0 <= inpaint_weight <= 1.0:
        raise InputError(f"inpaint_weight must be in [0, 1], got {inpaint_weight}")
    return torch.where(holes, inpaint_weight, 1.0).to(torch.float32)[..., None]


def occlusion_hinge(depth: torch.Tensor, alpha: torch.Tensor, min_depth: torch.Tensor) -> torch.Tensor:
    """Mean relative shortfall ``relu(b - z) / b`` of the rendered depth behind the objects.

    Args:
        depth: (B, H, W, 1) rendered expected depth; alpha: (B, H, W, 1) rendered opacity.
        min_depth: (B, H, W, 1) the nearest allowed depth ``b`` (:func:`compose.inpaint.occluder_depth`), 0
            where no object is.

    Over pixels with ``b > 0`` where the background draws anything (alpha > :data:`DRAWN_ALPHA`); 0 when there
    are none.
    """
    where = (min_depth > 0) & (alpha.detach() > DRAWN_ALPHA)
    if not where.any():
        return depth.sum() * 0.0
    return (torch.relu(min_depth - depth)[where] / min_depth[where]).mean()


def relative_depth_l1(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean of ``|pred - target| / target`` (absolute depth error, independent of the unit).

    Args:
        pred, target, weights: (B, H, W, 1); ``target`` positive where ``weights > 0``.
    """
    safe = torch.where(weights > 0, target, torch.ones_like(target))
    return ((pred - target).abs() / safe * weights).sum() / weights.sum().clamp_min(1e-8)


def is_fixed_camera(viewmats: torch.Tensor, atol: float = 1e-6) -> bool:
    """Whether every (T, 4, 4) world-to-camera matrix equals the first."""
    return bool(torch.allclose(viewmats, viewmats[:1].expand_as(viewmats), atol=atol))


def voxel_first(points: torch.Tensor, voxel: float) -> torch.Tensor:
    """Indices of the first point (in input order) falling in each occupied voxel.

    Args:
        points: (N, 3); voxel: edge length > 0.

    Returns:
        (M,) long, increasing.
    """
    if voxel <= 0 or not math.isfinite(voxel):
        raise ValueError(f"voxel must be positive and finite, got {voxel}")
    keys = torch.floor(points / voxel).to(torch.int64).numpy()
    _, first = np.unique(keys, axis=0, return_index=True)
    return torch.from_numpy(np.sort(first))


def _select_init_frames(num_frames: int, count: int) -> list[int]:
    return sorted({int(round(x)) for x in np.linspace(0, num_frames - 1, max(min(count, num_frames), 1))})


def _lookup(image: torch.Tensor, pixels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(P,) values of the (H, W) ``image`` at the pixels containing ``pixels`` (P, 2); 0 (False) where those lie
    outside the image or ``valid`` (P,) is False."""
    height, width = image.shape
    col, row = torch.floor(pixels[:, 0]).long(), torch.floor(pixels[:, 1]).long()
    inside = valid & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    values = torch.zeros(pixels.shape[0], dtype=image.dtype)
    values[inside] = image[row[inside], col[inside]]
    return values


def _seen_elsewhere(points: torch.Tensor, source: torch.Tensor, observed: torch.Tensor, frames: list[int],
                    viewmats: torch.Tensor, Ks: torch.Tensor) -> torch.Tensor:
    """(P,) bool: the point projects onto an observed pixel of one of ``frames`` other than its own."""
    seen = torch.zeros(points.shape[0], dtype=torch.bool)
    pixels, depths = project_points(points, viewmats[frames], Ks[frames])
    for i, frame in enumerate(frames):
        seen |= _lookup(observed[frame], pixels[i], depths[i] > 0) & (source != frame)
    return seen


def push_behind_occluders(points: torch.Tensor, source: torch.Tensor, min_depth: torch.Tensor,
                          viewmats: torch.Tensor, Ks: torch.Tensor, max_factor: float = 4.0) -> torch.Tensor:
    """Move lifted points back along their own camera's ray until no other frame sees them in front of an object.

    A point ``X`` lifted in frame ``a`` that frame ``b`` sees inside an object's region nearer than the bound
    ``m_b`` there contradicts frame ``b`` (which shows the object in front). On ``a``'s ray
    ``X(s) = c_a + s (X - c_a)`` the depth in ``b`` is affine in ``s``, so the ``s`` reaching ``m_b`` is exact;
    each point takes the largest ``s`` over the frames (at most ``max_factor``). Frame ``a``'s image of the
    point is unchanged.

    Args:
        points: (P, 3) world points; source: (P,) the frame each was lifted from.
        min_depth: (T, H, W) nearest depth allowed per pixel (:func:`compose.inpaint.occluder_depth`), 0 free.
        viewmats: (T, 4, 4); Ks: (T, 3, 3).

    Returns:
        (P, 3) moved points.
    """
    origin = torch.linalg.inv(viewmats)[:, :3, 3][source]
    factor = torch.ones(points.shape[0])
    pixels, depths = project_points(points, viewmats, Ks)
    for frame in torch.nonzero(min_depth.flatten(1).amax(1) > 0)[:, 0].tolist():
        bound = _lookup(min_depth[frame], pixels[frame], (depths[frame] > 0) & (source != frame))
        origin_depth = origin @ viewmats[frame, 2, :3] + viewmats[frame, 2, 3]
        step = depths[frame] - origin_depth
        hit = (bound > depths[frame]) & (step > 0)
        factor[hit] = torch.maximum(factor[hit], (bound[hit] - origin_depth[hit]) / step[hit])
    return origin + factor.clamp(max=max_factor)[:, None] * (points - origin)


def lift_background(images: torch.Tensor, fill: BackgroundFill, viewmats: torch.Tensor, Ks: torch.Tensor,
                    config: BackgroundConfig, generator: torch.Generator, min_depth: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
    """Initial background points: lifted observed and filled pixels, de-duplicated and subsampled (module docstring).

    Each point's scale is the distance to its nearest neighbours, capped at twice the spacing of the kept
    points in the image (a sparse point far from the others, such as a thin structure, then stays small
    instead of covering the view).

    Args:
        images: (T, H, W, 3) filled frames in [0, 1].
        fill: holes, filled depth and where it is known (observed pixels are those outside holes with a
            confident input depth).
        viewmats: (T, 4, 4); Ks: (T, 3, 3).
        config: ``init_frames``, ``init_points``, ``voxel_pixels``.
        generator: random source of the subsampling.
        min_depth: (T, H, W) nearest depth allowed behind the objects (:func:`push_behind_occluders`), or None.

    Returns:
        ``(points, colors, scales, num_observed, num_filled)``: (P, 3) world points, (P, 3) RGB and (P,)
        standard deviations, observed points first.
    """
    holes = torch.from_numpy(fill.holes)
    depth = torch.from_numpy(fill.depth)
    known = torch.from_numpy(fill.depth_known)
    observed = known & ~holes
    frames = _select_init_frames(images.shape[0], config.init_frames)
    parts = {"observed": ([], [], [], []), "filled": ([], [], [], [])}
    for frame in frames:
        world = backproject_depth(depth[frame], Ks[frame], torch.linalg.inv(viewmats[frame]))
        pixel_size = depth[frame] / Ks[frame, :2, :2].diagonal().mean()
        for name, select in (("observed", observed[frame]), ("filled", holes[frame] & known[frame])):
            parts[name][0].append(world[select])
            parts[name][1].append(images[frame][select])
            parts[name][2].append(pixel_size[select])
            parts[name][3].append(torch.full((int(select.sum()),), frame))
    obs_points, obs_colors, obs_sizes, obs_source = (torch.cat(p) for p in parts["observed"])
    fill_points, fill_colors, fill_sizes, fill_source = (torch.cat(p) for p in parts["filled"])
    keep = ~_seen_elsewhere(fill_points, fill_source, observed, frames, viewmats, Ks)
    fill_points, fill_colors, fill_sizes, fill_source = (x[keep] for x in (fill_points, fill_colors, fill_sizes,
                                                                          fill_source))
    if min_depth is not None:
        obs_points = push_behind_occluders(obs_points, obs_source, min_depth, viewmats, Ks)
        fill_points = push_behind_occluders(fill_points, fill_source, min_depth, viewmats, Ks)
    if obs_points.shape[0] + fill_points.shape[0] < 4:
        raise InputError("background: fewer than 4 background pixels with known depth to start from")
    # Shuffle within each group so the voxel's representative is random, observations first so they win.
    obs_order = torch.randperm(obs_points.shape[0], generator=generator)
    fill_order = torch.randperm(fill_points.shape[0], generator=generator)
    points = torch.cat([obs_points[obs_order], fill_points[fill_order]])
    colors = torch.cat([obs_colors[obs_order], fill_colors[fill_order]])
    sizes = torch.cat([obs_sizes[obs_order], fill_sizes[fill_order]])
    is_observed = torch.arange(points.shape[0]) < obs_points.shape[0]
    kept = voxel_first(points, config.voxel_pixels * float(sizes.median()))
    if kept.numel() > config.init_points:
        subset = torch.randperm(kept.numel(), generator=generator)[: config.init_points]
        kept = kept[subset.sort().values]
    pixels_per_point = len(frames) * images.shape[1] * images.shape[2] / kept.numel()
    cap = 2.0 * max(pixels_per_point, 1.0) ** 0.5 * sizes[kept]
    scales = torch.minimum(knn_scales(points[kept]), cap) if kept.numel() > 3 else cap
    num_observed = int(is_observed[kept].sum())
    return points[kept], colors[kept], scales, num_observed, kept.numel() - num_observed


def _check_inputs(frames: Frames, masks: ObjectMasks | None, depth: DepthMaps, cameras: Cameras,
                  config: BackgroundConfig) -> None:
    size = (frames.width, frames.height)
    depth.validate(frames.num_frames, size)
    cameras.validate(frames.num_frames, size)
    if masks is not None:
        masks.validate(frames.num_frames, size)
    if config.depth_mode not in DEPTH_MODES:
        raise InputError(f"background: depth_mode must be one of {DEPTH_MODES}, got {config.depth_mode!r}")
    if config.iterations < 1 or config.frames_per_step < 1 or config.init_points < 4:
        raise InputError(f"background: need iterations >= 1, frames_per_step >= 1, init_points >= 4; got "
                         f"{config.iterations}, {config.frames_per_step}, {config.init_points}")


def _render(gaussians: Gaussians, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
            backgrounds: torch.Tensor | None, backend: str) -> RenderOutput:
    return render(gaussians.get_means(), gaussians.get_quats(), gaussians.get_scales(), gaussians.get_opacities(),
                  gaussians.colors(), viewmats, Ks, width, height, backgrounds=backgrounds,
                  sh_degree=gaussians.sh_degree, backend=backend)


@dataclass
class _Targets:
    images: torch.Tensor  # (T, H, W, 3) filled frames
    weights: torch.Tensor  # (T, H, W, 1) colour weights
    depth: torch.Tensor  # (T, H, W, 1) filled depth
    depth_weights: torch.Tensor  # (T, H, W, 1)
    min_depth: torch.Tensor  # (T, H, W, 1) nearest depth allowed behind the objects, 0 elsewhere
    absolute_depth: bool  # depth and min_depth are in the units of the rendered depth
    occlusion: bool  # the occlusion hinge is on (absolute depth and a positive weight)
    viewmats: torch.Tensor
    Ks: torch.Tensor


def _losses(gaussians: Gaussians, data: _Targets, frames: torch.Tensor, depth_mode: str, backend: str,
            generator: torch.Generator) -> tuple[dict, RenderOutput]:
    height, width = data.images.shape[1:3]
    backgrounds = torch.rand(frames.shape[0], 3, generator=generator)
    out = _render(gaussians, data.viewmats[frames], data.Ks[frames], width, height, backgrounds, backend)
    target, weights = data.images[frames], data.weights[frames]
    terms = {
        "rgb": losses.rgb_l1(out.colors, target, weights),
        "dssim": losses.dssim(out.colors, target, weights),
        "opacity": (1.0 - out.alphas).mean(),
        "anisotropy": losses.scale_anisotropy(gaussians.get_scales()),
    }
    depth_weights = data.depth_weights[frames]
    if depth_mode == "absolute":
        terms["depth"] = relative_depth_l1(out.depths, data.depth[frames], depth_weights)
    elif depth_mode == "scale-shift-invariant":
        terms["depth"] = losses.depth_scale_shift_invariant(out.depths, data.depth[frames], depth_weights)
    if data.occlusion:
        terms["occlusion"] = occlusion_hinge(out.depths, out.alphas, data.min_depth[frames])
    return terms, out


@torch.no_grad()
def _evaluate(gaussians: Gaussians, data: _Targets, observed_images: torch.Tensor, holes: torch.Tensor,
              backend: str, chunk: int = 4) -> dict:
    height, width = data.images.shape[1:3]
    colors, alphas, depths = [], [], []
    for start in range(0, data.images.shape[0], chunk):
        index = torch.arange(start, min(start + chunk, data.images.shape[0]))
        out = _render(gaussians, data.viewmats[index], data.Ks[index], width, height, None, backend)
        colors.append(out.colors.clamp(0.0, 1.0))
        alphas.append(out.alphas)
        depths.append(out.depths)
    colors, alphas, depths = torch.cat(colors), torch.cat(alphas), torch.cat(depths)
    behind = data.min_depth > 0
    kept = (depths >= OCCLUSION_TOLERANCE * data.min_depth) | (alphas <= DRAWN_ALPHA)

    def mean_psnr(target: torch.Tensor, mask: torch.Tensor) -> float:
        scores = psnr(colors, target, mask)
        return float(scores.nanmean()) if mask.any() else float("nan")

    return {"psnr_background": mean_psnr(observed_images, ~holes), "psnr_filled": mean_psnr(data.images, holes),
            "coverage": float(alphas.mean()),
            "behind_objects": float(kept[behind].float().mean()) if behind.any() and data.absolute_depth
            else float("nan")}


def fit_background(frames: Frames, masks: ObjectMasks | None, depth: DepthMaps, cameras: Cameras,
                   config: BackgroundConfig, progress: bool = True, inpainter: Inpainter | None = None,
                   fit_frames: list[int] | None = None) -> BackgroundResult:
    """Fit the static background Gaussians of a clip (see the module docstring).

    Args:
        frames: T frames of H x W.
        masks: the objects' masks over the same frames, or None when there are no objects.
        depth: per-frame depth and confidence (object pixels carry the objects' depth; they are replaced).
        cameras: per-frame intrinsics and world-to-camera matrices (all equal for a fixed camera).
        config: the settings.
        progress: show a progress bar.
        inpainter: colour inpainting of the object regions instead of OpenCV (e.g.
            :func:`compose.inpaint_diffusion.build_inpainter`'s), or None.
        fit_frames: the only frames filled, lifted and fitted to (all by default; the others stay unseen, for
            evaluation); the metrics are over these frames.

    Returns:
        :class:`BackgroundResult` with Gaussians in world coordinates.

    Raises:
        InputError: inconsistent inputs, or no background pixel with known depth.
    """
    _check_inputs(frames, masks, depth, cameras, config)
    if fit_frames is not None:
        if not fit_frames:
            raise InputError("background: no frame left to fit")
        frames, depth, cameras = (x.take_frames(fit_frames) for x in (frames, depth, cameras))
        masks = None if masks is None else masks.take_frames(fit_frames)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    shape = (frames.num_frames, frames.height, frames.width)
    viewmats = torch.from_numpy(cameras.viewmats).float()
    Ks = torch.from_numpy(cameras.Ks).float()
    fixed = is_fixed_camera(viewmats)
    result_seconds = {}

    start = time.perf_counter()
    holes = object_holes(masks, shape, config.inpaint.dilation)
    min_depth = np.zeros(shape, dtype=np.float32) if masks is None else occluder_depth(
        masks.masks, depth.depth, depth.confidence, cameras.Ks[:, 0, 0], config.object_depth_ratio)
    fill = fill_background(frames.images, holes, depth.depth, depth.confidence, fixed, config.inpaint, inpainter,
                           min_depth)
    result_seconds["fill"] = time.perf_counter() - start

    depth_mode = config.depth_mode
    if depth_mode == "auto":
        depth_mode = "absolute" if depth.metric else "scale-shift-invariant"
    absolute_depth = depth_mode == "absolute"
    occlusion = absolute_depth and config.weights.occlusion > 0
    start = time.perf_counter()
    images = torch.from_numpy(fill.images).float() / 255.0
    holes = torch.from_numpy(fill.holes)
    min_depth = torch.from_numpy(min_depth)
    points, colors, scales, num_observed, num_filled = lift_background(
        images, fill, viewmats, Ks, config, generator, min_depth if occlusion else None)
    gaussians = Gaussians.from_points(points, colors, sh_degree=config.sh_degree, scale=scales,
                                      opacity=config.init_opacity)
    camera_center = torch.linalg.inv(viewmats)[:, :3, 3].mean(0)
    scene_scale = float(torch.linalg.norm(points - camera_center, dim=1).median())
    weights = pixel_weights(holes, config.inpaint_weight)
    known = torch.from_numpy(fill.depth_known)
    depth_confidence = torch.where(holes, 1.0, torch.from_numpy(depth.confidence)) * known
    data = _Targets(images, weights, torch.from_numpy(fill.depth)[..., None], (depth_confidence[..., None] * weights),
                    min_depth[..., None], absolute_depth, occlusion, viewmats, Ks)
    result_seconds["init"] = time.perf_counter() - start

    if config.weights.depth == 0.0:
        depth_mode = "off"
    start = time.perf_counter()
    history = _optimise(gaussians, data, config, scene_scale, depth_mode, generator, progress)
    result_seconds["fit"] = time.perf_counter() - start

    start = time.perf_counter()
    observed_images = torch.from_numpy(frames.images).float() / 255.0
    metrics = _evaluate(gaussians, data, observed_images, holes, config.backend)
    result_seconds["evaluate"] = time.perf_counter() - start
    metrics.update({"init_observed": num_observed, "init_filled": num_filled, "gaussians": gaussians.num_gaussians,
                    "seconds_per_iteration": result_seconds["fit"] / config.iterations, "fixed_camera": int(fixed),
                    "depth_mode": depth_mode})
    return BackgroundResult(gaussians, fill, history, result_seconds, metrics)


def _optimise(gaussians: Gaussians, data: _Targets, config: BackgroundConfig, scene_scale: float, depth_mode: str,
              generator: torch.Generator, progress: bool) -> list[dict]:
    """Run the fit loop on ``gaussians`` in place; returns the logged history."""
    lrs = dict(GAUSSIAN_LRS)
    lrs["means"] = config.lr_means * scene_scale
    optimizers = make_optimizers(gaussians, lrs)
    iterations = config.iterations
    densifier = Densifier(DefaultStrategy(
        refine_start_iter=max(iterations // 10, 1), refine_stop_iter=int(iterations * 0.7),
        refine_every=max(iterations // 10, 1), reset_every=10**9, verbose=False)) if config.densify else None
    state = densifier.initialize_state(scene_scale=scene_scale) if densifier else None
    means_decay = torch.optim.lr_scheduler.ExponentialLR(
        optimizers["means"], config.lr_means_final ** (1.0 / max(iterations - 1, 1)))
    num_frames = data.images.shape[0]
    batch = min(config.frames_per_step, num_frames)
    order = torch.empty(0, dtype=torch.long)
    history = []
    bar = tqdm(total=iterations, desc="fitting background", unit="it", disable=not progress, leave=False)
    for step in range(iterations):
        if order.numel() < batch:
            order = torch.cat([order, torch.randperm(num_frames, generator=generator)])
        frames, order = order[:batch], order[batch:]
        terms, out = _losses(gaussians, data, frames, depth_mode, config.backend, generator)
        loss = sum(getattr(config.weights, name) * value for name, value in terms.items())
        if densifier:
            densifier.step_pre_backward(gaussians, optimizers, state, step, out.info)
        loss.backward()
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        if densifier and gaussians.num_gaussians < config.max_gaussians:
            densifier.step_post_backward(gaussians, optimizers, state, step, out.info)
        if step % 10 == 0 or step == iterations - 1:
            row = {"step": step, "total": loss.item(), "gaussians": gaussians.num_gaussians,
                   "lr_means": optimizers["means"].param_groups[0]["lr"]}
            row.update({k: v.item() for k, v in terms.items()})
            history.append(row)
            bar.set_postfix(loss=f"{loss.item():.4f}", n=gaussians.num_gaussians)
        means_decay.step()
        bar.update(1)
    bar.close()
    return history
