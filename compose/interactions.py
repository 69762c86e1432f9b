"""Interaction constraints between objects and with the background, as explicit differentiable losses.

Geometry comes from the Gaussians themselves, with no mesh:

- **Outer surface** of an object: the Gaussians seen first from outside along many orthographic directions
  (a z-buffer per direction on a grid of a few point spacings). Hollow shells (fitted objects with a
  mirrored back) and solid clouds both give their outer layer. Normals are the local PCA normals of that
  layer, each oriented towards the side it was seen from -- which also holds for objects that are not
  star-shaped around their centre.
- **Signed distance** to a surface: Hoppe et al.'s point-to-tangent-plane distance ``n . (x - p)``, blended
  over the ``k`` nearest surface samples. Negative inside. The blend weights and the normals are constants
  for the gradient, so ``d sd / d x`` is the blended outward normal: a penetrating point is pushed out along it.
- **Support surface** of an object: the background's Gaussians around it, with normals facing the cameras
  (the background is a surface seen from the cameras, so "behind it" is "inside"). This assumes the
  background near an object is ground, table or wall; a thin background structure right behind an object
  can read as penetration, so only points within ``reach`` of the support count.

Losses (all zero when satisfied; lengths relative to the object's extent, so weights do not depend on units):

- ``penetration``: mean over A's Gaussians of ``relu(-sd_B - tol)^2`` for every ordered pair of objects;
- ``background_penetration``: the same against each object's support surface;
- ``contact``: an object whose lowest points touch the support in the first frames (gap <=
  ``contact_distance``) keeps them on it: ``relu(gap - tol)^2`` while the contact lasts -- until the initial
  trajectory's gap exceeds ``release_distance`` (hysteresis, so small drifts are corrected and real jumps kept);
- ``anchors`` (AvatarGO's contact anchors): pairs of Gaussians of two objects that touch when the objects
  first meet keep their offset ``x_a - x_b`` while the contact lasts (same hysteresis): the offset at each
  frame is compared with the offset at the frame the contact starts, both from the current models. So the
  objects move together, while their relative placement itself stays free -- the penetration loss may still
  separate two objects that met interpenetrating, consistently over the contact.

Contacts are detected once, from the scene before refinement (:func:`prepare_interactions`); the losses are then
evaluated on the moving scene (:func:`interaction_losses`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from compose.scene import Scene
from scene4d.conventions import normalized_time


@dataclass
class InteractionConfig:
    """Weights and thresholds of the interaction losses (lengths are fractions of the object's extent)."""

    penetration: float = 1.0
    """Weight of object-object interpenetration."""
    background_penetration: float = 1.0
    """Weight of objects sinking behind the background's surface (into the ground)."""
    contact: float = 1.0
    """Weight of the gap between a resting object and its support while the contact lasts."""
    anchors: float = 1.0
    """Weight of the drift of contact anchors between two objects while they touch."""
    tolerance: float = 0.02
    """Closer than this is touching: neither penetration nor a gap."""
    contact_distance: float = 0.05
    """A contact starts where the gap is at most this."""
    release_distance: float = 0.15
    """A contact ends where the initial trajectory's gap exceeds this."""
    contact_frames: int = 3
    """Support contacts are detected in this many first frames of each object."""
    reach: float = 0.5
    """Background penetration counts only within this distance of the support surface."""
    support_margin: float = 0.5
    """Background Gaussians this far around an object's bounding box form its support."""
    max_queries: int = 1024
    """Gaussians per object tested against others (a fixed random subset)."""
    max_surface: int = 2048
    """Gaussians per object (or background neighbourhood) the surface is built from."""
    directions: int = 32
    """Orthographic directions for the outer surface."""
    cell: float = 4.0
    """z-buffer cell size for the outer surface, in median nearest-neighbour spacings (smaller cells let
    interior points of sparse clouds through and make the PCA normals noisier)."""
    normal_neighbours: int = 8
    """Neighbours for PCA normals."""
    sdf_neighbours: int = 4
    """Surface samples blended in the signed distance."""
    min_opacity: float = 0.1
    """Gaussians more transparent than this are ignored."""
    max_anchors: int = 64
    """Anchor pairs per pair of objects in contact."""
    seed: int = 0
    """Seed of the random subsets."""


def fibonacci_directions(count: int) -> torch.Tensor:
    """(count, 3) unit vectors spread evenly over the sphere (Fibonacci lattice)."""
    index = torch.arange(count, dtype=torch.float64) + 0.5
    z = 1.0 - 2.0 * index / count
    radius = torch.sqrt((1.0 - z * z).clamp_min(0.0))
    angle = math.pi * (3.0 - math.sqrt(5.0)) * index
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle), z], dim=1).float()


