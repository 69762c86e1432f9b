"""Tile-binned differentiable rasterizer in plain PyTorch: the ``torch`` backend of :func:`render`.

Each Gaussian is binned to the square tiles that its footprint reaches; a tile's pixels are composited against
that tile's depth-sorted list only. Values follow :mod:`scene4d.render.projection` exactly as
:func:`~scene4d.render.reference.rasterize_reference` does: a Gaussian left out of a tile has alpha 0 there, a
factor of exactly 1 in the transmittance product.

The lists are walked front to back in segments, carrying each pixel's transmittance from segment to segment, so a
tile drops out once its list ends or all its pixels have terminated. At most ``chunk_elements`` (pixel, Gaussian)
pairs are evaluated at once, and the hand-written backward recomputes the alphas, so the working memory does not
grow with the scene.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from scene4d.render.projection import ALPHA_MAX, ALPHA_THRESHOLD, TRANSMITTANCE_MIN, ProjectedGaussians

# Where the exponent is below this, opacity * exp(power) < ALPHA_THRESHOLD for any opacity < 4e10, so flooring it
# changes no alpha; it keeps exp() out of subnormal floats, which are several times slower on x86.
POWER_FLOOR = -30.0
# Fewest list entries per segment: shorter segments stop closer to each tile's end but cost more Python calls.
MIN_SEGMENT = 32


def rasterize_tiles(
    projected: ProjectedGaussians,
    colors: torch.Tensor,  # (C, N, D)
    width: int,
    height: int,
    backgrounds: torch.Tensor | None = None,  # (C, D)
    tile_size: int = 8,
    chunk_elements: int = 1 << 18,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite projected Gaussians tile by tile; same outputs as ``rasterize_reference``.

    Args:
        projected: output of :func:`~scene4d.render.projection.project_gaussians`, leading dims (C, N).
        colors: (C, N, D) per-camera colours (or any features).
        width, height: image size.
        backgrounds: (C, D) colour behind everything, or None for zeros.
        tile_size: side of the square tiles in pixels (8 is faster than 16 on the CPU: less wasted area).
        chunk_elements: most (pixel, Gaussian) pairs evaluated at once; bounds the working memory.

    Returns:
        ``(colors, alphas, depths)`` of shapes (C, H, W, D), (C, H, W, 1) and (C, H, W, 1).
    """
    num_cams = projected.depths.shape[0]
    dim = colors.shape[-1]
    grid = (math.ceil(width / tile_size), math.ceil(height / tile_size), tile_size, chunk_elements)
    lists = _bin_gaussians(projected, *grid[:3])

    # One row per (camera, Gaussian) plus a transparent zero row (opacity 0) that pads the per-tile lists.
    params = torch.cat([projected.means2d, projected.conics, projected.opacities[..., None]], dim=-1)
    feats = torch.cat([colors, projected.depths[..., None], torch.ones_like(projected.depths)[..., None]], dim=-1)
    params, feats = (F.pad(t.reshape(-1, t.shape[-1]), (0, 0, 0, 1)) for t in (params, feats))
    out = _TileComposite.apply(params, feats, lists, grid)

    image = out.reshape(num_cams, grid[1], grid[0], dim + 2, tile_size, tile_size).permute(0, 1, 4, 2, 5, 3)
    image = image.reshape(num_cams, grid[1] * tile_size, grid[0] * tile_size, dim + 2)[:, :height, :width]
    color, depth_sum, alpha = image[..., :dim], image[..., dim : dim + 1], image[..., dim + 1 :]
    if backgrounds is not None:
        color = color + (1.0 - alpha) * backgrounds[:, None, None, :]
    return color, alpha, depth_sum / torch.clamp(alpha, min=1e-10)


