"""HexPlane deformation: identity at start, bilinear sampling by hand, gradients, continuity in time, regularisers."""

import math

import pytest
import torch

from scene4d import losses
from scene4d.motion.hexplane import PLANE_AXES, HexPlaneDeformation, sample_plane

BOX = torch.tensor([[-1.0, -0.5, 0.0], [1.0, 0.5, 2.0]], dtype=torch.float64)


def _field(resolutions=(3, 5), time_resolution=4, channels=2, hidden=8, seed=0) -> HexPlaneDeformation:
    """A float64 field with random planes (time planes too) and a random, non-zero decoder."""
    field = HexPlaneDeformation(BOX, resolutions, time_resolution, channels, hidden, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in field.parameters():
            param.copy_(0.5 + 0.5 * torch.rand(param.shape, generator=g, dtype=torch.float64))
        for layer in field.decoder[::2]:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g, dtype=torch.float64) * 0.5)
    return field


def _inside(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return BOX[0] + (BOX[1] - BOX[0]) * torch.rand(n, 3, generator=g, dtype=torch.float64)


def _bilinear(plane: torch.Tensor, column: float, row: float) -> torch.Tensor:
    """Hand bilinear interpolation of a (C, H, W) plane at fractional sample indices."""
    c0, r0 = min(int(column), plane.shape[2] - 2), min(int(row), plane.shape[1] - 2)
    fc, fr = column - c0, row - r0
    return ((1 - fc) * (1 - fr) * plane[:, r0, c0] + fc * (1 - fr) * plane[:, r0, c0 + 1]
            + (1 - fc) * fr * plane[:, r0 + 1, c0] + fc * fr * plane[:, r0 + 1, c0 + 1])


def test_starts_as_the_identity_at_any_time():
    field = HexPlaneDeformation(BOX, [4, 8], 5, channels=3, hidden=16)
    points = _inside(40)
    points[0] = torch.tensor([3.0, -2.0, 5.0], dtype=torch.float64)  # outside the box too
    quats = torch.nn.functional.normalize(torch.randn(40, 4, dtype=torch.float64), dim=-1)
    means, moved = field(points, quats, torch.tensor([0.0, 0.37, 1.0]))
    assert means.shape == (3, 40, 3) and moved.shape == (3, 40, 4)
    assert torch.equal(means, points.expand(3, -1, -1)) and torch.equal(moved, quats.expand(3, -1, -1))


def test_sample_plane_is_hand_bilinear_interpolation():
    plane = torch.arange(24, dtype=torch.float64).reshape(2, 3, 4) ** 1.5  # (C=2, H=3, W=4), not linear
    column, row = 1.25, 0.5  # fractional sample indices; -1 and 1 are the first and last samples
    coords = torch.tensor([[-1.0 + 2.0 * column / 3.0, -1.0 + 2.0 * row / 2.0]], dtype=torch.float64)
    expected = 0.375 * plane[:, 0, 1] + 0.125 * plane[:, 0, 2] + 0.375 * plane[:, 1, 1] + 0.125 * plane[:, 1, 2]
    torch.testing.assert_close(sample_plane(plane, coords)[0], expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(expected, _bilinear(plane, column, row), rtol=0, atol=1e-12)
    corner = sample_plane(plane, torch.tensor([[1.0, -1.0], [7.0, -3.0]], dtype=torch.float64))
    torch.testing.assert_close(corner, plane[:, 0, 3].expand(2, 2))  # last column, first row; outside: border


def test_features_are_the_product_of_six_hand_samples_per_level():
    field = _field()
    point = torch.tensor([0.3, -0.2, 1.5], dtype=torch.float64)
    time = 0.6
    unit = ((point - BOX[0]) / (BOX[1] - BOX[0])).tolist() + [time]  # in [0, 1] per axis
    features = field.features(point[None], torch.tensor([time], dtype=torch.float64))[0, 0]
    expected = []
    for level in range(2):
        product = torch.ones(2, dtype=torch.float64)
        for plane, (a, b) in zip(field.level_planes(level), PLANE_AXES.values()):
            column, row = unit[a] * (plane.shape[2] - 1), unit[b] * (plane.shape[1] - 1)
            product = product * _bilinear(plane.detach(), column, row)
        expected.append(product)
    torch.testing.assert_close(features, torch.cat(expected), rtol=0, atol=1e-12)


def test_gradients_match_finite_differences():
    field = _field(resolutions=(3,), time_resolution=3, channels=2, hidden=4)
    names = [name for name, _ in field.named_parameters()]
    points = _inside(5).requires_grad_(True)
    quats = torch.nn.functional.normalize(torch.randn(5, 4, dtype=torch.float64), dim=-1).requires_grad_(True)
    times = torch.tensor([0.15, 0.8], dtype=torch.float64, requires_grad=True)

    def run(points, quats, times, *params):
        return torch.func.functional_call(field, dict(zip(names, params)), (points, quats, times))

    params = [p.detach().clone().requires_grad_(True) for p in field.parameters()]
    assert torch.autograd.gradcheck(run, (points, quats, times, *params))


def test_between_two_time_samples_a_linear_field_is_the_average():
    """Only xt varies in time and the decoder is affine on these features: the midpoint is the neighbours' mean."""
    field = _field(resolutions=(4,), time_resolution=5, channels=3, hidden=8)
    with torch.no_grad():
        for plane in field.time_planes[1:]:
            plane.fill_(1.0)
        for layer in field.decoder[:3:2]:
            layer.bias.fill_(10.0)  # with non-negative second-layer weights, keeps both ReLUs in their linear part
        field.decoder[2].weight.abs_()
    points = _inside(30)
    quats = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64).expand(30, 4)
    times = torch.tensor([1 / 4, 3 / 8, 2 / 4], dtype=torch.float64)  # time samples 1 and 2, and halfway
    with torch.no_grad():
        hidden = field.decoder[0](field.features(points, times))
        assert (hidden > 0).all() and (field.decoder[2](hidden) > 0).all()
        means, _ = field(points, quats, times)
    offsets = means - points
    assert (offsets[2] - offsets[0]).abs().min() > 1e-4  # the neighbours differ, so the check is not vacuous
    torch.testing.assert_close(offsets[1], (offsets[0] + offsets[2]) / 2, rtol=0, atol=1e-10)
    low, high = torch.minimum(offsets[0], offsets[2]), torch.maximum(offsets[0], offsets[2])
    assert ((offsets[1] >= low) & (offsets[1] <= high)).all()


def test_any_field_is_continuous_in_time():
    field = _field()
    points, quats = _inside(20), torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64).expand(20, 4)

    def largest_step(count):
        with torch.no_grad():
            means, rotated = field(points, quats, torch.linspace(0, 1, count, dtype=torch.float64))
        return max((means[1:] - means[:-1]).abs().max().item(), (rotated[1:] - rotated[:-1]).abs().max().item())

    coarse, fine = largest_step(31), largest_step(301)
    assert 0 < fine < 0.2 * coarse  # ten times finer sampling, about ten times smaller steps (Lipschitz)


