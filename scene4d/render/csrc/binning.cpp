// Footprints of the projected Gaussians and their depth-sorted per-tile lists.
#include <ATen/ops/empty.h>

#include <parallel/algorithm>

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "rasterize_cpu.h"

namespace scene4d_raster {
namespace {

// Slack on the footprint boxes: they only prune work, so they err wide enough that rounding (float32
// included) can never drop a contribution that the exact alpha test would keep.
constexpr double kPowerSlack = 1e-4;
constexpr double kBoxSlackRel = 1e-4;
constexpr double kBoxSlackAbs = 1e-2;

// The region where a Gaussian's alpha can reach kAlphaThreshold: d^T conic d <= r2 with
// r2 = 2 ln(opacity / threshold), slightly widened; everywhere when the conic is not positive definite
// (then the reference's power clamp can make alpha large anywhere).
struct Footprint {
  double mx, my, a, b, c, r2;
  bool ellipse;
  std::array<int32_t, 4> box;  // inclusive pixel box x0, x1, y0, y1 within the image; x0 > x1: not drawn

  // Whether the region reaches a pixel centre of [x0, x1] x [y0, y1]. The quadratic form is convex, so its
  // minimum over the rectangle of centres is 0 at the mean if inside, else on an edge at the clamped vertex.
  bool meets(int x0, int x1, int y0, int y1) const {
    if (!ellipse) return true;
    const double u0 = x0 + 0.5 - mx - kBoxSlackAbs, u1 = x1 + 0.5 - mx + kBoxSlackAbs;
    const double v0 = y0 + 0.5 - my - kBoxSlackAbs, v1 = y1 + 0.5 - my + kBoxSlackAbs;
    if (u0 <= 0 && 0 <= u1 && v0 <= 0 && 0 <= v1) return true;
    const auto q = [this](double u, double v) { return a * u * u + 2 * b * u * v + c * v * v; };
    for (const double v : {v0, v1})
      if (q(std::clamp(-b * v / a, u0, u1), v) <= r2) return true;
    for (const double u : {u0, u1})
      if (q(u, std::clamp(-b * u / c, v0, v1)) <= r2) return true;
    return false;
  }
};

template <typename scalar_t>
Footprint footprint(const scalar_t* mean, const scalar_t* conic, scalar_t opacity, int width, int height) {
  Footprint f{mean[0], mean[1], conic[0], conic[1], conic[2], 0.0, false, {0, -1, 0, -1}};
  if (!(opacity >= static_cast<scalar_t>(kAlphaThreshold)) || !std::isfinite(f.mx) || !std::isfinite(f.my)) return f;
  f.r2 = 2.0 * (std::log(static_cast<double>(opacity) / kAlphaThreshold) + kPowerSlack);
  const double det = f.a * f.c - f.b * f.b;
  f.ellipse = det > 0 && f.a > 0 && f.c > 0 && std::isfinite(det);
  double x0 = 0, x1 = width - 1, y0 = 0, y1 = height - 1;
  if (f.ellipse) {
    const double ex = std::sqrt(f.r2 * f.c / det) * (1 + kBoxSlackRel) + kBoxSlackAbs;
    const double ey = std::sqrt(f.r2 * f.a / det) * (1 + kBoxSlackRel) + kBoxSlackAbs;
    // Pixel j is drawn when its centre j + 0.5 lies within [m - e, m + e].
    x0 = std::max(x0, std::ceil(f.mx - ex - 0.5));
    x1 = std::min(x1, std::floor(f.mx + ex - 0.5));
    y0 = std::max(y0, std::ceil(f.my - ey - 0.5));
    y1 = std::min(y1, std::floor(f.my + ey - 0.5));
  }
  if (!(x0 <= x1 && y0 <= y1)) return f;
  f.box = {static_cast<int32_t>(x0), static_cast<int32_t>(x1), static_cast<int32_t>(y0), static_cast<int32_t>(y1)};
  return f;
}

// Calls fn(tile index) for each tile of the box that the footprint reaches.
template <typename Fn>
void for_each_tile(const Footprint& f, int tiles_x, Fn&& fn) {
  const std::array<int32_t, 4>& box = f.box;
  for (int ty = box[2] / kTile; ty <= box[3] / kTile; ++ty)
    for (int tx = box[0] / kTile; tx <= box[1] / kTile; ++tx)
      if (f.meets(std::max(tx * kTile, box[0]), std::min(tx * kTile + kTile - 1, box[1]),
                  std::max(ty * kTile, box[2]), std::min(ty * kTile + kTile - 1, box[3])))
        fn(ty * tiles_x + tx);
}

// A drawn Gaussian's place in its camera's depth order: depth bits made monotone as an unsigned integer (NaN
// last, -0 equal to +0), then its index c * N + n.
struct DepthKey {
  uint64_t depth;
  int64_t index;
  bool operator<(const DepthKey& other) const {
    return depth != other.depth ? depth < other.depth : index < other.index;
  }
};

template <typename scalar_t>
uint64_t depth_bits(scalar_t depth) {
  using Bits = std::conditional_t<sizeof(scalar_t) == 4, uint32_t, uint64_t>;
  constexpr Bits sign = Bits(1) << (8 * sizeof(Bits) - 1);
  if (std::isnan(depth)) return std::numeric_limits<uint64_t>::max();
  const Bits bits = std::bit_cast<Bits>(depth == 0 ? scalar_t(0) : depth);
  return (bits & sign) ? ~bits : (bits | sign);
}

// Per camera, the drawn Gaussians in depth order, ties by index like a stable argsort. The order is total, so
// the parallel sort gives the same result for any thread count.
template <typename scalar_t>
std::vector<std::vector<DepthKey>> depth_order(const std::vector<Footprint>& prints, const scalar_t* depth,
                                               int64_t cams, int64_t n) {
  std::vector<std::vector<DepthKey>> keys(cams);
  for (int64_t cam = 0; cam < cams; ++cam) {
    for (int64_t i = cam * n; i < (cam + 1) * n; ++i)
      if (prints[i].box[0] <= prints[i].box[1]) keys[cam].push_back({depth_bits(depth[i]), i});
    __gnu_parallel::sort(keys[cam].begin(), keys[cam].end(), __gnu_parallel::multiway_mergesort_tag(num_threads()));
  }
  return keys;
}

}  // namespace

template <typename scalar_t>
Binning bin_gaussians(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities,
                      const at::Tensor& colors, const at::Tensor& depths, const at::Tensor& radii, int width,
                      int height) {
  const int64_t cams = depths.size(0), n = depths.size(1), dim = colors.size(2), stride = kSplatColor + dim;
  const int tiles_x = (width + kTile - 1) / kTile, tiles_y = (height + kTile - 1) / kTile;
  const int64_t tiles = static_cast<int64_t>(tiles_x) * tiles_y;
  const scalar_t *mean = means2d.data_ptr<scalar_t>(), *conic = conics.data_ptr<scalar_t>();
  const scalar_t *opac = opacities.data_ptr<scalar_t>(), *color = colors.data_ptr<scalar_t>();
  const scalar_t* depth = depths.data_ptr<scalar_t>();
  const int32_t* rad = radii.data_ptr<int32_t>();
  // Footprints and splat rows in Gaussian order, gathered below into depth order one record at a time.
  std::vector<Footprint> prints(cams * n);
  std::vector<scalar_t> rows_by_index(cams * n * stride);
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t i = 0; i < cams * n; ++i) {
    prints[i] = footprint<scalar_t>(mean + 2 * i, conic + 3 * i, opac[i], width, height);
    if (rad[2 * i] <= 0 || rad[2 * i + 1] <= 0) prints[i].box[1] = -1;
    scalar_t* dst = rows_by_index.data() + i * stride;
    dst[0] = mean[2 * i], dst[1] = mean[2 * i + 1];
    dst[2] = conic[3 * i], dst[3] = conic[3 * i + 1], dst[4] = conic[3 * i + 2];
    dst[5] = opac[i], dst[6] = depth[i];
    std::copy(color + i * dim, color + (i + 1) * dim, dst + kSplatColor);
  }

