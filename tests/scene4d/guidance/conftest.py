"""Tiny, randomly initialised diffusion models built from diffusers' and transformers' config classes.

16 px images, a 2x VAE (8x8 latents), 16-wide cross-attention: the real SDS code path with no weights.
"""

from __future__ import annotations

import pytest
import torch

RESOLUTION = 16
WIDTH = 16  # cross-attention width
CHAR_VOCAB = "abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                         norm_num_groups=4, layers_per_block=1, sample_size=RESOLUTION)


def tiny_unet(in_channels: int, video: bool = False):
    from diffusers import UNet2DConditionModel, UNet3DConditionModel

    kind = "3D" if video else "2D"
    model_class = UNet3DConditionModel if video else UNet2DConditionModel
    return model_class(sample_size=RESOLUTION // 2, in_channels=in_channels, out_channels=4, layers_per_block=1,
                       block_out_channels=(8, 16), down_block_types=(f"CrossAttnDownBlock{kind}", f"DownBlock{kind}"),
                       up_block_types=(f"UpBlock{kind}", f"CrossAttnUpBlock{kind}"), cross_attention_dim=WIDTH,
                       attention_head_dim=4, norm_num_groups=4)


def tiny_scheduler(prediction_type: str = "epsilon"):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         prediction_type=prediction_type)


def tiny_zero123_encoder():
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    from scene4d.guidance.conditioning import CameraProjection, Zero123Encoder

    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                            num_attention_heads=2, image_size=32, patch_size=16,
                                                            projection_dim=12))
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return Zero123Encoder(vision, processor, CameraProjection(12 + 4, WIDTH))


def tiny_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from scene4d.guidance.conditioning import TextEncoder

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("</w>", ""):
        vocab.update({c + suffix: len(vocab) + i for i, c in enumerate(CHAR_VOCAB)})
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=8)
    model = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=WIDTH, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=8,
                                         bos_token_id=0, eos_token_id=1, pad_token_id=1))
    return TextEncoder(tokenizer, model)


def tiny_guidance(kind: str, prediction_type: str = "epsilon", **settings):
    """A :class:`Guidance` of ``kind`` over freshly built tiny components (seeded)."""
    from scene4d.guidance.config import GuidanceConfig
    from scene4d.guidance.guidance import Guidance

    torch.manual_seed(0)
    config = GuidanceConfig(kind=kind, model="tiny", resolution=RESOLUTION, device="cpu", **settings)
    encoder = tiny_zero123_encoder() if kind == "zero123" else tiny_text_encoder()
    unet = tiny_unet(8 if kind == "zero123" else 4, video=kind == "video")
    return Guidance(config, unet, tiny_vae(), tiny_scheduler(prediction_type), encoder)


def save_pipeline(guidance, folder) -> None:
    """Write a guidance model's components in the diffusers pipeline layout."""
    guidance.unet.save_pretrained(folder / "unet")
    guidance.vae.save_pretrained(folder / "vae")
    guidance.scheduler.save_pretrained(folder / "scheduler")
    encoder = guidance.encoder
    if guidance.config.kind == "zero123":
        encoder.image_encoder.save_pretrained(folder / "image_encoder")
        encoder.image_processor.save_pretrained(folder / "feature_extractor")
        encoder.projection.save_pretrained(folder / "clip_camera_projection")
    else:
        encoder.text_encoder.save_pretrained(folder / "text_encoder")
        encoder.tokenizer.save_pretrained(folder / "tokenizer")


@pytest.fixture(scope="module")
def zero123():
    return tiny_guidance("zero123", guidance_scale=3.0, weight=2.0)


@pytest.fixture
def reference_image():
    torch.manual_seed(1)
    return torch.rand(24, 24, 3)


@pytest.fixture(scope="session")
def make_guidance():
    return tiny_guidance


@pytest.fixture(scope="session")
def write_pipeline():
    return save_pipeline
