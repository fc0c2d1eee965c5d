"""Small JPEG previews of a review page, under ``review/.thumbs/`` (hidden: folder walks of later
runs, ``lucidflux eval OUT`` included, never take them for photos).

A preview's name is a hash of its source's path, modification time and size, so a page rewritten
during a run decodes only the files that are new or changed; previews no page row uses any more
are removed. Files browsers cannot show (TIFF, HEIF, JPEG 2000, ...) also get a larger view for
the before/after comparison.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from lucidflux_cli import atomic
from lucidflux_cli.errors import one_line
from lucidflux_cli.imageio import media

THUMB_SIDE = 320
VIEW_SIDE = 2048
FOLDER = ".thumbs"
# What Chromium, Firefox and Safari all show at full resolution; other formats get a JPEG view.
BROWSER_SHOWS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".gif", ".bmp", ".avif"}
)
_NAME = re.compile(r"^[0-9a-f]{32}\.(thumb|view)\.jpg$")


@dataclass(frozen=True)
class Preview:
    thumb: Path | None  # None: the file could not be decoded (``error`` says why)
    view: Path | None = None  # a larger JPEG for the comparison, when browsers cannot show the file
    error: str | None = None


class Thumbnails:
    """The previews of one page folder; remembers what it made, so rewrites in one run are cheap."""

    def __init__(self, page_folder: Path):
        self.folder = page_folder / FOLDER
        self.made: dict[tuple[str, int, int], Preview] = {}
        self.used: set[str] = set()

    def preview(self, source: Path) -> Preview | None:
        """The previews of ``source`` (made now if missing or out of date); None if it is no file."""
        try:
            info = os.stat(source)
        except OSError:
            return None
        key = (os.path.abspath(source), info.st_mtime_ns, info.st_size)
        found = self.made.get(key)
        if found is None:
            found = self.made[key] = self._make(source, hashlib.sha256(repr(key).encode()).hexdigest()[:32])
        self.used.update(path.name for path in (found.thumb, found.view) if path is not None)
        return found

    def _make(self, source: Path, stem: str) -> Preview:
        thumb = self.folder / f"{stem}.thumb.jpg"
        wants_view = source.suffix.lower() not in BROWSER_SHOWS
        view = self.folder / f"{stem}.view.jpg" if wants_view else None
        if thumb.exists() and (view is None or view.exists()):
            return Preview(thumb, view)
        try:
            picture = _decode(source, VIEW_SIDE if wants_view else THUMB_SIDE)
        except Exception as error:  # a broken file: the page says why instead of a picture
            return Preview(None, error=one_line(error))
        self.folder.mkdir(parents=True, exist_ok=True)
        if view is not None:
            _save(picture, VIEW_SIDE, view, quality=90)
        _save(picture, THUMB_SIDE, thumb, quality=82)
        return Preview(thumb, view)

    def prune(self) -> None:
        """Remove the previews this page no longer uses (only names this module makes)."""
        if not self.folder.is_dir():
            return
        for entry in os.scandir(self.folder):
            if _NAME.match(entry.name) and entry.name not in self.used:
                Path(entry.path).unlink(missing_ok=True)

    def start_page(self) -> None:
        self.used = set()


def _decode(source: Path, side: int) -> Image.Image:
    """Upright 8-bit RGB, at least ``side`` px on its long side where the file is that large.

    JPEG is decoded at a reduced scale (fast for large photos); other files through the imageio
    reader, which knows 16-bit and float TIFF, HEIF, CMYK and the rest."""
    try:
        with Image.open(source) as image:
            if image.format == "JPEG":
                image.draft("RGB", (side, side))
                return ImageOps.exif_transpose(image).convert("RGB")
    except Exception:  # noqa: S110 - the reader below says what is wrong with the file
        pass
    return media.read_image(source).to_pil_rgb8()


def _save(picture: Image.Image, side: int, target: Path, quality: int) -> None:
    small = picture.copy()
    small.thumbnail((side, side), Image.Resampling.LANCZOS)
    atomic.atomic_write(target, lambda handle: small.save(handle, format="JPEG", quality=quality))
