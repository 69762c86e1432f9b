// The 3DGS backward of each (camera, tile): back to front, recovering the transmittance from the final one.
#include <ATen/ops/zeros.h>

#include "rasterize_cpu.h"

namespace scene4d_raster {
namespace {

// Gradient slots per intersection: means2d (2), conic (3), opacity, depth, then the D colour channels.
constexpr int kGradMean = 0, kGradConic = 2, kGradOpacity = 5, kGradDepth = 6, kGradColor = 7;

}  // namespace

template <typename scalar_t>
std::vector<at::Tensor> backward_impl(const std::vector<at::Tensor>& in, int64_t cams, int64_t n, int width,
                                      int height) {
  using V = Vec<scalar_t>;
  const at::Tensor &backgrounds = in[0], &out_alphas = in[1], &out_depths = in[2], &final_t = in[3];
  const at::Tensor &counts = in[4], &order_t = in[5], &splats = in[6], &boxes = in[7], &tile_offsets = in[8];
  const at::Tensor &isect_t = in[9], &row_hits_t = in[10], &hit_of_t = in[11];
  const at::Tensor &v_colors = in[12], &v_alphas = in[13], &v_depths = in[14];
  const int64_t stride = splats.size(1), dim = stride - kSplatColor;
  const int64_t slots = kGradColor + dim, m = isect_t.numel();
  const int tiles_x = (width + kTile - 1) / kTile;
  const int64_t tiles = static_cast<int64_t>(tiles_x) * ((height + kTile - 1) / kTile);
  const auto opts = splats.options();
  const bool has_bg = backgrounds.numel() > 0;
  // Per-intersection (by hit number) and per-tile partial sums, reduced below in a fixed order: deterministic
  // for any thread count, with no atomics.
  at::Tensor isect_grads = at::zeros({m, slots}, opts);
  at::Tensor tile_bg_grads = at::zeros({cams * tiles, has_bg ? dim : 0}, opts);

  const scalar_t* splat = splats.data_ptr<scalar_t>();
  const int64_t* order = order_t.data_ptr<int64_t>();
  const scalar_t* bg = has_bg ? backgrounds.data_ptr<scalar_t>() : nullptr;
  const scalar_t *alpha_out = out_alphas.data_ptr<scalar_t>(), *depth_out = out_depths.data_ptr<scalar_t>();
  const scalar_t* t_final = final_t.data_ptr<scalar_t>();
  const scalar_t *v_color = v_colors.data_ptr<scalar_t>(), *v_alpha = v_alphas.data_ptr<scalar_t>();
  const scalar_t* v_depth = v_depths.data_ptr<scalar_t>();
  const int32_t *count = counts.data_ptr<int32_t>(), *box = boxes.data_ptr<int32_t>();
  const int64_t* offsets = tile_offsets.data_ptr<int64_t>();
  const int32_t* isect = isect_t.data_ptr<int32_t>();
  const int64_t *row_hits = row_hits_t.data_ptr<int64_t>(), *hit_of = hit_of_t.data_ptr<int64_t>();
  scalar_t* grads = isect_grads.data_ptr<scalar_t>();
  scalar_t* bg_grads = tile_bg_grads.data_ptr<scalar_t>();
  const V zero(0), one(1), half(0.5), alpha_min(kAlphaThreshold), alpha_max(kAlphaMax);
  const scalar_t depth_eps = kDepthEps;

#pragma omp parallel num_threads(num_threads())
  {
    FlushDenormals ftz;
    // Planes of kTilePixels: the transmittance in front of the current Gaussian, the 3DGS running sum over
    // the Gaussians behind it, dL/dw without the colour and depth terms, dL/d(sum w z), the list count,
    // then dL/dcolour per channel.
    std::vector<scalar_t> buffer(kTilePixels * (5 + dim)), scratch(2 * kTilePixels);
    scalar_t *powers = scratch.data(), *gauss_buf = powers + kTilePixels;
    scalar_t* trans = buffer.data();
    scalar_t* behind = trans + kTilePixels;
    scalar_t* v_w = behind + kTilePixels;
    scalar_t* v_z = v_w + kTilePixels;
    scalar_t* last = v_z + kTilePixels;
    scalar_t* v_c = last + kTilePixels;
    std::vector<V> g_col(dim);
#pragma omp for schedule(dynamic)
    for (int64_t item = 0; item < cams * tiles; ++item) {
      const TileGeometry tile(item, tiles, tiles_x, width, height, offsets);
      std::fill(buffer.begin(), buffer.end(), scalar_t(0));  // lanes past the image edge stay inert
      int32_t max_last = 0;
      for (int y = tile.py0; y <= tile.py1; ++y)
        for (int x = tile.px0; x <= tile.px1; ++x) {
          const int p = tile.local(x, y);
          const int64_t pix = tile.pixel(x, y, width, height);
          const scalar_t alpha = alpha_out[pix], vd = v_depth[pix];
          scalar_t va = v_alpha[pix];
          for (int64_t k = 0; k < dim; ++k) {
            const scalar_t vc = v_color[pix * dim + k];
            v_c[k * kTilePixels + p] = vc;
            if (bg) {
              va -= vc * bg[tile.cam * dim + k];
              bg_grads[item * dim + k] += vc * (scalar_t(1) - alpha);
            }
          }
          // depth = S / max(alpha, eps): the clamp passes no gradient to alpha below eps.
          if (alpha >= depth_eps) va -= vd * depth_out[pix] / alpha;
          v_w[p] = va;
          v_z[p] = vd / std::max(alpha, depth_eps);
          trans[p] = t_final[pix];
          last[p] = static_cast<scalar_t>(count[pix]);
          max_last = std::max(max_last, count[pix]);
        }
      for (int32_t j = max_last - 1; j >= 0; --j) {
        const int64_t row = isect[tile.begin + j];
        if (j >= kPrefetch) prefetch_splat(splat, box, stride, isect[tile.begin + j - kPrefetch]);
        const Splat<scalar_t> s(splat + row * stride, box + 4 * row, tile.px0, tile.px1, tile.py0, tile.py1);
        const V opacity(s.opacity), z(s.z), a(s.a), b(s.b), c(s.c), position(static_cast<scalar_t>(j));
        V g_mx(0), g_my(0), g_a(0), g_b(0), g_c(0), g_opacity(0), g_z(0);
        std::fill(g_col.begin(), g_col.end(), zero);
        const auto any_listed = [&](int p) { return !none(position < V::loadu(last + p)); };
        eval_gaussian(s, tile, any_listed, powers, gauss_buf);
        for_each_chunk(s, tile, [&](const V& dy, const V&, int p, int x) {
          const V listed = position < V::loadu(last + p);
          if (none(listed)) return;
          const V gauss = V::loadu(gauss_buf + p);
          const V raw = opacity * gauss;
          const V alpha = at::vec::minimum(raw, alpha_max);
          const V valid = listed & (alpha >= alpha_min);
          if (none(valid)) return;
          const V one_minus = one - alpha;
          const V t_behind = V::loadu(trans + p);
          const V t = t_behind / one_minus;
          V::blendv(t_behind, t, valid).store(trans + p);
          const V w = V::blendv(zero, alpha * t, valid);
          const V vz = V::loadu(v_z + p);
          V v_weight = V::loadu(v_w + p) + vz * z;
          for (int64_t k = 0; k < dim; ++k) {
            const V vc = V::loadu(v_c + k * kTilePixels + p);
            v_weight = v_weight + vc * V(s.color[k]);
            g_col[k] = g_col[k] + w * vc;
          }
          g_z = g_z + w * vz;
          const V sum_behind = V::loadu(behind + p);
          const V v_alpha_i = t * (v_weight - sum_behind);
          V::blendv(sum_behind, alpha * v_weight + one_minus * sum_behind, valid).store(behind + p);
          // No gradient through an alpha clamped at ALPHA_MAX, nor through a power clamped at 0.
          const V unclamped = valid & (raw <= alpha_max);
          g_opacity = g_opacity + V::blendv(zero, v_alpha_i * gauss, unclamped);
          const V v_power = V::blendv(zero, v_alpha_i * raw, unclamped & (V::loadu(powers + p) <= zero));
          const V dx = offsets_x(s, x);
          g_mx = g_mx + v_power * (a * dx + b * dy);
          g_my = g_my + v_power * (b * dx + c * dy);
          g_a = g_a - half * v_power * dx * dx;
          g_b = g_b - v_power * dx * dy;
          g_c = g_c - half * v_power * dy * dy;
        });
        scalar_t* out = grads + hit_of[tile.begin + j] * slots;
        out[kGradMean] = lane_sum(g_mx), out[kGradMean + 1] = lane_sum(g_my);
        out[kGradConic] = lane_sum(g_a), out[kGradConic + 1] = lane_sum(g_b), out[kGradConic + 2] = lane_sum(g_c);
        out[kGradOpacity] = lane_sum(g_opacity), out[kGradDepth] = lane_sum(g_z);
        for (int64_t k = 0; k < dim; ++k) out[kGradColor + k] = lane_sum(g_col[k]);
      }
    }
  }

  at::Tensor v_means2d = at::zeros({cams, n, 2}, opts), v_conics = at::zeros({cams, n, 3}, opts);
  at::Tensor v_opacities = at::zeros({cams, n}, opts), v_gdepths = at::zeros({cams, n}, opts);
  at::Tensor v_gcolors = at::zeros({cams, n, dim}, opts), v_bg = at::zeros({cams, dim}, opts);
  scalar_t *o_mean = v_means2d.data_ptr<scalar_t>(), *o_conic = v_conics.data_ptr<scalar_t>();
  scalar_t *o_opac = v_opacities.data_ptr<scalar_t>(), *o_depth = v_gdepths.data_ptr<scalar_t>();
  scalar_t *o_color = v_gcolors.data_ptr<scalar_t>(), *o_bg = v_bg.data_ptr<scalar_t>();
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t row = 0; row < order_t.numel(); ++row) {
    const int64_t gi = order[row];
    for (int64_t h = row_hits[row]; h < row_hits[row + 1]; ++h) {
      const scalar_t* src = grads + h * slots;
      o_mean[2 * gi] += src[kGradMean], o_mean[2 * gi + 1] += src[kGradMean + 1];
      for (int k = 0; k < 3; ++k) o_conic[3 * gi + k] += src[kGradConic + k];
      o_opac[gi] += src[kGradOpacity];
      o_depth[gi] += src[kGradDepth];
      for (int64_t k = 0; k < dim; ++k) o_color[gi * dim + k] += src[kGradColor + k];
    }
  }
  for (int64_t item = 0; item < cams * tiles; ++item)
    for (int64_t k = 0; k < (has_bg ? dim : 0); ++k) o_bg[item / tiles * dim + k] += bg_grads[item * dim + k];
  return {v_means2d, v_conics, v_opacities, v_gcolors, v_gdepths, v_bg};
}

template std::vector<at::Tensor> backward_impl<float>(const std::vector<at::Tensor>&, int64_t, int64_t, int, int);
template std::vector<at::Tensor> backward_impl<double>(const std::vector<at::Tensor>&, int64_t, int64_t, int, int);

}  // namespace scene4d_raster
