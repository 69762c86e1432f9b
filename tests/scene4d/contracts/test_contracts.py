import json

import numpy as np
import pytest

from scene4d.contracts.cameras import Cameras
from scene4d.contracts.depth import DepthMaps
from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks
from scene4d.contracts.tracks import PointTracks
from scene4d.errors import InputError


def _frames(t=3, h=8, w=10):
    rng = np.random.default_rng(0)
    return Frames(images=rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
                  timestamps=np.arange(t) / 25.0, source="clip.mp4", source_size=(20, 16), fps=25.0)


def _cameras(t=3):
    Ks = np.tile(np.array([[50.0, 0, 5], [0, 50.0, 4], [0, 0, 1]]), (t, 1, 1))
    viewmats = np.tile(np.eye(4), (t, 1, 1))
    viewmats[:, 0, 3] = np.arange(t) * 0.1
    return Cameras(Ks=Ks, viewmats=viewmats, width=10, height=8, method="fixed", notes="test")


def _masks(t=3):
    masks = np.zeros((2, t, 8, 10), dtype=bool)
    masks[0, :, 1:4, 1:4] = True
    masks[1, 1:, 5:7, 6:9] = True  # absent in frame 0
    return ObjectMasks(masks=masks, object_ids=[1, 3], names=["kid", "ball"], method="given")


def test_frames_round_trip(tmp_path):
    frames = _frames()
    frames.save(tmp_path / "frames")
    loaded = Frames.load(tmp_path / "frames")
    assert np.array_equal(loaded.images, frames.images)
    assert np.allclose(loaded.timestamps, frames.timestamps)
    assert loaded.source_size == (20, 16) and loaded.fps == 25.0
    assert np.array_equal(loaded.frame_indices, [0, 1, 2])


@pytest.mark.parametrize("kwargs, message", [
    (dict(images=np.zeros((0, 4, 4, 3), np.uint8), timestamps=np.zeros(0)), "no frames"),
    (dict(images=np.zeros((2, 4, 4), np.uint8), timestamps=np.zeros(2)), r"expected images \(T, H, W, 3\)"),
    (dict(images=np.zeros((2, 4, 4, 3), np.float32), timestamps=np.arange(2.0)), "expected uint8"),
    (dict(images=np.zeros((2, 4, 4, 3), np.uint8), timestamps=np.zeros(3)), "2 images but 3 timestamps"),
    (dict(images=np.zeros((2, 4, 4, 3), np.uint8), timestamps=np.ones(2)), "not strictly increasing"),
])
def test_frames_validation_names_the_problem(kwargs, message):
    with pytest.raises(InputError, match=message):
        Frames(**kwargs)


def test_cameras_round_trip_and_centres(tmp_path):
    cameras = _cameras()
    cameras.save(tmp_path / "cameras")
    loaded = Cameras.load(tmp_path / "cameras")
    assert np.allclose(loaded.viewmats, cameras.viewmats) and np.allclose(loaded.Ks, cameras.Ks)
    assert loaded.method == "fixed" and (loaded.width, loaded.height) == (10, 8)
    assert np.allclose(loaded.centers[:, 0], -np.arange(3) * 0.1)


def test_cameras_validation():
    cameras = _cameras()
    with pytest.raises(InputError, match="cameras: 3 frames, video has 4"):
        cameras.validate(num_frames=4)
    with pytest.raises(InputError, match="cameras: 10x8, video is 12x8"):
        cameras.validate(size=(12, 8))
    bad = _cameras().viewmats
    bad[1, :3, :3] *= 2.0
    with pytest.raises(InputError, match="not orthonormal"):
        Cameras(Ks=_cameras().Ks, viewmats=bad, width=10, height=8)
    Ks = _cameras().Ks
    Ks[0, 0, 0] = -1
    with pytest.raises(InputError, match="focal lengths must be positive"):
        Cameras(Ks=Ks, viewmats=_cameras().viewmats, width=10, height=8)


def test_masks_round_trip_summary_and_label_map(tmp_path):
    masks = _masks()
    masks.save(tmp_path / "masks")
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["1", "3", "objects.json"]
    loaded = ObjectMasks.load(tmp_path / "masks")
    assert np.array_equal(loaded.masks, masks.masks) and loaded.object_ids == [1, 3]
    summary = json.loads((tmp_path / "masks" / "objects.json").read_text())["objects"]
    assert summary[1] == {"id": 3, "name": "ball", "frames_visible": 2, "mean_area": 6.0}
    labels = masks.label_map()
    assert labels[0, 2, 2] == 1 and labels[1, 6, 7] == 3 and labels[0, 6, 7] == 0


