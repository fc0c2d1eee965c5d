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


# Rec. 709 weights (the sRGB primaries), applied to the encoded values as video "luma" is.
_LUMA = np.array([0.2126, 0.7152, 0.0722])


def luminance(rgb: np.ndarray) -> np.ndarray:
    """float32 (H, W) luminance of float RGB (H, W, 3): how a grayscale source is given back."""
    # In float64, so equal planes (a gray source, a float TIFF) come back exactly.
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.float64) @ _LUMA, dtype=np.float32)


def float_samples(values: np.ndarray) -> np.ndarray:
    """float32 samples for a float output: NaN becomes 0, values are clipped to [0, 1]."""
    return np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0), 0.0, 1.0)
