import numpy as np
import pytest

from preprocess.cameras.config import CamerasConfig
from preprocess.cameras.intrinsics import focal_from_fov, fov_from_focal, known_intrinsics


def test_fov_and_focal_are_inverse_and_match_a_hand_computed_value():
    # A 3x4 image: diagonal 5, half-diagonal 2.5; 90 degrees diagonal -> focal 2.5.
    assert focal_from_fov(90.0, 4, 3) == pytest.approx(2.5)
    assert fov_from_focal(focal_from_fov(37.0, 480, 270), 480, 270) == pytest.approx(37.0)


def test_known_intrinsics_scale_with_the_resize_and_fov_gives_a_centred_camera():
    config = CamerasConfig(intrinsics=[1000.0, 1000.0, 640.0, 360.0])
    K = known_intrinsics(config, 480, 270, source_size=(1280, 720))
    np.testing.assert_allclose(K, [[375.0, 0, 240.0], [0, 375.0, 135.0], [0, 0, 1]])
    np.testing.assert_allclose(known_intrinsics(config, 480, 270), [[1000.0, 0, 640], [0, 1000, 360], [0, 0, 1]])
    K = known_intrinsics(CamerasConfig(fov_deg=90.0), 4, 3)
    np.testing.assert_allclose(K, [[2.5, 0, 2.0], [0, 2.5, 1.5], [0, 0, 1]])
    assert known_intrinsics(CamerasConfig(), 4, 3) is None
