"""Weight-free point tracks: sampling, chaining primitives, and whole clips with known motion and an occluder."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocess.tracks import TracksConfig, contact_sheet_tracks, track_points
from preprocess.tracks.chaining import EDGE_MARGIN, flow_step, predict_from_neighbours, sample_bilinear
from preprocess.tracks.sampling import grid_points, remove_near, sample_queries
from preprocess.video import VideoConfig, load_frames
from scene4d.contracts.frames import Frames
from scene4d.contracts.masks import ObjectMasks
from scene4d.errors import InputError

WIDTH, HEIGHT, NUM_FRAMES = 160, 120, 12
SHIFT, ANGLE = np.array([1.3, 0.7]), 0.5  # pixels and degrees per frame
OCCLUDER_WIDTH, OCCLUDER_HEIGHT, OCCLUDER_SPEED, OCCLUDER_Y = 24, 44, 6.0, 36


def _texture(height, width, seed):
    rng = np.random.default_rng(seed)
    out = np.zeros((height, width), np.float32)
    for sigma, amplitude in ((1.0, 0.3), (2.5, 0.5), (6.0, 0.6)):
        noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), sigma)
        out += amplitude * noise / noise.std()
    out = (out - out.min()) / (out.max() - out.min())
    return np.stack([out, np.roll(out, 7, 0), np.roll(out, 11, 1)], axis=-1)


def _motion(t):
    """2x3 affine map from texture pixel indices to frame-t pixel indices: rotation about the frame centre + shift."""
    angle = np.deg2rad(ANGLE * t)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([WIDTH, HEIGHT], float)  # the frame centre, in texture indices
    matrix = np.zeros((2, 3))
    matrix[:, :2] = rotation
    matrix[:, 2] = centre - rotation @ centre + SHIFT * t - centre / 2
    return matrix


def _occluder_box(t):
    return int(10 + OCCLUDER_SPEED * t), OCCLUDER_Y  # top-left corner (x, y) in pixel indices


def _clip(occluder):
    """Frames of a textured plane moving rigidly, optionally crossed left to right by a textured square."""
    background = _texture(2 * HEIGHT, 2 * WIDTH, 0)
    patch = _texture(OCCLUDER_HEIGHT, OCCLUDER_WIDTH, 1)[::-1]
    frames = []
    for t in range(NUM_FRAMES):
        image = cv2.warpAffine(background, _motion(t), (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REFLECT)
        if occluder:
            x, y = _occluder_box(t)
            image[y:y + OCCLUDER_HEIGHT, x:x + OCCLUDER_WIDTH] = patch
        frames.append((np.clip(image, 0, 1) * 255).astype(np.uint8))
    return Frames(np.stack(frames), np.arange(NUM_FRAMES) / 30.0)


def _occluder_masks():
    masks = np.zeros((1, NUM_FRAMES, HEIGHT, WIDTH), bool)
    for t in range(NUM_FRAMES):
        x, y = _occluder_box(t)
        masks[0, t, y:y + OCCLUDER_HEIGHT, x:x + OCCLUDER_WIDTH] = True
    return ObjectMasks(masks, [1])


def _background_truth(frame, point):
    """(T, 2) true positions of the background point seen at ``point`` (pixel coordinates) in ``frame``."""
    start = np.vstack([_motion(frame), [0, 0, 1]])
    texel = np.linalg.solve(start, np.r_[point - 0.5, 1.0])
    return np.array([_motion(t) @ texel for t in range(NUM_FRAMES)]) + 0.5


def _occluder_truth(frame, point):
    return point + np.outer(np.arange(NUM_FRAMES) - frame, [OCCLUDER_SPEED, 0.0])


def _inside_occluder(points, t, shrink=0.0):
    x, y = _occluder_box(t)
    return ((points[..., 0] >= x + shrink) & (points[..., 0] < x + OCCLUDER_WIDTH - shrink)
            & (points[..., 1] >= y + shrink) & (points[..., 1] < y + OCCLUDER_HEIGHT - shrink))


def _has_gap(visibility):
    """(N,) bool: visible, then not, then visible again."""
    frames = np.arange(visibility.shape[1])
    first = np.where(visibility, frames, visibility.shape[1]).min(axis=1)
    last = np.where(visibility, frames, -1).max(axis=1)
    return visibility.sum(axis=1) < last - first + 1


def _truth(tracks, occluder=True):
    """(N, T, 2) true trajectories and (N,) bool "on the occluder", from each track's first visible position."""
    truth, on_occluder = [], []
    for positions, visible in zip(tracks.tracks, tracks.visibility):
        first = int(np.argmax(visible))
        occluded_layer = occluder and bool(_inside_occluder(positions[first], first))
        on_occluder.append(occluded_layer)
        truth.append((_occluder_truth if occluded_layer else _background_truth)(first, positions[first]))
    return np.array(truth), np.array(on_occluder)


