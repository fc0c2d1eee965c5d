"""Flow-matching sampling as the LucidFlux reference does it: noise, schedule, packing, Euler."""

from __future__ import annotations

import math

import torch

from lucidflux_cli.model.config import LucidFluxConfig

LATENT_CHANNELS = LucidFluxConfig.full().vae.latent_channels


def make_noise(height: int, width: int, seed: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Latent noise drawn exactly like the reference: same seed, device, dtype -> same noise."""
    generator = torch.Generator(device=device).manual_seed(seed)
    shape = (1, LATENT_CHANNELS, 2 * math.ceil(height / 16), 2 * math.ceil(width / 16))
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/2 * W/2, C*4): 2x2 patches become tokens."""
    b, c, h, w = latents.shape
    x = latents.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`pack_latents` for an image of ``height`` x ``width`` pixels."""
    b, _, d = tokens.shape
    h, w = math.ceil(height / 16), math.ceil(width / 16)
    x = tokens.reshape(b, h, w, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, d // 4, h * 2, w * 2)


def image_positions(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """RoPE ids (N, 3) of the packed image tokens: (0, row, column)."""
    h, w = math.ceil(height / 16), math.ceil(width / 16)
    ids = torch.zeros(h, w, 3)
    ids[..., 1] = torch.arange(h)[:, None]
    ids[..., 2] = torch.arange(w)[None, :]
    return ids.reshape(h * w, 3).to(device)


def schedule_mu(height: int, width: int, base_shift: float = 0.5, max_shift: float = 1.15) -> float:
    # Reference quirk, kept because the released weights were evaluated with it: the shift
    # is interpolated at (W/8 * H/8) / 256 -- 64 for 1024x1024 -- not at the packed token
    # count (4096) that FLUX itself uses.
    seq_len = (width // 8) * (height // 8) // (16 * 16)
    slope = (max_shift - base_shift) / (4096 - 256)
    return slope * seq_len + (base_shift - slope * 256)


def timesteps(steps: int, height: int, width: int) -> list[float]:
    """``steps + 1`` times from 1 to 0, shifted towards high noise (float32, as the reference)."""
    t = torch.linspace(1, 0, steps + 1)
    mu = schedule_mu(height, width)
    shifted = math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** 1.0)
    return shifted.tolist()
