// Tile rasterizer for the CPU: footprint binning, per-tile front-to-back compositing and its backward.
//
// The semantics are those of scene4d/render/reference.py, as specified in scene4d/render/projection.py:
// alpha = min(0.999, opacity * exp(min(power, 0))), dropped below 1/255; a Gaussian that would bring
// the transmittance to 1e-4 or below ends the pixel. Every expression that reaches an output is written
// in the reference's order of operations so that float results match it to rounding.
//
// Pixels are processed a vector of a tile row at a time with ATen's Vectorized (whose exp is the SLEEF one
// that torch.exp uses); per-pixel state lives in 16x16 tile arrays, one plane per quantity.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/utils/pybind.h>

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace {

constexpr int kTile = 16;
constexpr int kTilePixels = kTile * kTile;
constexpr double kAlphaThreshold = 1.0 / 255.0;
constexpr double kAlphaMax = 0.999;
constexpr double kTransmittanceMin = 1e-4;
constexpr double kDepthEps = 1e-10;
// Slack on the footprint boxes: they only prune work, so they err wide enough that rounding (float32
// included) can never drop a contribution that the exact alpha test would keep.
constexpr double kPowerSlack = 1e-4;
constexpr double kBoxSlackRel = 1e-4;
constexpr double kBoxSlackAbs = 1e-2;

// Flushes denormals to zero on this thread for the guard's lifetime and restores the caller's mode
// after, since the OpenMP workers are shared with PyTorch.
class FlushDenormals {
 public:
#if defined(__SSE2__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }  // FTZ | DAZ
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned int saved_;
#endif
};

int num_threads() { return std::max(1, at::get_num_threads()); }

// Splat rows: mx, my, conic a, b, c, opacity, depth, then the D colour channels.
constexpr int kSplatColor = 7;

// Drawn Gaussians gathered per camera in depth order, so that tiles read them in memory order.
struct Binning {
  at::Tensor order;         // (S,) int64 index c * N + n of each drawn Gaussian
  at::Tensor splats;        // (S, 7 + D) their parameters, see kSplatColor
  at::Tensor boxes;         // (S, 4) int32 inclusive pixel boxes x0, x1, y0, y1
  at::Tensor tile_offsets;  // (C * tiles + 1) int64 start of each tile's list in isect
  at::Tensor isect;         // (M,) int32 splat row, each tile's list front to back
  at::Tensor row_entries;   // (S + 1) int64 start of each row's run in entries
  at::Tensor entries;       // (M,) int64 positions in isect of each row's intersections, row by row
};

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

  // Per camera: drawn Gaussians in depth order, ties by index and NaN last like a stable argsort.
  std::vector<std::vector<std::pair<scalar_t, int64_t>>> keys(cams);
#pragma omp parallel for schedule(dynamic) num_threads(num_threads())
  for (int64_t cam = 0; cam < cams; ++cam) {
    for (int64_t i = cam * n; i < (cam + 1) * n; ++i)
      if (prints[i].box[0] <= prints[i].box[1]) keys[cam].emplace_back(depth[i], i);
    std::sort(keys[cam].begin(), keys[cam].end(), [](const auto& p, const auto& q) {
      const bool p_nan = std::isnan(p.first), q_nan = std::isnan(q.first);
      if (p_nan != q_nan) return q_nan;
      return (!p_nan && p.first != q.first) ? p.first < q.first : p.second < q.second;
    });
  }
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
  out.row_entries = at::empty({rows + 1}, at::kLong);
  int64_t* row_entries = out.row_entries.data_ptr<int64_t>();
#pragma omp parallel for schedule(static) num_threads(parts)
  for (int part = 0; part < parts; ++part) {
    int64_t* count = part_counts.data() + part * all_tiles;
    int64_t cam = 0;
    for (int64_t row = rows * part / parts; row < rows * (part + 1) / parts; ++row) {
      while (row >= first[cam + 1]) ++cam;
      const int64_t i = keys[cam][row - first[cam]].second;
      order[row] = i;
      const Footprint& f = prints[i];
      std::copy_n(rows_by_index.data() + i * stride, stride, splat + row * stride);
      std::copy(f.box.begin(), f.box.end(), box + 4 * row);
      row_entries[row] = static_cast<int64_t>(hits[part].size());  // made absolute below
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
  out.entries = at::empty({offsets.back()}, at::kLong);
  int32_t* isect = out.isect.data_ptr<int32_t>();
  int64_t* entries = out.entries.data_ptr<int64_t>();
  std::vector<int64_t> part_first(parts + 1, 0);
  for (int part = 0; part < parts; ++part) part_first[part + 1] = part_first[part] + hits[part].size();
  row_entries[rows] = part_first[parts];
#pragma omp parallel for schedule(static) num_threads(parts)
  for (int part = 0; part < parts; ++part) {
    int64_t* cursor = part_counts.data() + part * all_tiles;
    int64_t* entry = entries + part_first[part];
    for (const auto& [t, row] : hits[part]) *entry++ = cursor[t], isect[cursor[t]++] = row;
    for (int64_t row = rows * part / parts; row < rows * (part + 1) / parts; ++row) row_entries[row] += part_first[part];
  }
  return out;
}

// One Gaussian's parameters, read once per tile from its splat row.
template <typename scalar_t>
struct Splat {
  scalar_t mx, my, a, b, c, opacity, z;
  const scalar_t* color;
  int x0, x1, y0, y1;  // box clipped to the tile

  Splat(const scalar_t* row, const int32_t* box, int px0, int px1, int py0, int py1)
      : mx(row[0]), my(row[1]), a(row[2]), b(row[3]), c(row[4]), opacity(row[5]), z(row[6]),
        color(row + kSplatColor), x0(std::max(box[0], px0)), x1(std::min(box[1], px1)),
        y0(std::max(box[2], py0)), y1(std::min(box[3], py1)) {}
};

// How many Gaussians ahead of a tile's walk to prefetch: the splat rows are too many to stay in cache.
constexpr int kPrefetch = 4;

template <typename scalar_t>
void prefetch_splat(const scalar_t* splats, const int32_t* boxes, int64_t stride, int64_t row) {
  __builtin_prefetch(splats + row * stride);
  __builtin_prefetch(boxes + 4 * row);
}

// Geometry of one (camera, tile) work item.
struct TileGeometry {
  int64_t cam, begin, end;
  int px0, py0, px1, py1;  // inclusive pixel ranges

  TileGeometry(int64_t item, int64_t tiles, int tiles_x, int width, int height, const int64_t* offsets)
      : cam(item / tiles), begin(offsets[item]), end(offsets[item + 1]) {
    const int64_t t = item % tiles;
    px0 = static_cast<int>(t % tiles_x) * kTile, py0 = static_cast<int>(t / tiles_x) * kTile;
    px1 = std::min(px0 + kTile, width) - 1, py1 = std::min(py0 + kTile, height) - 1;
  }
  int local(int x, int y) const { return (y - py0) * kTile + (x - px0); }
  int64_t pixel(int x, int y, int width, int height) const { return (cam * height + y) * width + x; }
};


template <typename scalar_t>
using Vec = at::vec::Vectorized<scalar_t>;

// Sum of the lanes, always in the same order.
template <typename scalar_t>
scalar_t lane_sum(const Vec<scalar_t>& v) {
  scalar_t lanes[Vec<scalar_t>::size()];
  v.store(lanes);
  scalar_t sum = 0;
  for (int i = 0; i < Vec<scalar_t>::size(); ++i) sum += lanes[i];
  return sum;
}

// No lane of the mask is set.
template <typename scalar_t>
bool none(const Vec<scalar_t>& mask) {
  return mask.zero_mask() == (1 << Vec<scalar_t>::size()) - 1;
}

// Offsets x + 0.5 - mx of the pixel centres of the vector of a row starting at column x.
template <typename scalar_t>
Vec<scalar_t> offsets_x(const Splat<scalar_t>& s, int x) {
  return Vec<scalar_t>::arange(static_cast<scalar_t>(x) + static_cast<scalar_t>(0.5), scalar_t(1)) - Vec<scalar_t>(s.mx);
}

// Calls body(dy, c*dy*dy, local index, x) for each vector of the tile rows that the Gaussian's box covers.
template <typename scalar_t, typename Body>
void for_each_chunk(const Splat<scalar_t>& s, const TileGeometry& tile, Body&& body) {
  constexpr int lanes = Vec<scalar_t>::size();
  static_assert(kTile % lanes == 0, "tile rows must split into whole vectors");
  for (int y = s.y0; y <= s.y1; ++y) {
    const Vec<scalar_t> dy(static_cast<scalar_t>(y) + static_cast<scalar_t>(0.5) - s.my);
    const Vec<scalar_t> c_dy_dy = Vec<scalar_t>(s.c) * dy * dy;
    for (int cx = (s.x0 - tile.px0) / lanes * lanes; cx <= s.x1 - tile.px0; cx += lanes)
      body(dy, c_dy_dy, (y - tile.py0) * kTile + cx, tile.px0 + cx);
  }
}

// The power -0.5 d^T conic d and exp(min(power, 0)) at the pixels of the vectors of the Gaussian's box in the
// tile that pass wanted(local index), stored at their local indices. The exp calls of a (Gaussian, tile) all
// come before its compositing loop, which then keeps its accumulators in registers.
template <typename scalar_t, typename Wanted>
void eval_gaussian(const Splat<scalar_t>& s, const TileGeometry& tile, Wanted&& wanted, scalar_t* powers,
                   scalar_t* gauss) {
  using V = Vec<scalar_t>;
  const V a(s.a), b(s.b), zero(0);
  for_each_chunk(s, tile, [&](const V& dy, const V& c_dy_dy, int p, int x) {
    if (!wanted(p)) return;
    const V dx = offsets_x(s, x);
    const V power = V(-0.5) * (a * dx * dx + c_dy_dy) - b * dx * dy;
    power.store(powers + p);
    at::vec::minimum(power, zero).exp().store(gauss + p);
  });
}

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
          bins.tile_offsets, bins.isect, bins.row_entries, bins.entries};
}

