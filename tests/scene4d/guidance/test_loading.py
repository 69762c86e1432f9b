"""Finding and strictly loading guidance weights from a local folder, and declining without network."""

import json
import logging
import socket

import pytest
import torch

from scene4d.errors import InputError
from scene4d.guidance.config import GuidanceConfig
from scene4d.guidance.loading import available, build_guidance


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("guidance tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def zero123_folder(tmp_path_factory, zero123, write_pipeline):
    folder = tmp_path_factory.mktemp("zero123")
    write_pipeline(zero123, folder)
    return folder


def _config(folder, **settings):
    return GuidanceConfig(kind="zero123", model=str(folder), resolution=16, device="cpu", guidance_scale=3.0,
                          **settings)


def test_zero123_round_trips_through_a_local_folder(zero123, zero123_folder, reference_image, no_network):
    assert available(_config(zero123_folder)) == (True, str(zero123_folder))
    loaded = build_guidance(_config(zero123_folder))
    for name in ("unet", "vae"):
        original, copy = getattr(zero123, name).state_dict(), getattr(loaded, name).state_dict()
        assert original.keys() == copy.keys() and all(torch.equal(original[k], copy[k]) for k in original)
    assert torch.equal(loaded.alphas_cumprod, zero123.alphas_cumprod)
    expected, got = zero123.reference(reference_image), loaded.reference(reference_image)
    assert torch.allclose(got.embedding, expected.embedding) and torch.allclose(got.latents, expected.latents)
    angles = torch.tensor([20.0])
    cond = loaded.view_condition(got, angles, angles)
    assert torch.allclose(cond.context, zero123.view_condition(expected, angles, angles).context)
    noisy = torch.randn(1, 4, 8, 8)
    assert torch.allclose(loaded.predict_noise(noisy, 300, cond), zero123.predict_noise(noisy, 300, cond), atol=1e-6)
    assert all(not p.requires_grad for p in loaded.unet.parameters())


def test_missing_folder_is_unavailable_and_builds_nothing(tmp_path, no_network, caplog):
    config = _config(tmp_path / "nowhere")
    ok, reason = available(config)
    assert not ok and "nowhere" in reason and "no such folder" in reason
    with caplog.at_level(logging.WARNING):
        assert build_guidance(config) is None
    assert "nowhere" in caplog.text


def test_uncached_model_id_is_unavailable_offline(tmp_path, no_network):
    config = _config("scene4d-tests/no-such-model", cache_dir=str(tmp_path))
    ok, reason = available(config)
    assert not ok and "not in" in reason and "scene4d-tests/no-such-model" in reason
    config.allow_download = True
    assert available(config)[0]  # a download would be allowed; nothing is fetched by asking


def test_off_builds_nothing_and_says_so():
    assert available(GuidanceConfig()) == (False, "guidance is off (guidance.kind=off)")
    assert build_guidance(GuidanceConfig()) is None


def test_incomplete_folder_names_the_missing_component(zero123_folder, tmp_path, no_network):
    for name in ("unet", "vae", "scheduler", "feature_extractor"):
        (tmp_path / name).symlink_to(zero123_folder / name)
    ok, reason = available(_config(tmp_path))
    assert not ok and "image_encoder/config.json is missing" in reason


@pytest.mark.parametrize("component, key, value, model_class", [
    ("unet", "layers_per_block", 2, "UNet2DConditionModel"),  # differently shaped parameters
    ("image_encoder", "num_hidden_layers", 2, "CLIPVisionModelWithProjection"),  # parameters missing from the file
])
def test_weights_that_do_not_match_the_config_are_an_error(zero123_folder, tmp_path, no_network, component, key,
                                                           value, model_class):
    for child in zero123_folder.iterdir():
        if child.name != component:
            (tmp_path / child.name).symlink_to(child)
    (tmp_path / component).mkdir()
    for child in (zero123_folder / component).iterdir():
        if child.name != "config.json":
            (tmp_path / component / child.name).symlink_to(child)
    config = json.loads((zero123_folder / component / "config.json").read_text())
    config[key] = value  # the saved weights have one
    (tmp_path / component / "config.json").write_text(json.dumps(config))
    assert available(_config(tmp_path))[0]  # the layout is complete; only loading can tell
    with pytest.raises(InputError, match=f"weights do not match {model_class}"):
        build_guidance(_config(tmp_path))
