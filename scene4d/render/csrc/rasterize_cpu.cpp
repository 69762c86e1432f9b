// Tile rasterizer for the CPU: footprint binning, per-tile front-to-back compositing and its backward.
//
// The semantics are those of scene4d/render/reference.py, as specified in scene4d/render/projection.py:
// alpha = min(0.999, opacity * exp(min(power, 0))), dropped below 1/255; a Gaussian that would bring
// the transmittance to 1e-4 or below ends the pixel. Every expression that reaches an output is written
// in the reference's order of operations so that float results match it to rounding.
#include <torch/extension.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <tuple>
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
// Slack on the footprint boxes and on the pre-exp power test: both only prune work, so they err wide
// enough that rounding (float32 included) can never drop a contribution the exact test would keep.
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

struct Binning {
  torch::Tensor boxes;         // (C, N, 4) int32 inclusive pixel box x0, x1, y0, y1 (x0 > x1: not drawn)
  torch::Tensor power_floor;   // (C, N) below this power the alpha is surely under the threshold
  torch::Tensor tile_offsets;  // (C * tiles + 1) int64 start of each tile's list in isect
  torch::Tensor isect;         // (M,) int32 Gaussian index, each tile's list front to back
};

// Conservative pixel box of the region where alpha >= kAlphaThreshold: the ellipse
// d^T conic d <= 2 ln(opacity / threshold), widened slightly; the whole image when the conic is not
// positive definite (then the reference's power clamp can make alpha large anywhere).
template <typename scalar_t>
void footprint(const scalar_t* mean, const scalar_t* conic, scalar_t opacity, int width, int height,
               int32_t* box, scalar_t* power_floor) {
  box[0] = 0, box[1] = -1, box[2] = 0, box[3] = -1;
  *power_floor = 0;
  const double mx = mean[0], my = mean[1], op = opacity;
  if (!(opacity >= static_cast<scalar_t>(kAlphaThreshold)) || !std::isfinite(mx) || !std::isfinite(my)) return;
  const double log_ratio = std::log(op / kAlphaThreshold);
  *power_floor = static_cast<scalar_t>(-log_ratio - kPowerSlack);
  const double a = conic[0], b = conic[1], c = conic[2];
  const double det = a * c - b * b;
  double x0 = 0, x1 = width - 1, y0 = 0, y1 = height - 1;
  if (det > 0 && a > 0 && c > 0 && std::isfinite(det)) {
    const double r2 = 2.0 * (log_ratio + kPowerSlack);
    const double ex = std::sqrt(r2 * c / det) * (1 + kBoxSlackRel) + kBoxSlackAbs;
    const double ey = std::sqrt(r2 * a / det) * (1 + kBoxSlackRel) + kBoxSlackAbs;
    // Pixel j is drawn when its centre j + 0.5 lies within [m - e, m + e].
    x0 = std::max(x0, std::ceil(mx - ex - 0.5));
    x1 = std::min(x1, std::floor(mx + ex - 0.5));
    y0 = std::max(y0, std::ceil(my - ey - 0.5));
    y1 = std::min(y1, std::floor(my + ey - 0.5));
  }
  if (!(x0 <= x1 && y0 <= y1)) return;
  box[0] = static_cast<int32_t>(x0), box[1] = static_cast<int32_t>(x1);
  box[2] = static_cast<int32_t>(y0), box[3] = static_cast<int32_t>(y1);
}

template <typename scalar_t>
Binning bin_gaussians(const torch::Tensor& means2d, const torch::Tensor& conics, const torch::Tensor& opacities,
                      const torch::Tensor& depths, const torch::Tensor& radii, int width, int height) {
  const int64_t cams = depths.size(0), n = depths.size(1);
  const int tiles_x = (width + kTile - 1) / kTile, tiles_y = (height + kTile - 1) / kTile;
  const int64_t tiles = static_cast<int64_t>(tiles_x) * tiles_y;
  Binning out;
  out.boxes = torch::empty({cams, n, 4}, torch::kInt32);
  out.power_floor = torch::empty({cams, n}, means2d.options());
  const scalar_t* mean = means2d.data_ptr<scalar_t>();
  const scalar_t* conic = conics.data_ptr<scalar_t>();
  const scalar_t* opac = opacities.data_ptr<scalar_t>();
  const scalar_t* depth = depths.data_ptr<scalar_t>();
  const int32_t* rad = radii.data_ptr<int32_t>();
  int32_t* box = out.boxes.data_ptr<int32_t>();
  scalar_t* pfloor = out.power_floor.data_ptr<scalar_t>();

#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t i = 0; i < cams * n; ++i) {
    footprint<scalar_t>(mean + 2 * i, conic + 3 * i, opac[i], width, height, box + 4 * i, pfloor + i);
    if (rad[2 * i] <= 0 || rad[2 * i + 1] <= 0) box[4 * i] = 0, box[4 * i + 1] = -1;
  }

  // Per camera: drawn Gaussians in depth order (ties by index, NaN last, like a stable argsort), then
  // each tile's list filled in that order so that it comes out sorted.
  std::vector<std::vector<int32_t>> order(cams);
  std::vector<int64_t> counts(cams * tiles + 1, 0);
