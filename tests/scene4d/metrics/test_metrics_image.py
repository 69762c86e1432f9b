import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure

from scene4d.metrics.image import psnr, ssim, ssim_map


def _pair(seed=0, shape=(2, 24, 32, 3)):
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=generator, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn(shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    return pred, target


def test_psnr_of_known_mse():
    target = torch.zeros(8, 8, 3)
    pred = torch.full((8, 8, 3), 0.1)
    assert psnr(pred, target).item() == pytest.approx(20.0, abs=1e-4)  # MSE 0.01


def test_psnr_inside_mask_ignores_outside_pixels():
    target = torch.zeros(2, 8, 8, 3)
    pred = torch.full((2, 8, 8, 3), 0.5)
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[2:5, 1:7] = True
    pred[:, mask] = 0.01  # MSE 1e-4 inside the mask
    assert torch.allclose(psnr(pred, target, mask), torch.tensor([40.0, 40.0]), atol=1e-3)
    assert psnr(pred, target).max() < 10


def test_psnr_full_mask_equals_unmasked_and_empty_mask_is_nan():
    pred, target = _pair()
    full = torch.ones(2, 24, 32, dtype=torch.bool)
    assert torch.allclose(psnr(pred, target, full), psnr(pred, target))
    expected = -10 * torch.log10((pred - target).square().mean(dim=(1, 2, 3)))
    assert torch.allclose(psnr(pred, target), expected)
    empty = full.clone()
    empty[1] = False
    scores = psnr(pred, target, empty)
    assert torch.isfinite(scores[0]) and torch.isnan(scores[1])


def test_ssim_of_constant_images_is_the_luminance_term():
    pred, target = torch.full((16, 16, 3), 0.3, dtype=torch.float64), torch.full((16, 16, 3), 0.6, dtype=torch.float64)
    c1 = 0.01**2
    expected = (2 * 0.3 * 0.6 + c1) / (0.3**2 + 0.6**2 + c1)
    assert ssim(pred, target).item() == pytest.approx(expected, rel=1e-9)


def test_ssim_map_matches_scikit_image_away_from_the_border():
    pred, target = _pair(shape=(40, 48, 3))
    _, reference = structural_similarity(pred.numpy(), target.numpy(), channel_axis=2, gaussian_weights=True,
                                         sigma=1.5, use_sample_covariance=False, data_range=1.0, full=True)
    ours = ssim_map(pred, target).numpy()
    np.testing.assert_allclose(ours[5:-5, 5:-5], reference.mean(axis=2)[5:-5, 5:-5], atol=1e-6)


def test_ssim_unmasked_equals_torchmetrics_and_mask_restricts():
    pred, target = _pair()
    reference = structural_similarity_index_measure(pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2),
                                                    data_range=1.0, reduction="none")
    assert torch.allclose(ssim(pred, target), reference)
    pred[:, :, :16] = target[:, :, :16]  # identical on the left half
    mask = torch.zeros(24, 32, dtype=torch.bool)
    mask[:, :10] = True  # more than the 5-pixel window radius away from the differing half
    assert torch.allclose(ssim(pred, target, mask), torch.ones(2, dtype=torch.float64))
    assert ssim(pred, target).max() < 0.99


def test_bad_inputs_are_rejected_with_the_received_value():
    image = torch.rand(8, 8, 3)
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(image, torch.rand(8, 9, 3))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        ssim(torch.rand(8, 8), torch.rand(8, 8))
    with pytest.raises(ValueError, match="floating point"):
        psnr(image.to(torch.uint8), image.to(torch.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        psnr(image * 255, image)
    with pytest.raises(TypeError, match="bool"):
        psnr(image, image, torch.ones(8, 8))
    with pytest.raises(ValueError, match="mask"):
        ssim(image, image, torch.ones(4, 8, dtype=torch.bool))


def test_psnr_is_infinite_for_identical_images():
    image = torch.rand(8, 8, 3)
    assert math.isinf(psnr(image, image).item())
