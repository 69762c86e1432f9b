// View-dependent colours from real SH coefficients, max(SH(dir) + 0.5, 0) as render() applies them with
// scene4d/render/sh.py's bases, and the backward pass to the coefficients, the means and the camera centres
// (whose sums are reduced block by block, see for_each_block).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "rasterize_cpu.h"
#include "sh.h"

namespace scene4d_raster {
namespace {

constexpr double kC0 = 0.28209479177387814, kC1 = 0.4886025119029199;
constexpr double kC2[5] = {1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
                           0.5462742152960396};
constexpr double kC3[7] = {-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
                           -0.4570457994644658, 1.445305721320277, -0.5900435899266435};
constexpr double kNormEps = 1e-12;  // F.normalize's floor on the direction's norm
constexpr int kMaxBases = 16;

// The unit direction from a camera centre to a Gaussian, as F.normalize computes it; returns the distance.
template <typename T>
T direction(const T* mean, const T* centre, T* dir) {
  T d[3];
  for (int i = 0; i < 3; ++i) d[i] = mean[i] - centre[i];
  const T norm = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
  const T denom = norm >= T(kNormEps) ? norm : T(kNormEps);
  for (int i = 0; i < 3; ++i) dir[i] = d[i] / denom;
  return norm;
}

// sh_bases() of sh.py at the unit direction (x, y, z).
template <typename T>
void bases(int degree, const T* dir, T* out) {
  const T x = dir[0], y = dir[1], z = dir[2];
  out[0] = T(kC0);
  if (degree < 1) return;
  out[1] = T(-kC1) * y, out[2] = T(kC1) * z, out[3] = T(-kC1) * x;
  if (degree < 2) return;
  const T xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
  out[4] = T(kC2[0]) * xy, out[5] = T(kC2[1]) * yz, out[6] = T(kC2[2]) * (T(2) * zz - xx - yy);
  out[7] = T(kC2[3]) * xz, out[8] = T(kC2[4]) * (xx - yy);
  if (degree < 3) return;
  out[9] = T(kC3[0]) * y * (T(3) * xx - yy);
  out[10] = T(kC3[1]) * xy * z;
  out[11] = T(kC3[2]) * y * (T(4) * zz - xx - yy);
  out[12] = T(kC3[3]) * z * (T(2) * zz - T(3) * xx - T(3) * yy);
  out[13] = T(kC3[4]) * x * (T(4) * zz - xx - yy);
  out[14] = T(kC3[5]) * z * (xx - yy);
  out[15] = T(kC3[6]) * x * (xx - T(3) * yy);
}

// Gradient to the unit direction from the bases' gradients v_b.
template <typename T>
void bases_backward(int degree, const T* dir, const T* v_b, T* v_dir) {
  const T x = dir[0], y = dir[1], z = dir[2];
  v_dir[0] = v_dir[1] = v_dir[2] = 0;
  if (degree < 1) return;
  v_dir[0] += T(-kC1) * v_b[3], v_dir[1] += T(-kC1) * v_b[1], v_dir[2] += T(kC1) * v_b[2];
  if (degree < 2) return;
  const T c2[5] = {T(kC2[0]), T(kC2[1]), T(kC2[2]), T(kC2[3]), T(kC2[4])};
  v_dir[0] += c2[0] * y * v_b[4] - 2 * c2[2] * x * v_b[6] + c2[3] * z * v_b[7] + 2 * c2[4] * x * v_b[8];
  v_dir[1] += c2[0] * x * v_b[4] + c2[1] * z * v_b[5] - 2 * c2[2] * y * v_b[6] - 2 * c2[4] * y * v_b[8];
  v_dir[2] += c2[1] * y * v_b[5] + 4 * c2[2] * z * v_b[6] + c2[3] * x * v_b[7];
  if (degree < 3) return;
  const T c3[7] = {T(kC3[0]), T(kC3[1]), T(kC3[2]), T(kC3[3]), T(kC3[4]), T(kC3[5]), T(kC3[6])};
  const T xx = x * x, yy = y * y, zz = z * z;
  v_dir[0] += 6 * c3[0] * x * y * v_b[9] + c3[1] * y * z * v_b[10] - 2 * c3[2] * x * y * v_b[11] -
              6 * c3[3] * x * z * v_b[12] + c3[4] * (4 * zz - 3 * xx - yy) * v_b[13] + 2 * c3[5] * x * z * v_b[14] +
              3 * c3[6] * (xx - yy) * v_b[15];
  v_dir[1] += 3 * c3[0] * (xx - yy) * v_b[9] + c3[1] * x * z * v_b[10] + c3[2] * (4 * zz - xx - 3 * yy) * v_b[11] -
              6 * c3[3] * y * z * v_b[12] - 2 * c3[4] * x * y * v_b[13] - 2 * c3[5] * y * z * v_b[14] -
              6 * c3[6] * x * y * v_b[15];
  v_dir[2] += c3[1] * x * y * v_b[10] + 8 * c3[2] * y * z * v_b[11] + 3 * c3[3] * (2 * zz - xx - yy) * v_b[12] +
              8 * c3[4] * x * z * v_b[13] + c3[5] * (xx - yy) * v_b[14];
}

}  // namespace

// Colour before the clamp, sum_j b_j coeff_j + 0.5, of the first nb bases.
template <typename T>
void shade(const T* b, const T* coeff, int64_t nb, T* pre) {
  T sum[3] = {0, 0, 0};
  for (int64_t j = 0; j < nb; ++j)
    for (int ch = 0; ch < 3; ++ch) sum[ch] += b[j] * coeff[3 * j + ch];
  for (int ch = 0; ch < 3; ++ch) pre[ch] = sum[ch] + T(0.5);
}

template <typename T>
at::Tensor sh_forward_impl(const at::Tensor& coeffs, const at::Tensor& means, const at::Tensor& centres,
                           int degree) {
  const int64_t n = means.size(0), cams = centres.size(0), k = coeffs.size(1), nb = (degree + 1) * (degree + 1);
  at::Tensor colors = at::empty({cams, n, 3}, means.options());
  const T *coeff_p = coeffs.data_ptr<T>(), *mean_p = means.data_ptr<T>(), *centre_p = centres.data_ptr<T>();
  T* out = colors.data_ptr<T>();
  for_each_block(n, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      for (int64_t c = 0; c < cams; ++c) {
        T dir[3], b[kMaxBases] = {T(kC0)}, pre[3];
        if (degree > 0) {
          direction(mean_p + 3 * g, centre_p + 3 * c, dir);
          bases(degree, dir, b);
        }
        shade(b, coeff_p + g * k * 3, nb, pre);
        for (int ch = 0; ch < 3; ++ch) out[(c * n + g) * 3 + ch] = std::max(pre[ch], T(0));
      }
    }
  });
  return colors;
}

