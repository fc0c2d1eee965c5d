"""Sample conversions shared by reading and writing: integer samples <-> float32 in [0, 1]."""

from __future__ import annotations

import numpy as np


def to_unit(values: np.ndarray, bits: int) -> np.ndarray:
    """uint8 (``bits`` 8) or uint16 samples as contiguous float32 in [0, 1]."""
    scale = np.float32(65535.0 if bits == 16 else 255.0)
    return np.ascontiguousarray(values, dtype=np.float32) / scale


def quantize(values: np.ndarray, bits: int) -> np.ndarray:
    """Float samples as uint8 (``bits`` 8) or uint16; NaN becomes 0, values are clipped to range."""
    top = 65535.0 if bits == 16 else 255.0
    scaled = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0) * np.float32(top)
    # x * 255 + 0.5, truncated: the reference's (torchvision's) rounding, halves go up.
    return np.floor(np.clip(scaled + np.float32(0.5), 0.0, top)).astype(np.uint16 if bits == 16 else np.uint8)
