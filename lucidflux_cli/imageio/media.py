"""Reading photos as float arrays, keeping the metadata that matters to people.

This module knows nothing about models or output formats: it turns a file into upright float32
RGB (+ alpha) with its EXIF (dates, camera, GPS), ICC profile and XMP (see
:mod:`lucidflux_cli.imageio.metadata`). Writing lives in :mod:`lucidflux_cli.imageio.formats`.

Pillow decodes everything, but keeps only the high byte of 16-bit RGB(A) samples, so 16-bit
RGB(A) PNG and TIFF pixels are read again with pypng and tifffile.
"""

from __future__ import annotations

import functools
import logging
import stat
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pillow_heif
import png as pypng
import tifffile
from PIL import Image, UnidentifiedImageError

from lucidflux_cli.errors import ImageReadError, one_line
from lucidflux_cli.imageio import exif as exif_ifds
from lucidflux_cli.imageio import fast_jpeg, sample_forms, tiff_floats
from lucidflux_cli.imageio.metadata import (
    ImageMetadata,
    clean_xmp,
    icc_space,
    normalised_exif,
    read_exif,
    read_xmp,
    rgb_icc,
)
from lucidflux_cli.imageio.sample_forms import SampleForm
from lucidflux_cli.imageio.samples import quantize, to_unit

log = logging.getLogger(__name__)

pillow_heif.register_heif_opener()

__all__ = ["ImageMetadata", "LoadedImage", "Pages", "probe_size", "read_image", "read_pages"]

FRAMES = ("all", "first")  # --frames: every page of a multi-page TIFF (animations refused), or the first only


@dataclass
class LoadedImage:
    rgb: np.ndarray  # float32 HxWx3 in [0, 1], upright (EXIF orientation applied); gray: 3 equal planes
    alpha: np.ndarray | None  # float32 HxW in [0, 1]
    metadata: ImageMetadata
    path: Path

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the upright image."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])

    def to_pil_rgb8(self) -> Image.Image:
        """8-bit RGB copy; for 8-bit sources this reproduces the decoded values exactly."""
        return Image.fromarray(quantize(self.rgb, 8))

    @property
    def model_input(self) -> Image.Image | np.ndarray:
        """What the model is given, by restore, training and validation alike: 8-bit sources as
        8-bit RGB (PIL, resized as the reference resizes), deeper ones as float arrays."""
        return self.to_pil_rgb8() if self.metadata.bit_depth <= 8 else self.rgb


@dataclass
class Pages:
    """What :func:`read_pages` restores of one file: its pages in order (most files: one)."""

    images: list[LoadedImage]
    note: str | None = None  # one line naming what of the file is not restored, if anything


# --------------------------------------------------------------------------------------------
# Reading


def read_image(path: Path) -> LoadedImage:
    """Fully decode ``path`` (its first page or frame) into upright float32 RGB in [0, 1] plus
    optional alpha.

    Raises :class:`ImageReadError` with a one-line cause for anything that is not a readable
    image (missing, empty, not an image, truncated, unsupported mode, ...).
    """
    return _reading(Path(path), lambda path: _open_pages(path, "first")).images[0]


def read_pages(path: Path, frames: str = "all") -> Pages:
    """Every image of ``path`` that a restore keeps, and a note naming what it does not.

    A multi-page TIFF gives all its pages in order (``frames`` 'first': page 1, and a note). An
    animation (GIF, APNG, WebP, ...) is refused with ImageReadError unless ``frames`` is 'first'.
    Files whose further images are not the photo itself (MPO previews and views, HEIF
    thumbnails or bursts) give their primary image and a note.
    """
    if frames not in FRAMES:
        raise ValueError(f"frames must be one of {FRAMES}, got {frames!r}")
    return _reading(Path(path), lambda path: _open_pages(path, frames))


@dataclass
class Rgb8:
    """The first image of a file as upright 8-bit RGB, for measuring: no metadata, no float copy."""

    rgb: np.ndarray  # uint8 H x W x 3
    bit_depth: int  # of the stored samples (deeper ones rounded to 8 bits here)
    alpha: bool  # the file has an alpha channel (not in ``rgb``)
    note: str | None = None  # further pages or frames, not used


def read_rgb8(path: Path) -> Rgb8:
    """The first page or frame of ``path`` as 8-bit RGB: the same pixels as
    ``read_image(path).to_pil_rgb8()``. A plain JPEG is decoded straight into 8-bit numpy (the
    filter's hot path: no float copy, no metadata); anything else through the full reader.
    ImageReadError as :func:`read_image`."""
    return _reading(Path(path), _first_rgb8)


