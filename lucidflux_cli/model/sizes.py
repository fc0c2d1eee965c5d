"""Size rules: output size from the request, processing sizes the models accept."""

from __future__ import annotations

import math
import re

LATENT_MULTIPLE = 16  # 8x VAE downsampling, then 2x2 latent packing
DEFAULT_MIN_SIDE = 1024  # FLUX works best near its native 1024 px


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"``; one side may be 0 or empty (``"1024x"``) to follow the aspect ratio."""
    match = re.fullmatch(r"\s*(\d*)\s*[xX*]\s*(\d*)\s*", text)
    if not match or not (match[1] or match[2]):
        raise ValueError(f"size must look like WIDTHxHEIGHT (e.g. 1024x768), got {text!r}")
    width, height = int(match[1] or 0), int(match[2] or 0)
    if width == 0 and height == 0:
        raise ValueError("size needs at least one non-zero side")
    return width, height


def output_size(
    input_size: tuple[int, int], requested: tuple[int, int] | None, scale: float = 1.0
) -> tuple[int, int]:
    """The exact output size: the requested one (one side may follow the aspect), else ``scale`` x input."""
    in_w, in_h = input_size
    if requested is None:
        return max(1, round(in_w * scale)), max(1, round(in_h * scale))
    width, height = requested
    if width == 0:
        width = max(1, round(in_w * height / in_h))
    if height == 0:
        height = max(1, round(in_h * width / in_w))
    return width, height


def processing_size(size: tuple[int, int], min_side: int = DEFAULT_MIN_SIDE) -> tuple[int, int]:
    """The size the model restores at: ``size`` raised (aspect kept) until its short side is ``min_side``.

    ``min_side`` 0 turns this off. The result is resized back to ``size`` afterwards.
    """
    width, height = size
    short = min(width, height)
    if min_side <= 0 or short >= min_side:
        return size
    factor = min_side / short
    if width <= height:
        return min_side, max(min_side, round(height * factor))
    return max(min_side, round(width * factor)), min_side


def crop_to_aspect(input_size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int, int, int]:
    """Centred box (left, top, right, bottom) of the input with the target's aspect ratio.

    The aspect ratio is never changed by stretching: when an exact ``--size`` has another
    shape than the photo, the photo is cropped to that shape (the whole box when equal).
    """
    in_w, in_h = input_size
    width, height = target
    if abs(in_w * height - in_h * width) <= max(in_w, in_h):  # equal up to a pixel of rounding
        return 0, 0, in_w, in_h
    if in_w * height > in_h * width:  # input is wider
        crop_w = round(in_h * width / height)
        left = (in_w - crop_w) // 2
        return left, 0, left + crop_w, in_h
    crop_h = round(in_w * height / width)
    top = (in_h - crop_h) // 2
    return 0, top, in_w, top + crop_h


def round_up(value: int, multiple: int) -> int:
    return math.ceil(value / multiple) * multiple
