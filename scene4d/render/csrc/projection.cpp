// EWA projection of 3D Gaussians (scene4d/render/projection.py, gsplat's "classic" mode) and its backward pass.
//
// The forward reproduces project_gaussians() expression by expression. The backward is the derivative of that
// function as PyTorch's autograd takes it, culled pairs included: there the arithmetic runs on with z or the
// determinant replaced by 1, and gradients flow through it. Gradients reach means, quats (through both of their
// normalisations: F.normalize, then kornia's), scales, and optionally the cameras (viewmats and the fx, fy,
// cx, cy entries of Ks), whose sums are reduced block by block (for_each_block).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "projection.h"
#include "rasterize_cpu.h"

namespace scene4d_raster {
namespace {

constexpr double kNormEps = 1e-12;  // F.normalize's and kornia's floor on the quaternion norm
// Per-camera gradient slots: rotation (9, row-major), translation (3), fx, fy, cx, cy.
constexpr int kCamSlots = 16, kSlotT = 9, kSlotK = 12;

template <typename T>
struct Mat3 {
  T m[3][3];
};

template <typename T>
Mat3<T> matmul(const Mat3<T>& a, const Mat3<T>& b) {
  Mat3<T> out;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) out.m[i][j] = a.m[i][0] * b.m[0][j] + a.m[i][1] * b.m[1][j] + a.m[i][2] * b.m[2][j];
  return out;
}

// a b^T
template <typename T>
Mat3<T> matmul_bt(const Mat3<T>& a, const Mat3<T>& b) {
  Mat3<T> out;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) out.m[i][j] = a.m[i][0] * b.m[j][0] + a.m[i][1] * b.m[j][1] + a.m[i][2] * b.m[j][2];
  return out;
}

// a^T b
template <typename T>
Mat3<T> matmul_at(const Mat3<T>& a, const Mat3<T>& b) {
  Mat3<T> out;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) out.m[i][j] = a.m[0][i] * b.m[0][j] + a.m[1][i] * b.m[1][j] + a.m[2][i] * b.m[2][j];
  return out;
}

// x / max(|x|, eps) and its backward.
template <typename T>
void normalize(const T* x, T* out) {
  const T norm = std::sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2] + x[3] * x[3]);
  const T denom = norm >= T(kNormEps) ? norm : T(kNormEps);
  for (int i = 0; i < 4; ++i) out[i] = x[i] / denom;
}

template <typename T>
void normalize_backward(const T* x, const T* v, T* v_x) {
  const T norm = std::sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2] + x[3] * x[3]);
  if (!(norm >= T(kNormEps))) {
    for (int i = 0; i < 4; ++i) v_x[i] = v[i] / T(kNormEps);
    return;
  }
  T dot = 0;
  for (int i = 0; i < 4; ++i) dot += x[i] / norm * v[i];
  for (int i = 0; i < 4; ++i) v_x[i] = (v[i] - x[i] / norm * dot) / norm;
}

// One Gaussian's world covariance S = M M^T with M = R diag(s), R from the twice-normalised quaternion.
template <typename T>
struct Shape {
  T once[4], unit[4];  // q / |q|, then that normalised again
  Mat3<T> R, M, S;

  Shape(const T* q, const T* s) {
    normalize(q, once);
    normalize(once, unit);
    const T w = unit[0], tx = 2 * unit[1], ty = 2 * unit[2], tz = 2 * unit[3];
    const T twx = tx * w, twy = ty * w, twz = tz * w, txx = tx * unit[1], txy = ty * unit[1], txz = tz * unit[1];
    const T tyy = ty * unit[2], tyz = tz * unit[2], tzz = tz * unit[3];
    R = {{{1 - (tyy + tzz), txy - twz, txz + twy},
          {txy + twz, 1 - (txx + tzz), tyz - twx},
          {txz - twy, tyz + twx, 1 - (txx + tyy)}}};
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) M.m[i][j] = R.m[i][j] * s[j];
    S = matmul_bt(M, M);
  }
};

