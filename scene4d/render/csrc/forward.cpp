// Front-to-back compositing of each (camera, tile).
#include <ATen/ops/empty.h>

#include <limits>

#include "rasterize_cpu.h"

namespace scene4d_raster {

template <typename scalar_t>
std::vector<at::Tensor> forward_impl(const at::Tensor& means2d, const at::Tensor& conics,
                                     const at::Tensor& opacities, const at::Tensor& colors,
                                     const at::Tensor& depths, const at::Tensor& radii,
                                     const at::Tensor& backgrounds, int width, int height) {
  using V = Vec<scalar_t>;
  const int64_t cams = depths.size(0), dim = colors.size(2);
  const Binning bins = bin_gaussians<scalar_t>(means2d, conics, opacities, colors, depths, radii, width, height);
  const auto opts = means2d.options();
  at::Tensor out_colors = at::empty({cams, height, width, dim}, opts);
  at::Tensor out_alphas = at::empty({cams, height, width, 1}, opts);
  at::Tensor out_depths = at::empty({cams, height, width, 1}, opts);
  at::Tensor final_t = at::empty({cams, height, width}, opts);
  at::Tensor counts = at::empty({cams, height, width}, at::kInt);

  const int64_t stride = kSplatColor + dim;
  const scalar_t* splat = bins.splats.data_ptr<scalar_t>();
  const scalar_t* bg = backgrounds.numel() ? backgrounds.data_ptr<scalar_t>() : nullptr;
  const int32_t* box = bins.boxes.data_ptr<int32_t>();
  const int64_t* offsets = bins.tile_offsets.data_ptr<int64_t>();
  const int32_t* isect = bins.isect.data_ptr<int32_t>();
  scalar_t *o_color = out_colors.data_ptr<scalar_t>(), *o_alpha = out_alphas.data_ptr<scalar_t>();
  scalar_t *o_depth = out_depths.data_ptr<scalar_t>(), *o_t = final_t.data_ptr<scalar_t>();
  int32_t* o_count = counts.data_ptr<int32_t>();

  const int tiles_x = (width + kTile - 1) / kTile;
  const int64_t tiles = static_cast<int64_t>(tiles_x) * ((height + kTile - 1) / kTile);
  // Per-pixel list positions are kept in scalar_t lanes, exact up to 2^digits.
  int64_t longest = 0;
  for (int64_t t = 0; t < cams * tiles; ++t) longest = std::max(longest, offsets[t + 1] - offsets[t]);
  TORCH_CHECK(longest < (int64_t{1} << std::numeric_limits<scalar_t>::digits), "a tile overlaps ", longest,
              " Gaussians, too many to count in ", means2d.scalar_type());
  const V zero(0), one(1), alpha_min(kAlphaThreshold), alpha_max(kAlphaMax), t_min(kTransmittanceMin);
  const scalar_t depth_eps = kDepthEps;

#pragma omp parallel num_threads(num_threads())
  {
    FlushDenormals ftz;
    // Planes of kTilePixels: transmittance, sum w, sum w z, list count, live mask, then sum w colour.
    std::vector<scalar_t> buffer(kTilePixels * (5 + dim)), scratch(2 * kTilePixels);
    scalar_t *powers = scratch.data(), *gauss = powers + kTilePixels;
    scalar_t* trans = buffer.data();
    scalar_t* acc_w = trans + kTilePixels;
    scalar_t* acc_z = acc_w + kTilePixels;
    scalar_t* count = acc_z + kTilePixels;
    scalar_t* live = count + kTilePixels;
    scalar_t* acc_c = live + kTilePixels;
#pragma omp for schedule(dynamic)
    for (int64_t item = 0; item < cams * tiles; ++item) {
      const TileGeometry tile(item, tiles, tiles_x, width, height, offsets);
      std::fill(trans, trans + kTilePixels, scalar_t(1));
      std::fill(acc_w, live, scalar_t(0));
      std::fill(acc_c, acc_c + kTilePixels * dim, scalar_t(0));
      // A live lane has all bits set (a mask); lanes past the image edge never are.
      const V all_set = V(0) == V(0);
      std::fill(live, live + kTilePixels, scalar_t(0));
      for (int y = tile.py0; y <= tile.py1; ++y)
        for (int x = tile.px0; x <= tile.px1; ++x) all_set.store(live + tile.local(x, y), 1);
      int remaining = (tile.px1 - tile.px0 + 1) * (tile.py1 - tile.py0 + 1);
      for (int64_t j = tile.begin; j < tile.end && remaining > 0; ++j) {
        const int64_t row = isect[j];
        if (j + kPrefetch < tile.end) prefetch_splat(splat, box, stride, isect[j + kPrefetch]);
        const Splat<scalar_t> s(splat + row * stride, box + 4 * row, tile.px0, tile.px1, tile.py0, tile.py1);
        const V opacity(s.opacity), z(s.z), position(static_cast<scalar_t>(j - tile.begin + 1));
        const auto any_live = [&](int p) { return !none(V::loadu(live + p)); };
        eval_gaussian(s, tile, any_live, powers, gauss);
        for_each_chunk(s, tile, [&](const V&, const V&, int p, int) {
          if (!any_live(p)) return;
          const V alpha = at::vec::minimum(opacity * V::loadu(gauss + p), alpha_max);
          const V valid = (alpha >= alpha_min) & V::loadu(live + p);
          if (none(valid)) return;
          const V t = V::loadu(trans + p);
          const V next_t = t * (one - alpha);
          const V drawn = valid & (next_t > t_min);
          const V ended = valid ^ drawn;
          if (!none(ended)) {
            remaining -= __builtin_popcount(~ended.zero_mask() & ((1 << V::size()) - 1));
            (V::loadu(live + p) ^ ended).store(live + p);
          }
          if (none(drawn)) return;
          const V w = V::blendv(zero, alpha * t, drawn);
          (V::loadu(acc_w + p) + w).store(acc_w + p);
          (V::loadu(acc_z + p) + w * z).store(acc_z + p);
          for (int64_t k = 0; k < dim; ++k) {
            scalar_t* plane = acc_c + k * kTilePixels + p;
            (V::loadu(plane) + w * V(s.color[k])).store(plane);
          }
          V::blendv(t, next_t, drawn).store(trans + p);
          V::blendv(V::loadu(count + p), position, drawn).store(count + p);
        });
      }
      for (int y = tile.py0; y <= tile.py1; ++y)
        for (int x = tile.px0; x <= tile.px1; ++x) {
          const int p = tile.local(x, y);
          const int64_t pix = tile.pixel(x, y, width, height);
          for (int64_t k = 0; k < dim; ++k) {
            const scalar_t c = acc_c[k * kTilePixels + p];
            o_color[pix * dim + k] = bg ? c + (scalar_t(1) - acc_w[p]) * bg[tile.cam * dim + k] : c;
          }
          o_alpha[pix] = acc_w[p];
          o_depth[pix] = acc_z[p] / std::max(acc_w[p], depth_eps);
          o_t[pix] = trans[p];
          o_count[pix] = static_cast<int32_t>(count[p]);
        }
    }
  }
  return {out_colors, out_alphas, out_depths, final_t, counts, bins.order, bins.splats, bins.boxes,
          bins.tile_offsets, bins.isect, bins.row_hits, bins.hit_of};
}

template std::vector<at::Tensor> forward_impl<float>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                     const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                     const at::Tensor&, int, int);
template std::vector<at::Tensor> forward_impl<double>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                      const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                      const at::Tensor&, int, int);

}  // namespace scene4d_raster
