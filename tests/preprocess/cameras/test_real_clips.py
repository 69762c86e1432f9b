"""The camera stage on the shared real clips (slow: run with ``-m slow``)."""

from pathlib import Path

import pytest

from preprocess.cameras.background import background_masks, measure_background
from preprocess.cameras.config import CamerasConfig
from preprocess.cameras.estimate import estimate_camera_motion
from preprocess.video import VideoConfig, load_frames

DATA = Path(__file__).resolve().parents[4] / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason="the shared clips are not on this machine")
def test_real_clips_fixed_slow_and_orbiting_cameras():
    # Static vs slowly moving (the clips' README: 0 px, ~30 px and ~13 px background shift at 480 px).
    for clip, static in (("sam2gallery_05_juggle", True), ("ds4d_kid-football", False), ("sam2_bedroom", False)):
        frames = load_frames(DATA / clip / "frames", VideoConfig(long_side=240))
        motion = measure_background(frames.images, background_masks(frames.num_frames, frames.height,
                                                                     frames.width, None, 0))
        assert (motion.largest_shift_px < 0.5) == static, (clip, motion.largest_shift_px)
    # The orbit reconstructs with COLMAP and explains the background tracks to within a pixel.
    frames = load_frames(DATA / "cotracker_apple" / "frames", VideoConfig(long_side=320))
    estimate = estimate_camera_motion(frames, None, CamerasConfig(mappers=["global"], first_octave=0))
    assert estimate.backend == "colmap-global", estimate.reason
    assert estimate.report["background_reprojection"]["median_px"] <= 1.0
