"""How a source page's samples are stored, and the defined conversions to and from the model's RGB.

The model restores float RGB in [0, 1]. A page stored otherwise (CMYK, CIE LAB, integers deeper
than 16 bits, signed integers, float16/64, floats outside [0, 1]) is converted in on reading and
converted back on writing, so that it comes out in the mode, depth and value range it came in
(docs/archive-workflow.md has the table). Colour conversions go through LittleCMS (Pillow's
ImageCms) where an ICC profile or LAB is involved. Where the output format cannot hold the form,
:func:`fit` says in one line per change what is written instead.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageCms

COLOURS = ("rgb", "gray", "cmyk", "lab")
_STANDARD_DTYPES = {"uint8": 8, "uint16": 16, "float32": 32}  # what every deep-enough format writes


@dataclass(frozen=True)
class SampleForm:
    """A page's stored samples: colour model, numpy sample type and the values that map to 0 and 1."""

    colour: str = "rgb"  # one of COLOURS
    dtype: str = "uint8"
    low: float = 0.0  # the stored value restored as 0
    high: float = 255.0  # ... as 1 (integers up to 16 bits: the type's maximum; floats: 1)
    icc: bytes | None = None  # CMYK: the profile converting to and from RGB (None: Pillow's formula)

    @property
    def standard_range(self) -> bool:
        return (self.low, self.high) == default_range(self.dtype)

    @property
    def wide(self) -> bool:
        """Needs a format that writes any sample type and range back as stored (TIFF)."""
        return self.dtype not in _STANDARD_DTYPES or not self.standard_range

    def describe(self) -> str:
        """'32-bit integer gray', 'CMYK 8-bit', 'float16 RGB', ..."""
        kind = np.dtype(self.dtype)
        bits = kind.itemsize * 8
        depth = (
            f"float{bits}"
            if kind.kind == "f"
            else f"{bits}-bit {'signed ' if kind.kind == 'i' else ''}integer"
            if bits > 16 or kind.kind == "i"
            else f"{bits}-bit"
        )
        return f"{depth} {self.colour.upper() if self.colour != 'gray' else 'gray'}"


def default_range(dtype: str) -> tuple[float, float]:
    kind = np.dtype(dtype)
    return (0.0, 1.0) if kind.kind == "f" else (0.0, float(np.iinfo(kind).max))


def value_range(values: np.ndarray) -> tuple[float, float]:
    """The stored values that map to 0 and 1: unsigned integers up to 16 bits and floats within
    [0, 1] as usual; deeper or signed integers their own range, floats beyond [0, 1] the range
    that holds both [0, 1] and their values (so HDR and scientific data keep it)."""
    kind = values.dtype
    if kind.kind == "u" and kind.itemsize <= 2:
        return default_range(kind.name)
    finite = values[np.isfinite(values)] if kind.kind == "f" else values
    if finite.size == 0:
        return default_range(kind.name)
    low, high = float(finite.min()), float(finite.max())
    if kind.kind == "f":
        return min(0.0, low), max(1.0, high)
    return (low, high) if high > low else (low, low + 1.0)


def to_unit(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Stored samples as float32 in [0, 1] (NaN and inf as 0)."""
    unit = (np.asarray(values, dtype=np.float64) - low) / (high - low)
    return np.clip(np.nan_to_num(unit, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0).astype(np.float32)


def from_unit(unit: np.ndarray, form: SampleForm) -> np.ndarray:
    """Float samples in [0, 1] back in ``form``'s type and range (integers rounded, kept in type)."""
    values = np.clip(np.nan_to_num(np.asarray(unit, dtype=np.float64), nan=0.0), 0.0, 1.0)
    values = values * (form.high - form.low) + form.low
    kind = np.dtype(form.dtype)
    if kind.kind == "f":
        return values.astype(kind)
    info = np.iinfo(kind)
    return np.clip(np.floor(values + 0.5), info.min, info.max).astype(kind)


def alpha_to_unit(values: np.ndarray) -> np.ndarray:
    """Alpha samples: 0 to the type's maximum (floats: 0 to 1) as [0, 1]."""
    return to_unit(values, *default_range(values.dtype.name))


def alpha_from_unit(unit: np.ndarray, dtype: str) -> np.ndarray:
    low, high = default_range(dtype)
    return from_unit(unit, SampleForm(dtype=dtype, low=low, high=high))


# -- colour models: CMYK and LAB through LittleCMS ---------------------------------------------


def _profile(icc: bytes) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(icc))