def _first_rgb8(path: Path) -> Rgb8:
    if not tiff_floats.is_tiff(path):
        with Image.open(path) as img:
            plain_jpeg = (
                (img.format or "").lower() == "jpeg"
                and img.mode in ("RGB", "L")
                and int(getattr(img, "n_frames", 1) or 1) == 1
            )
            rgb = fast_jpeg.decode_rgb8(path, img.size) if plain_jpeg else None
            if rgb is not None:
                return Rgb8(_apply_orientation(rgb, _orientation(img)), 8, False)
    pages = _open_pages(path, "first")
    first = pages.images[0]
    return Rgb8(quantize(first.rgb, 8), first.metadata.bit_depth, first.alpha is not None, pages.note)


def _reading(path: Path, decode: Callable[[Path], Pages]) -> Pages:
    problem = _unreadable_reason(path)
    if problem:
        raise ImageReadError(path, problem)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # Pillow's notes (corrupt EXIF, ...) become log lines
            loaded = decode(path)
        for note in caught:
            log.warning("%s: %s", path, _squash(note.message))
        return loaded
    except ImageReadError:
        raise
    except _UnsupportedMode as exc:
        raise ImageReadError(
            path, f"{exc} (only RGB(A), gray, palette, CMYK and LAB images are supported)"
        ) from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image (cannot identify image file)") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"image too large ({_squash(exc)})") from None
    except MemoryError:
        raise ImageReadError(path, "out of memory while decoding") from None
    except Exception as exc:  # decoders raise a zoo of types; any of them means "bad file"
        raise ImageReadError(path, _describe_read_error(exc)) from None


def probe_size(path: Path) -> tuple[int, int] | None:
    """Upright (width, height) from the file header without decoding pixels; None if unreadable."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            transposed = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientations that swap sides
    except Exception:  # dry-run only: an unreadable file is reported when it is restored
        return None
    return (height, width) if transposed else (width, height)


_PAGED = frozenset({"tiff"})  # formats whose frames are pages of one document
_PRIMARY = frozenset({"mpo", "heif"})  # further images are previews, views or bursts, not the photo
_ANIMATION_NAMES = {"gif": "GIF", "png": "PNG (APNG)", "webp": "WebP", "avif": "AVIF"}


def _open_pages(path: Path, frames: str) -> Pages:
    try:
        opened = Image.open(path)
    except UnidentifiedImageError:
        if tiff_floats.is_tiff(path):  # float RGB(A), float16/64: Pillow has no mode for them
            return _float_tiff_pages(path, frames)
        raise
    with opened as img:
        count = int(getattr(img, "n_frames", 1) or 1)
        fmt = (img.format or "").lower()
        if fmt == "tiff" and tiff_floats.has_wide_samples(path):  # deeper than Pillow gives exactly
            return _float_tiff_pages(path, frames)
        if count > 1 and fmt in _PAGED and frames == "all":
            return Pages([_decode_frame(path, img, page) for page in range(count)])
        if count > 1 and fmt not in _PAGED | _PRIMARY and frames == "all":
            kind = _ANIMATION_NAMES.get(fmt, fmt.upper())
            raise ImageReadError(
                path,
                f"animated {kind} with {count} frames: not restored "
                "(--frames first restores its first frame only)",
            )
        first = _decode_frame(path, img, 0)
    if count == 1:
        return Pages([first])
    if fmt in _PAGED:
        note = _first_page_note(count)
    elif fmt in _PRIMARY:
        note = (
            f"{fmt.upper()} file with {count} images: restored the primary image; "
            f"{count - 1} other image(s) (previews, further views or a burst) not in the output"
        )
    else:
        kind = _ANIMATION_NAMES.get(fmt, fmt.upper())
        note = f"animated {kind} with {count} frames: restored the first frame only (--frames first)"
    return Pages([first], f"{path}: {note}")


def _first_page_note(count: int) -> str:
    return f"restored page 1 of {count} only (--frames first); {count - 1} page(s) not in the output"


def _float_tiff_pages(path: Path, frames: str) -> Pages:
    try:
        pages, count = tiff_floats.read_float_pages(path, first_only=frames == "first")
    except tiff_floats.UnsupportedSamples as exc:
        raise _UnsupportedMode(str(exc)) from None
    images = [_wide_page(path, page, index) for index, page in enumerate(pages)]
    note = f"{path}: {_first_page_note(count)}" if count > len(images) else None
    return Pages(images, note)


def _wide_page(path: Path, page: tiff_floats.FloatPage, index: int) -> LoadedImage:
    """A tifffile page in the model's [0, 1] RGB, with the form that gives its samples back."""
    colour_values = page.values[..., :1] if page.gray else page.values[..., :3]
    low, high = sample_forms.value_range(colour_values)
    values = sample_forms.to_unit(colour_values, low, high)
    rgb = _gray_to_rgb(values[..., 0]) if page.gray else values
    alpha = None if page.alpha is None else sample_forms.alpha_to_unit(page.alpha)
    icc = (page.icc if icc_space(page.icc) == "GRAY" else None) if page.gray else rgb_icc(page.icc)
    form = SampleForm("gray" if page.gray else "rgb", page.values.dtype.name, low, high)
    changes = _non_finite_note(colour_values)
    exif = (
        normalised_exif(page.exif, path)
        if page.exif
        else exif_ifds.encode({**exif_ifds.empty(), "0th": page.text}, path)
    )
    metadata = ImageMetadata(
        format="tiff",
        exif=exif,
        icc_profile=icc,
        xmp=clean_xmp(page.xmp),
        bit_depth=_nearest_depth(page.values.dtype),
        mode=_mode_name(form),
        gray=page.gray,
        form=form,
        changes=changes,
        iptc=page.iptc,
    )
    rgb = _apply_orientation(rgb, page.orientation)
    alpha = None if alpha is None else _apply_orientation(alpha, page.orientation)
    return LoadedImage(rgb=np.ascontiguousarray(rgb), alpha=alpha, metadata=metadata, path=path)


