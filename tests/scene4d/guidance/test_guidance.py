"""The SDS code path on tiny random models: gradients, hand-computed SDS and CFG, conditioning, bad input."""

import pytest
import torch

from scene4d.guidance.conditioning import zero123_pose_embedding
from scene4d.guidance.sds import sample_timestep
from scene4d.render.render import render

SIZE = 16


def _unet(guidance, inputs, t, context):
    timesteps = torch.full((inputs.shape[0],), t, dtype=torch.long)
    with torch.no_grad():
        return guidance.unet(inputs, timesteps, encoder_hidden_states=context).sample


def _views(guidance, reference_image, n=2):
    reference = guidance.reference(reference_image)
    return guidance.view_condition(reference, torch.tensor([10.0, -20.0][:n]), torch.tensor([30.0, 90.0][:n]))


def test_sds_gradient_reaches_rendered_gaussians_but_no_model_parameter(zero123, reference_image):
    torch.manual_seed(0)
    n = 6
    means = (torch.randn(n, 3) * 0.3 + torch.tensor([0.0, 0.0, 3.0])).requires_grad_()
    colors = torch.rand(n, 3, requires_grad=True)
    quats = torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1)
    scales, opacities = torch.full((n, 3), 0.3), torch.full((n,), 0.8)
    viewmats = torch.eye(4)[None].repeat(2, 1, 1)
    viewmats[1, 0, 3] = 0.2
    Ks = torch.tensor([[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]]).expand(2, 3, 3)
    images = render(means, quats, scales, opacities, colors, viewmats, Ks, SIZE, SIZE,
                    backgrounds=torch.ones(2, 3), backend="reference").colors
    cond = _views(zero123, reference_image)
    loss = zero123.sds_loss(images, step=3, cond=cond, generator=torch.Generator().manual_seed(0))
    loss.backward()
    for grad in (means.grad, colors.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    models = [zero123.unet, zero123.vae, zero123.encoder.image_encoder, zero123.encoder.projection]
    assert all(p.grad is None and not p.requires_grad for model in models for p in model.parameters())


def test_latent_gradient_is_weighted_noise_residual(zero123, reference_image):
    cond = _views(zero123, reference_image)
    latents = torch.randn(2, 4, SIZE // 2, SIZE // 2, requires_grad=True)
    step = 11
    zero123.latent_sds_loss(latents, step, cond, torch.Generator().manual_seed(5)).backward()

    generator = torch.Generator().manual_seed(5)  # the documented draws: timestep, then noise
    t = sample_timestep(zero123.config, step, 1000, generator)
    eps = torch.randn(latents.shape, generator=generator)
    alpha = zero123.scheduler.alphas_cumprod[t]
    noisy = alpha.sqrt() * latents.detach() + (1 - alpha).sqrt() * eps
    concat = cond.concat.expand(2, -1, -1, -1)
    eps_cond = _unet(zero123, torch.cat([noisy, concat], 1), t, cond.context)
    eps_uncond = _unet(zero123, torch.cat([noisy, torch.zeros_like(concat)], 1), t, torch.zeros_like(cond.context))
    eps_pred = eps_uncond + 3.0 * (eps_cond - eps_uncond)
    expected = 2.0 * (1 - alpha) * (eps_pred - eps) / 2  # weight=2, w(t)=1-a_t, two images
    assert torch.allclose(latents.grad, expected, atol=1e-5, rtol=1e-4)
    assert expected.abs().mean() > 1e-3


def test_v_prediction_models_are_distilled_through_their_noise_estimate(make_guidance):
    guidance = make_guidance("sd", prediction_type="v_prediction", guidance_scale=1.0, weighting="uniform",
                             prompt="a cat")
    cond = guidance.text_condition()
    latents = torch.randn(1, 4, SIZE // 2, SIZE // 2, requires_grad=True)
    guidance.latent_sds_loss(latents, 0, cond, torch.Generator().manual_seed(2)).backward()
    generator = torch.Generator().manual_seed(2)
    t = sample_timestep(guidance.config, 0, 1000, generator)
    eps = torch.randn(latents.shape, generator=generator)
    alpha = guidance.scheduler.alphas_cumprod[t]
    noisy = alpha.sqrt() * latents.detach() + (1 - alpha).sqrt() * eps
    v = _unet(guidance, noisy, t, cond.context)
    expected = alpha.sqrt() * v + (1 - alpha).sqrt() * noisy - eps
    assert torch.allclose(latents.grad, expected, atol=1e-5, rtol=1e-4)


def test_classifier_free_guidance_combines_the_two_branches(zero123, reference_image, monkeypatch):
    guidance = zero123
    monkeypatch.setattr(guidance.config, "guidance_scale", 4.0)
    cond = _views(guidance, reference_image)
    noisy = torch.randn(2, 4, SIZE // 2, SIZE // 2)
    concat = cond.concat.expand(2, -1, -1, -1)
    eps_cond = _unet(guidance, torch.cat([noisy, concat], 1), 500, cond.context)
    eps_uncond = _unet(guidance, torch.cat([noisy, torch.zeros_like(concat)], 1), 500, torch.zeros_like(cond.context))
    assert (eps_cond - eps_uncond).abs().mean() > 1e-3  # the conditioning matters, so the check below is not vacuous
    guided = guidance.predict_noise(noisy, 500, cond)
    assert torch.allclose(guided, eps_uncond + 4.0 * (eps_cond - eps_uncond), atol=1e-5)
    monkeypatch.setattr(guidance.config, "guidance_scale", 1.0)
    assert torch.allclose(guidance.predict_noise(noisy, 500, cond), eps_cond, atol=1e-6)


def test_zero123_conditioning_is_projected_clip_embedding_and_pose(zero123, reference_image):
    reference = zero123.reference(reference_image)
    assert reference.embedding.shape == (1, 1, 12) and reference.latents.shape == (1, 4, SIZE // 2, SIZE // 2)
    elevation, azimuth, radius = torch.tensor([15.0]), torch.tensor([-90.0]), torch.tensor([0.5])
    cond = zero123.view_condition(reference, elevation, azimuth, radius)
    pose = zero123_pose_embedding(elevation, azimuth, radius)
    assert torch.allclose(pose, torch.tensor([[-0.2617994, -1.0, 0.0, 0.5]]), atol=1e-6)
    projection = zero123.encoder.projection.projection
    expected = torch.cat([reference.embedding[0], pose], -1) @ projection.weight.T + projection.bias
    assert torch.allclose(cond.context[:, 0], expected, atol=1e-6)
    assert torch.equal(cond.uncond_context, torch.zeros_like(cond.context))
    image = reference_image.permute(2, 0, 1)[None]
    resized = torch.nn.functional.interpolate(image, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    with torch.no_grad():
        mode = zero123.vae.encode(2 * resized - 1).latent_dist.mode()
    assert torch.allclose(reference.latents, mode, atol=1e-6)  # unscaled posterior mode, as Zero123 was trained


def test_text_condition_encodes_prompt_and_negative_prompt_and_every_thins_steps(make_guidance):
    guidance = make_guidance("sd", prompt="a dog", negative_prompt="blur", every=3)
    assert [s for s in range(10) if guidance.applies(s)] == [0, 3, 6, 9]
    cond = guidance.text_condition()
    expected = guidance.encoder(["a dog", "blur"])
    assert torch.equal(cond.context, expected[:1]) and torch.equal(cond.uncond_context, expected[1:])
    assert not torch.allclose(cond.context, cond.uncond_context)
    assert torch.allclose(guidance.text_condition("x", "").context, guidance.encoder(["x"]), atol=1e-6)


def test_bad_input_is_rejected_with_what_was_received(zero123, reference_image):
    cond = _views(zero123, reference_image, n=1)
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\), got \(1, 3, 16, 16\)"):
        zero123.sds_loss(torch.rand(1, 3, SIZE, SIZE), 0, cond)
    with pytest.raises(ValueError, match="text-conditioned"):
        zero123.text_condition("a cat")
    with pytest.raises(ValueError, match="three"):
        zero123_pose_embedding(torch.zeros(2), torch.zeros(3), torch.zeros(2))


def test_components_must_fit_the_kind(zero123):
    from scene4d.guidance.config import GuidanceConfig
    from scene4d.guidance.guidance import Guidance

    sd_config = GuidanceConfig(kind="sd", model="tiny")
    with pytest.raises(ValueError, match="8 input channels, expected 4"):
        Guidance(sd_config, zero123.unet, zero123.vae, zero123.scheduler, zero123.encoder)