def cmyk_to_rgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """8-bit CMYK as sRGB through its profile (LittleCMS), or by Pillow's formula without one."""
    if icc is None:
        return img.convert("RGB")
    return ImageCms.profileToProfile(img, _profile(icc), ImageCms.createProfile("sRGB"), outputMode="RGB")


def rgb_to_cmyk(rgb8: np.ndarray, icc: bytes | None) -> np.ndarray:
    """uint8 RGB (H, W, 3) as uint8 CMYK (H, W, 4): through the profile (its own black generation),
    or without one the inverse of Pillow's formula (full grey-component replacement)."""
    if icc is not None:
        img = ImageCms.profileToProfile(
            Image.fromarray(rgb8), ImageCms.createProfile("sRGB"), _profile(icc), outputMode="CMYK"
        )
        return np.asarray(img)
    # Pillow's formula is R = (1 - C)(1 - K): the most black that leaves the brightest channel, then C, M, Y.
    unit = rgb8.astype(np.float64) / 255.0
    black = 1.0 - unit.max(axis=2, keepdims=True)
    inks = (1.0 - black - unit) / np.maximum(1.0 - black, 1e-12)
    return np.rint(np.concatenate([inks, black], axis=2) * 255.0).clip(0, 255).astype(np.uint8)


def lab_to_rgb(img: Image.Image) -> Image.Image:
    """8-bit CIE LAB (D50) as sRGB through LittleCMS."""
    return ImageCms.profileToProfile(
        img, ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), outputMode="RGB"
    )


def rgb_to_lab(rgb8: np.ndarray) -> np.ndarray:
    """uint8 sRGB (H, W, 3) as 8-bit CIE LAB samples, a and b signed as TIFF stores them (Pillow's
    array view of a LAB image; getpixel() shows them offset by 128)."""
    img = ImageCms.profileToProfile(
        Image.fromarray(rgb8), ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), outputMode="LAB"
    )
    return np.asarray(img)


def lab_gamut_note(img: Image.Image, rgb: Image.Image) -> str | None:
    """A note when LAB colours lie outside sRGB, where the model's RGB clips them."""
    back = rgb_to_lab(np.asarray(rgb)).astype(np.int16)
    off = np.abs(back - np.asarray(img).astype(np.int16)).max(axis=2) > 3
    if not off.any():
        return None
    return f"LAB colours outside sRGB clipped to it ({off.mean():.1%} of the pixels)"


# -- what an output format can write back ------------------------------------------------------


def fit(
    form: SampleForm, *, colours: tuple[str, ...], wide: bool, bits: int, fmt: str, depth_asked: bool = False
) -> tuple[SampleForm, list[str]]:
    """The form a format writes for a source of ``form``, and a line per change.

    ``colours``: the colour models the format writes besides RGB and gray (cmyk, lab); ``wide``:
    it writes any sample type and range; ``bits``: the depth it chose for a standard image (8, 16,
    32); ``depth_asked``: that depth is the user's choice (``bits=``), so not a change to report.
    """
    notes: list[str] = []
    written = form
    if form.colour not in ("rgb", "gray", *colours):
        how = (
            ("via the embedded profile" if form.icc else "by Pillow's formula, no profile")
            if form.colour == "cmyk"
            else "via LittleCMS (D50)"
        )
        notes.append(f"{form.colour.upper()} -> RGB {how} ({fmt} has no {form.colour.upper()})")
        written = replace(written, colour="rgb", icc=None)
    if form.wide and wide:
        return written, notes
    standard = {8: "uint8", 16: "uint16", 32: "float32"}[bits]
    low, high = default_range(standard)
    written = replace(written, dtype=standard, low=low, high=high)
    if depth_asked:
        return written, notes
    if np.dtype(form.dtype).kind in "iu" and not form.standard_range:
        notes.append(
            f"{form.describe().rsplit(' ', 1)[0]}s (range {form.low:g} to {form.high:g}) scaled to "
            f"{_depth_words(standard)}"
        )
    elif np.dtype(form.dtype).kind == "f" and not form.standard_range:
        notes.append(f"float samples {form.low:g} to {form.high:g} scaled to {_depth_words(standard)}")
    elif form.dtype != standard and _bits(form.dtype) > _bits(standard):
        depth = form.describe().rsplit(" ", 1)[0]
        notes.append(f"{depth} samples written as {_depth_words(standard)} ({fmt})")
    return written, notes


def _bits(dtype: str) -> int:
    return np.dtype(dtype).itemsize * 8


def _depth_words(dtype: str) -> str:
    return {"uint8": "8 bits", "uint16": "16 bits", "float32": "float32 in [0, 1]"}[dtype]
