import av
import cv2
import numpy as np
import pytest

from preprocess.video import VideoConfig, _rotate, load_frames, resized_size
from scene4d.errors import InputError

WIDTH, HEIGHT, FPS, COUNT = 64, 48, 25, 12


def _frame(i):
    image = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    image[10:26, 4 * i:4 * i + 16] = (230, 60, 20)  # a square moving right 4 px per frame
    return image


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(COUNT):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_frame(i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def folder(tmp_path):
    for i in range(COUNT):  # names that sort wrongly as plain strings
        cv2.imwrite(str(tmp_path / f"f{i}.png"), cv2.cvtColor(_frame(i), cv2.COLOR_RGB2BGR))
    return tmp_path


def _square_x(image):
    red = (image[..., 0] > 150) & (image[..., 2] < 100)
    return np.nonzero(red.any(axis=0))[0].min()


def test_video_decodes_all_frames_with_timestamps(clip):
    frames = load_frames(clip)
    assert frames.images.shape == (COUNT, HEIGHT, WIDTH, 3)
    assert np.allclose(frames.timestamps, np.arange(COUNT) / FPS)
    assert frames.fps == FPS and frames.source_size == (WIDTH, HEIGHT)
    assert [_square_x(im) for im in frames.images] == [4 * i for i in range(COUNT)]


def test_stride_max_frames_time_range_and_resize(clip):
    frames = load_frames(clip, VideoConfig(stride=3, max_frames=3, start_s=2 / FPS, long_side=32))
    assert frames.frame_indices.tolist() == [2, 5, 8]
    assert np.allclose(frames.timestamps, np.array([2, 5, 8]) / FPS)
    assert frames.images.shape == (3, 24, 32, 3)  # aspect ratio kept
    assert [_square_x(im) for im in frames.images] == [4, 10, 16]  # 8, 20, 32 at half size
    ended = load_frames(clip, VideoConfig(end_s=4 / FPS))
    assert ended.frame_indices.tolist() == [0, 1, 2, 3]


def test_folder_natural_order_and_stride(folder):
    frames = load_frames(folder, VideoConfig(stride=5, folder_fps=10))
    assert frames.frame_indices.tolist() == [0, 5, 10]
    assert [_square_x(im) for im in frames.images] == [0, 20, 40]
    assert np.allclose(frames.timestamps, [0.0, 0.5, 1.0])


def test_resized_size_keeps_aspect():
    assert resized_size(1296, 720, 480) == (480, 267)
    assert resized_size(720, 1296, 480) == (267, 480)
    assert resized_size(100, 50, 0) == (100, 50)


def test_rotation_metadata_is_applied_counter_clockwise():
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 2] = 255  # top-right pixel
    rotated = _rotate(image, 90)
    assert rotated.shape == (3, 2, 3) and rotated[0, 0, 0] == 255  # ends top-left after a CCW quarter turn
    assert _rotate(image, 0) is image


def test_bad_inputs_give_one_line_errors(tmp_path, folder):
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00not a video" * 100)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    cases = [
        (tmp_path / "missing.mp4", VideoConfig(), "does not exist"),
        (tmp_path / "corrupt.mp4", VideoConfig(), "cannot open|cannot decode|no frames"),
        (tmp_path / "notes.txt", VideoConfig(), "not a supported video"),
        (tmp_path / "empty", VideoConfig(), "contains no images"),
        (folder, VideoConfig(stride=0), "stride must be >= 1"),
        (folder, VideoConfig(long_side=100000), "long_side must be 0 or in"),
        (folder, VideoConfig(start_s=100.0), "no images .* fall in the requested time range"),
    ]
    for source, config, message in cases:
        with pytest.raises(InputError, match=message) as info:
            load_frames(source, config)
        assert "\n" not in str(info.value)


def test_folder_with_mixed_sizes_names_the_file(folder):
    cv2.imwrite(str(folder / "f3.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(InputError, match="f3.png is 10x10, f0.png is 64x48"):
        load_frames(folder)


def test_absurd_resolution_is_refused_before_decoding_everything(folder, monkeypatch):
    monkeypatch.setattr("preprocess.video.MAX_DECODED_BYTES", 1000)
    with pytest.raises(InputError, match="lower video.long_side or video.max_frames"):
        load_frames(folder)
