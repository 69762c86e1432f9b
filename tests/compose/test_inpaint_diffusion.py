"""The diffusers inpainting backend on a tiny, randomly initialised model saved in the pipeline layout."""

import json

import numpy as np
import pytest
import torch

from compose.inpaint import InpaintConfig, fill_background
from compose.inpaint_diffusion import DiffusionInpaintConfig, available, build_inpainter, working_size
from scene4d.errors import InputError

WIDTH = 16  # cross-attention width
CHARS = "abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(autouse=True)
def _offline_one_thread(monkeypatch):
    """No network; one thread (tiny models are dominated by thread synchronisation on a shared machine)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_components(in_channels: int):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=in_channels, out_channels=4, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=WIDTH,
                                attention_head_dim=4, norm_num_groups=4)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                        norm_num_groups=4, layers_per_block=1, sample_size=16)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("</w>", ""):
        vocab.update({c + suffix: len(vocab) + i for i, c in enumerate(CHARS)})
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=8)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=WIDTH, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=8,
                                        bos_token_id=0, eos_token_id=1, pad_token_id=1))
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", steps_offset=1)
    return {"unet": unet, "vae": vae, "text_encoder": text, "tokenizer": tokenizer, "scheduler": scheduler}


def _save(folder, in_channels=9):
    for name, component in _tiny_components(in_channels).items():
        component.save_pretrained(folder / name)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("inpaint_model"))


def _config(model, **overrides):
    return DiffusionInpaintConfig(model=str(model), steps=2, resolution=16, prompt="wall", negative_prompt="",
                                  device="cpu", **overrides)


def test_absent_or_incomplete_models_are_unavailable(tmp_path, caplog):
    assert available(DiffusionInpaintConfig()) == (False, "no inpainting model configured (model is empty)")
    ok, reason = available(_config(tmp_path / "nowhere"))
    assert not ok and "not a model id in the local cache" in reason
    (tmp_path / "unet").mkdir()
    ok, reason = available(_config(tmp_path))
    assert not ok and "unet/ is missing" in reason
    assert build_inpainter(_config(tmp_path)) is None
    assert "no learned inpainting" in caplog.text


def test_a_non_inpainting_unet_and_mismatched_weights_are_errors(tmp_path, model_dir):
    with pytest.raises(InputError, match="takes 4 input channels"):
        build_inpainter(_config(_save(tmp_path / "sd", in_channels=4)))
    bad = _save(tmp_path / "bad")
    config = json.loads((bad / "vae" / "config.json").read_text())
    config["latent_channels"] = 8
    (bad / "vae" / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="weights do not match AutoencoderKL"):
        build_inpainter(_config(bad))


def test_inpainter_changes_only_the_hole_and_is_deterministic(model_dir):
    inpainter = build_inpainter(_config(model_dir))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)  # resized to 16 x 8 for the model and back
    hole = np.zeros((12, 20), dtype=bool)
    hole[3:9, 5:14] = True
    first, second = inpainter(image, hole), inpainter(image, hole)
    np.testing.assert_array_equal(first[~hole], image[~hole])
    np.testing.assert_array_equal(first, second)
    assert np.abs(first[hole].astype(int) - image[hole]).mean() > 5
    np.testing.assert_array_equal(inpainter(image, np.zeros_like(hole)), image)
    with pytest.raises(InputError, match="does not match"):
        inpainter(image, hole[:5])


def test_fill_background_uses_the_learned_inpainter_for_colours(model_dir):
    inpainter = build_inpainter(_config(model_dir))
    images = np.full((2, 16, 16, 3), 90, dtype=np.uint8)
    holes = np.zeros((2, 16, 16), dtype=bool)
    holes[0, 4:10, 4:10] = True
    depth = np.where(holes, 1.0, 2.0).astype(np.float32)
    fill = fill_background(images, holes, depth, np.ones_like(depth), False, InpaintConfig(), inpainter)
    np.testing.assert_array_equal(fill.images[0], inpainter(images[0], holes[0]))
    np.testing.assert_array_equal(fill.images[1], images[1])
    np.testing.assert_allclose(fill.depth[holes], 2.0, rtol=1e-4)


def test_working_size_keeps_aspect_in_multiples_of_8():
    assert working_size(256, 144, 512) == (512, 288)
    assert working_size(20, 12, 16) == (16, 8)
    assert working_size(3, 1000, 16) == (8, 16)
