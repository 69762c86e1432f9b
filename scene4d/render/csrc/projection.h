// EWA projection of 3D Gaussians (projection.cpp), declared for the bindings.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace scene4d_raster {

// Returns means2d (C, N, 2), conics (C, N, 3), depths (C, N) and radii (C, N, 2) int32.
template <typename T>
std::vector<at::Tensor> project_forward_impl(const at::Tensor& means, const at::Tensor& quats,
                                             const at::Tensor& scales, const at::Tensor& opacities,
                                             const at::Tensor& viewmats, const at::Tensor& Ks, int width,
                                             int height, double near_plane, double far_plane, double eps2d);

// `in` is means, quats, scales, viewmats, Ks, then the cotangents of means2d, conics and depths. Returns the
// gradients to means (N, 3), quats (N, 4) and scales (N, 3), then with camera_grads to viewmats (C, 4, 4) and
// Ks (C, 3, 3).
template <typename T>
std::vector<at::Tensor> project_backward_impl(const std::vector<at::Tensor>& in, int width, int height,
                                              double near_plane, double far_plane, double eps2d,
                                              bool camera_grads);

}  // namespace scene4d_raster
