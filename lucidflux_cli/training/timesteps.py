"""Training timesteps: where on the noise path each training sample is drawn.

A sampler draws s in [0, 1] (0 = clean, 1 = pure noise, the inference sampler's convention),
then the FLUX resolution shift moves it towards noise exactly as the inference schedule does,
so the model is trained on the times it is later asked about.
"""

from __future__ import annotations

import math

import torch
from diffusers.training_utils import compute_density_for_timestep_sampling

from lucidflux_cli.model.sampling import schedule_mu
from lucidflux_cli.training.options import TIMESTEP_SAMPLERS, TimestepOptions  # noqa: F401 (re-exported)


def draw(count: int, options: TimestepOptions, generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` unshifted times in [0, 1] (float32, CPU)."""
    if options.sampler == "clamped-uniform":
        # FluxIR: u ~ U(-eps, 1 + eps) clamped, so eps / (1 + 2 eps) of the draws land exactly on
        # each end: the model sees pure noise and the clean image, which plain uniform never gives.
        u = torch.rand(count, generator=generator) * (1 + 2 * options.epsilon) - options.epsilon
        return u.clamp(0.0, 1.0)
    scheme = "logit_normal" if options.sampler == "logit-normal" else "uniform"
    return compute_density_for_timestep_sampling(
        scheme, count, logit_mean=options.mean, logit_std=options.std, generator=generator
    ).float()


def resolution_shift(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The inference schedule's shift ``e^mu / (e^mu + 1/t - 1)`` with its ``mu`` (and its quirk)."""
    mu = schedule_mu(height, width)
    with torch.no_grad():
        # 1/0 = inf maps t = 0 to exactly 0; t = 1 maps to exactly 1, as in sampling.timesteps.
        return math.exp(mu) / (math.exp(mu) + (1 / t - 1))


def sample_timesteps(
    count: int, options: TimestepOptions, height: int, width: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``count`` training times s in [0, 1] for images of ``height`` x ``width`` pixels."""
    t = draw(count, options, generator)
    return resolution_shift(t, height, width) if options.shift else t