@torch.no_grad()
def _bin_gaussians(projected, tiles_x, tiles_y, tile_size):
    """Per-tile front-to-back lists: rows into the flattened (C * N) Gaussians (M,), list starts and lengths (T,)."""
    num_cams, num_gs = projected.depths.shape
    device = projected.depths.device
    order = torch.argsort(projected.depths, dim=-1, stable=True)
    rows = (order + num_gs * torch.arange(num_cams, device=device)[:, None]).reshape(-1)
    rows = rows[projected.visible.reshape(-1)[rows]]  # visible rows, front to back within each camera

    centre = projected.means2d.reshape(-1, 2).index_select(0, rows)
    radius = projected.radii.reshape(-1, 2).index_select(0, rows).to(centre.dtype)
    # Whole tiles covering the box's pixel extent: a superset of the tiles holding a pixel centre inside the box.
    limit = torch.tensor([tiles_x - 1, tiles_y - 1], device=device)
    lo = torch.minimum(torch.floor((centre - radius) / tile_size).long().clamp(min=0), limit)
    span = torch.maximum(torch.floor((centre + radius) / tile_size).long().clamp(max=limit), lo) - lo + 1
    counts = span[:, 0] * span[:, 1]
    pair = torch.repeat_interleave(torch.arange(len(rows), device=device), counts)  # index into rows
    local = torch.arange(len(pair), device=device) - (torch.cumsum(counts, 0) - counts).index_select(0, pair)
    tx = lo[:, 0].index_select(0, pair) + local % span[:, 0].index_select(0, pair)
    ty = lo[:, 1].index_select(0, pair) + local // span[:, 0].index_select(0, pair)
    keep = torch.nonzero(_ellipse_reaches(projected, rows, pair, tx, ty, tile_size))[:, 0]
    row, tx, ty = rows.index_select(0, pair.index_select(0, keep)), tx.index_select(0, keep), ty.index_select(0, keep)
    tile, perm = torch.sort((row // num_gs * tiles_y + ty) * tiles_x + tx, stable=True)
    lengths = torch.bincount(tile, minlength=num_cams * tiles_x * tiles_y)
    return row.index_select(0, perm), torch.cumsum(lengths, 0) - lengths, lengths


def _ellipse_reaches(projected, rows, pair, tx, ty, tile_size):
    """(M,) bool: the region where alpha >= ALPHA_THRESHOLD of Gaussian ``rows[pair]`` may reach tile (tx, ty).

    Alpha passes where ``q(d) = a dx^2 + 2 b dx dy + c dy^2 <= 2 log(opacity / ALPHA_THRESHOLD)``. Over the box
    of the tile's pixel centres q is smallest on the line ``dx = ex`` nearest the centre (``ex = 0`` if the box
    spans it), or on the line ``dy = ey``; along ``dx = ex``, ``q = det / c ex^2 + c (dy + b ex / c)^2``.
    """
    a, b, c = projected.conics.reshape(-1, 3).index_select(0, rows).double().unbind(-1)
    det = a * c - b * b  # in float64: it cancels badly for elongated footprints
    reach = 2.02 * torch.log(projected.opacities.reshape(-1).index_select(0, rows) / ALPHA_THRESHOLD) + 0.05
    table = torch.stack([det / c, det / a, -b / c, -b / a, a, c], dim=-1).to(reach.dtype)
    table = torch.cat([projected.means2d.reshape(-1, 2).index_select(0, rows), table, reach[:, None]], dim=-1)
    mx, my, qx, qy, slope_y, slope_x, a, c, reach = table.index_select(0, pair).unbind(-1)
    low_x, low_y = tx * tile_size + 0.5 - mx, ty * tile_size + 0.5 - my
    high_x, high_y = low_x + (tile_size - 1), low_y + (tile_size - 1)
    ex, ey = low_x.clamp(min=0) + high_x.clamp(max=0), low_y.clamp(min=0) + high_y.clamp(max=0)
    along_y, along_x = slope_y * ex, slope_x * ey
    q = torch.minimum(qx * ex**2 + c * (along_y - along_y.clamp(low_y, high_y)) ** 2,
                      qy * ey**2 + a * (along_x - along_x.clamp(low_x, high_x)) ** 2)
    # Slack for the rounding of float32 alphas; an extra pair only costs time, a missing one would be an error.
    return q <= reach


def _segments(lists, carry, grid, dummy):
    """Yield ``(tiles (B,), rows (B, S))``: the tiles' lists in segments, front to back, in chunks.

    A tile drops out once its list ends or ``carry`` (T, P), which the caller updates, shows all its pixels have
    terminated. Segments lengthen as tiles drop out, keeping chunks near ``chunk_elements`` pairs.
    """
    listed, starts, lengths = lists
    per_tile = max(1, grid[3] // grid[2] ** 2)  # list entries of one tile within the budget
    live, first = torch.nonzero(lengths).squeeze(1), 0
    while len(live):
        longest = int(lengths[live].max()) - first
        size = min(per_tile, longest, max(MIN_SEGMENT, per_tile // len(live)))
        slot = first + torch.arange(size, device=listed.device)
        for batch in torch.split(live, max(1, per_tile // size)):
            pos = (starts[batch, None] + slot).clamp(max=len(listed) - 1)
            yield batch, torch.where(slot < lengths[batch, None], listed[pos], dummy)
        first += size
        live = live[(lengths[live] > first) & (carry[live].amax(-1) > TRANSMITTANCE_MIN)]


def _alphas(p, tiles, grid):
    """Alphas of (B, K) Gaussians ``p = [mx, my, a, b, c, opacity]`` at the pixels of the tiles ``tiles`` (B,).

    Returns ``dx`` (B, 1, s, K), ``dy`` (B, s, 1, K), ``v = opacity * exp(power)`` zeroed below
    ``ALPHA_THRESHOLD`` and ``alpha = min(v, ALPHA_MAX)``, both (B, s*s, K), for tiles of side s.
    """
    tiles_x, tiles_y, tile_size, _ = grid
    corner = torch.stack([tiles % tiles_x, tiles // tiles_x % tiles_y]).to(p.dtype) * tile_size
    cols, rows = corner[..., None] + torch.arange(tile_size, dtype=p.dtype, device=p.device) + 0.5  # (B, s) each
    mx, my, a, b, c, o = (t[:, None, None, :] for t in p.unbind(-1))
    dx = cols[:, None, :, None] - mx
    dy = rows[:, :, None, None] - my
    # -0.5 * (a dx^2 + c dy^2) - b dx dy; scaling by -0.5 is exact, so this rounds like the reference.
    power = torch.addcmul((-0.5 * a * dx) * dx + (-0.5 * c * dy) * dy, b * dx, dy, value=-1.0)
    v = power.clamp_(POWER_FLOOR, 0.0).exp_().mul_(o).flatten(1, 2)
    # threshold(x, t, 0) zeroes x <= t: with t the float just below ALPHA_THRESHOLD it zeroes v < ALPHA_THRESHOLD.
    F.threshold_(v, _float_before(ALPHA_THRESHOLD, v.dtype), 0.0)
    return dx, dy, v, v.clamp(max=ALPHA_MAX)


@functools.cache
def _float_before(value, dtype):
    """The largest float of ``dtype`` below ``value``."""
    return torch.nextafter(torch.tensor(value, dtype=dtype), torch.tensor(-math.inf, dtype=dtype)).item()


def _composite(alpha, carry):
    """Blend (B, P, K) alphas front to back behind a transmittance ``carry`` (B, P) left by earlier Gaussians.

    Returns ``1 - alpha``, the transmittance before each Gaussian, zeroed where early termination cuts it
    (B, P, K), the weights (B, P, K) and the transmittance after the last Gaussian (B, P).
    """
    factors = alpha.new_empty(alpha.shape[:-1] + (alpha.shape[-1] + 1,))
    factors[..., 0] = carry
    one_minus = torch.sub(alpha.new_ones(()), alpha, out=factors[..., 1:])
    trans = torch.cumprod(factors, dim=-1)
    # 1 where the transmittance after the Gaussian stays above TRANSMITTANCE_MIN, else 0 (masked_fill is slower).
    kept = F.threshold(trans[..., 1:], TRANSMITTANCE_MIN, 0.0).sign_()
    before = trans[..., :-1].mul_(kept)
    return one_minus, before, alpha * before, trans[..., -1]


class _TileComposite(torch.autograd.Function):
    """``out[tile, :, pixel] = sum_k w_k [colour_k, depth_k, 1]`` (T, D + 2, P), with w the blending weights."""

    @staticmethod
    def forward(ctx, params, feats, lists, grid):
        num_tiles, pixels = len(lists[1]), grid[2] ** 2
        out = feats.new_zeros(num_tiles, feats.shape[-1], pixels)
        carry = feats.new_ones(num_tiles, pixels)
        ctx.batches = []  # (tiles, rows, transmittance entering), replayed backwards
        for tiles, idx in _segments(lists, carry, grid, len(params) - 1):
            ctx.batches.append((tiles, idx, carry.index_select(0, tiles)))
            alpha = _alphas(_take(params, idx), tiles, grid)[3]
            *_, weights, carry_out = _composite(alpha, ctx.batches[-1][2])
            carry.index_copy_(0, tiles, carry_out)
            # (D + 2, K) x (K, P) products: MKL is several times faster this way round than (P, K) x (K, D + 2).
            out.index_add_(0, tiles, torch.bmm(_take(feats, idx).transpose(1, 2), weights.transpose(1, 2)))
        ctx.grid = grid
        ctx.save_for_backward(params, feats)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        params, feats = ctx.saved_tensors
        grad_out, tile_size = grad_out.contiguous(), ctx.grid[2]
        clamped = _float_before(-ALPHA_MAX, feats.dtype)  # -v <= clamped where v > ALPHA_MAX
        grad_params, grad_feats = torch.zeros_like(params), torch.zeros_like(feats)
        later = grad_out.new_zeros(len(grad_out), tile_size**2)  # per pixel: sum of G_j w_j over the segments behind
        for tiles, idx, carry in reversed(ctx.batches):
            p, f, g_out = _take(params, idx), _take(feats, idx).transpose(1, 2), grad_out.index_select(0, tiles)
            dx, dy, v, alpha = _alphas(p, tiles, ctx.grid)
            one_minus, before, weights, _ = _composite(alpha, carry)
            grad_feats.index_add_(0, idx.reshape(-1), torch.bmm(g_out, weights).transpose(1, 2).flatten(0, 1))
            grad_w = torch.bmm(g_out.transpose(1, 2), f)  # G = dL/dw (B, P, K)
            suffix = (grad_w * weights).cumsum_(-1)
            total = suffix[..., -1:] + later.index_select(0, tiles)[..., None]
            later.index_copy_(0, tiles, total[..., 0])
            # dL/dalpha_k = G_k T_k - sum_{j > k} G_j w_j / (1 - alpha_k); both terms vanish once terminated.
            grad_alpha = grad_w.mul_(before).sub_(torch.sub(total, suffix, out=suffix).div_(one_minus))
            # min(v, ALPHA_MAX) passes gradient only where v <= ALPHA_MAX; v is already 0 below the threshold.
            grad_power = grad_alpha.mul_(F.threshold_(v.neg_(), clamped, 0.0).neg_()).unflatten(1, (tile_size,) * 2)
            grad_params.index_add_(0, idx.reshape(-1), _power_to_params(grad_power, dx, dy, p).flatten(0, 1))
        return grad_params, grad_feats, None, None


def _take(table, idx):
    """Rows of ``table`` (R, F) at ``idx`` (B, K) as (B, K, F); ``index_select`` is faster than ``table[idx]``."""
    return table.index_select(0, idx.reshape(-1)).view(*idx.shape, table.shape[-1])


def _power_to_params(grad_power, dx, dy, p):
    """Chain dL/dpower (B, s, s, K) to dL/d[mx, my, a, b, c, opacity] (B, K, 6)."""
    dx, dy = dx[:, 0], dy[:, :, 0]  # (B, s, K)
    over_rows, over_cols = grad_power.sum(1), grad_power.sum(2)
    s_x, s_xx = (over_rows * dx).sum(1), (over_rows * dx * dx).sum(1)
    s_y, s_yy = (over_cols * dy).sum(1), (over_cols * dy * dy).sum(1)
    s_xy = ((grad_power * dx[:, None]).sum(2) * dy).sum(1)
    _, _, a, b, c, o = p.unbind(-1)
    # d(power)/d(mx) = a dx + b dy; d(v)/d(opacity) = v / opacity, and the padding rows have opacity 0.
    grad_o = over_rows.sum(1) / o.clamp(min=ALPHA_THRESHOLD)
    return torch.stack([a * s_x + b * s_y, b * s_x + c * s_y, -0.5 * s_xx, -s_xy, -0.5 * s_yy, grad_o], dim=-1)
