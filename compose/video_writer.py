"""MP4 videos from RGB frames, frame grids, and colour maps for depth and object-id images.

Videos are H.264 (libx264 through PyAV) in yuv420p, the pixel format every browser and player decodes.
yuv420p stores colour at half resolution, so both sides of the picture must be even: a frame of odd width or
height is padded by repeating its last column or row (the decoded video is then one pixel wider or taller).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from matplotlib import colormaps

from preprocess.masks.contact_sheet import object_color
from scene4d.errors import InputError

# Object-id images: ids >= 1 take the masks' contact-sheet colours; these two mark the rest.
BACKGROUND_ID_COLOR = (96, 96, 96)
EMPTY_ID_COLOR = (0, 0, 0)


class VideoWriter:
    """Write frames one at a time into an mp4 that appears only once complete.

    The video is encoded into a temporary file beside ``path`` and moved over it when the ``with`` block
    ends without an error; on an error the temporary file is removed and ``path`` is left as it was.

    Args:
        path: destination ``.mp4``; its folder is created.
        fps: frame rate, > 0.
        crf: x264 constant rate factor, 0 (lossless luma) to 51; 18 is visually lossless.

    Example:
        >>> with VideoWriter("out.mp4", fps=24) as writer:
        ...     for frame in frames:  # (H, W, 3) uint8
        ...         writer.write(frame)
    """

    def __init__(self, path: str | Path, fps: float, crf: int = 18):
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {crf}")
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.crf = crf
        self.num_frames = 0
        self._size: tuple[int, int] | None = None
        self._container = None
        self._stream = None
        self._tmp: Path | None = None

    def __enter__(self) -> VideoWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        self._tmp = Path(tmp)
        self._container = av.open(tmp, mode="w", format="mp4")
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame; every frame must have the first frame's size."""
        if self._container is None:
            raise RuntimeError("VideoWriter.write called outside its 'with' block")
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise InputError(f"video frame: expected (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        if self._size is None:
            self._size = frame.shape[:2]
            self._stream = self._container.add_stream("libx264", rate=self.fps)
            self._stream.height, self._stream.width = (s + s % 2 for s in self._size)
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self.crf)}
        elif frame.shape[:2] != self._size:
            raise InputError(f"video frame {self.num_frames}: size {frame.shape[1]}x{frame.shape[0]} differs from "
                             f"the first frame's {self._size[1]}x{self._size[0]}")
        padded = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
            self._container.mux(packet)
        self.num_frames += 1

    def __exit__(self, exc_type, exc, traceback) -> None:
        container, self._container = self._container, None
        try:
            if exc_type is None and self.num_frames > 0:
                try:
                    for packet in self._stream.encode(None):
                        container.mux(packet)
                finally:
                    container.close()
                os.replace(self._tmp, self.path)
            else:
                container.close()
        finally:
            self._tmp.unlink(missing_ok=True)
        if exc_type is None and self.num_frames == 0:
            raise InputError(f"video {self.path}: no frames to write")


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, crf: int = 18) -> int:
    """Encode (H, W, 3) uint8 RGB frames (a sequence or an iterator) into an mp4, atomically.

    Returns:
        The number of frames written.
    """
    with VideoWriter(path, fps, crf) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.num_frames


def grid(images: Sequence[np.ndarray], columns: int, fill: int = 0) -> np.ndarray:
    """Tile images row by row into one picture.

    Cells take the size of the largest image; smaller images sit in the top-left corner of their cell and
    missing cells in the last row are filled with ``fill``.

    Args:
        images: (H_i, W_i, 3) uint8 images.
        columns: cells per row, >= 1.

    Returns:
        (rows * H, columns * W, 3) uint8 with ``rows = ceil(len(images) / columns)``.
    """
    if len(images) == 0:
        raise ValueError("grid: expected at least one image")
    if columns < 1:
        raise ValueError(f"grid: columns must be >= 1, got {columns}")
    for image in images:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"grid: expected (H, W, 3) uint8 images, got {image.shape} {image.dtype}")
    cell_h, cell_w = max(i.shape[0] for i in images), max(i.shape[1] for i in images)
    rows = -(-len(images) // columns)
    out = np.full((rows * cell_h, columns * cell_w, 3), fill, np.uint8)
    for k, image in enumerate(images):
        top, left = (k // columns) * cell_h, (k % columns) * cell_w
        out[top:top + image.shape[0], left:left + image.shape[1]] = image
    return out


def side_by_side(images: Sequence[np.ndarray]) -> np.ndarray:
    """Images in one row (see :func:`grid`)."""
    return grid(images, columns=len(images))


def depth_range(depths: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)) -> tuple[float, float]:
    """Near and far depths for colour-mapping a whole video the same way (no flicker between frames).

    Args:
        depths: (..., H, W) depths; values <= 0 or non-finite mean "nothing there" and are ignored.

    Returns:
        ``(near, far)`` percentiles of the valid depths, with ``far > near > 0``; (1, 2) if none is valid.
    """
    valid = depths[np.isfinite(depths) & (depths > 0)]
    if valid.size == 0:
        return 1.0, 2.0
    near, far = np.percentile(valid, percentiles)
    return float(near), float(max(far, near * 1.01))


def colorize_depth(depth: np.ndarray, near: float, far: float, colormap: str = "turbo") -> np.ndarray:
    """Colour-map depth by inverse depth between ``near`` (last colour, red for turbo) and ``far`` (first).

    Inverse depth spreads the colours over near structure instead of spending them on the far backdrop,
    as the depth contact sheets do. Pixels with depth <= 0 or non-finite are black.

    Args:
        depth: (..., H, W) depths.
        near, far: ``0 < near < far``, e.g. from :func:`depth_range`.
        colormap: a matplotlib colour map name.

    Returns:
        (..., H, W, 3) uint8 RGB.
    """
    if not 0 < near < far:
        raise ValueError(f"expected 0 < near < far, got near={near}, far={far}")
    valid = np.isfinite(depth) & (depth > 0)
    inverse = 1.0 / np.clip(np.where(valid, depth, far), near, far)
    position = (inverse - 1.0 / far) / (1.0 / near - 1.0 / far)
    rgb = (colormaps[colormap](position)[..., :3] * 255.0 + 0.5).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def colorize_ids(ids: np.ndarray) -> np.ndarray:
    """Colour an object-id image: ids >= 1 in their contact-sheet colour
    (:func:`preprocess.masks.contact_sheet.object_color`), 0 (background) in ``BACKGROUND_ID_COLOR`` and
    negative ids (nothing rendered) in ``EMPTY_ID_COLOR``.

    Args:
        ids: (..., H, W) integer ids.

    Returns:
        (..., H, W, 3) uint8 RGB.
    """
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids: expected an integer array, got {ids.dtype}")
    rgb = np.empty(ids.shape + (3,), np.uint8)
    rgb[ids < 0] = EMPTY_ID_COLOR
    rgb[ids == 0] = BACKGROUND_ID_COLOR
    for object_id in np.unique(ids[ids > 0]):
        rgb[ids == object_id] = np.round(object_color(int(object_id))).astype(np.uint8)
    return rgb