template <typename T>
struct Camera {
  Mat3<T> W;  // world-to-camera rotation
  T t[3], fx, fy, cx, cy, lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg;

  Camera(const T* viewmat, const T* K, int width, int height) {
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) W.m[i][j] = viewmat[i * 4 + j];
      t[i] = viewmat[i * 4 + 3];
    }
    fx = K[0], fy = K[4], cx = K[2], cy = K[5];
    const T tan_fov_x = T(0.5) * width / fx, tan_fov_y = T(0.5) * height / fy;
    lim_x_pos = (width - cx) / fx + T(0.3) * tan_fov_x;
    lim_x_neg = cx / fx + T(0.3) * tan_fov_x;
    lim_y_pos = (height - cy) / fy + T(0.3) * tan_fov_y;
    lim_y_neg = cy / fy + T(0.3) * tan_fov_y;
  }
};

// min(max(ratio, -lim_neg), lim_pos); side is -1 or 1 where a limit was taken, else 0.
template <typename T>
T clamp_ratio(T ratio, T lim_neg, T lim_pos, int* side) {
  *side = ratio < -lim_neg ? -1 : 0;
  const T low = std::max(ratio, -lim_neg);
  if (low > lim_pos) *side = 1;
  return std::min(low, lim_pos);
}

// Everything projection.py computes for one (camera, Gaussian) pair.
template <typename T>
struct Pair {
  T xyz[3], zs, ux, uy, a, b, c, det;
  int side_x, side_y;
  bool in_depth, valid;
  T J[2][3];
  Mat3<T> C;  // camera-space covariance

  Pair(const Camera<T>& cam, const T* p, const Mat3<T>& S, T near_plane, T far_plane, T eps2d) {
    for (int i = 0; i < 3; ++i)
      xyz[i] = cam.W.m[i][0] * p[0] + cam.W.m[i][1] * p[1] + cam.W.m[i][2] * p[2] + cam.t[i];
    const T z = xyz[2];
    in_depth = z > near_plane && z < far_plane;
    zs = in_depth ? z : T(1);
    ux = clamp_ratio(xyz[0] / zs, cam.lim_x_neg, cam.lim_x_pos, &side_x);
    uy = clamp_ratio(xyz[1] / zs, cam.lim_y_neg, cam.lim_y_pos, &side_y);
    const T tx = zs * ux, ty = zs * uy;
    J[0][0] = cam.fx / zs, J[0][1] = 0, J[0][2] = -cam.fx * tx / (zs * zs);
    J[1][0] = 0, J[1][1] = cam.fy / zs, J[1][2] = -cam.fy * ty / (zs * zs);
    C = matmul_bt(matmul(cam.W, S), cam.W);
    T JC[2][3];
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) JC[i][j] = J[i][0] * C.m[0][j] + J[i][1] * C.m[1][j] + J[i][2] * C.m[2][j];
    a = JC[0][0] * J[0][0] + JC[0][1] * J[0][1] + JC[0][2] * J[0][2] + eps2d;
    b = JC[0][0] * J[1][0] + JC[0][1] * J[1][1] + JC[0][2] * J[1][2];
    c = JC[1][0] * J[1][0] + JC[1][1] * J[1][1] + JC[1][2] * J[1][2] + eps2d;
    det = a * c - b * b;
    valid = in_depth && det > 0;
  }
};