def _knn(points: torch.Tensor, queries: torch.Tensor, k: int, exclude_self: bool = False) -> torch.Tensor:
    distances = torch.cdist(queries.detach(), points.detach())
    if exclude_self:
        distances.fill_diagonal_(float("inf"))
    return torch.topk(distances, min(k, points.shape[0] - int(exclude_self)), dim=1, largest=False).indices


def median_spacing(points: torch.Tensor) -> float:
    """Median distance from each of ``points`` (N, 3), N >= 2, to its nearest other point."""
    nearest = _knn(points, points, 1, exclude_self=True)[:, 0]
    return float(torch.linalg.norm(points.detach() - points.detach()[nearest], dim=1).median())


def pca_normals(points: torch.Tensor, k: int) -> torch.Tensor:
    """Unoriented unit normals (N, 3): least-variance direction of each point's ``k`` neighbours (N > k)."""
    neighbours = points.detach()[_knn(points, points, k + 1)]  # includes the point itself
    centred = neighbours - neighbours.mean(1, keepdim=True)
    _, vectors = torch.linalg.eigh(centred.transpose(1, 2) @ centred)
    return vectors[..., 0]


def outer_surface(points: torch.Tensor, directions: torch.Tensor, cell: float, k: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The points seen first from outside along each direction, with outward normals.

    Args:
        points: (N, 3) a Gaussian cloud (hollow or solid).
        directions: (D, 3) unit viewing directions; a point is on the surface if it is the outermost one
            (largest ``u . p``) in its ``cell``-sized square of the plane orthogonal to some ``u``.
        cell: z-buffer cell size (world units).
        k: neighbours for the PCA normals.

    Returns:
        ``(index, normals)``: (S,) long indices into ``points`` and (S, 3) unit normals pointing out.
    """
    p = points.detach()
    helper = torch.where(directions[:, :1].abs() < 0.9, torch.tensor([[1.0, 0.0, 0.0]]),
                         torch.tensor([[0.0, 1.0, 0.0]]))
    first = torch.nn.functional.normalize(torch.linalg.cross(directions, helper, dim=1), dim=1)
    second = torch.linalg.cross(directions, first, dim=1)
    local = p - p.mean(0)
    radius = float(torch.linalg.norm(local, dim=1).max())
    side = int(math.ceil(2.0 * radius / cell)) + 1
    u = torch.floor((local @ first.T + radius) / cell).long()  # (N, D) cell coordinates
    v = torch.floor((local @ second.T + radius) / cell).long()
    height = (local @ directions.T).flatten()  # (N * D,)
    keys = ((torch.arange(directions.shape[0])[None] * side + u) * side + v).flatten()
    # Occupied cells only: a dense grid would grow with the square of the cloud's (floater-prone) radius.
    _, cells = torch.unique(keys, return_inverse=True)
    best = torch.full((int(cells.max()) + 1,), -float("inf"), dtype=p.dtype)
    best = best.scatter_reduce(0, cells, height, reduce="amax")
    seen = (height >= best[cells]).reshape(p.shape[0], directions.shape[0])  # (N, D)
    index = seen.any(1).nonzero()[:, 0]
    normals = pca_normals(p[index], min(k, index.numel() - 1))
    seen_from = (seen[index].to(p.dtype) @ directions)
    flip = (normals * seen_from).sum(1) < 0
    return index, torch.where(flip[:, None], -normals, normals)


def signed_distance(queries: torch.Tensor, surface: torch.Tensor, normals: torch.Tensor, k: int,
                    chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Blended point-to-tangent-plane signed distance (negative inside) and distance to the nearest sample.

    Args:
        queries: (Q, 3); surface: (S, 3) samples (differentiable); normals: (S, 3) outward unit normals.
        k: samples blended, weighted by ``softmax(-d^2 / mean d^2)`` over the k nearest (weights constant).
        chunk: queries per distance matrix (bounds memory).

    Returns:
        ``(sd, nearest)``: (Q,) and (Q,).
    """
    if queries.dim() != 2 or queries.shape[1] != 3:
        raise ValueError(f"queries: expected (Q, 3), got {tuple(queries.shape)}")
    if surface.dim() != 2 or surface.shape[1] != 3 or normals.shape != surface.shape or surface.shape[0] == 0:
        raise ValueError(f"surface, normals: expected two (S, 3) with S >= 1, got {tuple(surface.shape)} and "
                         f"{tuple(normals.shape)}")
    sds, nearests = [], []
    for start in range(0, queries.shape[0], chunk):
        q = queries[start:start + chunk]
        index = _knn(surface, q, k)
        offsets = q[:, None, :] - surface[index]  # (Q, k, 3)
        dist2 = offsets.detach().square().sum(-1)
        weights = torch.softmax(-dist2 / dist2.mean(1, keepdim=True).clamp_min(1e-20), dim=1)
        sds.append((weights * (offsets * normals[index]).sum(-1)).sum(1))
        nearests.append(dist2[:, 0].sqrt())
    return torch.cat(sds), torch.cat(nearests)


def robust_extent(points: torch.Tensor) -> float:
    """Object size: twice the 95th percentile distance of ``points`` (N, 3) from their centroid."""
    p = points.detach()
    return 2.0 * float(torch.quantile(torch.linalg.norm(p - p.mean(0), dim=1), 0.95))


def _soft_min(values: torch.Tensor, temperature: float) -> torch.Tensor:
    weights = torch.softmax(-values.detach() / temperature, dim=0)
    return (weights * values).sum()


def _active_span(gaps: torch.Tensor, start: int, release: float) -> torch.Tensor:
    """(T,) bool: from ``start`` until (excluding) the first later frame whose gap exceeds ``release``."""
    active = torch.zeros(gaps.shape[0], dtype=torch.bool)
    end = start
    while end < gaps.shape[0] and float(gaps[end]) <= release:
        end += 1
    active[start:end] = True
    return active


@dataclass
class SupportContact:
    """An object resting on the background.

    Attributes:
        object_id: the object.
        rows: (P,) rows of ``InteractionSetup.samples[object_id]``: its Gaussians that touch the support when
            the contact starts.
        active: (T,) bool frames where the contact lasts.
    """

    object_id: int
    rows: torch.Tensor
    active: torch.Tensor


@dataclass
class AnchorPairs:
    """Contact anchors between two objects.

    Attributes:
        object_a, object_b: the objects.
        rows_a, rows_b: (P,) paired rows of ``InteractionSetup.samples`` of each object.
        start: frame where the contact starts (the offsets there are the reference).
        active: (T,) bool frames where the contact lasts.
    """

    object_a: int
    object_b: int
    rows_a: torch.Tensor
    rows_b: torch.Tensor
    start: int
    active: torch.Tensor


@dataclass
class InteractionSetup:
    """What :func:`prepare_interactions` fixes before refinement.

    Attributes:
        samples: object id -> (S,) indices of the Gaussians that take part (a fixed random subset of the
            opaque ones); the object's outer surface is built from them.
        num_queries: object id -> Q: the first Q samples are tested against other objects and the support.
        extents: object id -> size (world units).
        support: object id -> ``(points (S, 3), normals (S, 3))`` of the background around it.
        contacts: objects resting on their support.
        anchors: pairs of objects in contact.
    """

    samples: dict[int, torch.Tensor] = field(default_factory=dict)
    num_queries: dict[int, int] = field(default_factory=dict)
    extents: dict[int, float] = field(default_factory=dict)
    support: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    contacts: list[SupportContact] = field(default_factory=list)
    anchors: list[AnchorPairs] = field(default_factory=list)


def object_points(scene: Scene, object_id: int, index: torch.Tensor, frames: list[int]) -> torch.Tensor:
    """World centres of some of an object's Gaussians at some frames, placed as :meth:`Scene.posed` places
    them (time offset, deformation, trajectory, edit) without posing the others.

    Args:
        index: (P,) Gaussian indices; frames: B frame indices of the clip.

    Returns:
        (B, P, 3), differentiable in the object's model.
    """
    obj = scene.object(object_id)
    g = obj.model.gaussians
    times = (normalized_time(torch.tensor(frames), scene.num_frames) + obj.time_offset).clamp(0.0, 1.0)
    moved, moved_quats = obj.model.deformation(g.get_means()[index], g.get_quats()[index], times)
    world, _, _ = obj.model.trajectory(moved, moved_quats, g.get_scales()[index], times)
    edit = obj.edit.to(world.dtype)
    return world @ edit[:3, :3].T + edit[:3, 3]


def _subset(candidates: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    return candidates[torch.randperm(candidates.numel(), generator=generator)[:count]]


def _support_surface(background_means, background_opacity, box_min, box_max, camera_centers, config, generator):
    near = ((background_means >= box_min) & (background_means <= box_max)).all(1)
    near &= background_opacity >= config.min_opacity
    index = _subset(near.nonzero()[:, 0], config.max_surface, generator)
    if index.numel() <= config.normal_neighbours:
        return None
    points = background_means[index]
    normals = pca_normals(points, config.normal_neighbours)
    towards = torch.nn.functional.normalize(camera_centers[None] - points[:, None], dim=-1).mean(1)
    flip = (normals * towards).sum(1) < 0
    return points, torch.where(flip[:, None], -normals, normals)


@torch.no_grad()
def prepare_interactions(scene: Scene, camera_centers: torch.Tensor, config: InteractionConfig) -> InteractionSetup:
    """Subsets, sizes, support surfaces and the contacts of the scene as it is (before refinement).

    Args:
        scene: the composed scene; every visible object with enough opaque Gaussians takes part.
        camera_centers: (C, 3) world positions of the input cameras (orient the background's surface).
        config: thresholds.
    """
    generator = torch.Generator().manual_seed(config.seed)
    setup = InteractionSetup()
    tracks = {}
    all_frames = list(range(scene.num_frames))
    for obj in scene.objects:
        opaque = (obj.model.gaussians.get_opacities() >= config.min_opacity).nonzero()[:, 0]
        if not obj.visible or opaque.numel() < config.normal_neighbours + 2:
            continue
        samples = _subset(opaque, config.max_surface, generator)
        setup.samples[obj.object_id] = samples
        setup.num_queries[obj.object_id] = min(config.max_queries, samples.numel())
        tracks[obj.object_id] = object_points(scene, obj.object_id, samples, all_frames)
        setup.extents[obj.object_id] = robust_extent(tracks[obj.object_id][0])
    if scene.background is not None:
        bg = scene.background
        for object_id, track in tracks.items():
            extent = setup.extents[object_id]
            margin = config.support_margin * extent
            support = _support_surface(bg.get_means().detach(), bg.get_opacities().detach(),
                                       track.amin((0, 1)) - margin, track.amax((0, 1)) + margin,
                                       camera_centers.float(), config, generator)
            if support is not None:
                setup.support[object_id] = support
                queries = track[:, :setup.num_queries[object_id]]
                contact = _detect_support_contact(object_id, queries, support, extent, config)
                if contact is not None:
                    setup.contacts.append(contact)
    ids = list(tracks)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            anchors = _detect_anchors(a, b, tracks, setup, config)
            if anchors is not None:
                setup.anchors.append(anchors)
    return setup


def _detect_support_contact(object_id, query_tracks, support, extent, config):
    points, normals = support
    sds = torch.stack([signed_distance(q, points, normals, config.sdf_neighbours)[0] for q in query_tracks])
    gaps = sds.amin(1)  # (T,)
    candidates = (gaps[:config.contact_frames] <= config.contact_distance * extent).nonzero()[:, 0]
    if candidates.numel() == 0:
        return None
    start = int(candidates[0])
    lowest = sds[start] <= gaps[start] + config.tolerance * extent
    return SupportContact(object_id, lowest.nonzero()[:, 0],
                          _active_span(gaps, start, config.release_distance * extent))


def _detect_anchors(id_a, id_b, tracks, setup, config):
    ta, tb = tracks[id_a][:, :setup.num_queries[id_a]], tracks[id_b][:, :setup.num_queries[id_b]]
    scale = min(setup.extents[id_a], setup.extents[id_b])
    threshold = config.contact_distance * scale
    distances = torch.stack([torch.cdist(x, y) for x, y in zip(ta, tb)])  # (T, Qa, Qb)
    touching = (distances.flatten(1).amin(1) <= threshold).nonzero()[:, 0]
    if touching.numel() == 0:
        return None
    start = int(touching[0])
    count = min(config.max_anchors, distances[start].numel())
    flat = torch.topk(distances[start].flatten(), count, largest=False).indices
    rows_a, rows_b = flat // tb.shape[1], flat % tb.shape[1]
    close = distances[start, rows_a, rows_b] <= threshold
    rows_a, rows_b = rows_a[close], rows_b[close]
    offsets = ta[start, rows_a] - tb[start, rows_b]
    drift = torch.linalg.norm(ta[:, rows_a] - tb[:, rows_b] - offsets, dim=-1).mean(1)
    return AnchorPairs(id_a, id_b, rows_a, rows_b, start,
                       _active_span(drift, start, config.release_distance * scale))


def _inside_box(points: torch.Tensor, box: torch.Tensor, margin: float) -> torch.Tensor:
    return ((points >= box[0] - margin) & (points <= box[1] + margin)).all(1)


def interaction_losses(scene: Scene, setup: InteractionSetup, frames: list[int], config: InteractionConfig
                       ) -> dict[str, torch.Tensor]:
    """The four losses, averaged over ``frames``, differentiable in the objects' models.

    Args:
        scene: the scene being refined (same objects and Gaussians as when ``setup`` was prepared).
        setup: from :func:`prepare_interactions`.
        frames: frame indices to evaluate.
        config: weights are not applied here (see :func:`weighted_total`).

    Returns:
        ``{"penetration", "background_penetration", "contact", "anchors"}`` scalar tensors.
    """
    zero = torch.zeros(())
    terms = {"penetration": zero, "background_penetration": zero, "contact": zero, "anchors": zero}
    ids = list(setup.samples)
    needed = sorted(set(frames) | {p.start for p in setup.anchors if p.active[frames].any()})
    row = {frame: k for k, frame in enumerate(needed)}
    tracks = {i: object_points(scene, i, setup.samples[i], needed) for i in ids}  # (B, S, 3)
    directions = fibonacci_directions(config.directions)
    for frame in frames:
        samples = {i: tracks[i][row[frame]] for i in ids}
        surfaces = {}
        for i in ids:
            cell = config.cell * median_spacing(samples[i])
            index, normals = outer_surface(samples[i], directions, cell, config.normal_neighbours)
            surface = samples[i][index]
            surfaces[i] = (surface, normals, torch.stack([surface.detach().amin(0), surface.detach().amax(0)]))
        for a in ids:
            queries = samples[a][:setup.num_queries[a]]
            for b in ids:
                if a == b:
                    continue
                surface, normals, box = surfaces[b]
                tol = config.tolerance * setup.extents[b]
                inside = _inside_box(queries, box, tol)
                if not inside.any():
                    continue
                sd, _ = signed_distance(queries[inside], surface, normals, config.sdf_neighbours)
                depth = torch.relu(-sd - tol) / setup.extents[b]
                terms["penetration"] = terms["penetration"] + depth.square().sum() / queries.shape[0]
            if a in setup.support:
                points, normals = setup.support[a]
                sd, nearest = signed_distance(queries, points, normals, config.sdf_neighbours)
                extent = setup.extents[a]
                depth = torch.relu(-sd - config.tolerance * extent) * (nearest <= config.reach * extent)
                terms["background_penetration"] = terms["background_penetration"] + (depth / extent).square().mean()
        for contact in setup.contacts:
            if contact.active[frame]:
                points, normals = setup.support[contact.object_id]
                extent = setup.extents[contact.object_id]
                sd, _ = signed_distance(samples[contact.object_id][contact.rows], points, normals,
                                        config.sdf_neighbours)
                gap = _soft_min(sd, 0.1 * config.tolerance * extent)
                terms["contact"] = terms["contact"] + (torch.relu(gap - config.tolerance * extent) / extent).square()
        for pair in setup.anchors:
            if pair.active[frame]:
                scale = min(setup.extents[pair.object_a], setup.extents[pair.object_b])
                a, b = tracks[pair.object_a], tracks[pair.object_b]
                start, now = row[pair.start], row[frame]
                drift = (a[now, pair.rows_a] - b[now, pair.rows_b]) - (a[start, pair.rows_a] - b[start, pair.rows_b])
                terms["anchors"] = terms["anchors"] + (drift / scale).square().sum(-1).mean()
    return {name: value / max(len(frames), 1) for name, value in terms.items()}


def weighted_total(terms: dict[str, torch.Tensor], config: InteractionConfig) -> torch.Tensor:
    """``sum(weight * term)`` with the weights of ``config``."""
    return sum(getattr(config, name) * value for name, value in terms.items())


@torch.no_grad()
def penetration_fraction(scene: Scene, time: float, camera_centers: torch.Tensor | None = None,
                         config: InteractionConfig | None = None) -> dict[tuple[int, int], float]:
    """Share of each object's (opaque) Gaussians inside another object, per ordered pair.

    Args:
        scene: the composed scene; time: normalised time.
        camera_centers: (C, 3) input camera centres; with them and a background, pairs ``(a, 0)`` give the
            share of object ``a`` behind the background's surface (sunk into the ground).
        config: thresholds (defaults when None).

    Returns:
        ``{(a, b): fraction}`` for every visible object ``a`` and other object ``b`` (0 for the background).
    """
    config = config or InteractionConfig()
    generator = torch.Generator().manual_seed(config.seed)
    directions = fibonacci_directions(config.directions)
    posed = {}
    for obj in scene.objects:
        if obj.visible:
            means = scene.posed(time, include_background=False, object_ids=[obj.object_id]).means
            posed[obj.object_id] = means[obj.model.gaussians.get_opacities() >= config.min_opacity]
    result = {}
    for b, points in posed.items():
        samples = points[_subset(torch.arange(points.shape[0]), config.max_surface, generator)]
        index, normals = outer_surface(samples, directions, config.cell * median_spacing(samples),
                                       config.normal_neighbours)
        surface = samples[index]
        tol = config.tolerance * robust_extent(points)
        box = torch.stack([surface.amin(0), surface.amax(0)])
        for a, queries in posed.items():
            if a == b:
                continue
            inside = _inside_box(queries, box, tol)
            count = 0
            if inside.any():
                sd, _ = signed_distance(queries[inside], surface, normals, config.sdf_neighbours)
                count = int((sd < -tol).sum())
            result[(a, b)] = count / max(queries.shape[0], 1)
    if camera_centers is not None and scene.background is not None:
        bg = scene.background
        for a, queries in posed.items():
            extent = robust_extent(queries)
            margin = config.support_margin * extent
            support = _support_surface(bg.get_means(), bg.get_opacities(), queries.amin(0) - margin,
                                       queries.amax(0) + margin, camera_centers.float(), config, generator)
            if support is None:
                result[(a, 0)] = 0.0
                continue
            sd, nearest = signed_distance(queries, *support, config.sdf_neighbours)
            below = (sd < -config.tolerance * extent) & (nearest <= config.reach * extent)
            result[(a, 0)] = float(below.float().mean())
    return result
