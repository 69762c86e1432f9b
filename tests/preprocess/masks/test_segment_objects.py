"""The stage entry point: backend choice, given and propagated masks, no-object result, contact sheet."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from preprocess.masks.config import MasksConfig
from preprocess.masks.contact_sheet import contact_sheet_masks, object_color
from preprocess.masks.segment import LearnedSegmenter, segment_objects
from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks
from scene4d.errors import InputError


def _frames(images):
    return Frames(images=images, timestamps=np.arange(len(images)) / 30.0, source="clip.mp4")


def _write_masks(folder, labels, frames_to_write):
    folder.mkdir()
    for t in frames_to_write:
        cv2.imwrite(str(folder / f"{t:05d}.png"), (labels[t] == 1).astype(np.uint8) * 255)
    return folder


def test_given_masks_for_every_frame_are_used_as_they_are(tmp_path, synthetic_clip):
    images, labels = synthetic_clip(4, (64, 48), (0.0, 0.0), [("disc", (20, 20), (2.0, 0.0), 8)])
    folder = _write_masks(tmp_path / "masks", labels, range(4))
    masks, backend, reason = segment_objects(_frames(images), MasksConfig(), masks_dir=folder)
    assert backend == "masks" and masks.method == "given" and "every frame" in reason
    assert np.array_equal(masks.of(1), labels == 1)


def test_first_frame_mask_is_propagated(tmp_path, synthetic_clip):
    images, labels = synthetic_clip(8, (128, 96), (1.0, 0.0), [("disc", (40, 48), (3.0, 0.0), 16)])
    folder = _write_masks(tmp_path / "masks", labels, [0])
    masks, backend, reason = segment_objects(_frames(images), MasksConfig(backend="masks"), masks_dir=folder)
    assert masks.method == "given+propagated" and "1 of 8 frames" in reason
    truth = labels[7] == 1
    assert (masks.of(1)[7] & truth).sum() / (masks.of(1)[7] | truth).sum() > 0.9


def test_auto_without_masks_runs_motion_and_reports_no_object(synthetic_clip):
    images, _ = synthetic_clip(6, (96, 72), (1.0, 1.0), [])
    masks, backend, reason = segment_objects(_frames(images), MasksConfig())
    assert masks is None and backend == "motion"
    assert "no independently moving object" in reason


def test_auto_prefers_an_available_learned_backend(synthetic_clip):
    images, labels = synthetic_clip(3, (64, 48), (0.0, 0.0), [("disc", (20, 20), (2.0, 0.0), 8)])
    result = ObjectMasks(masks=(labels == 1)[None], object_ids=[1], method="sam2")
    learned = {"sam": LearnedSegmenter(lambda: (False, "no checkpoint"), lambda f: (None, "unused")),
               "sam2": LearnedSegmenter(lambda: (True, "checkpoint found"), lambda f: (result, "1 object"))}
    masks, backend, reason = segment_objects(_frames(images), MasksConfig(), learned=learned)
    assert backend == "sam2" and masks is result and "sam2 weights are available" in reason
    with pytest.raises(InputError, match="masks.backend=sam: no checkpoint"):
        segment_objects(_frames(images), MasksConfig(backend="sam"), learned=learned)


def test_bad_backend_choices(synthetic_clip):
    images, _ = synthetic_clip(2, (32, 32), (0.0, 0.0), [])
    with pytest.raises(InputError, match="must be one of"):
        segment_objects(_frames(images), MasksConfig(backend="magic"))
    with pytest.raises(InputError, match="needs a mask folder"):
        segment_objects(_frames(images), MasksConfig(backend="masks"))
    with pytest.raises(InputError, match="sam2 is not available"):
        segment_objects(_frames(images), MasksConfig(backend="sam2"))


def test_contact_sheet_tints_objects_in_their_colour():
    images = np.full((5, 40, 60, 3), 100, np.uint8)
    mask = np.zeros((1, 5, 40, 60), bool)
    mask[0, :, 5:15, 40:55] = True
    sheet = contact_sheet_masks(_frames(images), ObjectMasks(masks=mask, object_ids=[3]), num_frames=4,
                                columns=2, tile_long_side=60)
    assert sheet.shape == (80, 120, 3)
    expected = (0.5 * 100 + 0.5 * object_color(3)).astype(np.uint8)
    np.testing.assert_allclose(sheet[9, 44], expected, atol=1)
    np.testing.assert_array_equal(sheet[30, 10], [100, 100, 100])
    plain = contact_sheet_masks(_frames(images), None, num_frames=2, columns=2, tile_long_side=60)
    assert plain.shape == (40, 120, 3) and plain[30, 10].tolist() == [100, 100, 100]
