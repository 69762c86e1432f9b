"""Score distillation on novel views of an object during fitting (DreamScene4D's use of Zero123 SDS).

Each guided step renders the object at a training time from cameras orbiting its centre (offsets drawn from
the guidance config), and adds the guidance model's SDS loss: Zero123 is conditioned on the object's crop in
the reference frame and the relative camera; a text model on the prompt; a video model (SDS-T) sees the
object at consecutive times from one novel camera.
"""

from __future__ import annotations

import torch

from scene4d.conventions import normalized_time
from scene4d.dynamic_object import DynamicObject
from scene4d.fit.observations import ObjectObservations
from scene4d.guidance.guidance import Guidance
from scene4d.guidance.views import orbit_viewmats, sample_orbit_offsets

FILL_FRACTION = 0.6


def reference_crop(observations: ObjectObservations, frame: int, resolution: int) -> torch.Tensor:
    """(resolution, resolution, 3) the object's pixels in ``frame`` on white, centred in a square crop."""
    mask = observations.masks[frame, ..., 0] > 0.5
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    cy, cx = (rows.min() + rows.max()) / 2.0, (cols.min() + cols.max()) / 2.0
    half = max(int(rows.max() - rows.min()), int(cols.max() - cols.min())) / (2.0 * FILL_FRACTION)
    image = observations.images[frame] * mask[..., None] + (~mask[..., None]).float()
    ys = torch.linspace(cy - half, cy + half, resolution).round().long()
    xs = torch.linspace(cx - half, cx + half, resolution).round().long()
    inside = ((ys >= 0) & (ys < image.shape[0]))[:, None] & ((xs >= 0) & (xs < image.shape[1]))[None]
    crop = image[ys.clamp(0, image.shape[0] - 1)][:, xs.clamp(0, image.shape[1] - 1)]
    return torch.where(inside[..., None], crop, torch.ones_like(crop))


class NovelViewGuidance:
    """Adds SDS on novel views to a fit.

    Args:
        guidance: a built :class:`~scene4d.guidance.guidance.Guidance`.
        observations: the object's observations.
        reference_frame: the frame whose view is the reference (Zero123's conditioning image).
        extent: the object's size, to frame it in the novel views.
    """

    def __init__(self, guidance: Guidance, observations: ObjectObservations, reference_frame: int, extent: float):
        self.guidance = guidance
        self.observations = observations
        self.reference_frame = reference_frame
        self.extent = extent
        kind = guidance.config.kind
        resolution = guidance.config.resolution
        if kind == "zero123":
            self.reference = guidance.reference(reference_crop(observations, reference_frame, resolution))
        elif kind in ("sd", "video"):
            self.text = guidance.text_condition()

    def loss(self, model: DynamicObject, step: int, generator: torch.Generator) -> torch.Tensor | None:
        """The weighted SDS loss at this fitting step, or None when guidance skips it."""
        if not self.guidance.applies(step):
            return None
        config, obs = self.guidance.config, self.observations
        video = config.kind == "video"
        count = config.frames if video else 1
        elevation, azimuth = sample_orbit_offsets(config, 1, generator)
        train = obs.train_frames
        start = int(torch.randint(0, max(train.numel() - count + 1, 1), (1,), generator=generator))
        frames = train[start:start + count] if video else train[start:start + 1]
        times = normalized_time(frames, obs.num_frames)
        with torch.no_grad():
            center = model.posed(times[:1]).means[0].mean(0)
        viewmat = orbit_viewmats(obs.viewmats[self.reference_frame], center, elevation, azimuth)[0]
        distance = torch.linalg.norm(viewmat[:3, :3] @ center + viewmat[:3, 3])
        res = config.resolution
        focal = FILL_FRACTION * res * float(distance) / max(self.extent, 1e-6)
        K = torch.tensor([[focal, 0.0, res / 2.0], [0.0, focal, res / 2.0], [0.0, 0.0, 1.0]])
        outputs = model.render(times, viewmat.expand(len(times), 4, 4), K.expand(len(times), 3, 3), res, res,
                               backgrounds=torch.ones(len(times), 3))
        images = torch.cat([o.colors for o in outputs])
        if config.kind == "zero123":
            cond = self.guidance.view_condition(self.reference, elevation, azimuth)
        else:
            cond = self.text
        return self.guidance.sds_loss(images, step, cond, generator)
