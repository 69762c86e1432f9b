import cv2
import numpy as np
import pycolmap
import pytest
import torch
from scipy.spatial.transform import Rotation

from preprocess.cameras.colmap import build_database, quiet_logs, rigid_from_viewmat, viewmat_from_rigid
from preprocess.cameras.config import CamerasConfig
from scene4d.conventions import project_points


def _viewmat(rotvec, translation) -> np.ndarray:
    viewmat = np.eye(4)
    viewmat[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    viewmat[:3, 3] = translation
    return viewmat


def test_pose_round_trips_through_pycolmap():
    viewmat = _viewmat([0.3, -0.2, 0.1], [0.5, -1.0, 2.0])
    np.testing.assert_allclose(viewmat_from_rigid(rigid_from_viewmat(viewmat)), viewmat, atol=1e-12)


def test_pycolmap_projects_like_scene4d():
    """A COLMAP camera + cam_from_world put a world point on the same pixel as scene4d's viewmat + K."""
    viewmat = _viewmat([0.1, 0.4, -0.2], [0.3, 0.2, 4.0])
    camera = pycolmap.Camera.create_from_model_name(1, "PINHOLE", 1.0, 640, 480)
    camera.params = [500.0, 520.0, 321.0, 239.0]
    points = np.random.default_rng(0).uniform(-1, 1, (10, 3))
    rigid = rigid_from_viewmat(viewmat)
    colmap_pixels = np.array([camera.img_from_cam(rigid * p) for p in points])
    K = torch.as_tensor(camera.calibration_matrix())[None]
    ours, _ = project_points(torch.as_tensor(points), torch.as_tensor(viewmat)[None], K)
    np.testing.assert_allclose(colmap_pixels, ours[0].numpy(), atol=1e-9)


@pytest.mark.parametrize("centre", [(32.0, 32.0), (31.25, 29.75)])
def test_colmap_keypoints_put_pixel_centres_at_half_integers(centre):
    """A blob centred at continuous (x, y) is found at (x, y): COLMAP's pixel centres are at +0.5 like ours."""
    ys, xs = np.mgrid[0:64, 0:64] + 0.5
    blob = 255 * np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * 3.0**2))
    options = pycolmap.FeatureExtractionOptions()
    options.sift.first_octave = 0
    options.sift.peak_threshold = 0.001
    with quiet_logs():
        extractor = pycolmap.FeatureExtractor.create(options, pycolmap.Device.cpu)
        keypoints, _ = extractor.extract(pycolmap.Bitmap.from_array(blob.astype(np.uint8)))
    positions = np.array([[k.x, k.y] for k in keypoints])
    nearest = positions[np.argmin(np.linalg.norm(positions - centre, axis=1))]
    np.testing.assert_allclose(nearest, centre, atol=0.05)


def test_features_are_extracted_only_on_the_background(tmp_path, scenes):
    images = np.stack([scenes.texture((120, 160), seed=s) for s in range(2)])
    background = np.ones((2, 120, 160), bool)
    background[:, :, :80] = False  # the left half is "object"
    database = build_database(tmp_path, images, background, None, CamerasConfig(first_octave=0))
    db = pycolmap.Database.open(database)
    try:
        keypoints = [db.read_keypoints(image.image_id) for image in db.read_all_images()]
        cameras = db.read_all_cameras()
    finally:
        db.close()
    assert len(cameras) == 1 and cameras[0].model_name == "SIMPLE_PINHOLE"  # one shared camera
    for points in keypoints:
        assert len(points) > 50
        assert points[:, 0].min() >= 80.0


def test_known_intrinsics_go_into_the_database(tmp_path, scenes):
    images = np.stack([scenes.texture((120, 160), seed=s) for s in range(2)])
    K = np.array([[150.0, 0, 81.0], [0, 155.0, 59.0], [0, 0, 1]])
    database = build_database(tmp_path, images, np.ones((2, 120, 160), bool), K, CamerasConfig(first_octave=0))
    db = pycolmap.Database.open(database)
    try:
        (camera,) = db.read_all_cameras()
    finally:
        db.close()
    assert camera.model_name == "PINHOLE" and camera.has_prior_focal_length
    np.testing.assert_allclose(camera.params, [150.0, 155.0, 81.0, 59.0])
    mask = cv2.imread(str(tmp_path / "masks" / "00000.png.png"), cv2.IMREAD_GRAYSCALE)
    assert mask.shape == (120, 160) and (mask == 255).all()
