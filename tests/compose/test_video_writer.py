import av
import numpy as np
import pytest
from matplotlib import colormaps

from compose.video_writer import (BACKGROUND_ID_COLOR, EMPTY_ID_COLOR, VideoWriter, colorize_depth, colorize_ids,
                                  depth_range, grid, side_by_side, write_video)
from preprocess.masks.contact_sheet import object_color
from scene4d.errors import InputError

COLOURS = [(200, 40, 30), (30, 180, 60), (20, 60, 220), (128, 128, 128)]


def decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])


def test_write_then_decode_counts_size_and_colours(tmp_path):
    frames = (np.full((24, 32, 3), colour, np.uint8) for colour in COLOURS)  # an iterator works
    path = tmp_path / "clip.mp4"
    assert write_video(path, frames, fps=12) == 4
    decoded = decode(path)
    assert decoded.shape == (4, 24, 32, 3)
    means = decoded.reshape(4, -1, 3).mean(axis=1)
    assert np.abs(means - np.array(COLOURS)).max() < 4.0  # yuv420p limited-range round trip
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == 12


def test_odd_sizes_are_padded_by_repeating_the_last_row_and_column(tmp_path):
    frame = np.zeros((17, 33, 3), np.uint8)
    frame[:, :16] = (250, 250, 250)
    frame[:, 16:] = (10, 10, 10)
    path = tmp_path / "odd.mp4"
    write_video(path, [frame, frame], fps=24.0)
    decoded = decode(path)
    assert decoded.shape == (2, 18, 34, 3)
    assert np.abs(decoded[0, :, :12].astype(float) - 250).mean() < 4.0
    assert np.abs(decoded[0, :, 20:].astype(float) - 10).mean() < 4.0  # padding copies the dark last column


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, [np.full((8, 8, 3), 200, np.uint8)], fps=24)
    before = path.read_bytes()

    def broken():
        yield np.zeros((8, 8, 3), np.uint8)
        raise RuntimeError("renderer failed")

    with pytest.raises(RuntimeError, match="renderer failed"):
        write_video(path, broken(), fps=24)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_bad_frames_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], fps=24)
    with pytest.raises(InputError, match="differs from the first frame's 8x6"):
        write_video(tmp_path / "sizes.mp4", [np.zeros((6, 8, 3), np.uint8), np.zeros((6, 10, 3), np.uint8)], 24)
    with pytest.raises(InputError, match=r"\(H, W, 3\) uint8"):
        write_video(tmp_path / "float.mp4", [np.zeros((6, 8, 3), np.float32)], 24)
    with pytest.raises(ValueError, match="fps must be > 0"):
        VideoWriter(tmp_path / "x.mp4", fps=0)
    assert list(tmp_path.iterdir()) == []


def test_grid_and_side_by_side_place_images():
    a = np.full((4, 6, 3), 1, np.uint8)
    b = np.full((2, 3, 3), 2, np.uint8)
    c = np.full((4, 6, 3), 3, np.uint8)
    out = grid([a, b, c], columns=2, fill=9)
    assert out.shape == (8, 12, 3)
    assert (out[:4, :6] == 1).all() and (out[:2, 6:9] == 2).all() and (out[4:, :6] == 3).all()
    assert (out[2:4, 6:] == 9).all() and (out[:2, 9:] == 9).all() and (out[4:, 6:] == 9).all()
    row = side_by_side([a, c])
    assert row.shape == (4, 12, 3) and (row[:, 6:] == 3).all()
    with pytest.raises(ValueError, match="at least one image"):
        grid([], columns=2)


def test_colorize_depth_maps_inverse_depth_and_blacks_out_invalid():
    cmap = colormaps["turbo"]
    depth = np.array([[1.0, 4.0, 2.0, 0.0, np.nan, 10.0]])
    rgb = colorize_depth(depth, near=1.0, far=4.0)
    assert rgb.shape == (1, 6, 3) and rgb.dtype == np.uint8
    expected = lambda position: np.round(np.array(cmap(position)[:3]) * 255)  # noqa: E731
    assert np.array_equal(rgb[0, 0], expected(1.0))  # near: the top of the map
    assert np.array_equal(rgb[0, 1], expected(0.0))  # far
    assert np.array_equal(rgb[0, 2], expected((1 / 2 - 1 / 4) / (1 - 1 / 4)))  # half way in inverse depth
    assert (rgb[0, 3:5] == 0).all()
    assert np.array_equal(rgb[0, 5], expected(0.0))  # beyond far clamps
    with pytest.raises(ValueError, match="0 < near < far"):
        colorize_depth(depth, near=2.0, far=1.0)


def test_depth_range_ignores_invalid_values():
    depths = np.concatenate([np.linspace(1.0, 5.0, 101), [0.0, -1.0, np.inf]])
    near, far = depth_range(depths, percentiles=(0.0, 100.0))
    assert (near, far) == (1.0, 5.0)
    assert depth_range(np.zeros((2, 3))) == (1.0, 2.0)


def test_colorize_ids_uses_the_mask_palette():
    ids = np.array([[-1, 0, 1], [2, 11, 1]])
    rgb = colorize_ids(ids)
    assert np.array_equal(rgb[0, 0], EMPTY_ID_COLOR)
    assert np.array_equal(rgb[0, 1], BACKGROUND_ID_COLOR)
    for (i, j) in ((0, 2), (1, 0), (1, 1), (1, 2)):
        assert np.array_equal(rgb[i, j], np.round(object_color(int(ids[i, j]))))
    assert np.array_equal(rgb[1, 1], rgb[0, 2])  # the palette cycles every 10 ids, as in the contact sheets
    with pytest.raises(ValueError, match="integer"):
        colorize_ids(ids.astype(float))