#pragma omp parallel for schedule(dynamic) num_threads(num_threads())
  for (int64_t cam = 0; cam < cams; ++cam) {
    std::vector<int32_t>& ids = order[cam];
    for (int64_t g = 0; g < n; ++g)
      if (box[4 * (cam * n + g)] <= box[4 * (cam * n + g) + 1]) ids.push_back(static_cast<int32_t>(g));
    const scalar_t* z = depth + cam * n;
    std::stable_sort(ids.begin(), ids.end(), [z](int32_t i, int32_t j) {
      return std::isnan(z[j]) ? !std::isnan(z[i]) : z[i] < z[j];
    });
    int64_t* count = counts.data() + 1 + cam * tiles;
    for (int32_t g : ids) {
      const int32_t* bx = box + 4 * (cam * n + g);
      for (int ty = bx[2] / kTile; ty <= bx[3] / kTile; ++ty)
        for (int tx = bx[0] / kTile; tx <= bx[1] / kTile; ++tx) ++count[ty * tiles_x + tx];
    }
  }
  std::partial_sum(counts.begin(), counts.end(), counts.begin());
  out.tile_offsets = torch::from_blob(counts.data(), {cams * tiles + 1}, torch::kInt64).clone();
  out.isect = torch::empty({counts.back()}, torch::kInt32);
  int32_t* isect = out.isect.data_ptr<int32_t>();
#pragma omp parallel for schedule(dynamic) num_threads(num_threads())
  for (int64_t cam = 0; cam < cams; ++cam) {
    std::vector<int64_t> cursor(counts.begin() + cam * tiles, counts.begin() + (cam + 1) * tiles);
    for (int32_t g : order[cam]) {
      const int32_t* bx = box + 4 * (cam * n + g);
      for (int ty = bx[2] / kTile; ty <= bx[3] / kTile; ++ty)
        for (int tx = bx[0] / kTile; tx <= bx[1] / kTile; ++tx) isect[cursor[ty * tiles_x + tx]++] = g;
    }
  }
  return out;
}

// One Gaussian's parameters, read once per tile.
template <typename scalar_t>
struct Splat {
  scalar_t mx, my, a, b, c, opacity, min_power, z;
  int x0, x1, y0, y1;  // box clipped to the tile
  // In double for the row spans: the ellipse power >= min_power is d^T conic d <= r2.
  double inv_a, det, r2;
  bool ellipse;

  Splat(const scalar_t* means2d, const scalar_t* conics, const scalar_t* opacities, const scalar_t* power_floor,
        const scalar_t* depths, const int32_t* boxes, int64_t i, int px0, int px1, int py0, int py1)
      : mx(means2d[2 * i]), my(means2d[2 * i + 1]), a(conics[3 * i]), b(conics[3 * i + 1]), c(conics[3 * i + 2]),
        opacity(opacities[i]), min_power(power_floor[i]), z(depths[i]),
        x0(std::max(boxes[4 * i], px0)), x1(std::min(boxes[4 * i + 1], px1)),
        y0(std::max(boxes[4 * i + 2], py0)), y1(std::min(boxes[4 * i + 3], py1)) {
    det = static_cast<double>(a) * c - static_cast<double>(b) * b;
    ellipse = det > 0 && a > 0 && c > 0 && std::isfinite(det);
    inv_a = 1.0 / a;
    r2 = -2.0 * min_power;
  }

  scalar_t power(scalar_t dx, scalar_t dy) const {
    return static_cast<scalar_t>(-0.5) * (a * dx * dx + c * dy * dy) - b * dx * dy;
  }