// Gradients of one pair's outputs: vm (means2d, 2), vc (conic, 3), vd (depth). Adds to v_S (world covariance)
// and, when cam_grad is given, to the camera's slots; returns the gradient to the mean in v_p.
template <typename T>
void pair_backward(const Camera<T>& cam, const T* p, const Shape<T>& shape, T near_plane, T far_plane, T eps2d,
                   const T* vm, const T* vc, T vd, T* v_p, Mat3<T>& v_S, T* cam_grad) {
  T v_xyz[3] = {0, 0, vd};
  // A pair the rasterizer did not draw gets no gradient but its depth's: skip the rest, exactly.
  const bool flat = vm[0] == 0 && vm[1] == 0 && vc[0] == 0 && vc[1] == 0 && vc[2] == 0;
  Mat3<T> v_C{};
  if (!flat) {
    const Pair<T> pr(cam, p, shape.S, near_plane, far_plane, eps2d);
    // Gradient to the symmetric 2D covariance [[a, b], [b, c]], b's split over its two entries.
    T Va, Vb, Vc;
    if (pr.valid) {
      // conic = A^-1: v_A = -A^-1 G A^-1 with G = [[g0, g1 / 2], [g1 / 2, g2]].
      const T i0 = pr.c / pr.det, i1 = -pr.b / pr.det, i2 = pr.a / pr.det;
      const T g0 = vc[0], g1 = T(0.5) * vc[1], g2 = vc[2];
      const T IG00 = i0 * g0 + i1 * g1, IG01 = i0 * g1 + i1 * g2, IG10 = i1 * g0 + i2 * g1, IG11 = i1 * g1 + i2 * g2;
      Va = -(IG00 * i0 + IG01 * i1), Vb = -(IG00 * i1 + IG01 * i2), Vc = -(IG10 * i1 + IG11 * i2);
    } else {  // conic = (c, -b, a)
      Va = vc[2], Vb = T(-0.5) * vc[1], Vc = vc[0];
    }
    const T V[2][2] = {{Va, Vb}, {Vb, Vc}};
    // cov2d = J C J^T: v_C = J^T V J, v_J = 2 V J C.
    T VJ[2][3];
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) VJ[i][j] = V[i][0] * pr.J[0][j] + V[i][1] * pr.J[1][j];
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) v_C.m[i][j] = pr.J[0][i] * VJ[0][j] + pr.J[1][i] * VJ[1][j];
    T v_J[2][3];
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j)
        v_J[i][j] = 2 * (VJ[i][0] * pr.C.m[0][j] + VJ[i][1] * pr.C.m[1][j] + VJ[i][2] * pr.C.m[2][j]);
    const Mat3<T> v_S_pair = matmul(matmul_at(cam.W, v_C), cam.W);  // C = W S W^T
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) v_S.m[i][j] += v_S_pair.m[i][j];

    const T zs = pr.zs, zs2 = zs * zs, zs3 = zs2 * zs, x = pr.xyz[0], y = pr.xyz[1];
    const T tx = zs * pr.ux, ty = zs * pr.uy;
    T v_fx = v_J[0][0] / zs - tx / zs2 * v_J[0][2], v_fy = v_J[1][1] / zs - ty / zs2 * v_J[1][2];
    T v_cx = vm[0], v_cy = vm[1];
    T v_zs = -cam.fx / zs2 * v_J[0][0] + 2 * cam.fx * tx / zs3 * v_J[0][2] - cam.fy / zs2 * v_J[1][1] +
             2 * cam.fy * ty / zs3 * v_J[1][2];
    // t = zs * clamp(r / zs). A limit taken passes the gradient on to the intrinsics it is made of:
    // lim_pos = (size - c) / f + 0.15 size / f and lim_neg = c / f + 0.15 size / f.
    const auto ratio_backward = [&](T v_t, T u, T r, int side, T f, T lim_pos, T lim_neg, T& v_r, T& v_f, T& v_c) {
      v_zs += u * v_t;
      const T v_u = zs * v_t;
      if (side == 0) {
        v_r += v_u / zs;
        v_zs -= r / zs2 * v_u;
      } else if (side > 0) {  // u = lim_pos
        v_c -= v_u / f;
        v_f -= v_u * lim_pos / f;
      } else {  // u = -lim_neg
        v_c -= v_u / f;
        v_f += v_u * lim_neg / f;
      }
    };
    ratio_backward(-cam.fx / zs2 * v_J[0][2], pr.ux, x, pr.side_x, cam.fx, cam.lim_x_pos, cam.lim_x_neg, v_xyz[0],
                   v_fx, v_cx);
    ratio_backward(-cam.fy / zs2 * v_J[1][2], pr.uy, y, pr.side_y, cam.fy, cam.lim_y_pos, cam.lim_y_neg, v_xyz[1],
                   v_fy, v_cy);
    // means2d = (fx x / zs + cx, fy y / zs + cy).
    v_fx += vm[0] * x / zs, v_fy += vm[1] * y / zs;
    v_xyz[0] += cam.fx / zs * vm[0];
    v_xyz[1] += cam.fy / zs * vm[1];
    v_zs -= cam.fx * x / zs2 * vm[0] + cam.fy * y / zs2 * vm[1];
    if (pr.in_depth) v_xyz[2] += v_zs;
    if (cam_grad) {
      const T v_K[4] = {v_fx, v_fy, v_cx, v_cy};
      for (int i = 0; i < 4; ++i) cam_grad[kSlotK + i] += v_K[i];
    }
  }
  for (int j = 0; j < 3; ++j)
    v_p[j] = cam.W.m[0][j] * v_xyz[0] + cam.W.m[1][j] * v_xyz[1] + cam.W.m[2][j] * v_xyz[2];
  if (!cam_grad) return;
  // xyz = W p + t; C = W S W^T with v_C symmetric: v_W = v_xyz p^T + 2 v_C W S.
  const Mat3<T> v_W = flat ? Mat3<T>{} : matmul(v_C, matmul(cam.W, shape.S));
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) cam_grad[3 * i + j] += v_xyz[i] * p[j] + 2 * v_W.m[i][j];
    cam_grad[kSlotT + i] += v_xyz[i];
  }
}

