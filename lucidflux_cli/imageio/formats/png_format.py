"""PNG: 8-bit through Pillow; 16-bit (Pillow cannot encode 16-bit RGB) as chunks written by pypng."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import png as pypng
from PIL import Image, PngImagePlugin

from lucidflux_cli.imageio.formats.base import FormatCapabilities, OutputImage
from lucidflux_cli.imageio.formats.builtin import ALL_METADATA, BITS_HELP, BuiltinFormat, pillow_metadata
from lucidflux_cli.imageio.metadata import SOFTWARE

_XMP_KEY = "XML:com.adobe.xmp"  # the iTXt keyword XMP uses in PNG


class PNG(BuiltinFormat):
    summary = "PNG, 8 or 16 bit, lossless"
    capabilities = FormatCapabilities((".png",), (8, 16), alpha=True, gray=True, **ALL_METADATA)
    option_help = BITS_HELP

    def write(self, fp: BinaryIO, image: OutputImage) -> None:
        samples = self.samples(image)
        if samples.dtype == np.uint16:
            _write_png16(fp, samples, image)
            return
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", SOFTWARE)
        info.add_text("Comment", image.summary)
        info.add_itxt(_XMP_KEY, image.xmp.decode("utf-8", "replace"))
        Image.fromarray(samples).save(fp, "PNG", pnginfo=info, compress_level=6, **pillow_metadata(image))


def _write_png16(fp: BinaryIO, samples: np.ndarray, image: OutputImage) -> None:
    """pypng frames the chunks; the metadata chunks precede the pixels, as Pillow places them."""
    if samples.ndim == 2:
        samples = samples[..., None]
    height, width, channels = samples.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]  # gray, gray + alpha, RGB, RGBA
    header = (b"IHDR", struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0))
    pypng.write_chunks(
        fp, [header, *_metadata_chunks(image), (b"IDAT", _sub_filtered(samples)), (b"IEND", b"")]
    )


def _sub_filtered(samples: np.ndarray) -> bytes:
    """Zlib stream of the rows with PNG filter 1 ("Sub"). pypng only writes unfiltered rows, which
    made 16-bit photos up to twice as large; Sub is one vectorised subtraction here."""
    height = samples.shape[0]
    rows = samples.astype(">u2").view(np.uint8).reshape(height, -1)
    bpp = samples.shape[2] * 2
    filtered = rows.copy()
    filtered[:, bpp:] -= rows[:, :-bpp]  # byte-wise modulo 256, as the filter is defined
    data = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    data[:, 0] = 1
    data[:, 1:] = filtered
    return zlib.compress(data.tobytes(), 6)


def _metadata_chunks(image: OutputImage) -> Iterator[tuple[bytes, bytes]]:
    # pypng has no API for these chunks; their payloads follow the PNG specification's layouts.
    if image.icc_profile:
        yield b"iCCP", b"ICC profile\0\0" + zlib.compress(image.icc_profile)
    yield b"eXIf", image.exif.removeprefix(b"Exif\0\0")
    yield _text_chunk("Software", SOFTWARE)
    yield _text_chunk("Comment", image.summary)
    yield _itxt_chunk(_XMP_KEY, image.xmp.decode("utf-8", "replace"))


def _text_chunk(key: str, value: str) -> tuple[bytes, bytes]:
    try:
        return b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")
    except UnicodeEncodeError:
        return _itxt_chunk(key, value)


def _itxt_chunk(key: str, value: str) -> tuple[bytes, bytes]:
    # keyword, no compression, empty language tag and translated keyword, UTF-8 text
    return b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")
