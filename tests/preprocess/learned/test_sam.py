import numpy as np
import pytest
import torch
import torch.nn.functional as F

from preprocess.learned.prompts import parse_prompts
from preprocess.learned.sam import (HfSamSegmenter, SamBackendConfig, SegmentAnythingSegmenter, available, build_sam,
                                    load_segment_anything, segment_prompts)
from preprocess.learned.weights import WeightsUnavailable
from scene4d.contracts.frames import Frames
from scene4d.errors import InputError

HEIGHT, WIDTH = 24, 40
# SAM resizes the longest side to 64: 24 x 40 -> 38 x 64 (rounded), then pads to 64 x 64.
RESIZED = (38, 64)
SCALE = np.array([RESIZED[1] / WIDTH, RESIZED[0] / HEIGHT])


@pytest.fixture(scope="module")
def tiny(make_sam):
    return make_sam()


@pytest.fixture(scope="module")
def image(make_frames):
    return make_frames(1, HEIGHT, WIDTH, seed=2)[0]


def _prompts():
    return parse_prompts({"objects": [
        {"id": 1, "points": [[10.5, 4.5], [30.5, 20.5]], "labels": [1, 0]},
        {"id": 2, "box": [2, 1, 6, 4]},
        {"id": 5, "points": [[20.5, 12.5]], "box": [10, 8, 30, 20]},
    ]})


def _capture_prompts(encoder):
    seen = []

    def hook(module, args, kwargs):
        seen.append((args, kwargs))

    return seen, encoder.register_forward_pre_hook(hook, with_kwargs=True)


def test_prompts_reach_the_model_in_sam_coordinates(tiny, image):
    model, processor = tiny
    seen, hook = _capture_prompts(model.prompt_encoder)
    try:
        HfSamSegmenter(model, processor).segment(image, _prompts())
    finally:
        hook.remove()
    points, labels = seen[0][1]["input_points"], seen[0][1]["input_labels"]
    np.testing.assert_allclose(points[0, 0].numpy(), np.array([[10, 4], [30, 20]]) * SCALE, rtol=1e-6)
    np.testing.assert_array_equal(labels[0, 0].numpy(), [1, 0])
    box = seen[1][1]["input_boxes"]
    np.testing.assert_allclose(box[0, 0].numpy(), np.array([2, 1, 5, 3]) * np.tile(SCALE, 2), rtol=1e-6)
    assert seen[1][1]["input_points"] is None
    assert seen[2][1]["input_points"] is not None and seen[2][1]["input_boxes"] is not None


def test_masks_are_the_best_candidate_resized_to_the_frame(tiny, image):
    """Reference post-processing: upsample to the padded input, crop the padding, resize to the frame."""
    model, processor = tiny
    outputs = []
    hook = model.register_forward_hook(lambda module, args, output: outputs.append(output))
    try:
        masks, scores = HfSamSegmenter(model, processor).segment(image, _prompts())
    finally:
        hook.remove()
    assert masks.shape == (3, HEIGHT, WIDTH) and masks.dtype == bool
    prompt_outputs = [o for o in outputs if o.pred_masks is not None]
    assert len(prompt_outputs) == 3
    for k, output in enumerate(prompt_outputs):
        logits = output.pred_masks[0, 0].float()  # (3, 16, 16) candidates
        best = int(output.iou_scores[0, 0].argmax())
        padded = F.interpolate(logits[None], size=(64, 64), mode="bilinear", align_corners=False)
        cropped = padded[..., :RESIZED[0], :RESIZED[1]]
        full = F.interpolate(cropped, size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False)[0, best]
        np.testing.assert_array_equal(masks[k], (full > 0).numpy())
        assert scores[k] == pytest.approx(float(output.iou_scores[0, 0, best]))


def test_single_mask_mode_and_threshold(tiny, image):
    model, processor = tiny
    everything, _ = HfSamSegmenter(model, processor, multimask=False, mask_threshold=-1e9).segment(image, _prompts())
    nothing, _ = HfSamSegmenter(model, processor, multimask=False, mask_threshold=1e9).segment(image, _prompts())
    assert everything.all() and not nothing.any()


