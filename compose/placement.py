"""Placing each object in the scene's metric frame, and the depth ordering the composed scene reproduces.

Each object was fitted on its own, so its distance from the camera is only as good as the depth it was lifted
with. Scaling an object by ``k`` about the camera centre ``c`` (``x -> c + k (x - c)``, Gaussian sizes times
``k``) leaves its image from that camera unchanged -- every projected 2D covariance is the same -- and
multiplies its rendered depth by ``k``. So the depth disagreement is one unknown per object, fitted here
robustly (as DreamScene4D does with a grid search over ``k``):

- residuals are log-depth ratios ``r = log(z_scene / z_object)`` over the object's visible pixels, so
  ``log k`` is their location, independent of the object's distance;
- the location is an IRLS estimate with Tukey's biweight (redescending: residuals beyond the threshold have
  no influence at all, unlike Huber's, which still biases the fit by threshold x outlier share), started at
  the weighted median so it converges to the majority; outliers are depth-map bleeding at mask edges, wrong
  masks, reflections. Samples are weighted by the depth confidence.

One ``k`` is shared over the clip: a rigid object's size does not change, and a per-frame ``k`` would make
it breathe. Per-frame residuals (the median log ratio left in each frame) are reported instead, so a frame
where the object's depth is off stands out.

The scale is written back into the object's model (not its edit): ``s(t) -> k s(t)`` (log-scale knots plus
``log k``) and ``T(t) -> k T(t) + (1 - k) c(t)``. The spline of ``T`` absorbs the camera-centre term
exactly when ``c(t)`` is a spline of the same knots -- a fixed camera, or one moving along a straight line
or any cubic -- otherwise the knots are least-squares fitted to the per-frame targets and the largest
world-space miss is reported (``trajectory_residual``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import torch

from compose.scene import Scene, SceneObject
from scene4d.contracts.cameras import Cameras
from scene4d.contracts.depth import DepthMaps
from scene4d.contracts.masks import ObjectMasks
from scene4d.conventions import normalized_time
from scene4d.errors import InputError
from scene4d.motion import spline


@dataclass
class PlacementConfig:
    """How each object's scale along the camera rays is fitted."""

    target: str = "depth"
    """``depth``: the depth maps inside the object's mask; ``contact``: the background's rendered depth just
    below the bottom of the object's mask (where it touches the ground; assumes the camera is upright)."""
    min_confidence: float = 0.1
    """Scene-depth pixels below this confidence are ignored (pairs are also weighted by it); the weight-free
    depth stage gives object pixels a low but usable confidence."""
    min_alpha: float = 0.5
    """Object pixels are used where its own render is at least this opaque."""
    erode: int = 1
    """Mask erosion in pixels before pairing (depth maps bleed across object edges)."""
    outlier_threshold: float = 0.1
    """Log-depth residual beyond which a pixel has no influence (0.1 is about 10 % depth disagreement);
    raised to 4.685 robust standard deviations when the depth is noisier than that."""
    iterations: int = 30
    """IRLS iterations (stops earlier once converged)."""
    min_pixels: int = 16
    """Fewer usable pixels than this leaves the object unscaled (``reliable=False``)."""
    contact_rows: float = 0.1
    """``contact`` target: bottom fraction of the mask's height whose lower edge counts as contact."""
    contact_offset: int = 2
    """``contact`` target: first row below the mask edge where the background depth is read."""
    contact_span: int = 3
    """``contact`` target: rows read from there down; their inverse depth is extrapolated to the edge."""
    backend: str = "auto"
    """Render backend for the object's depth."""


@dataclass
class PlacementFit:
    """The fitted scale of one object.

    Attributes:
        scale: ``k``; the object moves from the camera by this factor.
        reliable: False when too few pixels were usable (then ``scale`` is 1).
        pixels: pixel pairs used.
        inlier_fraction: share of pairs (by weight) within the outlier threshold of the fit.
        frame_residuals: (T,) per-frame weighted median of ``log(z_scene / (k z_object))``; NaN where unused.
        trajectory_residual: largest world distance between the placed trajectory and the exact per-frame
            scaling about the camera centres (0 for a fixed camera); filled by :func:`place_objects`.
    """

    scale: float
    reliable: bool
    pixels: int
    inlier_fraction: float
    frame_residuals: torch.Tensor
    trajectory_residual: float = 0.0


