"""Rig files: both deformation kinds round-trip to the same posed Gaussians; bad rigs fail with one line."""

import json
import math

import numpy as np
import pytest
import torch

from scene4d.dynamic_object import DynamicObject
from scene4d.errors import InputError
from scene4d.fit.rig import load_rig, save_rig
from scene4d.gaussians import Gaussians
from scene4d.motion.hexplane import HexPlaneDeformation
from scene4d.motion.skinning import ControlPointDeformation
from scene4d.motion.trajectory import RigidTrajectory

TIMES = torch.tensor([0.0, 0.37, 1.0])


def _model(kind: str) -> DynamicObject:
    """A blob with a turning, sliding trajectory and a non-trivial deformation of the given kind."""
    g = torch.Generator().manual_seed(0)
    points = torch.randn(200, 3, generator=g) * 0.3
    gaussians = Gaussians.from_points(points, torch.rand(200, 3, generator=g), sh_degree=0, scale=0.05)
    if kind == "hexplane":
        deformation = HexPlaneDeformation(torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]), [4, 8], 3,
                                          channels=4, hidden=8)
    else:
        deformation = ControlPointDeformation(points[:8], num_knots=4, radius=0.3)
    trajectory = RigidTrajectory(4, translations=torch.randn(4, 3, generator=g) * 0.2)
    with torch.no_grad():
        for param in deformation.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=g))
        trajectory.rotation_knots[:, 1] = torch.linspace(0.0, 0.6, 4)
        trajectory.log_scale_knots[:] = math.log(1.1)
    return DynamicObject(gaussians, deformation, trajectory)


@pytest.mark.parametrize("kind", ["hexplane", "control_points"])
def test_round_trip_reproduces_the_posed_gaussians_exactly(kind, tmp_path):
    model = _model(kind)
    save_rig(model, tmp_path / "rig", {"object_id": 3, "num_frames": 5})
    loaded, info = load_rig(tmp_path / "rig")
    assert info["deformation"] == kind and info["object_id"] == 3 and info["num_gaussians"] == 200
    assert type(loaded.deformation) is type(model.deformation)
    with torch.no_grad():
        before, after = model.posed(TIMES), loaded.posed(TIMES)
    moved = (before.means - model.gaussians.get_means().detach()).abs().max()
    assert moved > 0.05  # the deformation and trajectory really move the Gaussians
    assert torch.equal(after.means, before.means) and torch.equal(after.quats, before.quats)
    assert torch.equal(after.scales, before.scales)


def test_hexplane_rig_layout(tmp_path):
    save_rig(_model("hexplane"), tmp_path / "rig", {})
    info = json.loads((tmp_path / "rig" / "rig.json").read_text())
    assert info["hexplane"] == {"resolutions": [4, 8], "time_resolution": 3, "channels": 4, "hidden": 8}
    motion = np.load(tmp_path / "rig" / "motion.npz")
    assert motion["hexplane.bounds"].shape == (2, 3)
    assert motion["hexplane.planes.0"].shape == (4, 4, 4) and motion["hexplane.planes.3"].shape == (4, 3, 4)
    assert motion["hexplane.planes.11"].shape == (4, 3, 8) and "hexplane.planes.12" not in motion
    assert motion["hexplane.decoder.4.weight"].shape == (6, 8)
    assert not (tmp_path / "rig" / "skinning.npz").exists()


def test_a_rig_without_a_deformation_kind_has_control_points(tmp_path):
    model = _model("control_points")
    save_rig(model, tmp_path / "rig", {})
    path = tmp_path / "rig" / "rig.json"
    info = json.loads(path.read_text())
    del info["deformation"]  # written before the hexplane option existed
    path.write_text(json.dumps(info))
    loaded, _ = load_rig(tmp_path / "rig")
    with torch.no_grad():
        assert torch.equal(loaded.posed(TIMES).means, model.posed(TIMES).means)


@pytest.mark.parametrize("change, message", [
    ({"deformation": "hexplanes"}, "rig: unknown deformation 'hexplanes'"),
    ({"hexplane": {"resolutions": [4, 16], "time_resolution": 3, "channels": 4, "hidden": 8}},
     "does not match rig.json's hexplane settings"),
])
def test_bad_rigs_fail_with_one_line(change, message, tmp_path):
    save_rig(_model("hexplane"), tmp_path / "rig", {})
    path = tmp_path / "rig" / "rig.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(InputError, match=message) as error:
        load_rig(tmp_path / "rig")
    assert "\n" not in str(error.value)
