"""Wavelet colour fix: keep the diffusion output's detail, take colour from the cleaned image."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LEVELS = 5


def wavelet_blur(image: torch.Tensor, dilation: int) -> torch.Tensor:
    """3x3 binomial blur with holes (a trous), replicate padding, per channel."""
    kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=image.dtype, device=image.device)
    kernel = (kernel / 16).expand(image.shape[-3], 1, 3, 3)
    padded = F.pad(image, (dilation,) * 4, mode="replicate")
    return F.conv2d(padded, kernel, groups=image.shape[-3], dilation=dilation)


def wavelet_split(image: torch.Tensor, levels: int = LEVELS) -> tuple[torch.Tensor, torch.Tensor]:
    """(high frequencies summed over ``levels``, lowest band)."""
    high = torch.zeros_like(image)
    for level in range(levels):
        low = wavelet_blur(image, 2**level)
        high += image - low
        image = low
    return high, image


def wavelet_color_fix(content: torch.Tensor, color_source: torch.Tensor) -> torch.Tensor:
    """High frequencies of ``content`` + lowest band of ``color_source``, clamped to [0, 1]."""
    high, _ = wavelet_split(content)
    _, low = wavelet_split(color_source)
    return (high + low).clamp(0, 1)
