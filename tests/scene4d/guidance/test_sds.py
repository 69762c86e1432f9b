import pytest
import torch

from scene4d.errors import InputError
from scene4d.guidance.config import GuidanceConfig
from scene4d.guidance.sds import (classifier_free_guidance, epsilon_from_prediction, sample_timestep,
                                  sds_surrogate_loss, sds_weight, timestep_bounds)

T = 1000


def _draws(config, step, n=400, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.tensor([sample_timestep(config, step, T, generator) for _ in range(n)])


def test_uniform_schedule_covers_exactly_its_range():
    config = GuidanceConfig(t_min=0.1, t_max=0.12)
    assert timestep_bounds(config, 0, T) == timestep_bounds(config, 10**6, T) == (100, 120)
    draws = _draws(config, step=7)
    assert draws.min() == 100 and draws.max() == 120  # both ends reached, nothing outside


def test_bounds_are_clamped_to_valid_timesteps():
    assert timestep_bounds(GuidanceConfig(t_min=0.0, t_max=1.0), 0, T) == (0, T - 1)


def test_anneal_max_lowers_the_upper_bound_linearly_then_holds():
    config = GuidanceConfig(t_min=0.02, t_max=0.98, t_schedule="anneal_max", t_max_end=0.5, anneal_iters=100)
    assert timestep_bounds(config, 0, T) == (20, 980)
    assert timestep_bounds(config, 50, T) == (20, 740)
    assert timestep_bounds(config, 100, T) == timestep_bounds(config, 500, T) == (20, 500)
    uppers = [timestep_bounds(config, step, T)[1] for step in range(0, 120, 5)]
    assert all(a >= b for a, b in zip(uppers, uppers[1:]))
    late = _draws(config, step=100)
    assert late.min() >= 20 and late.max() <= 500 and late.max() > 450


def test_linear_schedule_is_deterministic_from_t_max_to_t_min():
    config = GuidanceConfig(t_min=0.02, t_max=0.98, t_schedule="linear", anneal_iters=100)
    assert timestep_bounds(config, 0, T) == (980, 980)
    assert timestep_bounds(config, 25, T) == (740, 740)
    assert timestep_bounds(config, 100, T) == timestep_bounds(config, 200, T) == (20, 20)
    assert (_draws(config, step=25, n=5) == 740).all()


def test_weighting_and_guidance_formulas():
    alphas_cumprod = torch.tensor([0.9, 0.5, 0.25])
    assert sds_weight(alphas_cumprod, 2, "sds").item() == pytest.approx(0.75)
    assert sds_weight(alphas_cumprod, 2, "uniform").item() == 1.0
    uncond, cond = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.0])
    assert torch.equal(classifier_free_guidance(uncond, cond, 1.0), cond)
    assert torch.allclose(classifier_free_guidance(uncond, cond, 7.5), torch.tensor([16.0, 13.0]))
    with pytest.raises(ValueError, match="shape"):
        classifier_free_guidance(uncond, cond[:1], 2.0)


def test_v_prediction_converts_back_to_the_true_noise():
    torch.manual_seed(0)
    x, eps = torch.randn(2, 4, 3, 3, dtype=torch.float64), torch.randn(2, 4, 3, 3, dtype=torch.float64)
    alpha = torch.tensor(0.3, dtype=torch.float64)
    noisy = alpha.sqrt() * x + (1 - alpha).sqrt() * eps
    v = alpha.sqrt() * eps - (1 - alpha).sqrt() * x
    assert torch.allclose(epsilon_from_prediction(v, noisy, alpha, "v_prediction"), eps)
    assert epsilon_from_prediction(eps, noisy, alpha, "epsilon") is eps
    with pytest.raises(ValueError, match="sample"):
        epsilon_from_prediction(v, noisy, alpha, "sample")


def test_surrogate_loss_has_the_sds_gradient_divided_by_the_image_count():
    torch.manual_seed(0)
    latents = torch.randn(3, 4, 2, 2, requires_grad=True)
    grad = torch.randn(3, 4, 2, 2)
    loss = sds_surrogate_loss(latents, grad, num_images=3)
    assert loss.item() == pytest.approx(0.5 * grad.pow(2).sum().item() / 3, rel=1e-6)
    (got,) = torch.autograd.grad(loss, latents)
    assert torch.allclose(got, grad / 3)
    with pytest.raises(ValueError, match="must match"):
        sds_surrogate_loss(latents, grad[:1], 3)


@pytest.mark.parametrize("settings, message", [
    ({"kind": "dreamfusion"}, "guidance.kind"),
    ({"t_schedule": "cosine"}, "guidance.t_schedule"),
    ({"weighting": "snr"}, "guidance.weighting"),
    ({"t_min": 0.6, "t_max": 0.5}, "t_min <= t_max"),
    ({"t_schedule": "anneal_max", "t_max_end": 0.99}, "t_max_end"),
    ({"every": 0}, "guidance.every"),
    ({"elevation_range": [10.0, -10.0]}, "elevation_range"),
    ({"kind": "zero123"}, "guidance.model"),
])
def test_config_check_names_the_bad_setting(settings, message):
    with pytest.raises(InputError, match=message):
        GuidanceConfig(**settings).check()
