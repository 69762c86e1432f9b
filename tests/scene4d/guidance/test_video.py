"""Temporal SDS (SDS-T) on a tiny text-to-video UNet3DConditionModel, loaded back from a local folder."""

import pytest
import torch

from scene4d.guidance.config import GuidanceConfig
from scene4d.guidance.loading import build_guidance
from scene4d.guidance.sds import sample_timestep

FRAMES, SIZE = 3, 16


@pytest.fixture(scope="module")
def video(tmp_path_factory, make_guidance, write_pipeline):
    folder = tmp_path_factory.mktemp("video")
    write_pipeline(make_guidance("video"), folder)
    config = GuidanceConfig(kind="video", model=str(folder), resolution=SIZE, device="cpu", guidance_scale=2.0,
                            prompt="a dog running", frames=FRAMES)
    return build_guidance(config)


def _clip(seed):
    torch.manual_seed(seed)
    return torch.rand(FRAMES, SIZE, SIZE, 3, requires_grad=True)


def test_video_model_loads_from_its_folder_with_its_tokenizer(video):
    assert type(video.unet).__name__ == "UNet3DConditionModel"
    cond = video.text_condition()
    assert cond.context.shape == (1, 8, 16) and not torch.allclose(cond.context, cond.uncond_context)


def test_sds_t_gradient_reaches_every_frame_and_couples_them(video):
    cond = video.text_condition()
    clip = _clip(0)
    video.sds_loss(clip, 4, cond, torch.Generator().manual_seed(0)).backward()
    assert clip.grad.shape == (FRAMES, SIZE, SIZE, 3)
    assert all(clip.grad[f].abs().sum() > 0 for f in range(FRAMES))
    assert all(p.grad is None for p in video.unet.parameters())

    changed = clip.detach().clone()
    changed[2] = 1.0 - changed[2]
    changed.requires_grad_()
    video.sds_loss(changed, 4, cond, torch.Generator().manual_seed(0)).backward()
    # frame 0 is untouched, yet its gradient moves: the UNet sees the clip as a whole (temporal layers)
    assert not torch.allclose(changed.grad[0], clip.grad[0], atol=1e-7)


def test_sds_t_latent_gradient_is_weighted_noise_residual(video):
    cond = video.text_condition()
    latents = torch.randn(1, 4, FRAMES, SIZE // 2, SIZE // 2, requires_grad=True)
    video.latent_sds_loss(latents, 9, cond, torch.Generator().manual_seed(3)).backward()
    generator = torch.Generator().manual_seed(3)
    t = sample_timestep(video.config, 9, 1000, generator)
    eps = torch.randn(latents.shape, generator=generator)
    alpha = video.alphas_cumprod[t]
    noisy = alpha.sqrt() * latents.detach() + (1 - alpha).sqrt() * eps
    timesteps = torch.full((2,), t)
    with torch.no_grad():
        out = video.unet(torch.cat([noisy, noisy]), timesteps,
                         encoder_hidden_states=torch.cat([cond.uncond_context, cond.context])).sample
    eps_pred = out[:1] + 2.0 * (out[1:] - out[:1])
    assert torch.allclose(latents.grad, (1 - alpha) * (eps_pred - eps) / FRAMES, atol=1e-5, rtol=1e-4)


def test_video_latents_must_be_a_clip(video):
    with pytest.raises(ValueError, match="5 dimensions"):
        video.latent_sds_loss(torch.randn(3, 4, 8, 8), 0, video.text_condition())
