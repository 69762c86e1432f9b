// Python bindings of the CPU tile rasterizer: dtype dispatch of the forward and backward passes.
#include <ATen/Dispatch.h>
#include <torch/csrc/utils/pybind.h>

#include "rasterize_cpu.h"

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

}  // namespace
}  // namespace scene4d_raster

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &scene4d_raster::rasterize_forward,
        "Bin, sort and composite: returns colors, alphas, depths and the state the backward needs.");
  m.def("backward", &scene4d_raster::rasterize_backward,
        "Gradients to means2d, conics, opacities, colors, depths and backgrounds.");
}