@pytest.fixture(scope="module")
def free_clip():
    frames = _clip(occluder=False)
    return frames, track_points(frames, None, TracksConfig())


@pytest.fixture(scope="module")
def occluded_clip():
    frames = _clip(occluder=True)
    masks = _occluder_masks()
    return frames, masks, track_points(frames, masks, TracksConfig())


def test_grid_points_takes_the_most_textured_pixel_of_each_cell():
    texture = np.zeros((8, 8), np.float32)
    texture[1, 2], texture[5, 6], texture[6, 1] = 1.0, 2.0, 0.5
    region = np.ones((8, 8), bool)
    region[6, 1] = False  # the best pixel of that cell is outside the region, the next best is flat
    points = grid_points(texture, region, spacing=4, min_texture=0.1)
    assert sorted(map(tuple, points.tolist())) == [(2.5, 1.5), (6.5, 5.5)]


def test_sampling_gives_small_objects_denser_grids_and_skips_existing_tracks():
    rng = np.random.default_rng(0)
    image = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
    labels = np.zeros((120, 160), np.int32)
    labels[10:90, 10:90] = 1  # 6400 px
    labels[100:116, 120:136] = 2  # 256 px
    config = TracksConfig(points_per_object=16, background_points=50, min_spacing=2)
    points, point_labels = sample_queries(image, labels, [1, 2], np.zeros((0, 2)), np.zeros(0, int), config)
    counts = [int(np.sum(point_labels == i)) for i in (1, 2)]
    assert 10 <= counts[0] <= 20 and 4 <= counts[1] <= 16
    assert np.all(labels[points[:, 1].astype(int), points[:, 0].astype(int)] == point_labels)
    existing = points[point_labels == 1][:5]
    again, again_labels = sample_queries(image, labels, [1, 2], existing, np.ones(5, int), config)
    assert np.sum(again_labels == 1) <= counts[0] - 5
    new_points = again[again_labels == 1]
    assert np.linalg.norm(new_points[:, None] - existing[None], axis=-1).min() >= 0.75 * 20  # 20 = sqrt(6400 / 16)
    assert len(remove_near(points, existing, 0.5)) == len(points) - 5


def test_bilinear_sampling_is_exact_for_affine_fields_at_pixel_centre_convention():
    rows, cols = np.mgrid[0:20, 0:30].astype(np.float32)
    field = np.stack([2 * cols + 1, -rows + 0.5 * cols], axis=-1)  # value at pixel centre (j + .5, i + .5)
    points = np.array([[3.5, 4.5], [10.25, 7.75], [20.9, 15.1]], np.float32)
    x, y = points[:, 0] - 0.5, points[:, 1] - 0.5
    np.testing.assert_allclose(sample_bilinear(field, points), np.stack([2 * x + 1, -y + 0.5 * x], -1), atol=1e-3)


