"""A frozen diffusion model that scores renders of an object: the SDS loss of :mod:`scene4d.guidance.sds`.

:class:`Guidance` holds diffusers components (a UNet, an ``AutoencoderKL``, a DDPM scheduler for the forward
process) and a conditioning encoder; it never trains them and the loss never backpropagates through the UNet.
Images reach the latents through the VAE encoder's posterior mean (differentiable), scaled by the VAE's
``scaling_factor``. Build one with :func:`scene4d.guidance.loading.build_guidance`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scene4d.guidance.conditioning import Condition, Reference, TextEncoder, Zero123Encoder
from scene4d.guidance.config import GuidanceConfig
from scene4d.guidance.sds import (classifier_free_guidance, epsilon_from_prediction, sample_timestep,
                                  sds_surrogate_loss, sds_weight)


class Guidance:
    """SDS from a text-, image- or video-conditioned diffusion model.

    Attributes:
        config: the settings (kind, timestep schedule, weighting, guidance scale, resolution, ...).
        unet: ``UNet2DConditionModel`` (``zero123``: 2x latent input channels; ``sd``) or
            ``UNet3DConditionModel`` (``video``), frozen.
        vae: ``AutoencoderKL``, frozen.
        scheduler: a diffusers scheduler with ``alphas_cumprod`` and ``config.prediction_type``
            (``epsilon`` or ``v_prediction``).
        encoder: :class:`Zero123Encoder` for ``zero123``, :class:`TextEncoder` otherwise.
        alphas_cumprod: (T,) the forward process's cumulative alphas, on the model's device.

    Example:
        >>> guidance = build_guidance(config)  # None when off or the weights are absent
        >>> reference = guidance.reference(reference_rgb)  # zero123, once per object
        >>> cond = guidance.view_condition(reference, elevation, azimuth)
        >>> if guidance.applies(step):
        ...     loss = loss + guidance.sds_loss(renders, step, cond)  # renders (B, H, W, 3) in [0, 1]
    """

    def __init__(self, config: GuidanceConfig, unet, vae, scheduler, encoder: Zero123Encoder | TextEncoder) -> None:
        config.check()
        latent_channels = vae.config.latent_channels
        expected_in = 2 * latent_channels if config.kind == "zero123" else latent_channels
        if unet.config.in_channels != expected_in:
            raise ValueError(f"{config.kind}: the UNet takes {unet.config.in_channels} input channels, expected "
                             f"{expected_in} for a VAE with {latent_channels} latent channels")
        wants_3d = config.kind == "video"
        if (unet.__class__.__name__ == "UNet3DConditionModel") != wants_3d:
            raise ValueError(f"{config.kind}: got a {unet.__class__.__name__}, expected "
                             f"{'a UNet3DConditionModel' if wants_3d else 'a 2D UNet'}")
        if isinstance(encoder, Zero123Encoder) != (config.kind == "zero123"):
            raise ValueError(f"{config.kind}: got a {type(encoder).__name__} as conditioning encoder")
        self.config = config
        self.unet, self.vae, self.scheduler, self.encoder = unet, vae, scheduler, encoder
        for module in self._modules():
            module.requires_grad_(False).eval()
        self.alphas_cumprod = scheduler.alphas_cumprod.to(unet.device, torch.float32)

    def _modules(self) -> list[torch.nn.Module]:
        if isinstance(self.encoder, Zero123Encoder):
            extra = [self.encoder.image_encoder, self.encoder.projection]
        else:
            extra = [self.encoder.text_encoder]
        return [self.unet, self.vae, *extra]

    @property
    def device(self) -> torch.device:
        """Where the models run."""
        return self.unet.device

    def to(self, device: torch.device | str) -> Guidance:
        """Move every model to ``device`` (in place); returns self."""
        for module in self._modules():
            module.to(device)
        self.alphas_cumprod = self.alphas_cumprod.to(device)
        return self

    @property
    def num_train_timesteps(self) -> int:
        """T, the diffusion steps the model was trained with."""
        return self.alphas_cumprod.shape[0]

    def applies(self, step: int) -> bool:
        """Whether guidance runs at fitting ``step`` (every ``config.every`` steps)."""
        return step % self.config.every == 0

    def text_condition(self, prompt: str | None = None, negative_prompt: str | None = None) -> Condition:
        """Conditioning of ``sd``/``video`` models on a prompt (default ``config.prompt``): (1, L, D) contexts."""
        if not isinstance(self.encoder, TextEncoder):
            raise ValueError(f"text_condition needs a text-conditioned model, this one is {self.config.kind!r}")
        prompt = self.config.prompt if prompt is None else prompt
        negative = self.config.negative_prompt if negative_prompt is None else negative_prompt
        context, uncond = self.encoder([prompt, negative]).float().split(1)
        return Condition(context, uncond)

    def reference(self, image: torch.Tensor) -> Reference:
        """Zero123's encoding of the reference view of the object.

        Args:
            image: (H, W, 3) RGB in [0, 1], the object cut out on a white background, roughly centred.
        """
        if not isinstance(self.encoder, Zero123Encoder):
            raise ValueError(f"reference needs a zero123 model, this one is {self.config.kind!r}")
        embedding = self.encoder.embed_image(image)
        with torch.no_grad():
            latents = self.vae.encode(self._prepare(image[None].to(self.device))).latent_dist.mode()
        return Reference(embedding.float(), latents.float())

    def view_condition(self, reference: Reference, elevation: torch.Tensor, azimuth: torch.Tensor,
                       radius: torch.Tensor | None = None) -> Condition:
        """Zero123's conditioning for B novel views relative to the reference camera.

        Args:
            reference: from :meth:`reference`.
            elevation: (B,) degrees, positive up; azimuth: (B,) degrees, positive to the camera's right
                (as :func:`scene4d.guidance.views.orbit_viewmats`).
            radius: (B,) change of distance in Zero123's units; zeros when None.

        Returns:
            :class:`Condition` with (B, 1, D) contexts (zeros unconditional) and (1, C, h, w) concat latents.
        """
        if not isinstance(self.encoder, Zero123Encoder):
            raise ValueError(f"view_condition needs a zero123 model, this one is {self.config.kind!r}")
        radius = torch.zeros_like(elevation) if radius is None else radius
        context = self.encoder.context(reference.embedding, elevation, azimuth, radius).float()
        return Condition(context, torch.zeros_like(context), reference.latents)

    def timestep(self, step: int, generator: torch.Generator | None = None) -> int:
        """The diffusion timestep for ``step`` drawn from the configured schedule."""
        return sample_timestep(self.config, step, self.num_train_timesteps, generator)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"images: expected (B, H, W, 3), got {tuple(images.shape)}")
        x = images.permute(0, 3, 1, 2)
        size = self.config.resolution
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return (2.0 * x - 1.0).to(self.vae.dtype)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable latents of renders.

        Args:
            images: (B, H, W, 3) RGB in [0, 1]; resized (bilinear) to ``config.resolution`` squared.

        Returns:
            (B, C, h, w) ``scaling_factor * mean`` of the VAE posterior.
        """
        posterior = self.vae.encode(self._prepare(images.to(self.device))).latent_dist
        return posterior.mean * self.vae.config.scaling_factor

    @torch.no_grad()
    def predict_noise(self, noisy: torch.Tensor, t: int, cond: Condition) -> torch.Tensor:
        """Classifier-free-guided noise prediction ``eps_u + s (eps_c - eps_u)`` with ``s = config.guidance_scale``.

        Args:
            noisy: (B, C, h, w) noised latents, or (B, C, F, h, w) for a video UNet.
            t: the timestep.
            cond: contexts (and concat latents) of both branches; the unconditional branch gets zero concat
                latents. With ``s == 1`` only the conditional branch is evaluated.

        Returns:
            The noise estimate, shaped like ``noisy`` (converted from v-prediction where the model uses it).
        """
        batch = noisy.shape[0]
        context = cond.context.expand(batch, -1, -1)
        inputs = noisy
        if cond.concat is not None:
            inputs = torch.cat([noisy, cond.concat.expand(batch, -1, -1, -1).to(noisy)], dim=1)
        scale = self.config.guidance_scale
        if scale != 1.0:
            uncond_inputs = inputs.clone()
            uncond_inputs[:, noisy.shape[1]:] = 0.0
            inputs = torch.cat([uncond_inputs, inputs])
            context = torch.cat([cond.uncond_context.expand(batch, -1, -1), context])
        timesteps = torch.full((inputs.shape[0],), t, device=self.device, dtype=torch.long)
        dtype = self.unet.dtype
        prediction = self.unet(inputs.to(dtype), timesteps, encoder_hidden_states=context.to(dtype)).sample.float()
        if scale != 1.0:
            prediction = classifier_free_guidance(*prediction.chunk(2), scale)
        return epsilon_from_prediction(prediction, noisy, self.alphas_cumprod[t],
                                       self.scheduler.config.prediction_type)

    def latent_sds_loss(self, latents: torch.Tensor, step: int, cond: Condition,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        """SDS surrogate on latents: its gradient is ``weight * w(t) * (eps_pred - eps) / N``.

        Args:
            latents: (B, C, h, w) image latents (N = B), or (1, C, F, h, w) one clip's latents for a video UNet
                (N = F); they should require grad.
            step: the fitting step (sets the timestep schedule).
            cond: from :meth:`view_condition` or :meth:`text_condition`.
            generator: draws the timestep (:meth:`timestep`) and then ``eps`` (``torch.randn`` of the latents'
                shape, on the generator's device); the global generator when None.

        Returns:
            0-d float32 loss.
        """
        expected = 5 if self.config.kind == "video" else 4
        if latents.dim() != expected:
            raise ValueError(f"latents: expected {expected} dimensions for {self.config.kind!r}, "
                             f"got {tuple(latents.shape)}")
        t = self.timestep(step, generator)
        noise_device = generator.device if generator is not None else latents.device
        noise = torch.randn(latents.shape, generator=generator, device=noise_device).to(latents.device)
        with torch.no_grad():
            alpha = self.alphas_cumprod[t]
            noisy = alpha.sqrt() * latents.detach().float() + (1.0 - alpha).sqrt() * noise
            residual = self.predict_noise(noisy, t, cond) - noise
            grad = self.config.weight * sds_weight(self.alphas_cumprod, t, self.config.weighting) * residual
        num_images = latents.shape[2] if expected == 5 else latents.shape[0]
        return sds_surrogate_loss(latents, grad.to(latents.dtype), num_images)

    def sds_loss(self, images: torch.Tensor, step: int, cond: Condition,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """The SDS loss of renders, differentiable with respect to the images (through the VAE encoder).

        Args:
            images: (B, H, W, 3) RGB in [0, 1]: B views of the object (``zero123``, ``sd``), or B consecutive
                frames of one clip (``video``, temporal SDS).
            step, cond, generator: as :meth:`latent_sds_loss`.

        Returns:
            0-d loss; ``d loss / d latents = weight * w(t) * (eps_pred - eps) / B``.
        """
        latents = self.encode(images)
        if self.config.kind == "video":
            latents = latents.permute(1, 0, 2, 3)[None]
        return self.latent_sds_loss(latents, step, cond, generator)