def _mode_name(form: SampleForm) -> str:
    """Pillow's name where it has one (F), RGBF for float RGB, else the form in words."""
    if np.dtype(form.dtype).kind == "f":
        return "F" if form.colour == "gray" else "RGBF"
    return form.describe()


def _nearest_depth(dtype: np.dtype) -> int:
    """The standard depth (8, 16, 32: float) a format without the exact type comes nearest with."""
    return 8 if dtype.itemsize == 1 else 16 if dtype.itemsize == 2 else 32


def _non_finite_note(values: np.ndarray) -> tuple[str, ...]:
    if values.dtype.kind != "f":
        return ()
    bad = int(np.count_nonzero(~np.isfinite(values)))
    return (f"{bad} NaN/inf sample(s) written as the range's low end",) if bad else ()


def _decode_frame(path: Path, img: Image.Image, page: int) -> LoadedImage:
    img.seek(page)
    img.load()
    return _decode(path, img, page)


def _unreadable_reason(path: Path) -> str | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return "file not found"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return _squash(exc.strerror or exc)
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not an image"
    if st.st_size == 0:
        return "empty file"
    return None


def _describe_read_error(exc: BaseException) -> str:
    if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
        return "truncated image data"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError) and exc.strerror and not str(exc).strip():
        return f"corrupt or unsupported image data ({type(exc).__name__}: {_squash(exc.strerror)})"
    return f"corrupt or unsupported image data ({one_line(exc)})"


def _squash(text: object) -> str:
    """Pillow's warning and limit texts on one line (they are messages, not exceptions to name)."""
    return " ".join(str(text).split())


def _decode(path: Path, img: Image.Image, page: int = 0) -> LoadedImage:
    fmt = (img.format or "").lower()
    icc = img.info.get("icc_profile") or None
    orientation = _orientation(img)
    changes: list[str] = []
    rgb, alpha, bit_depth, icc, gray, form = _pixels(path, img, fmt, icc, page, changes)
    rgb = _apply_orientation(rgb, orientation)
    if alpha is not None:
        alpha = _apply_orientation(alpha, orientation)
    metadata = ImageMetadata(
        format=fmt,
        exif=read_exif(path, img, fmt, page),
        icc_profile=icc if isinstance(icc, bytes) else None,
        xmp=read_xmp(img),
        bit_depth=bit_depth,
        mode=img.mode,
        gray=gray,
        form=form,
        changes=tuple(changes),
        iptc=tiff_floats.read_iptc(path, page) if fmt == "tiff" else None,
    )
    return LoadedImage(rgb=rgb, alpha=alpha, metadata=metadata, path=path)


# -- pixels ----------------------------------------------------------------------------------

_GRAY16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_GRAY_MODES = _GRAY16_MODES | {"L", "LA", "La", "1", "F"}
_TO_RGB_MODES = frozenset({"YCbCr", "HSV", "RGBX"})


