"""Pixel arithmetic shared by every layer that resizes deep images (restore, model, metrics)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_float(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a float (H, W) plane or (H, W, C) image to ``size`` = (W, H), in float32.

    Pillow resizes 32-bit float only one plane at a time (mode "F"), so a colour image goes
    channel by channel; this keeps 16-bit and float precision that an 8-bit resize would lose.
    """
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 3:
        return np.stack(
            [resize_float(array[..., channel], size) for channel in range(array.shape[2])], axis=-1
        )
    plane = Image.fromarray(np.ascontiguousarray(array), mode="F")
    if plane.size != tuple(size):
        plane = plane.resize(tuple(size), resample=Image.BICUBIC)
    return np.asarray(plane, dtype=np.float32)