def test_masks_validation_messages():
    masks = _masks()
    with pytest.raises(InputError, match="masks: 3 frames, video has 11"):
        masks.validate(num_frames=11)
    with pytest.raises(InputError, match="masks: 10x8 pixels, video is 20x16"):
        masks.validate(size=(20, 16))
    empty = np.zeros((1, 2, 4, 4), bool)
    with pytest.raises(InputError, match="object 5 has no pixels"):
        ObjectMasks(masks=empty, object_ids=[5])
    with pytest.raises(InputError, match="distinct and >= 1"):
        ObjectMasks(masks=np.ones((1, 2, 4, 4), bool), object_ids=[0])


def test_depth_round_trip_and_validation(tmp_path):
    depth = DepthMaps(depth=np.full((2, 4, 5), 3.0), confidence=np.ones((2, 4, 5)), method="scene-prior",
                      metric=False, notes="ground plane")
    depth.save(tmp_path / "depth")
    loaded = DepthMaps.load(tmp_path / "depth")
    assert np.array_equal(loaded.depth, depth.depth) and loaded.notes == "ground plane"
    with pytest.raises(InputError, match="non-positive depth where confidence > 0"):
        DepthMaps(depth=np.zeros((1, 2, 2)), confidence=np.ones((1, 2, 2)))
    with pytest.raises(InputError, match="depth: 5x4 pixels, video is 6x4"):
        depth.validate(size=(6, 4))
    # Unknown depth (confidence 0) may be anything finite.
    DepthMaps(depth=np.zeros((1, 2, 2)), confidence=np.zeros((1, 2, 2)))


def test_tracks_round_trip_select_and_validation(tmp_path):
    tracks = PointTracks(tracks=np.random.default_rng(0).random((4, 3, 2)) * 10,
                         visibility=np.ones((4, 3), bool), labels=np.array([0, 1, 1, 2]), method="flow")
    tracks.save(tmp_path / "tracks")
    loaded = PointTracks.load(tmp_path / "tracks")
    assert np.allclose(loaded.tracks, tracks.tracks) and loaded.labels.tolist() == [0, 1, 1, 2]
    assert loaded.of(1).num_tracks == 2
    with pytest.raises(InputError, match="tracks: 3 frames, video has 4"):
        tracks.validate(num_frames=4)
    with pytest.raises(InputError, match="4 tracks but 3 labels"):
        PointTracks(tracks=tracks.tracks, visibility=tracks.visibility, labels=np.zeros(3))


def test_failed_save_leaves_previous_output_intact(tmp_path, monkeypatch):
    frames = _frames()
    frames.save(tmp_path / "frames")
    before = sorted(p.name for p in (tmp_path / "frames").iterdir())

    def broken_imwrite(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("scene4d.contracts.frames.cv2.imwrite", broken_imwrite)
    with pytest.raises(OSError, match="disk full"):
        _frames(t=5).save(tmp_path / "frames")
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]  # no temporary folder left behind


def test_take_frames_keeps_those_frames_of_every_artefact():
    frames, cameras, masks = _frames(t=4), _cameras(t=4), _masks(t=4)
    depth = DepthMaps(np.arange(4 * 8 * 10, dtype=np.float32).reshape(4, 8, 10) + 1, np.ones((4, 8, 10)))
    keep = [0, 2, 3]
    taken = frames.take_frames(keep)
    assert np.array_equal(taken.images, frames.images[keep]) and np.array_equal(taken.frame_indices, [0, 2, 3])
    assert np.array_equal(taken.timestamps, frames.timestamps[keep])
    assert np.array_equal(cameras.take_frames(keep).viewmats, cameras.viewmats[keep])
    assert np.array_equal(cameras.take_frames(keep).Ks, cameras.Ks[keep])
    assert np.array_equal(masks.take_frames(keep).masks, masks.masks[:, keep])
    assert masks.take_frames(keep).object_ids == masks.object_ids
    assert np.array_equal(depth.take_frames(keep).depth, depth.depth[keep])
    assert frames.num_frames == 4  # the originals are unchanged