def _pixels(
    path: Path, img: Image.Image, fmt: str, icc: bytes | None, page: int = 0, changes: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray | None, int, bytes | None, bool, SampleForm | None]:
    """Return (rgb float32, alpha float32 | None, bit depth, ICC profile still valid for the output, gray,
    the stored form where it is not plain RGB/gray); what reading changes for good goes to ``changes``.

    A gray source keeps a gray profile: its output is gray too (unless --keep-color, which
    drops it when writing)."""
    changes = [] if changes is None else changes
    mode = img.mode
    gray_icc = icc if icc_space(icc) == "GRAY" else None
    if mode in ("RGB", "RGBA"):
        values = _wide_values(path, img, fmt, page)
        if values is not None and values.shape[2] == 2:  # 16-bit gray + alpha PNG (Pillow: 8-bit RGBA)
            gray, alpha = to_unit(_gray_to_rgb(values[..., 0]), 16), to_unit(values[..., 1], 16)
            return gray, alpha, 16, gray_icc, True, None
        if values is not None:
            rgb, alpha = _split_alpha(values)
            return to_unit(rgb, 16), _unit_or_none(alpha, 16), 16, rgb_icc(icc), False, None
    if mode in _GRAY16_MODES:
        gray = np.clip(np.asarray(img).astype(np.int64), 0, 65535).astype(np.uint16)
        return to_unit(_gray_to_rgb(gray), 16), None, 16, gray_icc, True, None
    if mode == "F":  # 32-bit float gray (scientific and film scans): its range kept
        values = np.asarray(img, dtype=np.float32)
        low, high = sample_forms.value_range(values)
        changes.extend(_non_finite_note(values))
        form = SampleForm("gray", "float32", low, high)
        return _gray_to_rgb(sample_forms.to_unit(values, low, high)), None, 32, gray_icc, True, form
    if mode == "CMYK":
        if fmt == "tiff" and max(tuple(img.tag_v2.get(258, (8,)))) > 8:
            raise ImageReadError(path, "16-bit CMYK TIFF: not restored (Pillow reads it at 8 bits only)")
        converted, cmyk_icc = _cmyk_to_rgb(img, icc)
        if cmyk_icc is None:
            changes.append(
                "CMYK without a usable profile: converted by Pillow's formula, black separated anew"
            )
        form = SampleForm("cmyk", "uint8", 0.0, 255.0, cmyk_icc)
        return to_unit(np.asarray(converted), 8), None, 8, None if cmyk_icc else rgb_icc(icc), False, form
    if mode == "LAB":
        converted = sample_forms.lab_to_rgb(img)
        changes.extend(note for note in [sample_forms.lab_gamut_note(img, converted)] if note)
        return to_unit(np.asarray(converted), 8), None, 8, None, False, SampleForm("lab", "uint8", 0.0, 255.0)
    changes.extend(note for note in [_mode_change(img)] if note)
    converted = _to_8bit_rgb_or_rgba(img)
    values = np.asarray(converted)
    if converted.mode == "L":
        values = _gray_to_rgb(values)
    elif converted.mode == "LA":
        values = np.dstack([_gray_to_rgb(values[..., 0]), values[..., 1]])
    rgb, alpha = _split_alpha(values)
    keep_icc = gray_icc if mode in _GRAY_MODES else rgb_icc(icc)
    return to_unit(rgb, 8), _unit_or_none(alpha, 8), 8, keep_icc, mode in _GRAY_MODES, None


def _mode_change(img: Image.Image) -> str | None:
    """What reading a mode the outputs do not write changes for good (docs/archive-workflow.md)."""
    mode = img.mode
    if mode in ("P", "PA"):
        alpha = mode == "PA" or img.info.get("transparency") is not None
        return f"palette image written as {'RGBA' if alpha else 'RGB'} (outputs have no palette)"
    if mode == "1":
        return "1-bit black-and-white written as 8-bit gray"
    if mode in ("La", "RGBa"):
        return "premultiplied alpha written as straight alpha"
    if mode in ("L", "RGB") and img.info.get("transparency") is not None:
        return "transparent colour key written as an alpha channel"
    return None


class _UnsupportedMode(ValueError):
    """Pillow decoded the file, but into a mode this tool does not turn into RGB."""