def test_flow_step_moves_points_and_flags_inconsistent_or_leaving_ones():
    forward = np.zeros((40, 50, 2), np.float32)
    forward[..., 0], forward[..., 1] = 2.0, -1.0
    backward = -forward
    backward[20:, :, 0] = 5.0  # wrong way back in the lower half
    points = np.array([[10.5, 10.5], [10.5, 30.5], [48.0, 10.5]], np.float32)
    moved, consistent = flow_step(points, forward, backward, fb_threshold=0.5, fb_relative=0.0)
    np.testing.assert_allclose(moved, points + [2.0, -1.0], atol=1e-5)
    assert consistent.tolist() == [True, False, False]  # the last lands within EDGE_MARGIN of the edge
    assert 50 - (48.0 + 2.0) < EDGE_MARGIN


def test_points_follow_the_affine_motion_of_their_neighbours():
    rng = np.random.default_rng(1)
    before = rng.uniform(0, 100, (30, 2))
    matrix, offset = np.array([[1.01, -0.02], [0.03, 0.99]]), np.array([2.0, -1.5])
    lost = np.array([[50.0, 50.0], [20.0, 70.0]])
    predicted, known = predict_from_neighbours(lost, before, before @ matrix.T + offset)
    np.testing.assert_allclose(predicted, lost @ matrix.T + offset, atol=1e-9)
    assert known.all()
    predicted, known = predict_from_neighbours(lost, np.zeros((0, 2)), np.zeros((0, 2)))
    assert not known.any()


def test_tracks_follow_a_rotating_translating_plane_to_half_a_pixel(free_clip):
    frames, (tracks, backend, reason) = free_clip
    assert backend == "flow" and "no learned tracker" in reason
    assert tracks.tracks.shape[1:] == (NUM_FRAMES, 2) and np.all(tracks.labels == 0)
    truth, _ = _truth(tracks, occluder=False)
    error = np.linalg.norm(tracks.tracks - truth, axis=-1)[tracks.visibility]
    assert np.median(error) < 0.1 and error.max() < 0.5
    # Visible means on the image; most of the image stays covered in every frame.
    inside = np.all((truth >= EDGE_MARGIN) & (truth < [WIDTH - EDGE_MARGIN, HEIGHT - EDGE_MARGIN]), axis=-1)
    near_inside = np.all((truth >= EDGE_MARGIN - 0.5) & (truth < [WIDTH - EDGE_MARGIN + 0.5,
                                                                  HEIGHT - EDGE_MARGIN + 0.5]), axis=-1)
    assert np.all(near_inside[tracks.visibility])
    assert tracks.visibility[inside].mean() > 0.9
    assert np.all(np.isfinite(tracks.tracks))


def test_points_appearing_later_get_tracks_without_duplicates(free_clip):
    _, (tracks, _, _) = free_clip
    first_seen = np.argmax(tracks.visibility, axis=1)
    assert np.sum(first_seen > 0) > 50  # the plane slides in from the left and top: new points there
    last = tracks.tracks[tracks.visibility[:, -1], -1]
    gaps = np.linalg.norm(last[:, None] - last[None], axis=-1) + np.eye(len(last)) * 1e9
    assert gaps.min() > 1.0


def test_masked_occluder_hides_background_points_and_keeps_labels(occluded_clip):
    frames, masks, (tracks, _, _) = occluded_clip
    truth, on_occluder = _truth(tracks)
    assert np.array_equal(tracks.labels == 1, on_occluder)
    assert 20 <= np.sum(on_occluder) and np.sum(~on_occluder) > 500
    background = ~on_occluder
    for t in range(NUM_FRAMES):
        hidden = _inside_occluder(truth[background, t], t)
        assert not np.any(tracks.visibility[background, t] & hidden)
    error = np.linalg.norm(tracks.tracks - truth, axis=-1)
    error[~tracks.visibility] = 0.0
    assert np.median(error[tracks.visibility]) < 0.1
    # Background points pass behind the square and come back; re-acquired after up to 8 frames (the affine
    # motion of their neighbours, then Lucas-Kanade against their last look) they are within a pixel. Points on
    # the square, 4+ pixels inside its edge, drift slowly as flow near the edge blends in the background's motion.
    returned = _has_gap(tracks.visibility)
    assert np.sum(background & returned) > 20
    assert error[background & ~returned].max() < 0.5
    assert error[on_occluder & ~returned].max() < 0.75 and error[returned].max() < 1.0


