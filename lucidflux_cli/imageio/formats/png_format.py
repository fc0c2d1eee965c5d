"""PNG: 8-bit through Pillow, 16-bit through pypng (Pillow cannot encode 16-bit RGB)."""

from __future__ import annotations

import io
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
    capabilities = FormatCapabilities((".png",), (8, 16), alpha=True, **ALL_METADATA)
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
    """pypng encodes the pixels; our metadata chunks go in right after IHDR, as Pillow places them."""
    height, width, channels = samples.shape
    encoded = io.BytesIO()
    rows = samples.astype(">u2").reshape(height, width * channels).view(np.uint8)
    writer = pypng.Writer(width, height, bitdepth=16, greyscale=False, alpha=channels == 4, compression=6)
    writer.write_packed(encoded, (row.tobytes() for row in rows))  # big-endian rows: PNG's own layout
    chunks = pypng.Reader(bytes=encoded.getvalue()).chunks()
    pypng.write_chunks(fp, _with_metadata(chunks, image))


def _with_metadata(chunks: Iterator[tuple[bytes, bytes]], image: OutputImage) -> Iterator[tuple[bytes, bytes]]:
    for kind, data in chunks:
        yield kind, data
        if kind == b"IHDR":
            yield from _metadata_chunks(image)


def _metadata_chunks(image: OutputImage) -> Iterator[tuple[bytes, bytes]]:
    # pypng writes pixels only; these payloads follow the PNG specification's chunk layouts.
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
