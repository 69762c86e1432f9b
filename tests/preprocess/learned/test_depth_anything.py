import numpy as np
import pytest

from preprocess.learned.depth_anything import (DepthAnythingBackendConfig, DepthAnythingPredictor, available,
                                               build_depth_anything, estimate_depth_anything)
from preprocess.learned.weights import WeightsUnavailable
from scene4d.contracts.frames import Frames

HEIGHT, WIDTH = 20, 30


@pytest.fixture(scope="module")
def tiny(make_depth_anything):
    return make_depth_anything()


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    model, processor = tiny
    folder = tmp_path_factory.mktemp("depth_anything")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip(make_frames):
    images = make_frames(3, HEIGHT, WIDTH, seed=1)
    return Frames(images=images, timestamps=np.arange(3) / 10.0)


def test_prediction_is_per_frame_at_the_frame_size_and_batch_independent(tiny, clip):
    model, processor = tiny
    single = DepthAnythingPredictor(model, processor, batch_size=1).predict(clip.images)
    batched = DepthAnythingPredictor(model, processor, batch_size=2).predict(clip.images)
    assert single.shape == (3, HEIGHT, WIDTH) and single.dtype == np.float32
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)
    assert np.ptp(single[0]) > 0


def test_image_processor_does_the_resizing(tiny, clip):
    """The network sees the processor's aspect-preserving, multiple-of-14 resize, not a square guess."""
    model, processor = tiny
    seen = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["pixel_values"].shape),
                                           with_kwargs=True)
    try:
        DepthAnythingPredictor(model, processor).predict(clip.images[:1])
    finally:
        hook.remove()
    expected = processor(images=[clip.images[0]], return_tensors="pt")["pixel_values"].shape
    assert seen == [expected] and expected[-2:] == (14, 28)


def test_build_from_saved_folder_round_trip(tiny, saved, clip):
    model, processor = tiny
    predictor = build_depth_anything(DepthAnythingBackendConfig(checkpoint=str(saved), device="cpu"))
    assert not predictor.metric
    np.testing.assert_allclose(predictor.predict(clip.images[:1]),
                               DepthAnythingPredictor(model, processor).predict(clip.images[:1]), rtol=1e-6)


def test_strict_loading_refuses_a_missing_parameter(saved, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(saved, broken)
    weights = load_file(broken / "model.safetensors")
    del weights["head.conv1.weight"]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(WeightsUnavailable, match=r"missing keys: 1 \(head.conv1.weight\)"):
        build_depth_anything(DepthAnythingBackendConfig(checkpoint=str(broken), device="cpu"))


def test_available_explains_what_is_missing(saved, tmp_path):
    ok, reason = available(DepthAnythingBackendConfig(checkpoint=str(saved)))
    assert ok and str(saved) in reason
    ok, reason = available(DepthAnythingBackendConfig(checkpoint="depth-anything/absent", cache_dir=str(tmp_path)))
    assert not ok and "depth-anything/absent is not in" in reason
    ok, reason = available(DepthAnythingBackendConfig(checkpoint="depth-anything/absent", cache_dir=str(tmp_path),
                                                      allow_download=True))
    assert ok and "will be downloaded" in reason


def test_estimate_recovers_sparse_depths_exactly(tiny, clip):
    """Sparse depths made from the model's own disparity with a known map are reproduced everywhere."""
    model, processor = tiny
    predictor = DepthAnythingPredictor(model, processor)
    disparity = predictor.disparity(clip.images)
    scale, shift = 2.0 / np.ptp(disparity), 0.5 - 2.0 * disparity.min() / np.ptp(disparity)
    truth = 1.0 / (scale * disparity + shift)
    sparse = np.zeros_like(truth)
    sparse[:, ::3, ::3] = truth[:, ::3, ::3]

    result = estimate_depth_anything(clip, DepthAnythingBackendConfig(), sparse, predictor=predictor)
    assert result.metric and result.method == "depth-anything"
    assert result.depth.shape == (3, HEIGHT, WIDTH)
    assert result.confidence.min() == 1.0
    np.testing.assert_allclose(result.depth, truth, rtol=1e-4)


def test_estimate_without_sparse_is_relative_and_positive(tiny, clip):
    model, processor = tiny
    result = estimate_depth_anything(clip, DepthAnythingBackendConfig(), predictor=DepthAnythingPredictor(model,
                                                                                                          processor))
    assert not result.metric
    trusted = result.confidence > 0
    assert trusted.mean() > 0.5 and (result.depth[trusted] > 0).all()
    # Frame 0 is the anchor, normalised to median disparity 1; far pixels are clamped below the median.
    assert np.median(1.0 / result.depth[0]) == pytest.approx(1.0, rel=1e-5)


def test_metric_model_output_is_depth(make_depth_anything, clip):
    model, processor = make_depth_anything(metric=True)
    predictor = DepthAnythingPredictor(model, processor)
    raw = predictor.predict(clip.images[:1])
    assert predictor.metric and (raw >= 0).all() and raw.max() <= 20.0
    result = estimate_depth_anything(Frames(images=clip.images[:1], timestamps=np.zeros(1)),
                                     DepthAnythingBackendConfig(), predictor=predictor)
    assert result.metric
    trusted = result.confidence > 0
    np.testing.assert_allclose(result.depth[trusted], raw[trusted], rtol=1e-5)


def test_inputs_are_checked(tiny):
    model, processor = tiny
    with pytest.raises(ValueError, match=r"expected \(T, H, W, 3\) uint8"):
        DepthAnythingPredictor(model, processor).predict(np.zeros((2, 8, 8, 3), dtype=np.float32))
