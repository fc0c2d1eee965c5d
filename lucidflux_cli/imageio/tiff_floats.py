"""Float TIFFs that Pillow cannot open (RGB/RGBA float, 16- and 64-bit float), read with tifffile.

Pillow opens one-channel float32 TIFFs (mode F) itself; the other float TIFFs that archives
hold (scientific and film scans) are read here sample for sample, with the tags the output
keeps (orientation, ICC profile, XMP).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

# Text tags a page describes itself with (ImageDescription, Make, Model, PageName, Software,
# DateTime, Artist, Copyright), kept per page as EXIF IFD0 entries.
_TEXT_TAGS = (270, 271, 272, 285, 305, 306, 315, 33432)
_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic and BigTIFF, both byte orders


class UnsupportedSamples(ValueError):
    """A TIFF page whose samples are not float gray/RGB(A)."""


@dataclass
class FloatPage:
    values: np.ndarray  # (H, W, 1|2|3|4) as stored: gray, gray + alpha, RGB, RGBA
    orientation: int
    icc: bytes | None
    xmp: bytes | None
    text: dict[int, bytes]  # _TEXT_TAGS present, ASCII

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


def read_float_pages(path: Path, first_only: bool) -> tuple[list[FloatPage], int]:
    """The pages (only the first if ``first_only``) and how many the file has."""
    with tifffile.TiffFile(path) as tif:
        count = len(tif.pages)
        return [_page(tif.pages[index]) for index in range(1 if first_only else count)], count


def _page(page: tifffile.TiffPage) -> FloatPage:
    values = page.asarray()
    if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and values.ndim == 3:
        values = np.moveaxis(values, 0, -1)
    if values.ndim == 2:
        values = values[..., None]
    if values.dtype.kind != "f" or values.ndim != 3 or values.shape[2] > 4:
        kind = getattr(page.sampleformat, "name", "?").lower()
        raise UnsupportedSamples(f"unsupported TIFF samples ({page.samplesperpixel} x {page.bitspersample}-bit {kind})")
    tags = page.tags
    icc, xmp = tags.valueof(34675), tags.valueof(700)
    text = {code: str(tags.valueof(code)).encode("latin-1", "replace") for code in _TEXT_TAGS if code in tags}
    return FloatPage(values, int(tags.valueof(274, 1) or 1), bytes(icc) if icc else None, bytes(xmp) if xmp else None,
                     text)
