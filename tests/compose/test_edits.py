import json
import math

import pytest
import torch

from compose.edits import (ObjectEdit, apply_edits, euler_rotation, load_edits, object_center, parse_edits,
                           remove_object, shift_in_time, transform_object)
from compose.scene import Scene, SceneObject
from scene4d.conventions import quat_to_rotmat
from scene4d.dynamic_object import DynamicObject
from scene4d.errors import InputError
from scene4d.gaussians import Gaussians
from scene4d.motion.skinning import ControlPointDeformation
from scene4d.motion.trajectory import RigidTrajectory

T = 9


def moving_object(seed):
    """An object that moves, turns and deforms over the clip (so time shifts are visible)."""
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(60, 3, generator=g) * 0.2
    gaussians = Gaussians.from_points(points, torch.rand(60, 3, generator=g), sh_degree=0, scale=0.05, opacity=0.8)
    with torch.no_grad():
        gaussians.params["quats"].copy_(torch.randn(60, 4, generator=g))
        gaussians.params["scales"].add_(0.3 * torch.randn(60, 3, generator=g))
    deformation = ControlPointDeformation(points[:6].clone(), 6, radius=0.2)
    trajectory = RigidTrajectory(6, torch.randn(6, 3, generator=g) + torch.tensor([0.0, 0.0, 3.0]))
    with torch.no_grad():
        deformation.translation_knots.copy_(0.05 * torch.randn(6, 6, 3, generator=g))
        deformation.rotation_knots.copy_(0.2 * torch.randn(6, 6, 3, generator=g))
        trajectory.rotation_knots.copy_(0.5 * torch.randn(6, 3, generator=g))
        trajectory.log_scale_knots.copy_(0.1 * torch.randn(6, 1, generator=g))
    return DynamicObject(gaussians, deformation, trajectory)


@pytest.fixture
def scene():
    return Scene(None, [SceneObject(1, "a", moving_object(0)), SceneObject(2, "b", moving_object(1))], T)


def posed(scene, object_id, frame):
    with torch.no_grad():
        return scene.posed(frame / (T - 1), include_background=False, object_ids=[object_id])


def test_remove_hides_the_object_and_can_show_it_again(scene):
    removed = remove_object(scene, 1)
    assert set(removed.posed(0.5).labels.tolist()) == {2}
    assert scene.objects[0].visible  # the input scene is unchanged
    assert set(remove_object(removed, 1, removed=False).posed(0.5).labels.tolist()) == {1, 2}


def test_translate_moves_every_gaussian_by_exactly_the_vector(scene):
    vector = torch.tensor([0.5, -0.25, 1.0])
    moved = transform_object(scene, 1, translate=vector)
    for frame in (0, 4, 8):
        before, after = posed(scene, 1, frame), posed(moved, 1, frame)
        assert torch.allclose(after.means - before.means, vector.expand(60, 3), atol=1e-5)
        assert torch.allclose(after.scales, before.scales, atol=1e-6)
        assert torch.allclose(posed(moved, 2, frame).means, posed(scene, 2, frame).means)


def test_scale_about_the_centre_keeps_the_centre_and_scales_offsets_and_sizes(scene):
    center_frame = 4
    center = object_center(scene, 1, center_frame / (T - 1))
    scaled = transform_object(scene, 1, scale=2.5, center_time=center_frame / (T - 1))
    before, after = posed(scene, 1, center_frame), posed(scaled, 1, center_frame)
    assert torch.allclose(after.means.mean(0), center, atol=1e-5)
    assert torch.allclose(after.means - center, 2.5 * (before.means - center), atol=1e-5)
    assert torch.allclose(after.scales, 2.5 * before.scales, rtol=1e-5)
    # At another time the whole motion is scaled about the same (fixed) point.
    before, after = posed(scene, 1, 0), posed(scaled, 1, 0)
    assert torch.allclose(after.means - center, 2.5 * (before.means - center), atol=1e-5)


def test_rotation_about_the_centre_turns_positions_and_orientations(scene):
    rotation = euler_rotation((0.0, 0.0, 90.0))
    assert torch.allclose(rotation, torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
                                                 dtype=torch.float64), atol=1e-12)
    center = object_center(scene, 1, 0.0)
    turned = transform_object(scene, 1, rotation=rotation)
    before, after = posed(scene, 1, 0), posed(turned, 1, 0)
    r = rotation.float()
    assert torch.allclose(after.means - center, (before.means - center) @ r.T, atol=1e-5)
    assert torch.allclose(quat_to_rotmat(after.quats), r @ quat_to_rotmat(before.quats), atol=1e-5)
    assert torch.allclose(after.scales, before.scales, atol=1e-6)


