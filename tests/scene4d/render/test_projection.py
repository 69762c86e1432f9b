"""EWA projection against hand-derived values, culling rules, footprint radii, and finite differences."""

from __future__ import annotations

import math

import pytest
import torch

from scene4d.render.projection import ALPHA_THRESHOLD, gaussian_alpha, project_gaussians

F64 = torch.float64


def one_camera(fx=50.0, fy=40.0, cx=20.0, cy=15.0):
    K = torch.tensor([[[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]], dtype=F64)
    return torch.eye(4, dtype=F64)[None], K


def project_one(mean, scales, opacity=0.8, quat=(1.0, 0.0, 0.0, 0.0), width=40, height=30, **kwargs):
    viewmats, Ks = one_camera()
    return project_gaussians(torch.tensor([mean], dtype=F64), torch.tensor([quat], dtype=F64),
                             torch.tensor([scales], dtype=F64), torch.tensor([opacity], dtype=F64),
                             viewmats, Ks, width, height, **kwargs)


class TestKnownValues:
    def test_on_axis_covariance(self):
        z, (sx, sy, sz), eps2d = 4.0, (0.1, 0.3, 0.7), 0.3
        p = project_one([0.0, 0.0, z], [sx, sy, sz], eps2d=eps2d)
        cov_xx, cov_yy = (50.0 * sx / z) ** 2 + eps2d, (40.0 * sy / z) ** 2 + eps2d  # depth scale sz drops out
        torch.testing.assert_close(p.means2d[0, 0], torch.tensor([20.0, 15.0], dtype=F64))
        torch.testing.assert_close(p.conics[0, 0], torch.tensor([1 / cov_xx, 0.0, 1 / cov_yy], dtype=F64))
        assert p.depths[0, 0].item() == z
        extent = math.sqrt(2 * math.log(0.8 / ALPHA_THRESHOLD))
        assert p.radii[0, 0].tolist() == [math.ceil(extent * math.sqrt(cov_xx)), math.ceil(extent * math.sqrt(cov_yy))]

    def test_rotated_gaussian_on_axis(self):
        # 90 degrees about z swaps the local x and y axes.
        quat = (math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4))
        p = project_one([0.0, 0.0, 2.0], [0.1, 0.3, 0.2], quat=quat)
        cov_xx, cov_yy = (50.0 * 0.3 / 2.0) ** 2 + 0.3, (40.0 * 0.1 / 2.0) ** 2 + 0.3
        torch.testing.assert_close(p.conics[0, 0], torch.tensor([1 / cov_xx, 0.0, 1 / cov_yy], dtype=F64))

    def test_off_axis_perspective_jacobian(self):
        # Isotropic sigma s at (x, 0, z): J = [[fx/z, 0, -fx x/z^2], [0, fy/z, 0]], so cov = s^2 J J^T.
        x, z, s = 0.5, 4.0, 0.2
        p = project_one([x, 0.0, z], [s, s, s])
        cov_xx = s**2 * ((50.0 / z) ** 2 + (50.0 * x / z**2) ** 2) + 0.3
        cov_yy = s**2 * (40.0 / z) ** 2 + 0.3
        torch.testing.assert_close(p.means2d[0, 0], torch.tensor([50.0 * x / z + 20.0, 15.0], dtype=F64))
        torch.testing.assert_close(p.conics[0, 0], torch.tensor([1 / cov_xx, 0.0, 1 / cov_yy], dtype=F64))


class TestCulling:
    @pytest.mark.parametrize("z", [-2.0, 0.0, 0.005])
    def test_behind_or_at_the_camera(self, z):
        assert project_one([0.0, 0.0, z], [0.1, 0.1, 0.1]).radii.abs().sum() == 0

    def test_beyond_far_plane(self):
        assert project_one([0.0, 0.0, 5.0], [0.1] * 3, far_plane=4.0).radii.abs().sum() == 0

    def test_transparent(self):
        assert project_one([0.0, 0.0, 4.0], [0.1] * 3, opacity=0.5 * ALPHA_THRESHOLD).radii.abs().sum() == 0

    def test_off_screen_versus_straddling_the_edge(self):
        # At z=4 a sigma of 0.1 is 1.25 px, so the radius is 5 px: a centre 10 px left of the image is off screen,
        # one 2 px left of it is not.
        assert project_one([-30.0 * 4 / 50, 0.0, 4.0], [0.1] * 3).radii.abs().sum() == 0
        assert project_one([-22.0 * 4 / 50, 0.0, 4.0], [0.1] * 3).visible.all()

    def test_culled_gaussians_stay_finite(self, make_scene):
        scene = make_scene(n=5).requires_grad_()
        with torch.no_grad():
            scene.means[0] = torch.linalg.inv(scene.viewmats[0])[:3, 3]  # exactly at the camera centre
        p = scene.project()
        assert not p.visible[0, 0]
        (p.means2d.sum() + p.conics.sum()).backward()
        assert torch.isfinite(scene.means.grad).all() and torch.isfinite(scene.scales.grad).all()


def test_radii_bound_the_alpha_footprint(make_scene):
    scene = make_scene(n=30, cams=2, sigma=(0.02, 0.4))
    p = scene.project()
    c, n = torch.nonzero(p.visible, as_tuple=True)
    radii = p.radii[c, n].to(F64)
    # Offsets on a fine grid covering twice the box, relative to each centre.
    steps = torch.linspace(-2.0, 2.0, 201, dtype=F64)
    grid = torch.stack(torch.meshgrid(steps, steps, indexing="xy"), dim=-1).reshape(-1, 2)
    offsets = grid[None] * radii[:, None, :]
    alpha = gaussian_alpha(offsets, p.conics[c, n][:, None], p.opacities[c, n][:, None])
    inside = (offsets.abs() <= radii[:, None, :]).all(-1)
    assert (alpha[~inside] == 0).all()
    # ceil() makes the box tight: the region reaches beyond radius - 1 along each axis (up to one grid step).
    reach = torch.where(alpha[..., None] > 0, offsets.abs(), 0.0).amax(dim=1)
    assert (reach > radii - 1 - radii * (steps[1] - steps[0])).all()


def test_gradcheck_means_quats_scales(make_scene):
    scene = make_scene(n=4, cams=2, width=20, height=16)

    def project(means, quats, scales):
        p = project_gaussians(means, quats, scales, scene.opacities, scene.viewmats, scene.Ks,
                              scene.width, scene.height)
        return p.means2d, p.conics, p.depths

    inputs = tuple(t.detach().clone().requires_grad_() for t in (scene.means, scene.quats, scene.scales))
    assert torch.autograd.gradcheck(project, inputs)