def test_round_trip_through_a_saved_folder(tiny, image, tmp_path):
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert available(SamBackendConfig(checkpoint=str(tmp_path)))[0]
    segmenter = build_sam(SamBackendConfig(checkpoint=str(tmp_path), device="cpu"))
    assert isinstance(segmenter, HfSamSegmenter)
    loaded, _ = segmenter.segment(image, _prompts())
    expected, _ = HfSamSegmenter(model, processor).segment(image, _prompts())
    np.testing.assert_array_equal(loaded, expected)


def test_segment_prompts_uses_each_objects_frame(tiny, make_frames):
    model, processor = tiny
    images = make_frames(2, HEIGHT, WIDTH, seed=3)
    images[1] = 255 - images[1]
    frames = Frames(images=images, timestamps=np.array([0.0, 0.1]))
    prompts = parse_prompts({"objects": [{"id": 4, "name": "ball", "frame": 1, "points": [[5.5, 5.5]]},
                                         {"id": 2, "frame": 0, "box": [0, 0, 20, 12]}]})
    segmenter = HfSamSegmenter(model, processor)
    result = segment_prompts(frames, prompts, SamBackendConfig(), segmenter)
    assert result.object_ids == [4, 2] and result.names == ["ball", "object_2"]
    np.testing.assert_array_equal(result.frames, [1, 0])
    np.testing.assert_array_equal(result.masks[0], segmenter.segment(images[1], prompts[:1])[0][0])
    np.testing.assert_array_equal(result.masks[1], segmenter.segment(images[0], prompts[1:])[0][0])
    annotated, labels = result.label_maps()
    np.testing.assert_array_equal(annotated, [0, 1])
    np.testing.assert_array_equal(labels[0], np.where(result.masks[1], 2, 0))
    np.testing.assert_array_equal(labels[1], np.where(result.masks[0], 4, 0))
    with pytest.raises(InputError, match="frame 1, the clip has 1 frames"):
        segment_prompts(Frames(images=images[:1], timestamps=np.zeros(1)), prompts, SamBackendConfig(), segmenter)


def test_segment_anything_checkpoint_path(make_segment_anything, image):
    sam = make_segment_anything()
    seen, hook = _capture_prompts(sam.prompt_encoder)
    try:
        masks, scores = SegmentAnythingSegmenter(sam).segment(image, _prompts())
    finally:
        hook.remove()
    assert masks.shape == (3, HEIGHT, WIDTH) and scores.shape == (3,)
    points, labels = seen[0][1]["points"]
    np.testing.assert_allclose(points[0].numpy(), np.array([[10, 4], [30, 20]]) * SCALE, rtol=1e-6)
    np.testing.assert_array_equal(labels[0].numpy(), [1, 0])
    np.testing.assert_allclose(seen[1][1]["boxes"].reshape(-1).numpy(), np.array([2, 1, 5, 3]) * np.tile(SCALE, 2),
                               rtol=1e-6)


def test_segment_anything_checkpoint_is_checked(make_segment_anything, tmp_path):
    state = make_segment_anything().state_dict()
    path = tmp_path / "tiny_sam.pth"
    torch.save(state, path)
    with pytest.raises(WeightsUnavailable, match="patch embedding width 16 is none of SAM's ViT-B/L/H"):
        load_segment_anything(path)
    del state["image_encoder.patch_embed.proj.weight"]
    torch.save(state, path)
    with pytest.raises(WeightsUnavailable, match="not a segment-anything checkpoint"):
        load_segment_anything(path)
    assert available(SamBackendConfig(checkpoint=str(path)))[0]


def test_available_without_weights(tmp_path):
    ok, reason = available(SamBackendConfig(checkpoint=str(tmp_path / "missing.pth")))
    assert not ok and "missing.pth: no such file" in reason
    ok, reason = available(SamBackendConfig(checkpoint="facebook/sam-vit-base", cache_dir=str(tmp_path)))
    assert not ok and "facebook/sam-vit-base is not in" in reason
