"""Baseline and progressive JPEGs decoded by OpenCV straight into a numpy array, when it can.

Pillow's decode is as fast, but its pixels reach numpy through ``tobytes`` (a packed copy made
in chunks), which costs as much again. OpenCV and Pillow both decode with libjpeg-turbo (the
same integer IDCT and upsampling), so the pixels are the same; tests compare the two. Anything
else goes to Pillow: no OpenCV, a file that does not end with the end-of-image marker (truncated,
or trailing data: Pillow says which), one OpenCV cannot decode, a size that disagrees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_END_OF_IMAGE = b"\xff\xd9"


def decode_rgb8(path: Path, size: tuple[int, int]) -> np.ndarray | None:
    """Upright-as-stored (EXIF orientation not applied) 8-bit RGB of the JPEG ``path`` whose header
    says ``size`` (width, height), or None where Pillow should decode it."""
    try:
        import cv2
    except ImportError:
        return None
    data = path.read_bytes()
    if not data.endswith(_END_OF_IMAGE):
        return None
    flags = getattr(cv2, "IMREAD_COLOR_RGB", None)
    pixels = cv2.imdecode(
        np.frombuffer(data, np.uint8), (flags or cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    )
    if pixels is None or pixels.shape != (size[1], size[0], 3):
        return None
    return pixels if flags is not None else cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