def weighted_median(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Lower weighted median of ``values`` (P,) with non-negative ``weights`` (P,), P >= 1."""
    order = torch.argsort(values)
    cumulative = torch.cumsum(weights[order], 0)
    index = torch.searchsorted(cumulative, 0.5 * cumulative[-1]).clamp(max=values.numel() - 1)
    return values[order][index]


def robust_log_scale(object_depth: torch.Tensor, scene_depth: torch.Tensor, weights: torch.Tensor | None = None,
                     threshold: float = 0.1, iterations: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """Robust location of the log-depth ratios ``log(scene_depth / object_depth)`` (Tukey biweight IRLS).

    Args:
        object_depth, scene_depth: (P,) positive depths of the same pixels.
        weights: (P,) non-negative prior weights (confidence), or None for ones.
        threshold: residual (log units) beyond which a sample has no influence; raised to 4.685 robust
            standard deviations (1.4826 MAD) when the ratios are noisier.
        iterations: maximum IRLS iterations.

    Returns:
        ``(log_k, inlier)``: scalar ``log k`` (float64) and (P,) bool, residual within the threshold.
    """
    if object_depth.dim() != 1 or object_depth.shape != scene_depth.shape or object_depth.numel() == 0:
        raise ValueError(f"depths: expected two equal (P,) with P >= 1, got {tuple(object_depth.shape)} "
                         f"and {tuple(scene_depth.shape)}")
    if bool((object_depth <= 0).any()) or bool((scene_depth <= 0).any()):
        raise ValueError("depths: every depth must be positive")
    ratios = scene_depth.double().log() - object_depth.double().log()
    prior = torch.ones_like(ratios) if weights is None else weights.double()
    location = weighted_median(ratios, prior)
    spread = 1.4826 * weighted_median((ratios - location).abs(), prior)
    cutoff = max(threshold, 4.685 * float(spread))
    for _ in range(iterations):
        biweight = torch.clamp(1.0 - ((ratios - location) / cutoff).square(), min=0.0).square() * prior
        updated = (biweight * ratios).sum() / biweight.sum().clamp_min(1e-300)
        converged = bool((updated - location).abs() < 1e-10)
        location = updated
        if converged:
            break
    return location, (ratios - location).abs() <= cutoff


def _erode(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    if pixels <= 0:
        return mask
    inverted = (~mask).float()[:, None]
    grown = torch.nn.functional.max_pool2d(inverted, 2 * pixels + 1, stride=1, padding=pixels)
    return grown[:, 0] < 0.5


def depth_pairs(object_depth: torch.Tensor, object_alpha: torch.Tensor, mask: torch.Tensor,
                scene_depth: torch.Tensor, confidence: torch.Tensor, config: PlacementConfig
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel pairs (object depth, scene depth) the scale is fitted to.

    Args:
        object_depth, object_alpha: (T, H, W) the object rendered alone.
        mask: (T, H, W) bool input (visible) mask of the object.
        scene_depth, confidence: (T, H, W) depth to agree with and its confidence in [0, 1].
        config: which pixels (``target``) and thresholds.

    Returns:
        ``(object, scene, weight, frame)``, each (P,): depths, confidences and long frame indices.
    """
    shape = object_depth.shape
    for name, value in (("object_alpha", object_alpha), ("mask", mask), ("scene_depth", scene_depth),
                        ("confidence", confidence)):
        if value.shape != shape:
            raise ValueError(f"{name}: expected {tuple(shape)} like object_depth, got {tuple(value.shape)}")
    drawn = (object_alpha >= config.min_alpha) & (object_depth > 0)
    if config.target == "depth":
        usable = _erode(mask, config.erode) & drawn & (confidence >= config.min_confidence) & (scene_depth > 0)
        frame, row, col = usable.nonzero(as_tuple=True)
        return (object_depth[frame, row, col], scene_depth[frame, row, col], confidence[frame, row, col], frame)
    if config.target == "contact":
        return _contact_pairs(object_depth, drawn, mask, scene_depth, confidence, config)
    raise ValueError(f"target: expected 'depth' or 'contact', got {config.target!r}")


def _contact_pairs(object_depth, drawn, mask, scene_depth, confidence, config):
    offset, span = config.contact_offset, config.contact_span
    height = mask.shape[1]
    rows = torch.arange(height)[None, :, None]
    # Lower mask edge: inside, with the pixel below outside (image rows grow downwards).
    below = torch.zeros_like(mask)
    below[:, :-1] = mask[:, 1:]
    edge = mask & ~below & drawn
    bottom = torch.where(mask, rows, -1).amax(dim=(1, 2))
    top = torch.where(mask, rows, height).amin(dim=(1, 2))
    band = (bottom - top + 1).float() * config.contact_rows
    edge &= rows >= (bottom.float() - band)[:, None, None]
    edge[:, height - offset - span + 1:] = False
    frame, row, col = edge.nonzero(as_tuple=True)
    steps = torch.arange(offset, offset + span)
    sample_rows = row[:, None] + steps[None]
    depth = scene_depth[frame[:, None], sample_rows, col[:, None]]
    conf = confidence[frame[:, None], sample_rows, col[:, None]]
    keep = ((conf >= config.min_confidence) & (depth > 0)).all(dim=1)
    # On a plane, inverse depth is affine in the pixel coordinates: extrapolate it from the rows below
    # back to the object's edge row (the surface's depth changes fast near the horizon).
    x = steps.to(depth.dtype) - steps.to(depth.dtype).mean()
    inverse = 1.0 / depth[keep].clamp_min(1e-12)
    slope = (inverse * x).sum(1) / x.square().sum().clamp_min(1e-12)
    at_edge = inverse.mean(1) - slope * steps.to(depth.dtype).mean()
    valid = at_edge > 0
    frame, row, col = frame[keep][valid], row[keep][valid], col[keep][valid]
    return (object_depth[frame, row, col], 1.0 / at_edge[valid], conf[keep][valid].amin(1), frame)


@torch.no_grad()
def render_object_depth(scene: Scene, object_id: int, viewmats: torch.Tensor, Ks: torch.Tensor, width: int,
                        height: int, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """The object alone (edits included) through each frame's camera at that frame's time.

    Args:
        viewmats: (T, 4, 4); Ks: (T, 3, 3), one camera per frame of the clip.

    Returns:
        ``(depth, alpha)``, each (T, H, W).
    """
    depths, alphas = [], []
    for f in range(viewmats.shape[0]):
        time = float(normalized_time(f, scene.num_frames))
        out, _ = scene.render(time, viewmats[f:f + 1], Ks[f:f + 1], width, height, backend=backend,
                              include_background=False, object_ids=[object_id])
        depths.append(out.depths[0, ..., 0])
        alphas.append(out.alphas[0, ..., 0])
    return torch.stack(depths), torch.stack(alphas)


def fit_placement(object_depth: torch.Tensor, object_alpha: torch.Tensor, mask: torch.Tensor,
                  scene_depth: torch.Tensor, confidence: torch.Tensor, config: PlacementConfig) -> PlacementFit:
    """Fit one object's scale about the camera centres (see the module docstring).

    Args:
        object_depth, object_alpha: (T, H, W) the object rendered alone (:func:`render_object_depth`).
        mask: (T, H, W) bool input mask; scene_depth, confidence: (T, H, W).
    """
    obj, target, weight, frame = depth_pairs(object_depth, object_alpha, mask, scene_depth, confidence, config)
    num_frames = object_depth.shape[0]
    if obj.numel() < config.min_pixels:
        return PlacementFit(1.0, False, int(obj.numel()), 0.0, torch.full((num_frames,), math.nan))
    log_k, inlier = robust_log_scale(obj, target, weight, config.outlier_threshold, config.iterations)
    residuals = target.double().log() - obj.double().log() - log_k
    per_frame = torch.full((num_frames,), math.nan, dtype=torch.float64)
    for f in frame.unique().tolist():
        here = frame == f
        per_frame[f] = weighted_median(residuals[here], weight[here].double())
    inlier_fraction = float((weight * inlier).sum() / weight.sum().clamp_min(1e-12))
    return PlacementFit(float(log_k.exp()), True, int(obj.numel()), inlier_fraction, per_frame)


@torch.no_grad()
def scale_about_cameras(obj: SceneObject, scale: float, viewmats: torch.Tensor, num_frames: int
                        ) -> tuple[SceneObject, float]:
    """A copy of ``obj`` whose model is scaled by ``scale`` about each frame's camera centre.

    The edit stays the outermost transform: the model is scaled about the camera centre mapped back through
    the edit (``E^-1 S_c E`` is the same scaling about ``E^-1 c``), so the composed object is what scaling
    it in the world about ``c`` gives.

    Args:
        obj: the scene object (unchanged).
        scale: ``k > 0``.
        viewmats: (T, 4, 4) the clip's cameras, one per frame.
        num_frames: frames of the clip (times are ``f / (T - 1)``).

    Returns:
        ``(placed, residual)``: the new object and the largest world distance between its trajectory and the
        exact per-frame scaling (0 when the camera centres lie on a spline of the trajectory's knots).
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    centers = torch.linalg.inv(viewmats.double())[:, :3, 3]
    edit = obj.edit.double()
    centers = (torch.linalg.inv(edit)[None, :3, :3] @ (centers - edit[:3, 3])[..., None])[..., 0]
    times = (normalized_time(torch.arange(viewmats.shape[0]), num_frames).double() + obj.time_offset).clamp(0, 1)
    model = copy.deepcopy(obj.model)
    trajectory = model.trajectory
    knots = trajectory.translation_knots
    if torch.allclose(centers, centers[:1], atol=1e-9 * (1.0 + centers.abs().max().item())):
        center_knots = centers[:1].expand(knots.shape[0], 3)
    else:
        center_knots = spline.fit_values(centers, times, knots.shape[0])
    residual = (1.0 - scale) * torch.linalg.norm(spline.evaluate(center_knots, times) - centers, dim=-1).max()
    trajectory.translation_knots.copy_((scale * knots.double() + (1.0 - scale) * center_knots).to(knots.dtype))
    trajectory.log_scale_knots.add_(math.log(scale))
    world_residual = abs(float(residual)) * float(torch.linalg.det(edit[:3, :3]).abs() ** (1.0 / 3.0))
    return dataclasses.replace(obj, model=model), world_residual


def place_objects(scene: Scene, masks: ObjectMasks, depth: DepthMaps | None, cameras: Cameras,
                  config: PlacementConfig, fit_frames: list[int] | None = None
                  ) -> tuple[Scene, dict[int, PlacementFit]]:
    """Fit and apply every object's scale; objects without a mask are left as they are.

    Args:
        scene: the composed scene (its background is needed for the ``contact`` target).
        masks: input masks, one stack per object id.
        depth: the depth stage's maps (needed for the ``depth`` target).
        cameras: the clip's cameras.
        config: see :class:`PlacementConfig`.
        fit_frames: the only frames whose pixels the fit reads (all by default).

    Returns:
        ``(placed scene, fits by object id)``; the input scene is not modified.
    """
    viewmats = torch.as_tensor(cameras.viewmats, dtype=torch.float32)
    Ks = torch.as_tensor(cameras.Ks, dtype=torch.float32)
    width, height = cameras.width, cameras.height
    if config.target == "depth":
        if depth is None:
            raise InputError("placement: target 'depth' needs depth maps")
        scene_depth, confidence = torch.from_numpy(depth.depth), torch.from_numpy(depth.confidence)
    elif config.target == "contact":
        if scene.background is None:
            raise InputError("placement: target 'contact' needs a background")
        scene_depth, confidence = _background_depth(scene, viewmats, Ks, width, height, config.backend)
    else:
        raise InputError(f"placement: target must be 'depth' or 'contact', got {config.target!r}")
    readable = torch.zeros(cameras.num_frames, dtype=torch.bool)
    readable[slice(None) if fit_frames is None else fit_frames] = True
    fits, placed = {}, []
    for obj in scene.objects:
        if obj.object_id not in masks.object_ids:
            placed.append(obj)
            continue
        object_depth, object_alpha = render_object_depth(scene, obj.object_id, viewmats, Ks, width, height,
                                                         config.backend)
        mask = torch.from_numpy(masks.of(obj.object_id)) & readable[:, None, None]
        fit = fit_placement(object_depth, object_alpha, mask, scene_depth, confidence, config)
        moved, fit.trajectory_residual = scale_about_cameras(obj, fit.scale, viewmats, scene.num_frames)
        fits[obj.object_id] = fit
        placed.append(moved)
    return dataclasses.replace(scene, objects=placed), fits


@torch.no_grad()
def _background_depth(scene, viewmats, Ks, width, height, backend):
    depths, confidences = [], []
    for f in range(viewmats.shape[0]):
        out, _ = scene.render(0.0, viewmats[f:f + 1], Ks[f:f + 1], width, height, backend=backend, object_ids=[])
        depths.append(out.depths[0, ..., 0])
        confidences.append(out.alphas[0, ..., 0])
    return torch.stack(depths), torch.stack(confidences)


@torch.no_grad()
def occlusion_order_accuracy(scene: Scene, masks: ObjectMasks, cameras: Cameras, frames: list[int] | None = None,
                             backend: str = "auto") -> dict:
    """How well the composed scene reproduces the input's occlusions.

    - ``coverage[id]``: share of the object's input-mask pixels where the composed label map shows it (or,
      where input masks overlap, any object whose mask covers the pixel);
    - ``order``: on contested pixels -- covered by two or more objects' renders (each alone, alpha >= 0.5)
      and shown by one of them in the input -- the share where the composed render puts the right one in
      front. ``nan`` when no pixel is contested.

    Args:
        scene: the composed scene; masks: input masks; cameras: the clip's cameras.
        frames: frames to evaluate (all by default).
        backend: render backend.

    Returns:
        ``{"coverage": {id: float}, "order": float, "contested_pixels": int}``.
    """
    viewmats = torch.as_tensor(cameras.viewmats, dtype=torch.float32)
    Ks = torch.as_tensor(cameras.Ks, dtype=torch.float32)
    frames = list(range(masks.num_frames)) if frames is None else frames
    ids = [o.object_id for o in scene.objects if o.visible and o.object_id in masks.object_ids]
    hits, totals = dict.fromkeys(ids, 0), dict.fromkeys(ids, 0)
    correct = contested_total = 0
    for f in frames:
        time = float(normalized_time(f, scene.num_frames))
        _, labels = scene.render(time, viewmats[f:f + 1], Ks[f:f + 1], cameras.width, cameras.height,
                                 with_labels=True, backend=backend)
        labels = labels[0]
        stack = torch.stack([torch.from_numpy(masks.of(i)[f]) for i in ids])  # (O, H, W)
        shown_by_covering = (stack & (labels[None] == torch.tensor(ids)[:, None, None])).any(0)
        for k, object_id in enumerate(ids):
            hits[object_id] += int((stack[k] & shown_by_covering).sum())
            totals[object_id] += int(stack[k].sum())
        drawn = torch.stack([scene.render(time, viewmats[f:f + 1], Ks[f:f + 1], cameras.width, cameras.height,
                                          backend=backend, include_background=False, object_ids=[i])[0]
                             .alphas[0, ..., 0] >= 0.5 for i in ids])
        contested = (drawn.sum(0) >= 2) & (stack & drawn).any(0)
        contested_total += int(contested.sum())
        correct += int((contested & shown_by_covering).sum())
    coverage = {i: hits[i] / totals[i] if totals[i] else math.nan for i in ids}
    order = correct / contested_total if contested_total else math.nan
    return {"coverage": coverage, "order": order, "contested_pixels": contested_total}
