"""The fit recovers a known rigid motion from synthetic renders of a moving object."""

import torch

from scene4d.conventions import normalized_time
from scene4d.fit.config import FitConfig
from scene4d.fit.fit_object import fit_object
from scene4d.fit.observations import ObjectObservations
from scene4d.render.render import render

FRAMES, WIDTH, HEIGHT = 6, 64, 48


def _moving_ellipsoid():
    """Renders of a textured ellipsoid of Gaussians translating by a known amount per frame (fixed camera)."""
    torch.manual_seed(0)
    directions = torch.nn.functional.normalize(torch.randn(400, 3), dim=1)
    points = directions * torch.tensor([0.5, 0.35, 0.3])
    colors = (0.5 + 0.5 * torch.sin(3 * points)).clamp(0, 1)
    quats = torch.tensor([1.0, 0, 0, 0]).expand(400, 4)
    scales, opacities = torch.full((400, 3), 0.06), torch.full((400,), 0.9)
    K = torch.tensor([[60.0, 0, 32], [0, 60.0, 24], [0, 0, 1]])
    shifts = torch.stack([torch.tensor([-0.4 + 0.16 * t, 0.05 * t, 4.0]) for t in range(FRAMES)])
    images, masks, depths = [], [], []
    for shift in shifts:
        out = render(points + shift, quats, scales, opacities, colors, torch.eye(4)[None], K[None], WIDTH, HEIGHT,
                     backgrounds=torch.zeros(1, 3), backend="torch")
        inside = out.alphas[0] > 0.5
        images.append(out.colors[0])
        masks.append(inside.float())
        depths.append(torch.where(inside, out.depths[0], torch.full_like(out.depths[0], 4.0)))
    observations = ObjectObservations(
        images=torch.stack(images), masks=torch.stack(masks), valid=torch.ones(FRAMES, HEIGHT, WIDTH, 1),
        depth=torch.stack(depths), depth_weights=torch.stack(masks), viewmats=torch.eye(4).expand(FRAMES, 4, 4),
        Ks=K.expand(FRAMES, 3, 3), tracks=torch.zeros(0, FRAMES, 2),
        track_visibility=torch.zeros(0, FRAMES, dtype=torch.bool), train_frames=torch.arange(FRAMES))
    return observations, shifts


def test_known_translation_is_recovered_by_the_trajectory():
    observations, shifts = _moving_ellipsoid()
    config = FitConfig(static_iters=60, motion_iters=80, joint_iters=0, init_points=400, control_points=8,
                       backend="torch")
    result = fit_object(observations, config, progress=False)
    times = normalized_time(torch.arange(FRAMES), FRAMES)
    with torch.no_grad():
        _, _, translations = result.model.trajectory.transform(times)
        centers = result.model.posed(times).means.mean(1)
    true_motion = shifts - shifts[0]
    # The object's own origin is arbitrary, so compare motion relative to the first frame (object size ~1).
    assert (translations - translations[0] - true_motion)[:, :2].abs().max() < 0.05
    assert (centers - centers[0] - true_motion)[:, :2].abs().max() < 0.05
