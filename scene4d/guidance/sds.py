"""Score distillation sampling (DreamFusion), as plain functions on tensors.

One SDS step on clean latents ``x`` (B images, or one clip of B frames):

1. draw a timestep ``t`` from the schedule (:func:`sample_timestep`, one ``t`` for the whole batch) and noise
   ``eps ~ N(0, I)``;
2. noise the latents with the model's forward process, ``x_t = sqrt(a_t) x + sqrt(1 - a_t) eps`` with
   ``a_t = alphas_cumprod[t]``;
3. predict the noise with classifier-free guidance, ``eps_pred = eps_u + s (eps_c - eps_u)``
   (:func:`classifier_free_guidance`; v-prediction models are converted by :func:`epsilon_from_prediction`);
4. take ``grad = w(t) (eps_pred - eps)`` (:func:`sds_weight`) and return the surrogate
   ``0.5 * ||x - stopgrad(x - grad)||^2 / B`` (:func:`sds_surrogate_loss`), whose gradient with respect to ``x``
   is ``grad / B`` while the denoiser is never differentiated.

Timestep schedules (``T`` training timesteps; bounds ``lo = round(t_min T)``, ``hi = round(t_max T)`` clamped to
``[0, T - 1]``; progress ``p = min(step / anneal_iters, 1)``):

- ``uniform``: ``t ~ U{lo, ..., hi}`` at every step;
- ``anneal_max``: ``t ~ U{lo, ..., hi(p)}`` with ``hi(p) = round(hi + p (hi_end - hi))`` falling linearly to
  ``hi_end = round(t_max_end T)``, so late steps refine detail at low noise;
- ``linear``: deterministic ``t = round(hi + p (lo - hi))``, from ``hi`` down to ``lo`` (DreamTime-style).

Weighting ``w(t)``: ``sds`` is ``1 - a_t`` (DreamFusion's ``sigma_t^2``), ``uniform`` is 1.
"""

from __future__ import annotations

import torch

from scene4d.guidance.config import GuidanceConfig


def timestep_bounds(config: GuidanceConfig, step: int, num_train_timesteps: int) -> tuple[int, int]:
    """Inclusive range ``(lo, hi)`` the schedule draws from at ``step`` (``lo == hi`` for ``linear``)."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")

    def index(fraction: float) -> int:
        return min(max(round(fraction * num_train_timesteps), 0), num_train_timesteps - 1)

    lo, hi = index(config.t_min), index(config.t_max)
    progress = min(step / config.anneal_iters, 1.0)
    if config.t_schedule == "uniform":
        return lo, hi
    if config.t_schedule == "anneal_max":
        return lo, max(lo, round(hi + progress * (index(config.t_max_end) - hi)))
    if config.t_schedule == "linear":
        t = round(hi + progress * (lo - hi))
        return t, t
    raise ValueError(f"unknown t_schedule {config.t_schedule!r}")


def sample_timestep(config: GuidanceConfig, step: int, num_train_timesteps: int,
                    generator: torch.Generator | None = None) -> int:
    """One timestep for ``step``, uniform over :func:`timestep_bounds` (one draw from ``generator``)."""
    lo, hi = timestep_bounds(config, step, num_train_timesteps)
    return int(torch.randint(lo, hi + 1, (1,), generator=generator).item())


def sds_weight(alphas_cumprod: torch.Tensor, t: int, weighting: str) -> torch.Tensor:
    """``w(t)`` as a 0-d tensor: ``1 - alphas_cumprod[t]`` for ``sds``, 1 for ``uniform``.

    Args:
        alphas_cumprod: (T,) cumulative products of the scheduler's alphas.
    """
    if weighting == "sds":
        return 1.0 - alphas_cumprod[t]
    if weighting == "uniform":
        return torch.ones((), dtype=alphas_cumprod.dtype, device=alphas_cumprod.device)
    raise ValueError(f"unknown weighting {weighting!r}")


def classifier_free_guidance(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """``eps_uncond + scale (eps_cond - eps_uncond)`` (same shapes in and out)."""
    if eps_uncond.shape != eps_cond.shape:
        raise ValueError(f"eps_uncond {tuple(eps_uncond.shape)} and eps_cond {tuple(eps_cond.shape)} differ in shape")
    return eps_uncond + scale * (eps_cond - eps_uncond)


def epsilon_from_prediction(prediction: torch.Tensor, noisy: torch.Tensor, alpha_cumprod: torch.Tensor,
                            prediction_type: str) -> torch.Tensor:
    """The noise estimate from a denoiser's output.

    Args:
        prediction: the model output, shaped like ``noisy``.
        noisy: the noised latents ``x_t``.
        alpha_cumprod: 0-d ``a_t``.
        prediction_type: ``epsilon`` (returned as is) or ``v_prediction``
            (``v = sqrt(a_t) eps - sqrt(1 - a_t) x``, so ``eps = sqrt(a_t) v + sqrt(1 - a_t) x_t``).
    """
    if prediction_type == "epsilon":
        return prediction
    if prediction_type == "v_prediction":
        return alpha_cumprod.sqrt() * prediction + (1.0 - alpha_cumprod).sqrt() * noisy
    raise ValueError(f"prediction_type {prediction_type!r} is not supported for SDS (epsilon, v_prediction)")


def sds_surrogate_loss(latents: torch.Tensor, grad: torch.Tensor, num_images: int) -> torch.Tensor:
    """A scalar whose gradient with respect to ``latents`` is ``grad / num_images``.

    Args:
        latents: latents that require grad, any shape.
        grad: the SDS gradient, same shape (treated as a constant).
        num_images: the images (or clip frames) the latents hold.
    """
    if grad.shape != latents.shape:
        raise ValueError(f"grad {tuple(grad.shape)} must match latents {tuple(latents.shape)}")
    target = (latents - grad).detach()
    return 0.5 * (latents.float() - target.float()).pow(2).sum() / num_images
