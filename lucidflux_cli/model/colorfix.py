"""Wavelet colour fix: keep the diffusion output's detail, take colour from the cleaned image."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lucidflux_cli.model import tiling

LEVELS = 5


def wavelet_blur(image: torch.Tensor, dilation: int) -> torch.Tensor:
    """3x3 binomial blur with holes (a trous), replicate padding, per channel."""
    kernel = torch.tensor(
        [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=image.dtype, device=image.device
    )
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


def color_fix_windows(
    restored: np.ndarray, color_source: torch.Tensor, window: int, device: torch.device
) -> np.ndarray:
    """:func:`wavelet_color_fix` of host ``restored`` (B, H, W, 3) from host ``color_source``
    (B, 3, >= H, >= W), computed on ``device`` window by window; returns a new host array.

    Each window is a core plus ``COLOR_FIX_MARGIN`` px of context, and the blur reaches
    1+2+4+8+16 = 31 px, so the cores equal the whole-image fix (up to rounding); a window
    as large as the image is the whole-image fix exactly.
    """
    batch, height, width = restored.shape[:3]
    fixed = np.empty_like(restored)
    for core, box in tiling.core_boxes(height, width, window, tiling.COLOR_FIX_MARGIN):
        content = torch.from_numpy(restored[:, box.slices[0], box.slices[1]]).permute(0, 3, 1, 2)
        source = color_source[(slice(0, batch), slice(None), *box.slices)]
        result = wavelet_color_fix(content.to(device).contiguous(), source.to(device).float().contiguous())
        top, left = core.top - box.top, core.left - box.left
        part = result[..., top : top + core.height, left : left + core.width]
        fixed[:, core.slices[0], core.slices[1]] = part.permute(0, 2, 3, 1).cpu().numpy()
    return fixed