def test_plane_regularisers_against_hand_values():
    rows, columns = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), indexing="ij")
    space = (2.0 * columns + 3.0 * rows)[None]  # (1, 3, 4): steps of 3 down, 2 across
    times, across = torch.meshgrid(torch.arange(4.0), torch.arange(3.0), indexing="ij")
    quadratic = (5.0 * across + times**2)[None]  # (1, T=4, 3): steps of 5 across; second difference 2 in time
    linear = (across - 7.0 * times)[None]
    # TV: the space plane's two axes (9 and 4) and the time plane's spatial axis only (25).
    assert losses.plane_total_variation([space], [quadratic]).item() == pytest.approx((9 + 4 + 25) / 3)
    assert losses.plane_time_smoothness([quadratic, linear]).item() == pytest.approx((4 + 0) / 2)
    constant = [torch.full((2, 3, 3), 0.7)]
    assert losses.plane_total_variation(constant, constant).item() == 0.0
    assert losses.plane_time_smoothness(constant).item() == 0.0


def test_a_fresh_field_is_static_in_time():
    field = HexPlaneDeformation(BOX, [4], 6)
    assert losses.plane_time_smoothness(field.time_planes).item() == 0.0
    assert len(field.space_planes) == len(field.time_planes) == 3
    assert all(p.shape == (16, 6, 4) for p in field.time_planes)
    assert all(p.shape == (16, 4, 4) for p in field.space_planes)
    assert losses.plane_total_variation(field.space_planes, field.time_planes).item() > 0  # random spatial features


@pytest.mark.parametrize("bounds, resolutions, time_resolution", [
    (torch.tensor([[0.0, 0, 0], [1, 0, 1]]), [4], 3),
    (torch.zeros(3), [4], 3),
    (BOX, [1], 3),
    (BOX, [4], 1),
])
def test_bad_arguments_are_rejected(bounds, resolutions, time_resolution):
    with pytest.raises(ValueError):
        HexPlaneDeformation(bounds, resolutions, time_resolution)


def test_rotation_is_composed_before_the_gaussians_own():
    field = HexPlaneDeformation(BOX, [2], 2, channels=1, hidden=2)
    with torch.no_grad():
        field.decoder[-1].bias[3:] = torch.tensor([0.0, 0.0, math.pi / 2])  # a quarter turn about z everywhere
        field.decoder[-1].bias[:3] = torch.tensor([0.5, 0.0, 0.0])
    quat = torch.tensor([[math.cos(math.pi / 8), math.sin(math.pi / 8), 0.0, 0.0]], dtype=torch.float64)
    means, moved = field(torch.zeros(1, 3, dtype=torch.float64), quat, torch.tensor([0.5], dtype=torch.float64))
    torch.testing.assert_close(means[0, 0], torch.tensor([0.5 * 1.0, 0.0, 0.0], dtype=torch.float64))  # h = 2 / 2
    z = torch.tensor([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)], dtype=torch.float64)
    w1, x1, y1, z1 = z.tolist()
    w2, x2, _, _ = quat[0].tolist()
    expected = torch.tensor([w1 * w2, w1 * x2, z1 * x2, z1 * w2], dtype=torch.float64)  # (z turn) * (x turn), by hand
    torch.testing.assert_close(moved[0, 0], expected)
