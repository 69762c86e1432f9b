"""Tile-binned differentiable rasterizer in plain PyTorch: the ``torch`` backend of :func:`render`.

Each Gaussian is binned to the ``tile_size`` squared tiles its footprint box touches; a tile's pixels are then
composited against that tile's depth-sorted list only. Values follow the rules in
:mod:`scene4d.render.projection` exactly as :func:`~scene4d.render.reference.rasterize_reference` does: a
Gaussian left out of a tile has alpha 0 there, a factor of exactly 1 in the transmittance product.

Tiles are processed in chunks of at most ``chunk_elements`` (pixel, Gaussian) pairs and the backward pass is
written by hand and recomputes the alphas chunk by chunk, so memory does not grow with the scene. A tile whose
list alone exceeds the budget is split along its list, carrying the transmittance from segment to segment.
"""

from __future__ import annotations

import math

import torch

from scene4d.render.projection import ALPHA_MAX, ALPHA_THRESHOLD, TRANSMITTANCE_MIN, ProjectedGaussians

# Where the exponent is below this, opacity * exp(power) < ALPHA_THRESHOLD for any opacity < 4e10, so flooring it
# changes no alpha; it keeps exp() out of subnormal floats, which are several times slower on x86.
POWER_FLOOR = -30.0


def rasterize_tiles(
    projected: ProjectedGaussians,
    colors: torch.Tensor,  # (C, N, D)
    width: int,
    height: int,
    backgrounds: torch.Tensor | None = None,  # (C, D)
    tile_size: int = 16,
    chunk_elements: int = 1 << 18,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite projected Gaussians tile by tile; same outputs as ``rasterize_reference``.

    Args:
        projected: output of :func:`~scene4d.render.projection.project_gaussians`, leading dims (C, N).
        colors: (C, N, D) per-camera colours (or any features).
        width, height: image size.
        backgrounds: (C, D) colour behind everything, or None for zeros.
        tile_size: side of the square tiles in pixels.
        chunk_elements: most (pixel, Gaussian) pairs evaluated at once; bounds the working memory.

    Returns:
        ``(colors, alphas, depths)`` of shapes (C, H, W, D), (C, H, W, 1) and (C, H, W, 1).
    """
    num_cams, num_gs = projected.depths.shape
    dim = colors.shape[-1]
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    chunks = _plan_chunks(projected, tiles_x, tiles_y, tile_size, max(chunk_elements, tile_size**2))

    # One row per (camera, Gaussian) plus a transparent dummy row (opacity 0) that pads the per-tile lists.
    params = torch.cat([projected.means2d.reshape(-1, 2), projected.conics.reshape(-1, 3),
                        projected.opacities.reshape(-1, 1)], dim=-1)
    feats = torch.cat([colors.reshape(-1, dim), projected.depths.reshape(-1, 1),
                       torch.ones_like(projected.depths).reshape(-1, 1)], dim=-1)
    params = torch.cat([params, params.new_zeros(1, 6)])
    feats = torch.cat([feats, feats.new_zeros(1, dim + 2)])
    geometry = (tiles_x, tiles_y, tile_size, chunk_elements)
    out = _TileComposite.apply(params, feats, chunks, num_cams * tiles_x * tiles_y, geometry)

    image = out.reshape(num_cams, tiles_y, tiles_x, tile_size, tile_size, dim + 2).transpose(2, 3)
    image = image.reshape(num_cams, tiles_y * tile_size, tiles_x * tile_size, dim + 2)[:, :height, :width]
    color, depth_sum, alpha = image[..., :dim], image[..., dim : dim + 1], image[..., dim + 1 :]
    if backgrounds is not None:
        color = color + (1.0 - alpha) * backgrounds[:, None, None, :]
    return color, alpha, depth_sum / torch.clamp(alpha, min=1e-10)


@torch.no_grad()
def _plan_chunks(projected, tiles_x, tiles_y, tile_size, chunk_elements):
    """Bin Gaussians to tiles; return ``[(tile ids (B,), padded front-to-back row indices (B, K))]``."""
    num_cams, num_gs = projected.depths.shape
    device = projected.depths.device
    order = torch.argsort(projected.depths, dim=-1, stable=True)
    rows = (order + num_gs * torch.arange(num_cams, device=device)[:, None]).reshape(-1)
    rows = rows[projected.visible.reshape(-1)[rows]]  # visible rows, front to back within each camera

    centre = projected.means2d.reshape(-1, 2)[rows]
    radius = projected.radii.reshape(-1, 2)[rows].to(centre.dtype)
    # Whole tiles covering the box's pixel extent: a superset of the tiles holding a pixel centre inside the box.
    limit = torch.tensor([tiles_x - 1, tiles_y - 1], device=device)
    lo = torch.minimum(torch.floor((centre - radius) / tile_size).long().clamp(min=0), limit)
    hi = torch.maximum(torch.floor((centre + radius) / tile_size).long().clamp(max=limit), lo)
    span = hi - lo + 1
    counts = span[:, 0] * span[:, 1]
    pair_row = torch.repeat_interleave(torch.arange(len(rows), device=device), counts)
    local = torch.arange(len(pair_row), device=device) - (torch.cumsum(counts, 0) - counts)[pair_row]
    tx = lo[pair_row, 0] + local % span[pair_row, 0]
    ty = lo[pair_row, 1] + local // span[pair_row, 0]
    cam = rows[pair_row] // num_gs
    tile, perm = torch.sort((cam * tiles_y + ty) * tiles_x + tx, stable=True)
    listed = rows[pair_row[perm]]  # tile by tile, front to back within a tile

    per_tile = torch.bincount(tile, minlength=num_cams * tiles_x * tiles_y)
    starts = torch.cumsum(per_tile, 0) - per_tile
    by_count = torch.argsort(per_tile, descending=True, stable=True)
    sizes = per_tile[by_count].tolist()
    dummy = num_cams * num_gs
    chunks, first, pixels = [], 0, tile_size * tile_size
    while first < len(sizes) and sizes[first] > 0:
        k = sizes[first]
        tiles = by_count[first : first + max(1, chunk_elements // (k * pixels))]
        tiles = tiles[per_tile[tiles] > 0]
        slot = torch.arange(k, device=device)
        idx = (starts[tiles, None] + slot).clamp(max=max(len(listed) - 1, 0))
        chunks.append((tiles, torch.where(slot < per_tile[tiles, None], listed[idx], dummy)))
        first += len(tiles)
    return chunks


def _alphas(p, cols, rows):
    """Alphas of (B, K) Gaussians ``p = [mx, my, a, b, c, opacity]`` at the pixel grid ``rows x cols`` (B, s).

    Returns ``dx`` (B, 1, s, K), ``dy`` (B, s, 1, K), ``v = opacity * exp(power)`` and ``alpha`` (B, s*s, K).
    """
    mx, my, a, b, c, o = (t[:, None, None, :] for t in p.unbind(-1))
    dx = cols[:, None, :, None] - mx
    dy = rows[:, :, None, None] - my
    # -0.5 * (a dx^2 + c dy^2) - b dx dy; scaling by -0.5 is exact, so this rounds like the reference.
    power = torch.addcmul((-0.5 * a * dx) * dx + (-0.5 * c * dy) * dy, b * dx, dy, value=-1.0)
    v = power.clamp_(POWER_FLOOR, 0.0).exp_().mul_(o).flatten(1, 2)
    alpha = torch.where(v >= ALPHA_THRESHOLD, v.clamp(max=ALPHA_MAX), 0.0)
    return dx, dy, v, alpha


def _composite(alpha, carry):
    """Blend (B, P, K) alphas front to back after a transmittance ``carry`` (B, P) left by earlier Gaussians.

    Returns ``1 - alpha``, the transmittance before each Gaussian (B, P, K), the mask of Gaussians cut by early
    termination, the weights ``alpha * T`` (B, P, K) and the transmittance after the last one (B, P).
    """
    factors = alpha.new_empty(alpha.shape[:-1] + (alpha.shape[-1] + 1,))
    factors[..., 0] = carry
    one_minus = torch.sub(alpha.new_ones(()), alpha, out=factors[..., 1:])
    trans = torch.cumprod(factors, dim=-1)
    cut = trans[..., 1:] <= TRANSMITTANCE_MIN
    weights = (alpha * trans[..., :-1]).masked_fill_(cut, 0.0)
    return one_minus, trans[..., :-1], cut, weights, trans[..., -1]


def _segments(chunks, chunk_elements, pixels):
    """Split each chunk's (B, K) list along K so that B * K_segment * pixels <= chunk_elements."""
    for tiles, idx in chunks:
        step = max(1, chunk_elements // (len(tiles) * pixels))
        yield tiles, [idx[:, i : i + step] for i in range(0, idx.shape[1], step)]


def _pixel_grid(tiles, geometry, like):
    """Pixel-centre columns and rows (B, s) of the tiles with flat ids ``tiles`` (B,)."""
    tiles_x, tiles_y, tile_size, _ = geometry
    offsets = torch.arange(tile_size, dtype=like.dtype, device=like.device) + 0.5
    tx, ty = tiles % tiles_x, (tiles // tiles_x) % tiles_y
    return (tx * tile_size).to(like.dtype)[:, None] + offsets, (ty * tile_size).to(like.dtype)[:, None] + offsets


class _TileComposite(torch.autograd.Function):
    """``out[tile, pixel] = sum_k w_k [colour_k, depth_k, 1]`` for every tile, with w the blending weights."""

    @staticmethod
    def forward(ctx, params, feats, chunks, num_tiles, geometry):
        ctx.save_for_backward(params, feats)
        ctx.chunks, ctx.geometry = chunks, geometry
        tiles_x, tiles_y, tile_size, chunk_elements = geometry
        pixels = tile_size**2
        out = feats.new_zeros(num_tiles, pixels, feats.shape[-1])
        for tiles, segments in _segments(chunks, chunk_elements, pixels):
            cols, rows = _pixel_grid(tiles, geometry, feats)
            carry = feats.new_ones(len(tiles), pixels)
            acc = feats.new_zeros(len(tiles), pixels, feats.shape[-1])
            for idx in segments:
                *_, weights, carry = _composite(_alphas(params[idx], cols, rows)[3], carry)
                acc += torch.bmm(weights, feats[idx])
                if len(segments) > 1 and carry.max() <= TRANSMITTANCE_MIN:
                    break  # every pixel terminated: nothing behind is composited
            out[tiles] = acc
        return out

    @staticmethod
    def backward(ctx, grad_out):
        params, feats = ctx.saved_tensors
        tiles_x, tiles_y, tile_size, chunk_elements = ctx.geometry
        pixels = tile_size**2
        grad_params, grad_feats = torch.zeros_like(params), torch.zeros_like(feats)
        for tiles, segments in _segments(ctx.chunks, chunk_elements, pixels):
            cols, rows = _pixel_grid(tiles, ctx.geometry, feats)
            g_out = grad_out[tiles]
            carries = [feats.new_ones(len(tiles), pixels)]
            for idx in segments[:-1]:
                carries.append(_composite(_alphas(params[idx], cols, rows)[3], carries[-1])[-1])
            later = torch.zeros_like(carries[0])  # sum of G_j w_j over the segments behind
            for idx, carry in zip(reversed(segments), reversed(carries)):
                p = params[idx]
                dx, dy, v, alpha = _alphas(p, cols, rows)
                one_minus, trans, cut, weights, _ = _composite(alpha, carry)
                grad_feats.index_add_(0, idx.reshape(-1), torch.bmm(weights.transpose(1, 2), g_out).flatten(0, 1))
                grad_w = torch.bmm(g_out, feats[idx].transpose(1, 2))  # dL/dw (B, P, K)
                suffix = (grad_w * weights).cumsum_(-1)
                total = suffix[..., -1:] + later[..., None]
                later = total[..., 0]
                # dL/dalpha_k = G_k T_k - sum_{j > k} G_j w_j / (1 - alpha_k); zero where a clamp was active.
                grad_alpha = grad_w.mul_(trans).masked_fill_(cut, 0.0)
                grad_alpha -= suffix.neg_().add_(total).div_(one_minus)
                grad_power = grad_alpha.mul_(alpha == v).mul_(v).unflatten(1, (tile_size, tile_size))
                grad_params.index_add_(0, idx.reshape(-1), _power_to_params(grad_power, dx, dy, p).flatten(0, 1))
        return grad_params, grad_feats, None, None, None


def _power_to_params(grad_power, dx, dy, p):
    """Chain dL/dpower (B, s, s, K) to dL/d[mx, my, a, b, c, opacity] (B, K, 6)."""
    dx, dy = dx[:, 0], dy[:, :, 0]  # (B, s, K)
    over_x, over_y = grad_power.sum(1), grad_power.sum(2)  # summed over rows, over columns
    s0 = over_x.sum(1)
    s_x, s_xx = (over_x * dx).sum(1), (over_x * dx * dx).sum(1)
    s_y, s_yy = (over_y * dy).sum(1), (over_y * dy * dy).sum(1)
    s_xy = ((grad_power * dx[:, None]).sum(2) * dy).sum(1)
    mx, my, a, b, c, o = p.unbind(-1)
    # d(power)/d(mx) = a dx + b dy and d(v)/d(opacity) = v / opacity; padding rows have opacity 0.
    grad_o = s0 / o.clamp(min=ALPHA_THRESHOLD)
    return torch.stack([a * s_x + b * s_y, b * s_x + c * s_y, -0.5 * s_xx, -s_xy, -0.5 * s_yy, grad_o], dim=-1)
