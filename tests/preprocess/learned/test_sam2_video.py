import shutil
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from preprocess.learned.prompts import parse_prompts
from preprocess.learned.sam2_video import (Sam2VideoBackendConfig, Sam2VideoTracker, available, build_sam2_video,
                                           track_objects_sam2)
from preprocess.learned.weights import WeightsUnavailable
from scene4d.contracts.frames import Frames
from scene4d.errors import InputError

NUM_FRAMES, HEIGHT, WIDTH = 3, 24, 40
# SAM2 resizes every frame to 64 x 64 (no aspect preservation), so prompts scale per axis.
SCALE = np.array([64 / WIDTH, 64 / HEIGHT])


@pytest.fixture(scope="module")
def tiny(make_sam2_video):
    return make_sam2_video()


@pytest.fixture(scope="module")
def clip(make_frames):
    images = make_frames(NUM_FRAMES, HEIGHT, WIDTH, seed=4)
    images[1] = np.roll(images[1], 2, axis=1)
    images[2] = np.roll(images[2], 4, axis=1)
    return Frames(images=images, timestamps=np.arange(NUM_FRAMES) / 10.0)


@contextmanager
def object_score(model, bias: float):
    """Force SAM2's object-presence logit (its head's output bias) to a value, restoring it afterwards."""
    parameter = model.mask_decoder.pred_obj_score_head.proj_out.bias
    saved = parameter.detach().clone()
    with torch.no_grad():
        parameter.fill_(bias)
    try:
        yield
    finally:
        with torch.no_grad():
            parameter.copy_(saved)


def _prompts():
    return parse_prompts({"objects": [{"id": 7, "name": "dog", "frame": 1, "points": [[10.5, 4.5]]},
                                      {"id": 3, "frame": 1, "box": [2, 1, 6, 4]}]})


def test_prompts_reach_the_model_in_sam2_coordinates(tiny, clip):
    model, processor = tiny
    seen = []
    hook = model.prompt_encoder.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append({k: v.clone() for k, v in kwargs.items() if v is not None}),
        with_kwargs=True)
    try:
        Sam2VideoTracker(model, processor).track(clip.images, _prompts())
    finally:
        hook.remove()
    np.testing.assert_allclose(seen[0]["input_points"].reshape(-1, 2).numpy(), [[10, 4] * SCALE], rtol=1e-6)
    np.testing.assert_array_equal(seen[0]["input_labels"].reshape(-1).numpy(), [1])
    # A box enters as its two corners with SAM2's corner labels 2 and 3.
    np.testing.assert_allclose(seen[1]["input_points"].reshape(-1, 2).numpy(), [[2, 1] * SCALE, [5, 3] * SCALE],
                               rtol=1e-6)
    np.testing.assert_array_equal(seen[1]["input_labels"].reshape(-1).numpy(), [2, 3])


def test_every_frame_is_reached_forward_and_backward_at_the_frame_size(tiny, clip):
    model, processor = tiny
    # With every logit above the threshold, a frame the propagation skipped would stay False.
    dog, box = _prompts()
    box.frame = 2
    everything = Sam2VideoTracker(model, processor, mask_threshold=-1e9).track(clip.images, [dog, box])
    assert everything.shape == (2, NUM_FRAMES, HEIGHT, WIDTH) and everything.all()


def test_objects_keep_their_ids_and_rows(tiny, clip):
    """Objects are tracked independently, so each row must equal that object's masks tracked alone."""
    model, processor = tiny
    tracker = Sam2VideoTracker(model, processor)
    dog, box = _prompts()
    with object_score(model, 10.0):
        together = track_objects_sam2(clip, [box, dog], Sam2VideoBackendConfig(), tracker)
        alone = [tracker.track(clip.images, [p])[0] for p in (box, dog)]
    assert together.object_ids == [3, 7] and together.names == ["object_3", "dog"] and together.method == "sam2"
    assert not np.array_equal(alone[0], alone[1])
    np.testing.assert_array_equal(together.masks[0], alone[0])
    np.testing.assert_array_equal(together.masks[1], alone[1])


def test_absent_objects_give_empty_masks(tiny, clip):
    model, processor = tiny
    with object_score(model, -10.0), pytest.raises(InputError, match="object 7 has no pixels in any frame"):
        track_objects_sam2(clip, _prompts(), Sam2VideoBackendConfig(), Sam2VideoTracker(model, processor))


def test_round_trip_and_strict_loading(tiny, clip, tmp_path):
    model, processor = tiny
    folder = tmp_path / "sam2"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    ok, reason = available(Sam2VideoBackendConfig(checkpoint=str(folder)))
    assert ok and str(folder) in reason
    loaded = build_sam2_video(Sam2VideoBackendConfig(checkpoint=str(folder), device="cpu", mask_threshold=-1.0))
    images, prompts = clip.images[1:], parse_prompts({"objects": [{"id": 1, "points": [[10.5, 4.5]]}]})
    expected = Sam2VideoTracker(model, processor, mask_threshold=-1.0).track(images, prompts)
    np.testing.assert_array_equal(loaded.track(images, prompts), expected)

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    weights = load_file(broken / "model.safetensors")
    del weights["mask_decoder.pred_obj_score_head.proj_out.bias"]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(WeightsUnavailable, match="missing keys: 1 .mask_decoder.pred_obj_score_head.proj_out.bias"):
        build_sam2_video(Sam2VideoBackendConfig(checkpoint=str(broken), device="cpu"))


def test_unavailable_without_weights(tmp_path):
    ok, reason = available(Sam2VideoBackendConfig(cache_dir=str(tmp_path)))
    assert not ok and "facebook/sam2.1-hiera-tiny is not in" in reason
    with pytest.raises(WeightsUnavailable, match="not in"):
        build_sam2_video(Sam2VideoBackendConfig(cache_dir=str(tmp_path)))


def test_prompts_outside_the_clip_are_refused(tiny, clip):
    prompts = parse_prompts({"objects": [{"id": 1, "frame": 5, "points": [[1.5, 1.5]]}]})
    with pytest.raises(InputError, match="frame 5, the clip has 3 frames"):
        track_objects_sam2(clip, prompts, Sam2VideoBackendConfig(), Sam2VideoTracker(*tiny))
