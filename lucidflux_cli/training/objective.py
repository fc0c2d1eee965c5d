"""Flow matching in the inference sampler's convention, and FluxIR's pixel-space L1.

The sampler integrates ``x <- x + (s_next - s) * v`` from s = 1 (noise) to s = 0 (image), so
the path it follows is ``x_s = (1 - s) x0 + s noise`` and the velocity it expects is
``d x_s / d s = noise - x0``. Training on anything else would teach the branches a field the
sampler does not integrate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _per_sample(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) times -> broadcastable against ``like`` (B, ...)."""
    return s.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def noisy_latents(x0: torch.Tensor, noise: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``x_s = (1 - s) x0 + s noise`` per sample."""
    s = _per_sample(s, x0)
    return (1 - s) * x0 + s * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The true velocity of the path: ``noise - x0`` (independent of s)."""
    return noise - x0


def predicted_clean(x_s: torch.Tensor, s: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
    """One Euler step from s straight to 0: ``x0_hat = x_s - s v`` (exact for the true velocity)."""
    return x_s - _per_sample(s, x_s) * velocity


def velocity_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error, in float32 whatever the autocast dtype (bf16 sums lose the small terms)."""
    return F.mse_loss(predicted.float(), target.float())


def decode_for_loss(vae: nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """VAE-decode scaled latents (B, 16, h, w) -> pixels in [0, 1], differentiable.

    Unlike the pipeline's decode, no clamp: a clamp has zero gradient wherever the prediction
    overshoots, which is exactly where the pixel loss should pull it back.
    """
    config = vae.config
    z = latents.float() / config.scaling_factor + config.shift_factor
    return (vae.decode(z.to(vae.dtype), return_dict=False)[0].float() + 1) / 2


def encode_for_training(vae: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """HQ pixels (B, 3, H, W) in [0, 1] -> the scaled latents the sampler ends at (the posterior mean).

    The inverse of the pipeline's ``z / scale + shift``; the mean (not a sample) keeps the cache
    deterministic, and the FLUX VAE's posterior is narrow enough for that not to matter.
    """
    config = vae.config
    moments = vae.encode(pixels.to(vae.dtype) * 2 - 1).latent_dist.mean
    return (moments.float() - config.shift_factor) * config.scaling_factor


def latent_window(
    height: int, width: int, crop: int, generator: torch.Generator | None = None
) -> tuple[int, int, int]:
    """A random square (top, left, side) in latent units, at most ``crop`` latent pixels a side."""
    side = min(crop, height, width)
    top = int(torch.randint(0, height - side + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - side + 1, (1,), generator=generator))
    return top, left, side


def pixel_loss(
    vae: nn.Module,
    clean_latents: torch.Tensor,
    hq: torch.Tensor,
    window: tuple[int, int, int],
    factor: int = 8,
) -> torch.Tensor:
    """L1 between the decoded ``clean_latents`` (B, 16, h, w) and ``hq`` (B, 3, 8h, 8w) on ``window``.

    Only the window is decoded, so the decoder's activations (float32, 8x the latent side) stay
    bounded by the window whatever the training size.
    """
    top, left, side = window
    latents = clean_latents[..., top : top + side, left : left + side]
    target = hq[..., top * factor : (top + side) * factor, left * factor : (left + side) * factor]
    return F.l1_loss(decode_for_loss(vae, latents), target.float())
