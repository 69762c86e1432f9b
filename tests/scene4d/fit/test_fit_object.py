"""The fit recovers known motions from synthetic renders of a moving object: rigid, and non-rigid (hexplane)."""

import torch

from scene4d.conventions import normalized_time
from scene4d.fit.config import FitConfig
from scene4d.fit.fit_object import fit_object
from scene4d.fit.observations import ObjectObservations
from scene4d.render.render import render

FRAMES, WIDTH, HEIGHT = 6, 64, 48


def _ellipsoid(count: int, radii: tuple[float, float, float], frequency: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(count, 3) points on an ellipsoid's surface and (count, 3) colours varying smoothly over it."""
    torch.manual_seed(0)
    points = torch.nn.functional.normalize(torch.randn(count, 3), dim=1) * torch.tensor(radii)
    return points, (0.5 + 0.5 * torch.sin(frequency * points)).clamp(0, 1)


def _clip(colors: torch.Tensor, positions: torch.Tensor, focal: float, scale: float,
          train_frames: torch.Tensor) -> ObjectObservations:
    """Renders of Gaussians at ``positions`` (T, N, 3) through a fixed camera at the origin (exact masks, depth)."""
    count = colors.shape[0]
    quats = torch.tensor([1.0, 0, 0, 0]).expand(count, 4)
    scales, opacities = torch.full((count, 3), scale), torch.full((count,), 0.9)
    K = torch.tensor([[focal, 0, WIDTH / 2], [0, focal, HEIGHT / 2], [0, 0, 1]])
    images, masks, depths = [], [], []
    for points in positions:
        out = render(points, quats, scales, opacities, colors, torch.eye(4)[None], K[None], WIDTH, HEIGHT,
                     backgrounds=torch.zeros(1, 3), backend="torch")
        inside = out.alphas[0] > 0.5
        images.append(out.colors[0])
        masks.append(inside.float())
        depths.append(torch.where(inside, out.depths[0], torch.full_like(out.depths[0], 4.0)))
    return ObjectObservations(
        images=torch.stack(images), masks=torch.stack(masks), valid=torch.ones(FRAMES, HEIGHT, WIDTH, 1),
        depth=torch.stack(depths), depth_weights=torch.stack(masks), viewmats=torch.eye(4).expand(FRAMES, 4, 4),
        Ks=K.expand(FRAMES, 3, 3), tracks=torch.zeros(0, FRAMES, 2),
        track_visibility=torch.zeros(0, FRAMES, dtype=torch.bool), train_frames=train_frames)


def test_known_translation_is_recovered_by_the_trajectory():
    points, colors = _ellipsoid(400, (0.5, 0.35, 0.3), 3.0)
    shifts = torch.stack([torch.tensor([-0.4 + 0.16 * t, 0.05 * t, 4.0]) for t in range(FRAMES)])
    observations = _clip(colors, points + shifts[:, None], focal=60.0, scale=0.06, train_frames=torch.arange(FRAMES))
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


def test_hexplane_recovers_a_bending_motion_and_a_hidden_frame():
    """An ellipsoid 1 wide bends: y grows by 0.4 (x / 0.5)^2 t. Frame 3 is never shown to the fit.

    Fitted Gaussians are matched to the true front surface at the reference frame (nearest neighbours) and their
    image-plane (x, y) motion relative to that frame compared with the true motion. Measured (1 thread): mean
    error 0.018 over all frames and 0.016 on the hidden frame, against 0.051 and 0.041 for the best rigid
    explanation of the true motion, and 0.045 and 0.036 when the hexplane is not trained (lr 1e-9).
    """
    points, colors = _ellipsoid(600, (0.5, 0.3, 0.3), 6.0)
    bend = torch.stack([torch.zeros(600), 0.4 * (points[:, 0] / 0.5) ** 2, torch.zeros(600)], dim=1)
    positions = torch.stack([points + bend * t / (FRAMES - 1) for t in range(FRAMES)]) + torch.tensor([0, 0, 4.0])
    observations = _clip(colors, positions, focal=100.0, scale=0.05, train_frames=torch.tensor([0, 1, 2, 4, 5]))
    config = FitConfig(static_iters=60, motion_iters=80, joint_iters=0, init_points=400, backend="torch",
                       deformation="hexplane", hexplane_resolutions=[8, 16])
    result = fit_object(observations, config, progress=False)
    model, ref = result.model, result.init.reference_frame
    with torch.no_grad():
        posed = model.posed(normalized_time(torch.arange(FRAMES), FRAMES)).means
    true = positions[:, points[:, 2] < 0]  # the half facing the camera
    opaque = (model.gaussians.get_opacities() > 0.3).nonzero()[:, 0]
    fitted = posed[:, opaque[torch.cdist(true[ref], posed[ref, opaque]).argmin(1)]]
    true_motion = (true - true[ref])[..., :2]
    error = ((fitted - fitted[ref])[..., :2] - true_motion).norm(dim=-1).mean(1)  # (T,)
    rigid = (true_motion - true_motion.mean(1, keepdim=True)).norm(dim=-1).mean(1)
    assert error.mean() < 0.03 and error.mean() < 0.5 * rigid.mean()
    assert error[3] < 0.6 * rigid[3]