def test_unmasked_occluder_is_caught_by_the_flow_checks():
    frames = _clip(occluder=True)
    tracks, _, _ = track_points(frames, None, TracksConfig())
    truth, on_occluder = _truth(tracks)
    background = ~on_occluder
    hidden = np.stack([_inside_occluder(truth[background, t], t, shrink=4) for t in range(NUM_FRAMES)], axis=1)
    # Without masks a point right at the square's leading edge can be taken along by it (its flow, both ways,
    # and its look follow the edge); the checks catch all but a few percent.
    assert hidden.sum() > 300 and np.mean(tracks.visibility[background][hidden]) < 0.05
    error = np.linalg.norm(tracks.tracks - truth, axis=-1)[tracks.visibility]
    assert np.median(error) < 0.1 and np.percentile(error, 95) < 0.5


def test_without_reacquisition_lost_points_stay_lost():
    frames = _clip(occluder=True)
    masks = _occluder_masks()
    tracks, _, _ = track_points(frames, masks, TracksConfig(reacquire_frames=0))
    assert not _has_gap(tracks.visibility).any()


def test_bad_inputs_are_refused_with_a_message():
    frames = _clip(occluder=False)
    small = ObjectMasks(np.ones((1, NUM_FRAMES, 10, 10), bool), [1])
    with pytest.raises(InputError, match="masks"):
        track_points(frames, small, TracksConfig())
    with pytest.raises(InputError, match="tracks.backend"):
        track_points(frames, None, TracksConfig(backend="cotracker3"))
    with pytest.raises(InputError, match="min_spacing"):
        track_points(frames, None, TracksConfig(min_spacing=10, max_spacing=5))
    grey = Frames(np.full((3, HEIGHT, WIDTH, 3), 90, np.uint8), np.arange(3) / 30.0)
    with pytest.raises(InputError, match="single colour"):
        track_points(grey, None, TracksConfig())


def test_contact_sheet_draws_each_visible_point_in_its_colour(free_clip):
    frames, (tracks, _, _) = free_clip
    sheet = contact_sheet_tracks(frames, tracks, num_frames=3, columns=3, max_tracks=tracks.num_tracks,
                                 tile_width=WIDTH)
    assert sheet.shape == (HEIGHT, 3 * WIDTH, 3)
    dimmed = (frames.images[0] * 0.6).astype(np.uint8)
    drawn = np.abs(sheet[:, :WIDTH].astype(int) - dimmed).sum(axis=-1) > 30
    visible = tracks.tracks[tracks.visibility[:, 0], 0]
    cols, rows = visible[:, 0].astype(int), visible[:, 1].astype(int)
    assert drawn[rows, cols].mean() > 0.9


SHARED_CLIP = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "sam2gallery_05_juggle" / "frames"


@pytest.mark.skipif(not SHARED_CLIP.is_dir(), reason="shared clips not present")
def test_real_static_camera_clip_tracks_do_not_drift():
    # The camera does not move; the background (most of the frame) must stay put, the juggler and leaves move.
    frames = load_frames(SHARED_CLIP, VideoConfig(long_side=240, max_frames=16))
    tracks, _, _ = track_points(frames, None, TracksConfig())
    first = tracks.tracks[np.arange(tracks.num_tracks), np.argmax(tracks.visibility, axis=1)]
    drift = np.where(tracks.visibility, np.linalg.norm(tracks.tracks - first[:, None], axis=-1), 0.0).max(axis=1)
    assert tracks.num_tracks > 500 and np.median(drift) < 0.1 and np.mean(drift < 0.5) > 0.75
