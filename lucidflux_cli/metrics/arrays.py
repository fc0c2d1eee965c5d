"""What the metrics take: float32 ``H x W x 3`` numpy arrays in [0, 1], or ``3 x H x W`` tensors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

import numpy as np

if TYPE_CHECKING:
    import torch

Image = Union[np.ndarray, "torch.Tensor"]

# What scoring does with transparency: metrics take RGB, and compositing over a chosen background
# would invent pixels; the colour channels are scored as stored.
ALPHA_NOTE = "has an alpha channel: its colour channels are scored as stored, alpha ignored (not composited)"


def to_tensor(image: Image) -> torch.Tensor:
    """``3 x H x W`` float32 tensor in [0, 1] from an ``H x W x 3`` array or a ``3 x H x W`` tensor."""
    import torch

    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H x W x 3 array, got shape {image.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    else:
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a 3 x H x W tensor, got shape {tuple(image.shape)}")
        tensor = image.float()
    return tensor.clamp(0.0, 1.0)


def height_width(image: Image) -> tuple[int, int]:
    """(height, width) of an array or tensor as :func:`to_tensor` accepts them."""
    return (
        (int(image.shape[0]), int(image.shape[1]))
        if isinstance(image, np.ndarray)
        else (int(image.shape[1]), int(image.shape[2]))
    )
