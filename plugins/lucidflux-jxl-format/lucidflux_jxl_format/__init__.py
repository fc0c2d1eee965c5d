"""A lucidflux-cli output format: JPEG XL through pyjpegxl (libjxl), keeping EXIF, ICC and XMP.

``lucidflux restore IN -o OUT --format jxl [--quality 90] [--format-option effort=9]``

Importing this module also lets Pillow (and so lucidflux-cli) read ``.jxl`` files.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import BinaryIO

import numpy as np
import pyjpegxl
from PIL import Image, ImageFile

from lucidflux_cli.imageio.formats import FormatCapabilities, OutputFormat, OutputImage

__version__ = "0.1.0"

DEFAULT_QUALITY = 95  # lucidflux-cli's default for lossy formats (libjxl distance 0.55)
# libjxl's effort 1..9, by pyjpegxl's names
_SPEEDS = ("Lightning", "Thunder", "Falcon", "Cheetah", "Hare", "Wombat", "Squirrel", "Kitten", "Tortoise")
_YES, _NO = {"yes", "true", "1", "on"}, {"no", "false", "0", "off"}


class JpegXL(OutputFormat):
    """JPEG XL: lossy or lossless, 8 or 16 bit, alpha, EXIF, ICC and XMP."""

    summary = "JPEG XL (libjxl via pyjpegxl): lossy or lossless, 8/16 bit, alpha, EXIF, ICC, XMP"
    capabilities = FormatCapabilities(
        (".jxl",), (8, 16), alpha=True, exif=True, icc=True, xmp=True, quality=True
    )
    option_help = {
        "effort": "1 (fastest) to 9 (smallest files); default 7",
        "distance": "Butteraugli distance, 0.05-25 (1.0 is visually lossless); overrides --quality",
        "lossless": "yes or no; default: yes at --quality 100",
        "bits": "8 or 16: sample depth (default: the source's)",
    }

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        self.effort = _int_option(self.options, "effort", 7, 1, 9)
        self.bits = _int_option(self.options, "bits", None, 8, 16)
        if self.bits not in (None, 8, 16):
            raise ValueError(f"bits must be 8 or 16, got {self.bits}")
        self.distance = _float_option(self.options, "distance", 0.05, 25.0)
        lossless = self.options.get("lossless", "").lower()
        if lossless and lossless not in _YES | _NO:
            raise ValueError(f"lossless must be yes or no, got {lossless!r}")
        self.lossless = None if not lossless else lossless in _YES

    def write(self, fp: BinaryIO, image: OutputImage) -> None:
        quality = DEFAULT_QUALITY if image.quality is None else image.quality
        lossless = self.lossless if self.lossless is not None else (self.distance is None and quality >= 100)
        data = pyjpegxl.encode_from_numpy(
            image.pixels(self.bits or self.bits_for(image), alpha=True),
            lossless=lossless,
            quality=self.distance if self.distance is not None else distance_from_quality(quality),
            speed=getattr(pyjpegxl.EncoderSpeed, _SPEEDS[self.effort - 1]),
            exif=exif_box(image.exif),
            xmp=image.xmp or None,
            icc=image.icc_profile,  # None: libjxl signals sRGB, which is what profile-less pixels mean
        )
        fp.write(data)


def distance_from_quality(quality: int) -> float:
    """libjxl's mapping (cjxl -q) from a JPEG-like quality to a Butteraugli distance."""
    if quality >= 30:
        return 0.1 + (100 - quality) * 0.09
    return 6.4 + 2.5 ** ((30 - quality) / 5.0) / 6.25


def exif_box(app1: bytes | None) -> bytes | None:
    """JPEG APP1 EXIF (b"Exif\\0\\0" + TIFF) -> the payload of a JPEG XL Exif box.

    ISO/IEC 18181-2: a 4-byte offset to the TIFF header, then the TIFF data. pyjpegxl stores
    the bytes as given, so the offset (0) is added here.
    """
    if not app1:
        return None
    return b"\0\0\0\0" + app1.removeprefix(b"Exif\0\0")


def _int_option(options: Mapping[str, str], key: str, default: int | None, low: int, high: int) -> int | None:
    if key not in options:
        return default
    try:
        value = int(options[key])
    except ValueError:
        raise ValueError(f"{key} must be an integer from {low} to {high}, got {options[key]!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{key} must be from {low} to {high}, got {value}")
    return value


def _float_option(options: Mapping[str, str], key: str, low: float, high: float) -> float | None:
    if key not in options:
        return None
    try:
        value = float(options[key])
    except ValueError:
        raise ValueError(f"{key} must be a number, got {options[key]!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{key} must be from {low} to {high}, got {value}")
    return value


# ------------------------------------------------------------------------------ reading (Pillow)


class JxlImageFile(ImageFile.ImageFile):
    """Decodes ``.jxl`` for Pillow: 8-bit L/LA/RGB/RGBA (deeper samples are scaled to 8 bits)."""

    format = "JXL"
    format_description = "JPEG XL"

    def _open(self) -> None:
        meta, pixels = pyjpegxl.decode_to_numpy(self.fp.read())
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if pixels.dtype != np.uint8:
            top = 65535.0 if pixels.dtype == np.uint16 else 1.0
            pixels = np.clip(pixels.astype(np.float32) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        height, width, channels = pixels.shape
        self._mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
        self._size = (width, height)
        if meta.icc:
            self.info["icc_profile"] = meta.icc
        if meta.exif:
            self.info["exif"] = _tiff_from_box(meta.exif)
        if meta.xmp:
            self.info["xmp"] = meta.xmp
        if self._exclusive_fp:
            self.fp.close()
        self.fp = io.BytesIO(np.ascontiguousarray(pixels).tobytes())
        self._exclusive_fp = True
        self.tile = [ImageFile._Tile("raw", (0, 0, width, height), 0, (self._mode, 0, 1))]


def _tiff_from_box(payload: bytes) -> bytes:
    """Exif box payload -> b"Exif\\0\\0" + TIFF, accepting boxes written without the offset too."""
    if payload[:4] in (b"II*\0", b"MM\0*"):
        return b"Exif\0\0" + payload
    offset = int.from_bytes(payload[:4], "big")
    return b"Exif\0\0" + payload[4 + offset :]


def _accept(prefix: bytes) -> bool:
    return prefix[:2] == b"\xff\x0a" or prefix[:12] == b"\0\0\0\x0cJXL \r\n\x87\n"


Image.register_open(JxlImageFile.format, JxlImageFile, _accept)
Image.register_extension(JxlImageFile.format, ".jxl")
Image.register_mime(JxlImageFile.format, "image/jxl")