// Gradient slots per intersection: means2d (2), conic (3), opacity, depth, then the D colour channels.
constexpr int kGradMean = 0, kGradConic = 2, kGradOpacity = 5, kGradDepth = 6, kGradColor = 7;

template <typename scalar_t>
std::vector<at::Tensor> backward_impl(const std::vector<at::Tensor>& in, int64_t cams, int64_t n, int width,
                                      int height) {
  using V = Vec<scalar_t>;
  const at::Tensor &backgrounds = in[0], &out_alphas = in[1], &out_depths = in[2], &final_t = in[3];
  const at::Tensor &counts = in[4], &order_t = in[5], &splats = in[6], &boxes = in[7], &tile_offsets = in[8];
  const at::Tensor &isect_t = in[9], &row_entries_t = in[10], &entries_t = in[11];
  const at::Tensor &v_colors = in[12], &v_alphas = in[13], &v_depths = in[14];
  const int64_t stride = splats.size(1), dim = stride - kSplatColor;
  const int64_t slots = kGradColor + dim, m = isect_t.numel();
  const int tiles_x = (width + kTile - 1) / kTile;
  const int64_t tiles = static_cast<int64_t>(tiles_x) * ((height + kTile - 1) / kTile);
  const auto opts = splats.options();
  const bool has_bg = backgrounds.numel() > 0;
  // Per-intersection and per-tile partial sums, reduced below in a fixed order: deterministic for any
  // thread count, with no atomics.
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
  const int64_t *row_entries = row_entries_t.data_ptr<int64_t>(), *entries = entries_t.data_ptr<int64_t>();
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
        scalar_t* out = grads + (tile.begin + j) * slots;
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
    for (int64_t h = row_entries[row]; h < row_entries[row + 1]; ++h) {
      const scalar_t* src = grads + entries[h] * slots;
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

std::vector<at::Tensor> rasterize_forward(const at::Tensor& means2d, const at::Tensor& conics,
                                             const at::Tensor& opacities, const at::Tensor& colors,
                                             const at::Tensor& depths, const at::Tensor& radii,
                                             const at::Tensor& backgrounds, int64_t width, int64_t height) {
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_forward", [&] {
    out = forward_impl<scalar_t>(means2d, conics, opacities, colors, depths, radii, backgrounds,
                                 static_cast<int>(width), static_cast<int>(height));
  });
  return out;
}

std::vector<at::Tensor> rasterize_backward(const std::vector<at::Tensor>& tensors, int64_t cams, int64_t n,
                                           int64_t width, int64_t height) {
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(tensors[6].scalar_type(), "rasterize_backward", [&] {
    out = backward_impl<scalar_t>(tensors, cams, n, static_cast<int>(width), static_cast<int>(height));
  });
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &rasterize_forward,
        "Bin, sort and composite: returns colors, alphas, depths and the state the backward needs.");
  m.def("backward", &rasterize_backward,
        "Gradients to means2d, conics, opacities, colors, depths and backgrounds.");
}
