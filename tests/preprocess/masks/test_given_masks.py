"""User-given masks: the three DAVIS layouts, matching to frames by stem or order, resizing, and bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from preprocess.masks.given import load_given_masks
from preprocess.video import VideoConfig, load_frames
from scene4d.contracts.frames import Frames
from scene4d.errors import InputError


def _frames_folder(path, stems, size=(32, 24)):
    path.mkdir()
    rng = np.random.default_rng(0)
    for stem in stems:
        cv2.imwrite(str(path / f"{stem}.jpg"), rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    return path


def _video_frames(num_frames, size=(32, 24)):
    images = np.zeros((num_frames, size[1], size[0], 3), np.uint8)
    return Frames(images=images, timestamps=np.arange(num_frames) / 30.0, source="clip.mp4")


def _box(size, x0, y0, x1, y1, value=255):
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[y0:y1, x0:x1] = value
    return mask


def test_per_object_folders_match_frames_by_stem_with_stride(tmp_path):
    frames = load_frames(_frames_folder(tmp_path / "frames", [f"img_{i:03d}" for i in range(10, 16)]),
                         VideoConfig(stride=2))
    masks = tmp_path / "masks"
    for object_dir, box in (("001", (2, 2, 8, 8)), ("003", (20, 10, 30, 20))):
        (masks / object_dir).mkdir(parents=True)
        for stem in ("img_012", "img_013"):
            cv2.imwrite(str(masks / object_dir / f"{stem}.png"), _box((32, 24), *box, value=1))
    given = load_given_masks(masks, frames)
    # frames kept: img_010, img_012, img_014 -> img_012 is t=1, img_013 was skipped by the stride
    assert given.frames.tolist() == [1]
    assert given.object_ids == [1, 3] and given.names == ["001", "003"]
    assert (given.labels[0] == 1).sum() == 36 and (given.labels[0] == 3).sum() == 100
    assert given.labels[0, 5, 5] == 1 and given.labels[0, 15, 25] == 3
    assert not given.covers(frames.num_frames)


def test_palette_png_gives_one_object_per_index_and_resizes_nearest(tmp_path):
    frames = _video_frames(3, size=(32, 24))
    masks = tmp_path / "masks"
    masks.mkdir()
    for t in range(3):
        indices = np.zeros((48, 64), np.uint8)
        indices[0:10, 0:10] = 2
        indices[20:40, 30:60] = 5
        image = Image.fromarray(indices, mode="P")
        image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9, 200, 100, 0] + [0] * 750)
        image.save(masks / f"{t:05d}.png")
    given = load_given_masks(masks, frames)
    assert given.object_ids == [2, 5]
    assert given.covers(3)
    assert given.labels.shape == (3, 24, 32)
    assert set(np.unique(given.labels)) == {0, 2, 5}
    assert (given.labels[0] == 2).sum() == 25 and (given.labels[0] == 5).sum() == 150


def test_single_object_gray_masks_any_nonzero_by_order(tmp_path):
    frames = _video_frames(4)
    masks = tmp_path / "masks"
    masks.mkdir()
    for t in range(2):
        cv2.imwrite(str(masks / f"m{t}.png"), _box((32, 24), 4, 4, 10, 12, value=7))
    given = load_given_masks(masks, frames)
    assert given.object_ids == [1] and given.frames.tolist() == [0, 1]
    assert (given.labels == 1).sum(axis=(1, 2)).tolist() == [48, 48]


def test_more_mask_frames_than_video_frames(tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    for t in range(12):
        cv2.imwrite(str(masks / f"{t:05d}.png"), _box((32, 24), 0, 0, 4, 4))
    with pytest.raises(InputError, match="masks: 12 frames, video has 11"):
        load_given_masks(masks, _video_frames(11))


def test_different_aspect_ratio(tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    cv2.imwrite(str(masks / "00000.png"), _box((40, 40), 0, 0, 4, 4))
    with pytest.raises(InputError, match="40x40, video frames are 32x24"):
        load_given_masks(masks, _video_frames(2))


def test_object_without_pixels(tmp_path):
    masks = tmp_path / "masks"
    for object_dir, value in (("1", 255), ("2", 0)):
        (masks / object_dir).mkdir(parents=True)
        cv2.imwrite(str(masks / object_dir / "00000.png"), _box((32, 24), 0, 0, 4, 4, value=value))
    with pytest.raises(InputError, match="object 2 has no pixels"):
        load_given_masks(masks, _video_frames(2))


def test_no_mask_files(tmp_path):
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "notes.txt").write_text("nothing")
    with pytest.raises(InputError, match="no mask images"):
        load_given_masks(tmp_path / "masks", _video_frames(2))


def test_stem_matching_no_frame(tmp_path):
    frames = load_frames(_frames_folder(tmp_path / "frames", ["a", "b", "c"]))
    masks = tmp_path / "masks"
    masks.mkdir()
    for stem in ("a", "zz"):
        cv2.imwrite(str(masks / f"{stem}.png"), _box((32, 24), 0, 0, 4, 4))
    with pytest.raises(InputError, match="zz in .* matches no frame"):
        load_given_masks(masks, frames)


def test_object_folder_missing_a_frame(tmp_path):
    masks = tmp_path / "masks"
    for object_dir, stems in (("1", ("00000", "00001")), ("2", ("00000",))):
        (masks / object_dir).mkdir(parents=True)
        for stem in stems:
            cv2.imwrite(str(masks / object_dir / f"{stem}.png"), _box((32, 24), 0, 0, 4, 4))
    with pytest.raises(InputError, match="object folder 2 has no mask for frame 00001"):
        load_given_masks(masks, _video_frames(3))
