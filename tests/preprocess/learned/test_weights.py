import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from preprocess.learned.weights import (WeightsUnavailable, from_pretrained_strict, load_state_dict_strict,
                                        locate_file, locate_pretrained, read_state_dict)

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, make_depth_anything):
    model, processor = make_depth_anything()
    folder = tmp_path_factory.mktemp("depth_anything")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model, folder


def _fake_hub_cache(root, repo_id, files):
    """The Hugging Face cache layout: models--org--name/{refs/main, snapshots/<commit>/...}."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for source in files:
        shutil.copy(source, snapshot / source.name)
    return snapshot


def test_local_folder_is_used_as_is(saved_model):
    _, folder = saved_model
    assert locate_pretrained(str(folder)) == folder


def test_model_id_is_found_in_the_cache_without_network(saved_model, tmp_path):
    _, folder = saved_model
    snapshot = _fake_hub_cache(tmp_path, "someone/tiny-depth", folder.iterdir())
    assert locate_pretrained("someone/tiny-depth", cache_dir=str(tmp_path)) == snapshot


def test_model_id_missing_from_the_cache_says_so(tmp_path):
    with pytest.raises(WeightsUnavailable, match="someone/absent is not in .*allow the download"):
        locate_pretrained("someone/absent", cache_dir=str(tmp_path))


@pytest.mark.parametrize("remove, message", [("config.json", "config.json is missing"),
                                             ("model.safetensors", "no weights file")])
def test_incomplete_folder_is_refused(saved_model, tmp_path, remove, message):
    _, folder = saved_model
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / remove).unlink()
    with pytest.raises(WeightsUnavailable, match=message):
        locate_pretrained(str(copy))


def test_paths_that_are_neither_folder_nor_id(tmp_path):
    with pytest.raises(WeightsUnavailable, match="no such folder"):
        locate_pretrained(str(tmp_path / "nothing" / "here"))
    with pytest.raises(WeightsUnavailable, match="no checkpoint configured"):
        locate_pretrained("")


def test_strict_loading_round_trip_and_missing_or_unexpected_keys(saved_model, tmp_path):
    from transformers import DepthAnythingForDepthEstimation

    model, folder = saved_model
    loaded = from_pretrained_strict(DepthAnythingForDepthEstimation, folder)
    assert not loaded.training
    for (name, original), (_, restored) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(restored, original, rtol=0, atol=0, msg=name)

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    weights = load_file(broken / "model.safetensors")
    removed = sorted(weights)[0]
    del weights[removed]
    weights["head.extra.weight"] = torch.zeros(2)
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(WeightsUnavailable, match=rf"missing keys: 1 \({removed}\).*unexpected keys: 1"):
        from_pretrained_strict(DepthAnythingForDepthEstimation, broken)


def test_state_dict_file_strict_loading(tmp_path):
    module = torch.nn.Linear(3, 2)
    path = tmp_path / "weights.pth"
    torch.save({"model": module.state_dict()}, path)
    state = read_state_dict(path)
    assert set(state) == {"weight", "bias"}
    target = torch.nn.Linear(3, 2)
    load_state_dict_strict(target, state, str(path))
    torch.testing.assert_close(target.weight, module.weight)

    with pytest.raises(WeightsUnavailable, match=r"missing keys: 1 \(bias\)"):
        load_state_dict_strict(torch.nn.Linear(3, 2), {"weight": state["weight"]}, str(path))
    with pytest.raises(WeightsUnavailable, match=r"unexpected keys: 1 \(extra\)"):
        load_state_dict_strict(torch.nn.Linear(3, 2), {**state, "extra": torch.zeros(1)}, str(path))
    with pytest.raises(WeightsUnavailable, match="do not match Linear"):
        load_state_dict_strict(torch.nn.Linear(4, 2), state, str(path))


def test_unreadable_state_dict(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailable, match="cannot read a state dict"):
        read_state_dict(path)


def test_single_file_from_path_or_cache(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"w": torch.zeros(1)}, path)
    assert locate_file(str(path), "ignored.pth") == path
    cache = tmp_path / "cache"
    snapshot = _fake_hub_cache(cache, "someone/tracker", [path])
    assert locate_file("someone/tracker", "ckpt.pth", cache_dir=str(cache)) == snapshot / "ckpt.pth"
    with pytest.raises(WeightsUnavailable, match="someone/tracker/other.pth is not in"):
        locate_file("someone/tracker", "other.pth", cache_dir=str(cache))
