import cv2
import numpy as np
import pytest

from preprocess.cameras.background import background_masks, measure_background

HEIGHT, WIDTH = 120, 160


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The view of ``image`` from a camera moved so the content shifts by (dx, dy) pixels (cropped centre)."""
    matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT)


def _clip(base: np.ndarray, shift_per_frame: tuple[float, float], num_frames: int, with_object: bool,
          seed: int = 0):
    rng = np.random.default_rng(seed)
    images, objects = [], np.zeros((num_frames, HEIGHT, WIDTH), bool)
    for t in range(num_frames):
        image = _shifted(base, shift_per_frame[0] * t, shift_per_frame[1] * t)
        if with_object:  # a square crossing the frame, independent of the camera
            x = 20 + 8 * t
            image[40:80, x:x + 40] = 255 - image[40:80, x:x + 40]
            objects[t, 40:80, x:x + 40] = True
        noise = rng.normal(0, 2.0, image.shape)
        images.append(np.clip(image + noise, 0, 255).astype(np.uint8))
    return np.stack(images), objects


@pytest.mark.parametrize("masked", [True, False])
def test_a_static_camera_is_recognised_despite_noise_and_a_moving_object(masked, scenes):
    images, objects = _clip(scenes.texture((HEIGHT, WIDTH), seed=0), (0.0, 0.0), 10, with_object=True)
    background = background_masks(10, HEIGHT, WIDTH, objects if masked else None, 3)
    motion = measure_background(images, background)
    assert motion.largest_shift_px < 0.5


def test_a_slow_drift_is_not_static_though_each_step_is_tiny(scenes):
    # Like sam2_bedroom: ~0.2 px per frame, a few pixels over the clip.
    images, _ = _clip(scenes.texture((HEIGHT, WIDTH), seed=0), (0.25, 0.1), 25, with_object=False)
    motion = measure_background(images, background_masks(25, HEIGHT, WIDTH, None, 0))
    assert np.median(motion.step_px) < 0.5
    assert motion.span_px[-1] == pytest.approx(np.hypot(0.25, 0.1) * 24, rel=0.1)
    assert motion.largest_shift_px > 5.0


def test_homographies_and_tracks_follow_a_known_shift(scenes):
    images, objects = _clip(scenes.texture((HEIGHT, WIDTH), seed=0), (2.0, -1.0), 6, with_object=True)
    motion = measure_background(images, background_masks(6, HEIGHT, WIDTH, objects, 3), track_spacing_px=10)
    corners = np.array([[0.0, 0.0, 1.0], [WIDTH, 0, 1], [0, HEIGHT, 1], [WIDTH, HEIGHT, 1], [80, 60, 1]])
    for homography, (source, target) in zip(motion.homographies, motion.matches):
        np.testing.assert_allclose(np.median(target - source, axis=0), [2.0, -1.0], atol=0.05)
        mapped = corners @ homography.T
        np.testing.assert_allclose(mapped[:, :2] / mapped[:, 2:] - corners[:, :2], [[2.0, -1.0]] * 5, atol=0.3)
    visible = motion.visibility
    assert visible.sum(axis=1).min() >= 3 and len(motion.tracks) > 50
    first = visible.argmax(axis=1)
    rows = np.arange(len(first))
    errors = []
    for t in range(6):
        seen = visible[:, t]
        expected = motion.tracks[rows[seen], first[seen]] + (t - first[seen])[:, None] * np.array([2.0, -1.0])
        errors.append(np.linalg.norm(motion.tracks[seen, t] - expected, axis=1))
    errors = np.concatenate(errors)
    assert np.median(errors) < 0.1 and np.percentile(errors, 95) < 0.5
    # No track point lies on the object when it is masked.
    cols = np.floor(motion.tracks[..., 0]).astype(int).clip(0, WIDTH - 1)
    rows_px = np.floor(motion.tracks[..., 1]).astype(int).clip(0, HEIGHT - 1)
    on_object = objects[np.arange(6)[None], rows_px, cols]
    assert not (on_object & visible).any()


def test_background_masks_grow_objects():
    objects = np.zeros((1, 20, 20), bool)
    objects[0, 10, 10] = True
    removed = np.argwhere(~background_masks(1, 20, 20, objects, 2)[0])
    distance = np.linalg.norm(removed - [10, 10], axis=1)
    assert distance.max() <= np.sqrt(5) and (distance <= 2).sum() == 13  # OpenCV's 5x5 disc
    assert background_masks(1, 20, 20, None, 2).all()