// Gradients to the quaternion and scales from the world covariance's, v_S symmetric.
template <typename T>
void shape_backward(const Shape<T>& shape, const T* q, const T* s, const Mat3<T>& v_S, T* v_q, T* v_s) {
  const Mat3<T> v_M = matmul(v_S, shape.M);  // S = M M^T: v_M = (v_S + v_S^T) M, halved here, doubled below
  Mat3<T> v_R;
  for (int j = 0; j < 3; ++j) {
    v_s[j] = 2 * (v_M.m[0][j] * shape.R.m[0][j] + v_M.m[1][j] * shape.R.m[1][j] + v_M.m[2][j] * shape.R.m[2][j]);
    for (int i = 0; i < 3; ++i) v_R.m[i][j] = 2 * v_M.m[i][j] * s[j];
  }
  const T w = shape.unit[0], x = shape.unit[1], y = shape.unit[2], z = shape.unit[3];
  const auto& g = v_R.m;
  const T v_unit[4] = {
      2 * (-z * g[0][1] + y * g[0][2] + z * g[1][0] - x * g[1][2] - y * g[2][0] + x * g[2][1]),
      2 * (y * g[0][1] + z * g[0][2] + y * g[1][0] - 2 * x * g[1][1] - w * g[1][2] + z * g[2][0] + w * g[2][1] -
           2 * x * g[2][2]),
      2 * (-2 * y * g[0][0] + x * g[0][1] + w * g[0][2] + x * g[1][0] + z * g[1][2] - w * g[2][0] + z * g[2][1] -
           2 * y * g[2][2]),
      2 * (-2 * z * g[0][0] - w * g[0][1] + x * g[0][2] + w * g[1][0] - 2 * z * g[1][1] + y * g[1][2] +
           x * g[2][0] + y * g[2][1])};
  T v_once[4];
  normalize_backward(shape.once, v_unit, v_once);
  normalize_backward(q, v_once, v_q);
}

