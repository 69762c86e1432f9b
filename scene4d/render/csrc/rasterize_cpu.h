// Shared pieces of the CPU tile rasterizer (binning.cpp, forward.cpp, backward.cpp, bindings.cpp) and of
// projection.cpp and sh.cpp.
//
// The semantics are those of scene4d/render/reference.py, as specified in scene4d/render/projection.py:
// alpha = min(0.999, opacity * exp(min(power, 0))), dropped below 1/255; a Gaussian that would bring
// the transmittance to 1e-4 or below ends the pixel. Every expression that reaches an output is written
// in the reference's order of operations so that float results match it to rounding.
//
// Pixels are processed a vector of a tile row at a time with ATen's Vectorized (whose exp is the SLEEF one
// that torch.exp uses); per-pixel state lives in 16x16 tile arrays, one plane per quantity.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace scene4d_raster {

constexpr int kTile = 16;
constexpr int kTilePixels = kTile * kTile;
constexpr double kAlphaThreshold = 1.0 / 255.0;
constexpr double kAlphaMax = 0.999;
constexpr double kTransmittanceMin = 1e-4;
constexpr double kDepthEps = 1e-10;

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

inline int num_threads() { return std::max(1, at::get_num_threads()); }

// Calls fn(block, first, last) for blocks of kGaussianBlock Gaussians [first, last) of n, handed out to the threads
// dynamically (a preempted thread then delays one block, not a share). Per-block sums reduced in block order
// do not depend on the thread count.
constexpr int64_t kGaussianBlock = 256;

template <typename Fn>
void for_each_block(int64_t n, Fn&& fn) {
  const int64_t blocks = (n + kGaussianBlock - 1) / kGaussianBlock;
#pragma omp parallel for schedule(dynamic) num_threads(num_threads())
  for (int64_t block = 0; block < blocks; ++block)
    fn(block, block * kGaussianBlock, std::min(n, (block + 1) * kGaussianBlock));
}

// Splat rows: mx, my, conic a, b, c, opacity, depth, then the D colour channels.
constexpr int kSplatColor = 7;

// Drawn Gaussians gathered per camera in depth order, so that tiles read them in memory order.
struct Binning {
  at::Tensor order;         // (S,) int64 index c * N + n of each drawn Gaussian
  at::Tensor splats;        // (S, 7 + D) their parameters, see kSplatColor
  at::Tensor boxes;         // (S, 4) int32 inclusive pixel boxes x0, x1, y0, y1
  at::Tensor tile_offsets;  // (C * tiles + 1) int64 start of each tile's list in isect
  at::Tensor isect;         // (M,) int32 splat row, each tile's list front to back
  // Intersections are also numbered row by row ("hits"), so that a row's gradient terms lie together.
  at::Tensor row_hits;      // (S + 1) int64 first hit of each row
  at::Tensor hit_of;        // (M,) int64 hit number of each isect entry
};

// Bins the drawn Gaussians of every camera into 16x16 tiles: inputs (C, N, ...) as in rasterize_forward.
template <typename scalar_t>
Binning bin_gaussians(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities,
                      const at::Tensor& colors, const at::Tensor& depths, const at::Tensor& radii, int width,
                      int height);

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

// Sum of the lanes, always in the same order (a fixed tree).
template <typename scalar_t>
scalar_t lane_sum(const Vec<scalar_t>& v) {
  return at::vec::vec_reduce_all<scalar_t>([](const Vec<scalar_t>& a, const Vec<scalar_t>& b) { return a + b; }, v);
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

// Composites every (camera, tile); returns colours, alphas, depths, then the state the backward takes.
template <typename scalar_t>
std::vector<at::Tensor> forward_impl(const at::Tensor& means2d, const at::Tensor& conics,
                                     const at::Tensor& opacities, const at::Tensor& colors,
                                     const at::Tensor& depths, const at::Tensor& radii,
                                     const at::Tensor& backgrounds, int width, int height);

// Gradients to means2d, conics, opacities, colours, depths and backgrounds; `in` is the forward's state
// (see cpu_kernel.py) followed by the output cotangents.
template <typename scalar_t>
std::vector<at::Tensor> backward_impl(const std::vector<at::Tensor>& in, int64_t cams, int64_t n, int width,
                                      int height);

}  // namespace scene4d_raster
