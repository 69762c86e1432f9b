"""SDS guidance inside the object fit: novel views of the object reach the guidance model's loss."""

import torch

from scene4d.fit.config import FitConfig
from scene4d.fit.fit_object import fit_object
from scene4d.fit.init import initialise
from scene4d.fit.novel_view_guidance import NovelViewGuidance, reference_crop
from scene4d.fit.observations import ObjectObservations


def _observations(frames=3, width=32, height=24):
    torch.manual_seed(0)
    images = torch.rand(frames, height, width, 3)
    masks = torch.zeros(frames, height, width, 1)
    masks[:, 6:18, 10:22] = 1.0
    K = torch.tensor([[30.0, 0, 16], [0, 30.0, 12], [0, 0, 1]])
    return ObjectObservations(
        images=images, masks=masks, valid=torch.ones_like(masks), depth=torch.full_like(masks, 3.0),
        depth_weights=masks.clone(), viewmats=torch.eye(4).expand(frames, 4, 4).clone(), Ks=K.expand(frames, 3, 3),
        tracks=torch.zeros(0, frames, 2), track_visibility=torch.zeros(0, frames, dtype=torch.bool),
        train_frames=torch.arange(frames))


def test_reference_crop_centres_the_object_on_white():
    obs = _observations()
    crop = reference_crop(obs, 0, 16)
    assert crop.shape == (16, 16, 3)
    assert torch.allclose(crop[0, 0], torch.ones(3)) and torch.allclose(crop[-1, -1], torch.ones(3))
    assert not torch.allclose(crop[8, 8], torch.ones(3))  # the object's pixels fill the centre


def test_sds_gradient_reaches_the_object_gaussians(zero123):
    obs = _observations()
    config = FitConfig(init_points=100, control_points=4, backend="torch")
    init = initialise(obs, config)
    guided = NovelViewGuidance(zero123, obs, init.reference_frame, init.extent)
    loss = guided.loss(init.model, step=0, generator=torch.Generator().manual_seed(0))
    loss.backward()
    params = init.model.gaussians.params
    assert params["sh0"].grad is not None and params["sh0"].grad.abs().sum() > 0
    assert params["means"].grad.abs().sum() > 0
    assert all(p.grad is None for p in zero123.unet.parameters())


def test_fit_records_the_sds_term_in_motion_and_joint_stages(zero123):
    result = fit_object(_observations(), FitConfig(static_iters=2, motion_iters=2, joint_iters=2, init_points=100,
                                                   control_points=4, backend="torch", densify=False),
                        progress=False, guidance=zero123)
    stages_with_sds = {row["stage"] for row in result.history if "sds" in row}
    assert stages_with_sds == {"motion", "joint"}