template <typename T>
std::vector<at::Tensor> sh_backward_impl(const at::Tensor& coeffs, const at::Tensor& means, const at::Tensor& centres,
                                         const at::Tensor& v_colors, int degree) {
  const int64_t n = means.size(0), cams = centres.size(0), k = coeffs.size(1), nb = (degree + 1) * (degree + 1);
  const int64_t blocks = (n + kGaussianBlock - 1) / kGaussianBlock;
  at::Tensor v_coeffs = at::zeros({n, k, 3}, means.options()), v_means = at::zeros({n, 3}, means.options());
  std::vector<T> block_centre_grads(blocks * cams * 3, T(0));
  const T *coeff_p = coeffs.data_ptr<T>(), *mean_p = means.data_ptr<T>(), *centre_p = centres.data_ptr<T>();
  const T* v_color_p = v_colors.data_ptr<T>();
  T *out_coeff = v_coeffs.data_ptr<T>(), *out_mean = v_means.data_ptr<T>();
  for_each_block(n, [&](int64_t block, int64_t begin, int64_t end) {
    T* centre_grads = block_centre_grads.data() + block * cams * 3;
    for (int64_t g = begin; g < end; ++g) {
      const T* coeff = coeff_p + g * k * 3;
      T* v_coeff = out_coeff + g * k * 3;
      for (int64_t c = 0; c < cams; ++c) {
        T dir[3], b[kMaxBases] = {T(kC0)}, pre[3], v_pre[3];
        T norm = 0;
        if (degree > 0) {
          norm = direction(mean_p + 3 * g, centre_p + 3 * c, dir);
          bases(degree, dir, b);
        }
        shade(b, coeff, nb, pre);
        const T* v_color = v_color_p + (c * n + g) * 3;
        for (int ch = 0; ch < 3; ++ch) v_pre[ch] = pre[ch] > T(0) ? v_color[ch] : T(0);  // as clamp_min's
        T v_b[kMaxBases];
        for (int64_t j = 0; j < nb; ++j) {
          for (int ch = 0; ch < 3; ++ch) v_coeff[3 * j + ch] += b[j] * v_pre[ch];
          v_b[j] = coeff[3 * j] * v_pre[0] + coeff[3 * j + 1] * v_pre[1] + coeff[3 * j + 2] * v_pre[2];
        }
        if (degree == 0) continue;
        T v_dir[3];
        bases_backward(degree, dir, v_b, v_dir);
        // dir = d / max(|d|, eps): v_d = (v_dir - dir (dir . v_dir)) / |d|, or v_dir / eps below the floor.
        const T dot = dir[0] * v_dir[0] + dir[1] * v_dir[1] + dir[2] * v_dir[2];
        for (int i = 0; i < 3; ++i) {
          const T v_d = norm >= T(kNormEps) ? (v_dir[i] - dir[i] * dot) / norm : v_dir[i] / T(kNormEps);
          out_mean[3 * g + i] += v_d;
          centre_grads[3 * c + i] -= v_d;
        }
      }
    }
  });
  at::Tensor v_centres = at::zeros({cams, 3}, means.options());
  T* out_centre = v_centres.data_ptr<T>();
  for (int64_t block = 0; block < blocks; ++block)
    for (int64_t i = 0; i < cams * 3; ++i) out_centre[i] += block_centre_grads[block * cams * 3 + i];
  return {v_coeffs, v_means, v_centres};
}

template at::Tensor sh_forward_impl<float>(const at::Tensor&, const at::Tensor&, const at::Tensor&, int);
template at::Tensor sh_forward_impl<double>(const at::Tensor&, const at::Tensor&, const at::Tensor&, int);
template std::vector<at::Tensor> sh_backward_impl<float>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                         const at::Tensor&, int);
template std::vector<at::Tensor> sh_backward_impl<double>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                          const at::Tensor&, int);

}  // namespace scene4d_raster
