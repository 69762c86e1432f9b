"""Tiny, randomly initialised models built from the libraries' own config classes (no download, no network).

The builders are handed to tests as fixtures (``make_*``), so each test module builds what it needs once.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

SAM_SIZE = 64


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _tiny_depth_anything(metric: bool = False):
    """A Depth Anything model with a 4-layer, 16-wide DINOv2 backbone, and its DPT image processor."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                            image_size=28, patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 8, 8, 8],
                                 fusion_hidden_size=8, head_hidden_size=8,
                                 depth_estimation_type="metric" if metric else "relative", max_depth=20)
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(config).eval()
    processor = DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14,
                                  resample=3, do_pad=False, image_mean=[0.485, 0.456, 0.406],
                                  image_std=[0.229, 0.224, 0.225])
    return model, processor


def _tiny_sam():
    """A transformers SAM for 64 px inputs (1 ViT layer, 16 channels) and its processor."""
    from transformers import (SamConfig, SamImageProcessor, SamMaskDecoderConfig, SamModel, SamProcessor,
                              SamPromptEncoderConfig, SamVisionConfig)

    config = SamConfig(
        vision_config=SamVisionConfig(hidden_size=16, output_channels=16, num_hidden_layers=1, num_attention_heads=1,
                                      image_size=SAM_SIZE, patch_size=16, window_size=2, global_attn_indexes=[0],
                                      num_pos_feats=8, mlp_dim=32),
        prompt_encoder_config=SamPromptEncoderConfig(hidden_size=16, image_size=SAM_SIZE, patch_size=16,
                                                     mask_input_channels=4),
        mask_decoder_config=SamMaskDecoderConfig(hidden_size=16, mlp_dim=32, num_hidden_layers=1,
                                                 num_attention_heads=1, iou_head_hidden_dim=8))
    torch.manual_seed(0)
    model = SamModel(config).eval()
    image_processor = SamImageProcessor(size={"longest_edge": SAM_SIZE},
                                        pad_size={"height": SAM_SIZE, "width": SAM_SIZE},
                                        mask_size={"longest_edge": SAM_SIZE // 4},
                                        mask_pad_size={"height": SAM_SIZE // 4, "width": SAM_SIZE // 4})
    return model, SamProcessor(image_processor=image_processor)


def _tiny_segment_anything():
    """An original segment_anything ``Sam`` for 64 px inputs (1 ViT layer, 16 channels)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    encoder = ImageEncoderViT(img_size=SAM_SIZE, patch_size=16, embed_dim=16, depth=1, num_heads=1, mlp_ratio=2.0,
                              out_chans=16, use_rel_pos=True, window_size=2, global_attn_indexes=(0,))
    prompt_encoder = PromptEncoder(embed_dim=16, image_embedding_size=(SAM_SIZE // 16, SAM_SIZE // 16),
                                   input_image_size=(SAM_SIZE, SAM_SIZE), mask_in_chans=4)
    decoder = MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(depth=1, embedding_dim=16,
                                                                                  mlp_dim=32, num_heads=1),
                          transformer_dim=16, iou_head_depth=2, iou_head_hidden_dim=8)
    return Sam(image_encoder=encoder, prompt_encoder=prompt_encoder, mask_decoder=decoder).eval()


def _tiny_sam2_video():
    """A transformers SAM2 video model for 64 px inputs (5 Hiera blocks) and its processor.

    Widths follow two constraints of the implementation: the memory encoder's output is 64 channels (its
    cross-attention is built for 64) and the model width must exceed it (object pointers are split into
    64-channel tokens).
    """
    from transformers import (Sam2HieraDetConfig, Sam2ImageProcessor, Sam2VideoConfig, Sam2VideoModel,
                              Sam2VideoProcessor, Sam2VideoVideoProcessor, Sam2VisionConfig)
    from transformers.models.sam2_video.configuration_sam2_video import (Sam2VideoMaskDecoderConfig,
                                                                         Sam2VideoPromptEncoderConfig)

    width = 128
    backbone = Sam2HieraDetConfig(hidden_size=8, image_size=[SAM_SIZE, SAM_SIZE], blocks_per_stage=[1, 1, 2, 1],
                                  embed_dim_per_stage=[8, 16, 32, 64], num_attention_heads_per_stage=[1, 1, 1, 1],
                                  window_size_per_stage=[4, 4, 2, 2], global_attention_blocks=[3],
                                  window_positional_embedding_background_size=[2, 2])
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[64, 32, 16, 8],
                              backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]], fpn_hidden_size=width)
    config = Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config=Sam2VideoPromptEncoderConfig(hidden_size=width, image_size=SAM_SIZE, patch_size=16,
                                                           mask_input_channels=4),
        mask_decoder_config=Sam2VideoMaskDecoderConfig(hidden_size=width, mlp_dim=32, num_hidden_layers=1,
                                                       num_attention_heads=1, iou_head_hidden_dim=8),
        image_size=SAM_SIZE, num_maskmem=3, memory_attention_hidden_size=width, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=32, memory_attention_rope_feat_sizes=[4, 4],
        memory_encoder_hidden_size=width, memory_encoder_output_channels=64, mask_downsampler_embed_dim=width,
        memory_fuser_embed_dim=width, memory_fuser_intermediate_dim=32, memory_fuser_num_layers=1)
    torch.manual_seed(0)
    model = Sam2VideoModel(config).eval()
    processor = Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(size={"height": SAM_SIZE, "width": SAM_SIZE},
                                           mask_size={"height": SAM_SIZE // 4, "width": SAM_SIZE // 4}),
        video_processor=Sam2VideoVideoProcessor(size={"height": SAM_SIZE, "width": SAM_SIZE}))
    return model, processor


def _textured_frames(num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 smooth random texture, identical in every frame."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((height // 4 + 2, width // 4 + 2, 3)).astype(np.float32)
    image = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    image = np.clip(image * 255, 0, 255).astype(np.uint8)
    return np.repeat(image[None], num_frames, axis=0)


@pytest.fixture(scope="session")
def make_depth_anything():
    return _tiny_depth_anything


@pytest.fixture(scope="session")
def make_sam():
    return _tiny_sam


@pytest.fixture(scope="session")
def make_segment_anything():
    return _tiny_segment_anything


@pytest.fixture(scope="session")
def make_sam2_video():
    return _tiny_sam2_video


@pytest.fixture(scope="session")
def make_frames():
    return _textured_frames
