// Colours from SH coefficients (sh.cpp), declared for the bindings.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace scene4d_raster {

// colors (C, N, 3) = max(SH(means - centres) + 0.5, 0) from coeffs (N, K, 3), means (N, 3), centres (C, 3).
template <typename T>
at::Tensor sh_forward_impl(const at::Tensor& coeffs, const at::Tensor& means, const at::Tensor& centres,
                           int degree);

// Gradients to coeffs (N, K, 3), means (N, 3) and centres (C, 3) from those of the colours (C, N, 3).
template <typename T>
std::vector<at::Tensor> sh_backward_impl(const at::Tensor& coeffs, const at::Tensor& means, const at::Tensor& centres,
                                         const at::Tensor& v_colors, int degree);

}  // namespace scene4d_raster