def test_euler_angles_are_extrinsic_xyz():
    rx, rz = euler_rotation((90.0, 0.0, 0.0)), euler_rotation((0.0, 0.0, 90.0))
    assert torch.allclose(euler_rotation((90.0, 0.0, 90.0)), rz @ rx, atol=1e-12)


def test_time_shift_by_n_frames_shows_the_object_n_frames_later(scene):
    shifted = shift_in_time(scene, 1, 3)
    for frame in range(T - 3):
        before, after = posed(scene, 1, frame + 3), posed(shifted, 1, frame)
        assert torch.allclose(after.means, before.means, atol=1e-5)
        assert torch.allclose(after.quats, before.quats, atol=1e-5)
    # Past the end of the clip the object holds its last pose.
    assert torch.allclose(posed(shifted, 1, T - 1).means, posed(scene, 1, T - 1).means, atol=1e-5)
    assert torch.allclose(posed(shifted, 2, 2).means, posed(scene, 2, 2).means)


def test_edits_json_applies_like_the_functions(scene, tmp_path):
    path = tmp_path / "edits.json"
    path.write_text(json.dumps({"edits": [
        {"object": 2, "remove": True},
        {"object": 1, "translate": [1, 0, 0], "rotate_deg": [0, 30, 0], "scale": 0.5, "time_shift_frames": 2,
         "center_frame": 4},
    ]}))
    edited = apply_edits(scene, load_edits(path))
    expected = transform_object(scene, 1, translate=torch.tensor([1.0, 0.0, 0.0]),
                                rotation=euler_rotation((0.0, 30.0, 0.0)), scale=0.5, center_time=0.5)
    expected = shift_in_time(expected, 1, 2)
    assert not edited.object(2).visible and edited.object(1).visible
    assert torch.allclose(edited.object(1).edit, expected.object(1).edit)
    assert edited.object(1).time_offset == pytest.approx(2 / (T - 1))
    # Order inside an entry: scale and rotate about the centre, then translate.
    center = object_center(scene, 1, 0.5)
    after = posed(edited, 1, 2)  # frame 2 shows frame 4, where the centre was taken
    assert torch.allclose(after.means.mean(0), center + torch.tensor([1.0, 0.0, 0.0]), atol=1e-5)


@pytest.mark.parametrize("data, message", [
    ({"edit": []}, "top level"),
    ({"edits": [{"object": 1, "move": [1, 2, 3]}]}, "unknown key 'move'"),
    ({"edits": [{"translate": [1, 2, 3]}]}, "'object' must be an integer"),
    ({"edits": [{"object": 1, "translate": [1, 2]}]}, r"edits\[0\].translate: expected a list of 3 numbers"),
    ({"edits": [{"object": 1, "scale": -1}]}, "must be positive"),
    ({"edits": [{"object": 1, "remove": "yes"}]}, "true or false"),
    ({"edits": [{"object": 1, "time_shift_frames": "2"}]}, "expected a number"),
])
def test_bad_edits_name_the_problem(data, message):
    with pytest.raises(InputError, match=message):
        parse_edits(data)


def test_unknown_object_bad_centre_frame_and_unreadable_files(scene, tmp_path):
    with pytest.raises(InputError, match=r"edits\[0\]: no object 7 in the scene \(ids: \[1, 2\]\)"):
        apply_edits(scene, [ObjectEdit(object=7, remove=True)])
    with pytest.raises(InputError, match="outside the clip"):
        apply_edits(scene, [ObjectEdit(object=1, scale=2.0, center_frame=T)])
    with pytest.raises(InputError, match="not a file"):
        load_edits(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{edits: ")
    with pytest.raises(InputError, match="not valid JSON"):
        load_edits(tmp_path / "bad.json")
    with pytest.raises(InputError, match="no object 5"):
        shift_in_time(scene, 5, 1)


def test_edits_compose_with_earlier_edits(scene):
    once = transform_object(scene, 1, translate=torch.tensor([0.0, 1.0, 0.0]))
    twice = transform_object(once, 1, scale=2.0, rotation=euler_rotation((0.0, 0.0, 45.0)))
    center = object_center(once, 1, 0.0)
    before, after = posed(once, 1, 0), posed(twice, 1, 0)
    r = euler_rotation((0.0, 0.0, 45.0)).float()
    assert torch.allclose(after.means - center, 2.0 * (before.means - center) @ r.T, atol=1e-5)
    assert math.isclose(float(torch.linalg.det(twice.object(1).edit[:3, :3])), 8.0, rel_tol=1e-5)
