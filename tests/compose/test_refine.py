import pytest
import torch

from compose.interactions import InteractionConfig
from compose.refine import RefineConfig, refine_scene
from compose.scene import Scene, SceneObject
from scene4d.dynamic_object import DynamicObject
from scene4d.gaussians import Gaussians
from scene4d.motion.skinning import ControlPointDeformation
from scene4d.motion.trajectory import RigidTrajectory

T, W, H = 3, 32, 24
K = torch.tensor([[32.0, 0.0, 16.0], [0.0, 32.0, 12.0], [0.0, 0.0, 1.0]])
RADIUS = 0.3


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shell(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1) * RADIUS


def make_object(position, color, seed):
    points = shell(seed=seed)
    gaussians = Gaussians.from_points(points, torch.tensor(color).expand(points.shape[0], 3), sh_degree=0,
                                      scale=0.05, opacity=0.9)
    deformation = ControlPointDeformation(points[:4].clone(), 4, radius=0.2)
    return DynamicObject(gaussians, deformation, RigidTrajectory(4, torch.tensor(position).expand(4, 3)))


def test_refinement_separates_objects_interpenetrating_along_the_camera_rays():
    # B sits right behind A on the same ray: the input view cannot tell, the composition interpenetrates.
    scene = Scene(None, [SceneObject(1, "a", make_object([0.0, 0.0, 3.0], (0.9, 0.2, 0.1), 0)),
                         SceneObject(2, "b", make_object([0.15, 0.0, 3.3], (0.1, 0.3, 0.9), 1))], T)
    viewmats, Ks = torch.eye(4).expand(T, 4, 4).clone(), K.expand(T, 3, 3).clone()
    with torch.no_grad():
        images = torch.cat([scene.render(t / (T - 1), viewmats[:1], Ks[:1], W, H, backgrounds=torch.zeros(1, 3),
                                         backend="torch")[0].colors for t in range(T)])
    masks = torch.zeros(T, H, W, dtype=torch.bool)
    masks[:, 4:20, 6:26] = True
    knots_before = scene.objects[0].model.trajectory.translation_knots.detach().clone()
    config = RefineConfig(iterations=12, lr_translation=0.03, lr_rotation=0.0, prior=0.1, backend="torch",
                          metric_frames=2, interactions=InteractionConfig(penetration=10.0, max_queries=256))
    result = refine_scene(scene, images, masks, viewmats, Ks, config, progress=False)

    before = result.before["penetration"]["1-2"] + result.before["penetration"]["2-1"]
    after = result.after["penetration"]["1-2"] + result.after["penetration"]["2-1"]
    assert before > 0.2 and after < 0.5 * before
    assert result.before["rgb_l1"] < 1e-6 and result.after["rgb_l1"] < 0.05  # the input view barely changes
    assert result.history[0]["penetration"] > result.history[-1]["penetration"]
    # The input scene is untouched; the refined one moved A towards the camera and/or B away from it.
    assert torch.equal(scene.objects[0].model.trajectory.translation_knots, knots_before)
    a_z = result.scene.objects[0].model.trajectory.translation_knots[:, 2].mean()
    b_z = result.scene.objects[1].model.trajectory.translation_knots[:, 2].mean()
    assert b_z - a_z > 0.3 + 0.05


def test_refinement_puts_a_drifting_object_back_on_the_floor():
    floor_y = 0.8  # world +y points down, the camera looks at the floor from above
    zs, xs = torch.meshgrid(torch.linspace(2.0, 4.0, 21), torch.linspace(-1.0, 1.0, 21), indexing="ij")
    floor = Gaussians.from_points(torch.stack([xs.flatten(), torch.full((441,), floor_y), zs.flatten()], dim=1),
                                  torch.full((441, 3), 0.3), sh_degree=0, scale=0.06, opacity=0.9)
    ball = make_object([0.0, floor_y - RADIUS, 3.0], (0.9, 0.2, 0.1), 0)
    with torch.no_grad():  # rests on the floor at the start, then drifts up by 0.06 (within the release distance)
        ball.trajectory.translation_knots[:, 1] -= 0.06 * torch.linspace(-1, 2, 4).clamp(0, 1)
    scene = Scene(floor, [SceneObject(1, "ball", ball)], T)
    viewmat = torch.eye(4)
    viewmat[:3, 3] = torch.tensor([0.0, 1.0, 0.0])  # camera centre at y = -1, above the floor
    viewmats, Ks = viewmat.expand(T, 4, 4).clone(), K.expand(T, 3, 3).clone()
    config = RefineConfig(iterations=10, lr_translation=0.01, lr_rotation=0.0, rgb=0.0, prior=0.01, backend="torch",
                          metric_frames=3, interactions=InteractionConfig(contact=10.0, max_queries=256))
    result = refine_scene(scene, torch.zeros(T, H, W, 3), torch.zeros(T, H, W, dtype=torch.bool), viewmats, Ks,
                          config, progress=False)
    assert result.before["contact_gap"]["1"] > 0.03  # relative to the size: about 0.03 world units
    assert result.after["contact_gap"]["1"] < 0.5 * result.before["contact_gap"]["1"]
    assert result.after["penetration"]["1-0"] < 0.02  # pulled down onto the floor, not into it


def test_refine_checks_shapes():
    scene = Scene(None, [SceneObject(1, "a", make_object([0.0, 0.0, 3.0], (1.0, 0.0, 0.0), 0))], T)
    with pytest.raises(ValueError, match="object_masks"):
        refine_scene(scene, torch.zeros(T, H, W, 3), torch.zeros(T, H, W + 1, dtype=torch.bool),
                     torch.eye(4).expand(T, 4, 4), K.expand(T, 3, 3), RefineConfig(), progress=False)


def test_refinement_reads_only_the_fit_frames():
    scene = Scene(None, [SceneObject(1, "a", make_object([0.0, 0.0, 3.0], (0.9, 0.2, 0.1), 0))], T)
    viewmats, Ks = torch.eye(4).expand(T, 4, 4).clone(), K.expand(T, 3, 3).clone()
    with torch.no_grad():
        images = torch.cat([scene.render(t / (T - 1), viewmats[:1], Ks[:1], W, H, backgrounds=torch.zeros(1, 3),
                                         backend="torch")[0].colors for t in range(T)])
    masks = torch.ones(T, H, W, dtype=torch.bool)
    config = RefineConfig(iterations=6, lr_translation=0.03, prior=0.1, backend="torch", metric_frames=3)
    scrambled = images.clone()
    scrambled[1] = torch.rand(H, W, 3, generator=torch.Generator().manual_seed(0))
    kept = refine_scene(scene, images, masks, viewmats, Ks, config, progress=False, fit_frames=[0, 2])
    blind = refine_scene(scene, scrambled, masks, viewmats, Ks, config, progress=False, fit_frames=[0, 2])
    moved = refine_scene(scene, scrambled, masks, viewmats, Ks, config, progress=False)
    knots = lambda result: result.scene.objects[0].model.trajectory.translation_knots  # noqa: E731
    assert torch.equal(knots(kept), knots(blind))
    assert kept.after["rgb_l1"] < 1e-6 and moved.after["rgb_l1"] > 0.01
    assert not torch.equal(knots(kept), knots(moved))
