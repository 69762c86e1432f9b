// Python bindings of the CPU projection, SH colours and tile rasterizer: dtype dispatch of every pass.
#include <ATen/Dispatch.h>
#include <torch/csrc/utils/pybind.h>

#include "projection.h"
#include "rasterize_cpu.h"
#include "sh.h"

namespace scene4d_raster {
namespace {

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

std::vector<at::Tensor> project_forward(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                        const at::Tensor& opacities, const at::Tensor& viewmats, const at::Tensor& Ks,
                                        int64_t width, int64_t height, double near_plane, double far_plane,
                                        double eps2d) {
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_forward", [&] {
    out = project_forward_impl<scalar_t>(means, quats, scales, opacities, viewmats, Ks, static_cast<int>(width),
                                         static_cast<int>(height), near_plane, far_plane, eps2d);
  });
  return out;
}

std::vector<at::Tensor> project_backward(const std::vector<at::Tensor>& tensors, int64_t width, int64_t height,
                                         double near_plane, double far_plane, double eps2d, bool camera_grads) {
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(tensors[0].scalar_type(), "project_backward", [&] {
    out = project_backward_impl<scalar_t>(tensors, static_cast<int>(width), static_cast<int>(height), near_plane,
                                          far_plane, eps2d, camera_grads);
  });
  return out;
}

at::Tensor sh_forward(const at::Tensor& coeffs, const at::Tensor& means, const at::Tensor& centres, int64_t degree) {
  at::Tensor out;
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "sh_forward", [&] {
    out = sh_forward_impl<scalar_t>(coeffs, means, centres, static_cast<int>(degree));
  });
  return out;
}

std::vector<at::Tensor> sh_backward(const at::Tensor& coeffs, const at::Tensor& means, const at::Tensor& centres,
                                    const at::Tensor& v_colors, int64_t degree) {
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "sh_backward", [&] {
    out = sh_backward_impl<scalar_t>(coeffs, means, centres, v_colors, static_cast<int>(degree));
  });
  return out;
}

}  // namespace
}  // namespace scene4d_raster

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &scene4d_raster::rasterize_forward,
        "Bin, sort and composite: returns colors, alphas, depths and the state the backward needs.");
  m.def("backward", &scene4d_raster::rasterize_backward,
        "Gradients to means2d, conics, opacities, colors, depths and backgrounds.");
  m.def("project_forward", &scene4d_raster::project_forward,
        "EWA projection: means2d, conics, depths and radii.");
  m.def("project_backward", &scene4d_raster::project_backward,
        "Gradients of the projection to means, quats, scales, and optionally viewmats and Ks.");
  m.def("sh_forward", &scene4d_raster::sh_forward, "Colours max(SH(dir) + 0.5, 0) per camera.");
  m.def("sh_backward", &scene4d_raster::sh_backward, "Gradients of the SH colours to coeffs, means and centres.");
}