def _to_8bit_rgb_or_rgba(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("RGB", "RGBA", "L", "LA"):
        has_key = mode in ("RGB", "L") and img.info.get("transparency") is not None
        return img.convert("RGBA") if has_key else img
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or img.info.get("transparency") is not None
        return img.convert("RGBA" if has_alpha else "RGB")
    if mode == "1":
        return img.convert("L")
    if mode in ("La", "RGBa"):
        return img.convert("LA" if mode == "La" else "RGBA")
    if mode in _TO_RGB_MODES:
        return img.convert("RGB")
    raise _UnsupportedMode(f"unsupported mode {mode}")


def _cmyk_to_rgb(img: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """sRGB through the embedded CMYK profile, and that profile (to convert back); without a
    usable one Pillow's formula, and None."""
    if icc_space(icc) == "CMYK":
        try:
            return sample_forms.cmyk_to_rgb(img, icc), icc
        except Exception as exc:  # a broken profile should not cost the image
            log.warning("ignoring unusable CMYK ICC profile: %s", one_line(exc))
    return sample_forms.cmyk_to_rgb(img, None), None


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def _split_alpha(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if values.shape[2] == 4:
        return values[..., :3], values[..., 3]
    return values[..., :3], None


def _unit_or_none(values: np.ndarray | None, bits: int) -> np.ndarray | None:
    return None if values is None else to_unit(values, bits)


# -- 16-bit RGB(A): Pillow keeps only the high byte, pypng and tifffile read all 16 bits -------


def _wide_values(path: Path, img: Image.Image, fmt: str, page: int = 0) -> np.ndarray | None:
    """uint16 (H, W, 3|4) samples of a 16-bit RGB(A) PNG or TIFF (as Pillow's mode says), (H, W, 2) of
    a 16-bit gray + alpha PNG (which Pillow reads as RGBA), else None.

    A file the library cannot read (e.g. an LZW TIFF without imagecodecs) stays 8-bit, with a warning.
    """
    reader: Callable[[Path], np.ndarray | None]
    if fmt == "png":
        reader = _png16
    elif fmt == "tiff" and tuple(img.tag_v2.get(258, ())) in ((16, 16, 16), (16, 16, 16, 16)):
        reader = functools.partial(_tiff16, page=page)
    else:
        return None
    try:
        values = reader(path)
    except Exception as exc:
        log.warning("%s: reading 16-bit data as 8-bit (%s)", path, one_line(exc))
        return None
    if (
        fmt == "png"
        and values is not None
        and values.shape[2] == 2
        and values.shape[:2] == (img.height, img.width)
    ):
        return values  # gray + alpha
    # pypng's planes already count a tRNS alpha; a TIFF's extra samples are alpha only if Pillow says so.
    channels = (
        4 if img.mode == "RGBA" or (fmt == "png" and values is not None and values.shape[2] == 4) else 3
    )
    if values is None or values.shape[:2] != (img.height, img.width) or values.shape[2] < channels:
        return None
    return np.ascontiguousarray(values[..., :channels])


def _png16(path: Path) -> np.ndarray | None:
    """16-bit RGB(A) or gray + alpha samples: pypng reads the header chunks (tRNS key included),
    imagecodecs' libpng the pixels (pypng's pure-Python unfiltering is ~10x slower); a tRNS key
    colour becomes alpha as Pillow would make it."""
    import imagecodecs

    with open(path, "rb") as fh:
        reader = pypng.Reader(file=fh)
        reader.preamble()  # the chunks before the pixels: most RGB PNGs are 8-bit and need nothing more
        if reader.bitdepth != 16 or (reader.greyscale and not reader.alpha):  # 16-bit gray: Pillow reads it
            return None
        key: Any = getattr(reader, "transparent", None)
    values = imagecodecs.png_decode(path.read_bytes())
    if values.dtype != np.uint16 or values.ndim != 3:
        return None
    if values.shape[2] == 3 and key is not None:
        hit = np.all(values == np.asarray(key, dtype=np.uint16), axis=2)
        values = np.dstack([values, np.where(hit, 0, 65535).astype(np.uint16)])
    return values


def _tiff16(path: Path, page: int = 0) -> np.ndarray | None:
    """Samples of TIFF page ``page`` (the one Pillow shows), as (H, W, samples)."""
    with tifffile.TiffFile(path) as tif:
        ifd = tif.pages[page]
        values = ifd.asarray()
        if ifd.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
            values = np.moveaxis(values, 0, -1)
    return values if values.dtype == np.uint16 and values.ndim == 3 else None


# -- orientation -----------------------------------------------------------------------------


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # broken EXIF: treat as upright rather than failing the image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _apply_orientation(values: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip rows x cols (x channels) the way EXIF Orientation asks (as ImageOps.exif_transpose)."""
    ops: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return values if op is None else np.ascontiguousarray(op(values))


def read_rgb(path: Path) -> np.ndarray:
    """The first image of ``path`` as float32 RGB in [0, 1] at its own bit depth."""
    loaded = read_pages(path, "first").images[0]
    return np.asarray(loaded.rgb, dtype=np.float32)
