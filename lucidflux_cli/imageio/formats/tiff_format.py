"""TIFF, 8 or 16 bit or 32-bit float, one or more pages, deflate with a predictor, written by tifffile.

tifffile writes the pixels and IFD0 (EXIF's IFD0 tags, the ICC profile and XMP go in as extra
tags) but refuses EXIF's pointer tags, so it writes two stand-in tags that sort where the pointers
belong; the Exif, GPS and Interop IFDs are appended after its output and the stand-ins turned into
the pointers to them (docs/architecture.md).
"""

from __future__ import annotations

import io
import struct
from typing import Any, BinaryIO

import piexif
import tifffile

from lucidflux_cli.imageio import exif as exif_ifds
from lucidflux_cli.imageio.formats.base import FormatCapabilities, OutputImage
from lucidflux_cli.imageio.formats.builtin import ALL_METADATA, BuiltinFormat

_STRIP_TARGET_BYTES = 1 << 18
_XMP = 700
_IPTC = 33723  # IPTC-NAA, written UNDEFINED (Photoshop's LONG holds the same bytes)
_RESOLUTION_TAGS = (282, 283, 296)  # tifffile writes these itself, from its arguments
# Unassigned codes with no tag between them and the pointer each stands in for.
_STAND_IN = {exif_ifds.EXIF_POINTER: 34666, exif_ifds.GPS_POINTER: 34854}


class TIFF(BuiltinFormat):
    summary = "TIFF, 8 or 16 bit or float, multi-page, deflate"
    aliases = ("tif",)
    capabilities = FormatCapabilities(
        (".tif", ".tiff"),
        (8, 16, 32),
        alpha=True,
        gray=True,
        pages=True,
        colours=("cmyk", "lab"),
        wide_samples=True,
        **ALL_METADATA,
    )
    option_help = {"bits": "8, 16 or 32 (float): sample depth (default: the source's)"}

    def write(self, fp: BinaryIO, image: OutputImage) -> None:
        self.write_pages(fp, [image])

    def write_pages(self, fp: BinaryIO, images: list[OutputImage]) -> None:
        """One IFD per page, in order, each with its own tags; then each page's EXIF IFDs."""
        buffer = io.BytesIO()
        appended: list[tuple[int, exif_ifds.Entries, exif_ifds.Entries, exif_ifds.Entries]] = []
        with tifffile.TiffWriter(buffer, byteorder=">") as tif:
            for index, image in enumerate(images):
                sub, gps, interop = self._write_page(tif, image)
                if sub or gps or interop:
                    appended.append((index, sub, gps, interop))
        for index, sub, gps, interop in appended:
            _append_exif_ifds(buffer, index, sub, gps, interop)
        fp.write(buffer.getbuffer())

    def _write_page(self, tif: tifffile.TiffWriter, image: OutputImage) -> tuple[exif_ifds.Entries, ...]:
        samples = self.samples(image)
        height, width = samples.shape[:2]
        channels = 1 if samples.ndim == 2 else samples.shape[2]
        zeroth = image.exif_tags.get("0th", {})
        ifd0, sub, gps, interop = exif_ifds.ifds(image.exif_tags, image.path)
        for tag in (piexif.ExifIFD.PixelXDimension, piexif.ExifIFD.PixelYDimension):
            sub.pop(tag, None)  # EXIF-in-TIFF does not allow these
        pointers = [exif_ifds.EXIF_POINTER] * bool(sub or interop) + [exif_ifds.GPS_POINTER] * bool(gps)
        skip = {*_RESOLUTION_TAGS, *_STAND_IN.values()}
        # EXIF's values come packed big-endian, and tifffile takes packed bytes for any type.
        extratags: list[tuple[Any, ...]] = [
            (tag, kind, count, data, True) for tag, (kind, count, data) in ifd0.items() if tag not in skip
        ]
        extratags += [(_STAND_IN[tag], 4, 1, 0, True) for tag in pointers]
        if image.xmp:
            extratags.append((_XMP, 1, len(image.xmp), image.xmp, True))
        if image.iptc:
            extratags.append((_IPTC, 7, len(image.iptc), image.iptc, True))
        photometric, alpha = _photometric(image, channels)
        tif.write(
            samples,
            photometric=photometric,
            planarconfig="contig",
            extrasamples=("unassalpha",) if alpha else None,
            compression="zlib",
            compressionargs={"level": 6},
            predictor=True,
            rowsperstrip=max(1, min(height, _STRIP_TARGET_BYTES // (width * channels * samples.itemsize))),
            resolution=(zeroth.get(282, (72, 1)), zeroth.get(283, (72, 1))),
            resolutionunit=zeroth.get(296, 2),
            iccprofile=image.icc_profile,
            software=False,
            metadata=None,
            extratags=extratags,
        )
        return (sub, gps, interop) if pointers else ({}, {}, {})


def _photometric(image: OutputImage, channels: int) -> tuple[str, bool]:
    """TIFF photometric interpretation of the samples, and whether the last channel is alpha."""
    colour = image.form.colour if image.form is not None else None
    if colour in ("cmyk", "lab"):
        return ("separated" if colour == "cmyk" else "cielab"), False
    return ("rgb" if channels >= 3 else "minisblack"), channels in (2, 4)


def _append_exif_ifds(
    buffer: io.BytesIO, page: int, sub: exif_ifds.Entries, gps: exif_ifds.Entries, interop: exif_ifds.Entries
) -> None:
    end = buffer.seek(0, io.SEEK_END)
    if end % 2:  # IFDs start on a word boundary
        buffer.write(b"\0")
        end += 1
    data, offsets = exif_ifds.layout(None, sub, gps, interop, end)
    buffer.write(data)
    buffer.seek(0)
    with tifffile.TiffFile(buffer) as tif:
        entries = {tag.code: tag.offset for tag in tif.pages[page].tags}
    for pointer, offset in offsets.items():
        buffer.seek(entries[_STAND_IN[pointer]])  # the 12-byte IFD entry: code, type, count, value
        buffer.write(struct.pack(">HHII", pointer, 4, 1, offset))