  const std::vector<std::vector<DepthKey>> keys = depth_order(prints, depth, cams, n);
  std::vector<int64_t> first(cams + 1, 0);
  for (int64_t cam = 0; cam < cams; ++cam) first[cam + 1] = first[cam] + static_cast<int64_t>(keys[cam].size());
  const int64_t rows = first[cams];
  TORCH_CHECK(rows < std::numeric_limits<int32_t>::max(), "too many drawn Gaussians: ", rows);

  Binning out;
  out.order = at::empty({rows}, at::kLong);
  out.splats = at::empty({rows, stride}, means2d.options());
  out.boxes = at::empty({rows, 4}, at::kInt);
  int64_t* order = out.order.data_ptr<int64_t>();
  scalar_t* splat = out.splats.data_ptr<scalar_t>();
  int32_t* box = out.boxes.data_ptr<int32_t>();
  // Rows are split into contiguous parts, one per thread, each recording its (tile, row) hits. A tile's list
  // is the concatenation of its hits part by part, hence in row order: depth order.
  const int parts = num_threads();
  const int64_t all_tiles = cams * tiles;
  std::vector<std::vector<std::pair<int64_t, int32_t>>> hits(parts);
  std::vector<int64_t> part_counts(parts * all_tiles, 0);
  out.row_hits = at::empty({rows + 1}, at::kLong);
  int64_t* row_hits = out.row_hits.data_ptr<int64_t>();
#pragma omp parallel for schedule(static) num_threads(parts)
  for (int part = 0; part < parts; ++part) {
    int64_t* count = part_counts.data() + part * all_tiles;
    int64_t cam = 0;
    for (int64_t row = rows * part / parts; row < rows * (part + 1) / parts; ++row) {
      while (row >= first[cam + 1]) ++cam;
      const int64_t i = keys[cam][row - first[cam]].index;
      order[row] = i;
      const Footprint& f = prints[i];
      std::copy_n(rows_by_index.data() + i * stride, stride, splat + row * stride);
      std::copy(f.box.begin(), f.box.end(), box + 4 * row);
      row_hits[row] = static_cast<int64_t>(hits[part].size());  // made absolute below
      for_each_tile(f, tiles_x, [&](int32_t t) {
        ++count[cam * tiles + t];
        hits[part].emplace_back(cam * tiles + t, static_cast<int32_t>(row));
      });
    }
  }
  // Exclusive prefix over (tile, part): where each part's hits of each tile start.
  std::vector<int64_t> offsets(all_tiles + 1, 0);
  for (int64_t t = 0; t < all_tiles; ++t) {
    int64_t start = offsets[t];
    for (int part = 0; part < parts; ++part) {
      const int64_t part_count = part_counts[part * all_tiles + t];
      part_counts[part * all_tiles + t] = start;
      start += part_count;
    }
    offsets[t + 1] = start;
  }
  out.tile_offsets = at::empty({all_tiles + 1}, at::kLong);
  std::copy(offsets.begin(), offsets.end(), out.tile_offsets.data_ptr<int64_t>());
  out.isect = at::empty({offsets.back()}, at::kInt);
  out.hit_of = at::empty({offsets.back()}, at::kLong);
  int32_t* isect = out.isect.data_ptr<int32_t>();
  int64_t* hit_of = out.hit_of.data_ptr<int64_t>();
  std::vector<int64_t> part_first(parts + 1, 0);
  for (int part = 0; part < parts; ++part) part_first[part + 1] = part_first[part] + hits[part].size();
  row_hits[rows] = part_first[parts];
#pragma omp parallel for schedule(static) num_threads(parts)
  for (int part = 0; part < parts; ++part) {
    int64_t* cursor = part_counts.data() + part * all_tiles;
    int64_t hit = part_first[part];
    for (const auto& [t, row] : hits[part]) {
      hit_of[cursor[t]] = hit++;
      isect[cursor[t]++] = row;
    }
    for (int64_t row = rows * part / parts; row < rows * (part + 1) / parts; ++row)
      row_hits[row] += part_first[part];
  }
  return out;
}

template Binning bin_gaussians<float>(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                      const at::Tensor&, const at::Tensor&, int, int);
template Binning bin_gaussians<double>(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                       const at::Tensor&, const at::Tensor&, int, int);

}  // namespace scene4d_raster