  // Columns [*xa, *xb] of row y that the ellipse can reach (widened like the boxes); false if none.
  bool row_span(int y, int* xa, int* xb) const {
    *xa = x0, *xb = x1;
    if (!ellipse) return x0 <= x1;
    const double dy = y + 0.5 - static_cast<double>(my);
    const double disc = a * r2 - det * dy * dy;
    if (!(disc >= 0)) return false;
    const double half = std::sqrt(disc) * inv_a * (1 + kBoxSlackRel) + kBoxSlackAbs;
    const double centre = static_cast<double>(mx) - b * dy * inv_a - 0.5;
    *xa = static_cast<int>(std::max(static_cast<double>(x0), std::ceil(centre - half)));
    *xb = static_cast<int>(std::min(static_cast<double>(x1), std::floor(centre + half)));
    return *xa <= *xb;
  }
};

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
std::vector<torch::Tensor> forward_impl(const torch::Tensor& means2d, const torch::Tensor& conics,
                                        const torch::Tensor& opacities, const torch::Tensor& colors,
                                        const torch::Tensor& depths, const torch::Tensor& radii,
                                        const torch::Tensor& backgrounds, int width, int height) {
  const int64_t cams = depths.size(0), n = depths.size(1), dim = colors.size(2);
  const Binning bins = bin_gaussians<scalar_t>(means2d, conics, opacities, depths, radii, width, height);
  const auto opts = means2d.options();
  torch::Tensor out_colors = torch::empty({cams, height, width, dim}, opts);
  torch::Tensor out_alphas = torch::empty({cams, height, width, 1}, opts);
  torch::Tensor out_depths = torch::empty({cams, height, width, 1}, opts);
  torch::Tensor final_t = torch::empty({cams, height, width}, opts);
  torch::Tensor counts = torch::empty({cams, height, width}, torch::kInt32);

  const scalar_t *mean = means2d.data_ptr<scalar_t>(), *conic = conics.data_ptr<scalar_t>();
  const scalar_t *opac = opacities.data_ptr<scalar_t>(), *color = colors.data_ptr<scalar_t>();
  const scalar_t *depth = depths.data_ptr<scalar_t>(), *pfloor = bins.power_floor.data_ptr<scalar_t>();
  const scalar_t* bg = backgrounds.numel() ? backgrounds.data_ptr<scalar_t>() : nullptr;
  const int32_t* box = bins.boxes.data_ptr<int32_t>();
  const int64_t* offsets = bins.tile_offsets.data_ptr<int64_t>();
  const int32_t* isect = bins.isect.data_ptr<int32_t>();
  scalar_t *o_color = out_colors.data_ptr<scalar_t>(), *o_alpha = out_alphas.data_ptr<scalar_t>();
  scalar_t *o_depth = out_depths.data_ptr<scalar_t>(), *o_t = final_t.data_ptr<scalar_t>();
  int32_t* o_count = counts.data_ptr<int32_t>();

  const int tiles_x = (width + kTile - 1) / kTile;
  const int64_t tiles = static_cast<int64_t>(tiles_x) * ((height + kTile - 1) / kTile);
  const scalar_t alpha_min = kAlphaThreshold, alpha_max = kAlphaMax, t_min = kTransmittanceMin;
  const scalar_t depth_eps = kDepthEps;

#pragma omp parallel num_threads(num_threads())
  {
    FlushDenormals ftz;
    std::vector<scalar_t> trans(kTilePixels), acc_w(kTilePixels), acc_z(kTilePixels), acc_c(kTilePixels * dim);
    std::vector<int32_t> count(kTilePixels);
    std::vector<uint8_t> active(kTilePixels);
#pragma omp for schedule(dynamic)
    for (int64_t item = 0; item < cams * tiles; ++item) {
      const TileGeometry tile(item, tiles, tiles_x, width, height, offsets);
      std::fill(trans.begin(), trans.end(), scalar_t(1));
      std::fill(acc_w.begin(), acc_w.end(), scalar_t(0));
      std::fill(acc_z.begin(), acc_z.end(), scalar_t(0));
      std::fill(acc_c.begin(), acc_c.end(), scalar_t(0));
      std::fill(count.begin(), count.end(), 0);
      std::fill(active.begin(), active.end(), uint8_t(1));
      int remaining = (tile.px1 - tile.px0 + 1) * (tile.py1 - tile.py0 + 1);
      for (int64_t j = tile.begin; j < tile.end && remaining > 0; ++j) {
        const int64_t g = tile.cam * n + isect[j];
        const Splat<scalar_t> s(mean, conic, opac, pfloor, depth, box, g, tile.px0, tile.px1, tile.py0, tile.py1);
        const scalar_t* col = color + g * dim;
        for (int y = s.y0; y <= s.y1; ++y) {
          const scalar_t dy = (static_cast<scalar_t>(y) + static_cast<scalar_t>(0.5)) - s.my;
          int xa, xb;
          if (!s.row_span(y, &xa, &xb)) continue;
          for (int x = xa; x <= xb; ++x) {
            const int p = tile.local(x, y);
            if (!active[p]) continue;
            const scalar_t dx = (static_cast<scalar_t>(x) + static_cast<scalar_t>(0.5)) - s.mx;
            const scalar_t power = s.power(dx, dy);
            if (power < s.min_power) continue;
            const scalar_t alpha = std::min(s.opacity * std::exp(std::min(power, scalar_t(0))), alpha_max);
            if (!(alpha >= alpha_min)) continue;
            const scalar_t next_t = trans[p] * (scalar_t(1) - alpha);
            if (!(next_t > t_min)) {
              active[p] = 0;
              --remaining;
              continue;
            }
            const scalar_t w = alpha * trans[p];
            acc_w[p] += w;
            acc_z[p] += w * s.z;
            for (int64_t k = 0; k < dim; ++k) acc_c[p * dim + k] += w * col[k];
            trans[p] = next_t;
            count[p] = static_cast<int32_t>(j - tile.begin + 1);
          }
        }
      }
      for (int y = tile.py0; y <= tile.py1; ++y)
        for (int x = tile.px0; x <= tile.px1; ++x) {
          const int p = tile.local(x, y);
          const int64_t pix = tile.pixel(x, y, width, height);
          for (int64_t k = 0; k < dim; ++k)
            o_color[pix * dim + k] =
                bg ? acc_c[p * dim + k] + (scalar_t(1) - acc_w[p]) * bg[tile.cam * dim + k] : acc_c[p * dim + k];
          o_alpha[pix] = acc_w[p];
          o_depth[pix] = acc_z[p] / std::max(acc_w[p], depth_eps);
          o_t[pix] = trans[p];
          o_count[pix] = count[p];
        }
    }
  }
  return {out_colors, out_alphas, out_depths, final_t, counts, bins.boxes, bins.power_floor, bins.tile_offsets,
          bins.isect};
}

