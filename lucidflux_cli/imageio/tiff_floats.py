"""TIFFs whose samples Pillow cannot give exactly, read with tifffile: float (16, 32, 64-bit, gray
or RGB(A)) and integers deeper than 16 bits or signed (Pillow's mode I wraps uint32, and it
opens no RGB of either).

Archives hold them as scientific and film scans; they are read here sample for sample, with
the tags the output keeps (orientation, ICC profile, XMP, and each page's EXIF with its
sub-IFDs).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from lucidflux_cli.errors import one_line

# Text tags a page describes itself with (ImageDescription, Make, Model, PageName, Software,
# DateTime, Artist, Copyright), kept per page as EXIF IFD0 entries.
_TEXT_TAGS = (270, 271, 272, 285, 305, 306, 315, 33432)
_IPTC = 33723  # IPTC-NAA
_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic and BigTIFF, both byte orders

log = logging.getLogger("lucidflux")


class UnsupportedSamples(ValueError):
    """A TIFF page whose samples are not numbers of gray/RGB(A)."""


@dataclass
class FloatPage:
    values: np.ndarray  # (H, W, 1|2|3|4) as stored: gray, gray + alpha, RGB, RGBA
    orientation: int
    icc: bytes | None
    xmp: bytes | None
    text: dict[int, bytes]  # _TEXT_TAGS present, ASCII
    exif: bytes | None = None  # the page's IFD as a TIFF of its own (its Exif, GPS, Interop IFDs with it)
    iptc: bytes | None = None  # IPTC-NAA record (tag 33723), as stored

    @property
    def gray(self) -> bool:
        return self.values.shape[2] in (1, 2)

    @property
    def alpha(self) -> np.ndarray | None:
        return self.values[..., -1] if self.values.shape[2] in (2, 4) else None


def is_tiff(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in _MAGIC
    except OSError:
        return False


def has_wide_samples(path: Path) -> bool:
    """Whether a page of the TIFF holds samples Pillow does not give exactly (see the module)."""
    try:
        with tifffile.TiffFile(path) as tif:
            return any(_wide(page.dtype) for page in tif.pages)
    except Exception:  # not for tifffile: Pillow's reading says what is wrong
        return False


def _wide(dtype: np.dtype | None) -> bool:
    return dtype is not None and (dtype.kind == "f" or dtype.kind == "i" or dtype.itemsize > 2)


def read_float_pages(path: Path, first_only: bool) -> tuple[list[FloatPage], int]:
    """The pages (only the first if ``first_only``) and how many the file has."""
    data = path.read_bytes()
    with tifffile.TiffFile(path) as tif:
        count = len(tif.pages)
        pages = [_page(tif.pages[index], data, tif.byteorder) for index in range(1 if first_only else count)]
        return pages, count


def read_iptc(path: Path, page: int) -> bytes | None:
    """The IPTC-NAA record of TIFF page ``page``, as stored (None: none, or unreadable)."""
    try:
        with tifffile.TiffFile(path) as tif:
            return _iptc(tif.pages[page].tags, tif.byteorder)
    except Exception as error:  # the pixels decoded; a broken IPTC tag costs only itself, said in a line
        log.warning(
            "%s: page %d: its IPTC record cannot be read (%s); it is not in the output",
            path,
            page + 1,
            one_line(error),
        )
        return None


def _iptc(tags: tifffile.TiffTags, byteorder: str) -> bytes | None:
    value = tags.valueof(_IPTC)
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    # Photoshop declares the record LONG: its bytes are the ints in the file's byte order
    return np.asarray(value, dtype=byteorder + "u4").tobytes()


def _page_as_tiff(data: bytes, offset: int, byteorder: str) -> bytes | None:
    """The file with its header pointing at this page's IFD: an EXIF reader then reads that page's
    tags and sub-IFDs (classic TIFF; BigTIFF offsets do not fit piexif)."""
    if data[2:4] not in (b"*\0", b"\0*"):
        return None
    return data[:4] + struct.pack(byteorder + "I", offset) + data[8:]


def _page(page: tifffile.TiffPage, data: bytes, byteorder: str) -> FloatPage:
    values = page.asarray()
    if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and values.ndim == 3:
        values = np.moveaxis(values, 0, -1)
    if values.ndim == 2:
        values = values[..., None]
    if (
        values.dtype.kind not in "fiu"
        or values.ndim != 3
        or values.shape[2] > 4
        or int(page.photometric) not in (1, 2)
    ):
        kind = {1: "uint", 2: "int", 3: "float"}.get(int(page.sampleformat), "?")
        photometric = getattr(page.photometric, "name", str(page.photometric))
        layout = f"{page.samplesperpixel} x {page.bitspersample}-bit {kind}, photometric {photometric}"
        raise UnsupportedSamples(f"unsupported TIFF samples ({layout})")
    tags = page.tags
    icc, xmp = tags.valueof(34675), tags.valueof(700)
    text = {code: str(tags.valueof(code)).encode("latin-1", "replace") for code in _TEXT_TAGS if code in tags}
    return FloatPage(
        values,
        int(tags.valueof(274, 1) or 1),
        bytes(icc) if icc else None,
        bytes(xmp) if xmp else None,
        text,
        _page_as_tiff(data, page.offset, byteorder),
        _iptc(tags, byteorder),
    )