template <typename T>
std::vector<Camera<T>> cameras(const at::Tensor& viewmats, const at::Tensor& Ks, int width, int height) {
  std::vector<Camera<T>> out;
  for (int64_t c = 0; c < viewmats.size(0); ++c)
    out.emplace_back(viewmats.data_ptr<T>() + 16 * c, Ks.data_ptr<T>() + 9 * c, width, height);
  return out;
}

}  // namespace

template <typename T>
std::vector<at::Tensor> project_forward_impl(const at::Tensor& means, const at::Tensor& quats,
                                             const at::Tensor& scales, const at::Tensor& opacities,
                                             const at::Tensor& viewmats, const at::Tensor& Ks, int width,
                                             int height, double near_plane, double far_plane, double eps2d) {
  const int64_t cams = viewmats.size(0), n = means.size(0);
  const auto options = means.options();
  at::Tensor means2d = at::empty({cams, n, 2}, options);
  at::Tensor conics = at::empty({cams, n, 3}, options);
  at::Tensor depths = at::empty({cams, n}, options);
  at::Tensor radii = at::empty({cams, n, 2}, options.dtype(at::kInt));
  const T *mean_p = means.data_ptr<T>(), *quat_p = quats.data_ptr<T>(), *scale_p = scales.data_ptr<T>();
  const T* opacity_p = opacities.data_ptr<T>();
  T *m2d_p = means2d.data_ptr<T>(), *conic_p = conics.data_ptr<T>(), *depth_p = depths.data_ptr<T>();
  int32_t* radii_p = radii.data_ptr<int32_t>();
  const std::vector<Camera<T>> cams_v = cameras<T>(viewmats, Ks, width, height);
  const T threshold = static_cast<T>(kAlphaThreshold);
  for_each_block(n, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      const Shape<T> shape(quat_p + 4 * g, scale_p + 3 * g);
      const T o = opacity_p[g];
      // Footprint: the ellipse where alpha >= ALPHA_THRESHOLD.
      const T extent = std::sqrt(T(2) * std::log(std::max(o / threshold, T(1))));
      for (int64_t c = 0; c < cams; ++c) {
        const Camera<T>& cam = cams_v[c];
        const Pair<T> pr(cam, mean_p + 3 * g, shape.S, T(near_plane), T(far_plane), T(eps2d));
        const int64_t i = c * n + g;
        depth_p[i] = pr.xyz[2];
        const T mx = cam.fx * pr.xyz[0] / pr.zs + cam.cx, my = cam.fy * pr.xyz[1] / pr.zs + cam.cy;
        m2d_p[2 * i] = mx, m2d_p[2 * i + 1] = my;
        const T det_safe = pr.valid ? pr.det : T(1);
        conic_p[3 * i] = pr.c / det_safe, conic_p[3 * i + 1] = -pr.b / det_safe, conic_p[3 * i + 2] = pr.a / det_safe;
        const T rx = std::ceil(extent * std::sqrt(std::max(pr.a, T(0))));
        const T ry = std::ceil(extent * std::sqrt(std::max(pr.c, T(0))));
        const bool on_screen = mx + rx > 0 && mx - rx < width && my + ry > 0 && my - ry < height;
        const bool keep = pr.valid && o >= threshold && rx > 0 && ry > 0 && on_screen;
        radii_p[2 * i] = keep ? static_cast<int32_t>(rx) : 0;
        radii_p[2 * i + 1] = keep ? static_cast<int32_t>(ry) : 0;
      }
    }
  });
  return {means2d, conics, depths, radii};
}

