"""What a guidance model is conditioned on: text prompts, or Zero123's reference image plus relative camera.

Zero123 (Liu et al., 2023) fine-tunes Stable Diffusion's image-variation UNet. Its denoiser sees

- as input, 8 channels: the noisy latents concatenated with the reference image's VAE latents (the posterior
  mode, *not* multiplied by the VAE scaling factor, as the original model was trained);
- as cross-attention context, one token: ``Linear([CLIP image embedding, pose])`` with
  ``pose = [polar change (radians), sin(azimuth change), cos(azimuth change), radius change]``, the projection
  stored as ``clip_camera_projection`` in the diffusers-format releases (:class:`CameraProjection`).

Its unconditional branch zeroes both the projected context and the concatenated latents.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin


@dataclass
class Condition:
    """The denoiser's conditioning, for both branches of classifier-free guidance.

    Attributes:
        context: (B or 1, L, D) cross-attention states of the conditional branch (1 broadcasts over the batch).
        uncond_context: (B or 1, L, D) those of the unconditional branch.
        concat: (B or 1, C, h, w) latents concatenated to the noisy latents' channels in the conditional branch
            (zeros in the unconditional one), or None for models that take none.
    """

    context: torch.Tensor
    uncond_context: torch.Tensor
    concat: torch.Tensor | None = None


@dataclass
class Reference:
    """Zero123's encoding of the reference image, computed once per object.

    Attributes:
        embedding: (1, 1, E) CLIP image embedding.
        latents: (1, C, h, w) VAE posterior mode of the image at the guidance resolution (unscaled).
    """

    embedding: torch.Tensor
    latents: torch.Tensor


class CameraProjection(ModelMixin, ConfigMixin):
    """``Linear(E + 4 -> D)`` from [CLIP image embedding, pose] to the UNet's cross-attention width.

    Parameter names and config keys match the ``clip_camera_projection`` folder of diffusers-format Zero123
    weights, so those load strictly.
    """

    @register_to_config
    def __init__(self, in_channel: int = 772, out_channel: int = 768) -> None:
        super().__init__()
        self.projection = torch.nn.Linear(in_channel, out_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., E + 4) -> (..., D)."""
        return self.projection(x)


def zero123_pose_embedding(elevation: torch.Tensor, azimuth: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Zero123's camera embedding of a view relative to the reference camera.

    Args:
        elevation: (B,) elevation change in degrees, positive moving the camera up. Zero123 embeds the polar
            angle (measured from the up axis), whose change is ``-elevation``.
        azimuth: (B,) azimuth change in degrees, positive moving the camera to its right around the object.
        radius: (B,) change of the camera's distance to the object, in Zero123's units (0 keeps it).

    Returns:
        (B, 4) ``[radians(-elevation), sin(radians(azimuth)), cos(radians(azimuth)), radius]``.
    """
    if not (elevation.dim() == 1 and elevation.shape == azimuth.shape == radius.shape):
        raise ValueError(f"elevation, azimuth, radius: expected three (B,) tensors, got {tuple(elevation.shape)}, "
                         f"{tuple(azimuth.shape)}, {tuple(radius.shape)}")
    polar = torch.deg2rad(-elevation)
    azimuth = torch.deg2rad(azimuth)
    return torch.stack([polar, torch.sin(azimuth), torch.cos(azimuth), radius], dim=-1)


class Zero123Encoder:
    """CLIP image encoder, its image processor and the camera projection of a Zero123 model.

    Attributes:
        image_encoder: a transformers ``CLIPVisionModelWithProjection`` (its ``image_embeds`` are used).
        image_processor: the checkpoint's ``CLIPImageProcessor`` (resize, crop, normalise).
        projection: :class:`CameraProjection`.
    """

    def __init__(self, image_encoder, image_processor, projection: CameraProjection) -> None:
        expected = image_encoder.config.projection_dim + 4
        if projection.config.in_channel != expected:
            raise ValueError(f"camera projection takes {projection.config.in_channel} channels but the image "
                             f"encoder's embedding + pose has {expected}")
        self.image_encoder = image_encoder
        self.image_processor = image_processor
        self.projection = projection

    @torch.no_grad()
    def embed_image(self, image: torch.Tensor) -> torch.Tensor:
        """(H, W, 3) RGB in [0, 1] -> (1, 1, E) CLIP image embedding."""
        if image.dim() != 3 or image.shape[-1] != 3:
            raise ValueError(f"image: expected (H, W, 3), got {tuple(image.shape)}")
        pixels = self.image_processor(images=image.permute(2, 0, 1).float().cpu(), do_rescale=False,
                                      return_tensors="pt").pixel_values
        pixels = pixels.to(self.image_encoder.device, self.image_encoder.dtype)
        return self.image_encoder(pixel_values=pixels).image_embeds[:, None]

    def context(self, embedding: torch.Tensor, elevation: torch.Tensor, azimuth: torch.Tensor,
                radius: torch.Tensor) -> torch.Tensor:
        """(B, 1, D) cross-attention context for B views, from a (1, 1, E) embedding and (B,) camera changes."""
        pose = zero123_pose_embedding(elevation, azimuth, radius).to(embedding)
        tokens = torch.cat([embedding.expand(pose.shape[0], 1, -1), pose[:, None]], dim=-1)
        with torch.no_grad():
            return self.projection(tokens)


class TextEncoder:
    """A CLIP tokenizer and text model (Stable Diffusion's, or a text-to-video model's).

    Attributes:
        tokenizer: a transformers ``CLIPTokenizer``.
        text_encoder: a transformers ``CLIPTextModel``; its last hidden states are the context.
    """

    def __init__(self, tokenizer, text_encoder) -> None:
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> torch.Tensor:
        """N prompts -> (N, L, D) context, padded to the tokenizer's ``model_max_length`` tokens."""
        ids = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        return self.text_encoder(ids.to(self.text_encoder.device))[0]

