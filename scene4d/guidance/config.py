"""Typed settings of score-distillation guidance (a section of the fitting config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from scene4d.errors import InputError

KINDS = ("off", "zero123", "sd", "video")
T_SCHEDULES = ("uniform", "anneal_max", "linear")
WEIGHTINGS = ("sds", "uniform")


@dataclass
class GuidanceConfig:
    """Which diffusion model critiques novel renders of an object, and how (see :mod:`scene4d.guidance.sds`)."""

    kind: str = "off"
    """``off``; ``zero123`` (image + relative camera conditioned, as DreamScene4D); ``sd`` (a text-to-image
    Stable Diffusion); ``video`` (a text-to-video ``UNet3DConditionModel``, temporal SDS on rendered clips)."""
    model: str = ""
    """A local folder in the diffusers pipeline layout, or a Hugging Face model id found in the local cache."""
    allow_download: bool = False
    """Download a model id missing from the cache (needs network; off by default, never in tests)."""
    cache_dir: str = ""
    """Hugging Face cache folder to look in; empty for the default one."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:1``, ..."""
    guidance_scale: float = 5.0
    """Classifier-free guidance scale ``s`` in ``eps_u + s (eps_c - eps_u)``; 1 uses the conditional prediction
    alone (Zero123 SDS uses about 3-5, text-to-image SDS about 7.5-100)."""
    t_min: float = 0.02
    """Smallest diffusion timestep, as a fraction of the model's training timesteps."""
    t_max: float = 0.98
    """Largest diffusion timestep, as a fraction of the model's training timesteps."""
    t_schedule: str = "uniform"
    """``uniform``: t uniform in [t_min, t_max] at every step (DreamFusion); ``anneal_max``: t uniform in
    [t_min, upper], the upper bound falling linearly from t_max to t_max_end over anneal_iters steps;
    ``linear``: t falls deterministically from t_max to t_min over anneal_iters steps (DreamTime-style)."""
    t_max_end: float = 0.5
    """``anneal_max``: the upper bound reached after anneal_iters steps (between t_min and t_max)."""
    anneal_iters: int = 1000
    """Steps over which ``anneal_max`` and ``linear`` schedules move; constant afterwards."""
    weighting: str = "sds"
    """w(t) multiplying the noise residual: ``sds`` is ``1 - alphas_cumprod[t]`` (DreamFusion), ``uniform`` is 1."""
    weight: float = 1.0
    """Multiplies the SDS loss (so its gradient is ``weight * w(t) * (eps_pred - eps)`` per image)."""
    every: int = 1
    """Apply guidance on every n-th fitting step."""
    resolution: int = 256
    """Side of the square images given to the model (renders are resized to it): 256 for Zero123, 512 for SD."""
    prompt: str = ""
    """Text prompt (``sd`` and ``video``)."""
    negative_prompt: str = ""
    """Text of the unconditional branch of classifier-free guidance (``sd`` and ``video``)."""
    frames: int = 8
    """``video``: consecutive frames per rendered clip."""
    elevation_range: list[float] = field(default_factory=lambda: [-30.0, 30.0])
    """``zero123``: novel views' elevation change from the reference camera, degrees (positive: up)."""
    azimuth_range: list[float] = field(default_factory=lambda: [-180.0, 180.0])
    """``zero123``: novel views' azimuth change from the reference camera, degrees (positive: to its right)."""

    def check(self) -> None:
        """Raise :class:`InputError` naming the first invalid setting."""
        choices = {"kind": (self.kind, KINDS), "t_schedule": (self.t_schedule, T_SCHEDULES),
                   "weighting": (self.weighting, WEIGHTINGS)}
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise InputError(f"guidance.{name} must be one of {allowed}, got {value!r}")
        if not 0.0 <= self.t_min <= self.t_max <= 1.0:
            raise InputError(f"guidance: need 0 <= t_min <= t_max <= 1, got t_min={self.t_min}, t_max={self.t_max}")
        if self.t_schedule == "anneal_max" and not self.t_min <= self.t_max_end <= self.t_max:
            raise InputError(f"guidance.t_max_end must lie in [t_min, t_max] = [{self.t_min}, {self.t_max}], "
                             f"got {self.t_max_end}")
        positive = {"guidance_scale": self.guidance_scale, "anneal_iters": self.anneal_iters, "every": self.every,
                    "resolution": self.resolution, "frames": self.frames}
        for name, value in positive.items():
            if not value > 0:
                raise InputError(f"guidance.{name} must be positive, got {value}")
        for name, value in (("elevation_range", self.elevation_range), ("azimuth_range", self.azimuth_range)):
            if len(value) != 2 or value[0] > value[1]:
                raise InputError(f"guidance.{name} must be [low, high] with low <= high, got {list(value)}")
        if self.kind != "off" and not self.model:
            raise InputError(f"guidance.kind={self.kind!r} needs guidance.model (a local folder or a model id)")