template <typename T>
std::vector<at::Tensor> project_backward_impl(const std::vector<at::Tensor>& in, int width, int height,
                                              double near_plane, double far_plane, double eps2d,
                                              bool camera_grads) {
  const at::Tensor &means = in[0], &quats = in[1], &scales = in[2], &viewmats = in[3], &Ks = in[4];
  const at::Tensor &v_means2d = in[5], &v_conics = in[6], &v_depths = in[7];
  const int64_t cams = viewmats.size(0), n = means.size(0), blocks = (n + kGaussianBlock - 1) / kGaussianBlock;
  const auto options = means.options();
  at::Tensor v_means = at::empty({n, 3}, options), v_quats = at::empty({n, 4}, options);
  at::Tensor v_scales = at::empty({n, 3}, options);
  std::vector<T> block_cam_grads(camera_grads ? blocks * cams * kCamSlots : 0, T(0));
  const T *mean_p = means.data_ptr<T>(), *quat_p = quats.data_ptr<T>(), *scale_p = scales.data_ptr<T>();
  const T *vm_p = v_means2d.data_ptr<T>(), *vc_p = v_conics.data_ptr<T>(), *vd_p = v_depths.data_ptr<T>();
  T *out_mean = v_means.data_ptr<T>(), *out_quat = v_quats.data_ptr<T>(), *out_scale = v_scales.data_ptr<T>();
  const std::vector<Camera<T>> cams_v = cameras<T>(viewmats, Ks, width, height);
  for_each_block(n, [&](int64_t block, int64_t begin, int64_t end) {
    T* cam_grads = camera_grads ? block_cam_grads.data() + block * cams * kCamSlots : nullptr;
    for (int64_t g = begin; g < end; ++g) {
      const T *p = mean_p + 3 * g, *q = quat_p + 4 * g, *s = scale_p + 3 * g;
      const Shape<T> shape(q, s);
      Mat3<T> v_S{};
      T v_p[3] = {0, 0, 0};
      for (int64_t c = 0; c < cams; ++c) {
        const int64_t i = c * n + g;
        T v_p_cam[3];
        pair_backward(cams_v[c], p, shape, T(near_plane), T(far_plane), T(eps2d), vm_p + 2 * i, vc_p + 3 * i,
                      vd_p[i], v_p_cam, v_S, cam_grads ? cam_grads + c * kCamSlots : nullptr);
        for (int j = 0; j < 3; ++j) v_p[j] += v_p_cam[j];
      }
      std::copy(v_p, v_p + 3, out_mean + 3 * g);
      shape_backward(shape, q, s, v_S, out_quat + 4 * g, out_scale + 3 * g);
    }
  });
  if (!camera_grads) return {v_means, v_quats, v_scales};
  at::Tensor v_viewmats = at::zeros({cams, 4, 4}, options), v_Ks = at::zeros({cams, 3, 3}, options);
  T *out_view = v_viewmats.data_ptr<T>(), *out_K = v_Ks.data_ptr<T>();
  for (int64_t block = 0; block < blocks; ++block)
    for (int64_t c = 0; c < cams; ++c) {
      const T* src = block_cam_grads.data() + (block * cams + c) * kCamSlots;
      for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) out_view[16 * c + 4 * i + j] += src[3 * i + j];
        out_view[16 * c + 4 * i + 3] += src[kSlotT + i];
      }
      out_K[9 * c] += src[kSlotK], out_K[9 * c + 4] += src[kSlotK + 1];
      out_K[9 * c + 2] += src[kSlotK + 2], out_K[9 * c + 5] += src[kSlotK + 3];
    }
  return {v_means, v_quats, v_scales, v_viewmats, v_Ks};
}

template std::vector<at::Tensor> project_forward_impl<float>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                             const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                             int, int, double, double, double);
template std::vector<at::Tensor> project_forward_impl<double>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                              const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                              int, int, double, double, double);
template std::vector<at::Tensor> project_backward_impl<float>(const std::vector<at::Tensor>&, int, int, double,
                                                              double, double, bool);
template std::vector<at::Tensor> project_backward_impl<double>(const std::vector<at::Tensor>&, int, int, double,
                                                               double, double, bool);

}  // namespace scene4d_raster