// Gradient slots per intersection: means2d (2), conic (3), opacity, depth, then the D colour channels.
constexpr int kGradMean = 0, kGradConic = 2, kGradOpacity = 5, kGradDepth = 6, kGradColor = 7;

template <typename scalar_t>
std::vector<torch::Tensor> backward_impl(const std::vector<torch::Tensor>& in, int width, int height) {
  const torch::Tensor &means2d = in[0], &conics = in[1], &opacities = in[2], &colors = in[3], &depths = in[4];
  const torch::Tensor &backgrounds = in[5], &out_alphas = in[6], &out_depths = in[7], &final_t = in[8];
  const torch::Tensor &counts = in[9], &boxes = in[10], &power_floor = in[11], &tile_offsets = in[12];
  const torch::Tensor &isect_t = in[13], &v_colors = in[14], &v_alphas = in[15], &v_depths = in[16];
  const int64_t cams = depths.size(0), n = depths.size(1), dim = colors.size(2);
  const int64_t slots = kGradColor + dim, m = isect_t.numel();
  const int tiles_x = (width + kTile - 1) / kTile;
  const int64_t tiles = static_cast<int64_t>(tiles_x) * ((height + kTile - 1) / kTile);
  const auto opts = means2d.options();
  const bool has_bg = backgrounds.numel() > 0;
  // Per-intersection and per-tile partial sums, reduced below in a fixed order: deterministic for any
  // thread count, with no atomics.
  torch::Tensor isect_grads = torch::zeros({m, slots}, opts);
  torch::Tensor tile_bg_grads = torch::zeros({cams * tiles, has_bg ? dim : 0}, opts);

  const scalar_t *mean = means2d.data_ptr<scalar_t>(), *conic = conics.data_ptr<scalar_t>();
  const scalar_t *opac = opacities.data_ptr<scalar_t>(), *color = colors.data_ptr<scalar_t>();
  const scalar_t *depth = depths.data_ptr<scalar_t>(), *pfloor = power_floor.data_ptr<scalar_t>();
  const scalar_t* bg = has_bg ? backgrounds.data_ptr<scalar_t>() : nullptr;
  const scalar_t *alpha_out = out_alphas.data_ptr<scalar_t>(), *depth_out = out_depths.data_ptr<scalar_t>();
  const scalar_t* t_final = final_t.data_ptr<scalar_t>();
  const scalar_t *v_color = v_colors.data_ptr<scalar_t>(), *v_alpha = v_alphas.data_ptr<scalar_t>();
  const scalar_t* v_depth = v_depths.data_ptr<scalar_t>();
  const int32_t *count = counts.data_ptr<int32_t>(), *box = boxes.data_ptr<int32_t>();
  const int64_t* offsets = tile_offsets.data_ptr<int64_t>();
  const int32_t* isect = isect_t.data_ptr<int32_t>();
  scalar_t* grads = isect_grads.data_ptr<scalar_t>();
  scalar_t* bg_grads = tile_bg_grads.data_ptr<scalar_t>();
  const scalar_t alpha_min = kAlphaThreshold, alpha_max = kAlphaMax, depth_eps = kDepthEps;

#pragma omp parallel num_threads(num_threads())
  {
    FlushDenormals ftz;
    // Per pixel: transmittance in front of the current Gaussian, the sum over the Gaussians behind it
    // of g_k w_k / T (the 3DGS backward's running term), the scalar part of dL/dw, dL/d(sum w z), dL/dcolor.
    std::vector<scalar_t> trans(kTilePixels), behind(kTilePixels), v_w(kTilePixels), v_z(kTilePixels);
    std::vector<scalar_t> v_c(kTilePixels * dim), g(slots);
    std::vector<int32_t> last(kTilePixels, 0);
#pragma omp for schedule(dynamic)
    for (int64_t item = 0; item < cams * tiles; ++item) {
      const TileGeometry tile(item, tiles, tiles_x, width, height, offsets);
      std::fill(last.begin(), last.end(), 0);
      int32_t max_last = 0;
      for (int y = tile.py0; y <= tile.py1; ++y)
        for (int x = tile.px0; x <= tile.px1; ++x) {
          const int p = tile.local(x, y);
          const int64_t pix = tile.pixel(x, y, width, height);
          const scalar_t alpha = alpha_out[pix], vd = v_depth[pix];
          scalar_t va = v_alpha[pix];
          for (int64_t k = 0; k < dim; ++k) {
            const scalar_t vc = v_color[pix * dim + k];
            v_c[p * dim + k] = vc;
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
          behind[p] = 0;
          last[p] = count[pix];
          max_last = std::max(max_last, last[p]);
        }
      for (int32_t j = max_last - 1; j >= 0; --j) {
        const int64_t g_idx = tile.cam * n + isect[tile.begin + j];
        const Splat<scalar_t> s(mean, conic, opac, pfloor, depth, box, g_idx, tile.px0, tile.px1, tile.py0, tile.py1);
        const scalar_t* col = color + g_idx * dim;
        std::fill(g.begin(), g.end(), scalar_t(0));
        for (int y = s.y0; y <= s.y1; ++y) {
          const scalar_t dy = (static_cast<scalar_t>(y) + static_cast<scalar_t>(0.5)) - s.my;
          int xa, xb;
          if (!s.row_span(y, &xa, &xb)) continue;
          for (int x = xa; x <= xb; ++x) {
            const int p = tile.local(x, y);
            if (j >= last[p]) continue;
            const scalar_t dx = (static_cast<scalar_t>(x) + static_cast<scalar_t>(0.5)) - s.mx;
            const scalar_t power = s.power(dx, dy);
            if (power < s.min_power) continue;
            const scalar_t gauss = std::exp(std::min(power, scalar_t(0)));
            const scalar_t raw = s.opacity * gauss;
            const scalar_t alpha = std::min(raw, alpha_max);
            if (!(alpha >= alpha_min)) continue;
            const scalar_t one_minus = scalar_t(1) - alpha;
            const scalar_t t = trans[p] / one_minus;
            trans[p] = t;
            const scalar_t w = alpha * t;
            scalar_t v_weight = v_w[p] + v_z[p] * s.z;
            for (int64_t k = 0; k < dim; ++k) {
              v_weight += v_c[p * dim + k] * col[k];
              g[kGradColor + k] += w * v_c[p * dim + k];
            }
            g[kGradDepth] += w * v_z[p];
            const scalar_t v_alpha_i = t * (v_weight - behind[p]);
            behind[p] = alpha * v_weight + one_minus * behind[p];
            if (!(raw <= alpha_max)) continue;  // clamped at ALPHA_MAX: no gradient to the Gaussian
            g[kGradOpacity] += v_alpha_i * gauss;
            if (!(power <= 0)) continue;
            const scalar_t v_power = v_alpha_i * raw;
            g[kGradMean] += v_power * (s.a * dx + s.b * dy);
            g[kGradMean + 1] += v_power * (s.b * dx + s.c * dy);
            g[kGradConic] += static_cast<scalar_t>(-0.5) * v_power * dx * dx;
            g[kGradConic + 1] -= v_power * dx * dy;
            g[kGradConic + 2] += static_cast<scalar_t>(-0.5) * v_power * dy * dy;
          }
        }
        std::copy(g.begin(), g.end(), grads + (tile.begin + j) * slots);
      }
    }
  }

  torch::Tensor v_means2d = torch::zeros({cams, n, 2}, opts), v_conics = torch::zeros({cams, n, 3}, opts);
  torch::Tensor v_opacities = torch::zeros({cams, n}, opts), v_gdepths = torch::zeros({cams, n}, opts);
  torch::Tensor v_gcolors = torch::zeros({cams, n, dim}, opts), v_bg = torch::zeros({cams, dim}, opts);
  scalar_t *o_mean = v_means2d.data_ptr<scalar_t>(), *o_conic = v_conics.data_ptr<scalar_t>();
  scalar_t *o_opac = v_opacities.data_ptr<scalar_t>(), *o_depth = v_gdepths.data_ptr<scalar_t>();
  scalar_t *o_color = v_gcolors.data_ptr<scalar_t>(), *o_bg = v_bg.data_ptr<scalar_t>();
#pragma omp parallel for schedule(dynamic) num_threads(num_threads())
  for (int64_t cam = 0; cam < cams; ++cam) {
    for (int64_t j = offsets[cam * tiles]; j < offsets[(cam + 1) * tiles]; ++j) {
      const int64_t gi = cam * n + isect[j];
      const scalar_t* src = grads + j * slots;
      o_mean[2 * gi] += src[kGradMean], o_mean[2 * gi + 1] += src[kGradMean + 1];
      for (int k = 0; k < 3; ++k) o_conic[3 * gi + k] += src[kGradConic + k];
      o_opac[gi] += src[kGradOpacity];
      o_depth[gi] += src[kGradDepth];
      for (int64_t k = 0; k < dim; ++k) o_color[gi * dim + k] += src[kGradColor + k];
    }
    if (has_bg)
      for (int64_t t = 0; t < tiles; ++t)
        for (int64_t k = 0; k < dim; ++k) o_bg[cam * dim + k] += bg_grads[(cam * tiles + t) * dim + k];
  }
  return {v_means2d, v_conics, v_opacities, v_gcolors, v_gdepths, v_bg};
}

std::vector<torch::Tensor> rasterize_forward(const torch::Tensor& means2d, const torch::Tensor& conics,
                                             const torch::Tensor& opacities, const torch::Tensor& colors,
                                             const torch::Tensor& depths, const torch::Tensor& radii,
                                             const torch::Tensor& backgrounds, int64_t width, int64_t height) {
  std::vector<torch::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_forward", [&] {
    out = forward_impl<scalar_t>(means2d, conics, opacities, colors, depths, radii, backgrounds,
                                 static_cast<int>(width), static_cast<int>(height));
  });
  return out;
}

std::vector<torch::Tensor> rasterize_backward(const std::vector<torch::Tensor>& tensors, int64_t width,
                                              int64_t height) {
  std::vector<torch::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(tensors[0].scalar_type(), "rasterize_backward", [&] {
    out = backward_impl<scalar_t>(tensors, static_cast<int>(width), static_cast<int>(height));
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
