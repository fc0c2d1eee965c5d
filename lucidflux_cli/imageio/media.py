"""Reading photos as float arrays, keeping the metadata that matters to people.

This module knows nothing about models or output formats: it turns a file into upright float32
RGB (+ alpha) with its EXIF (dates, camera, GPS), ICC profile and XMP (see
:mod:`lucidflux_cli.imageio.metadata`). Writing lives in :mod:`lucidflux_cli.imageio.formats`.

Pillow decodes everything, but keeps only the high byte of 16-bit RGB(A) samples, so 16-bit
RGB(A) PNG and TIFF pixels are read again with pypng and tifffile.
"""

from __future__ import annotations

import io
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
from PIL import Image, ImageCms, UnidentifiedImageError

from lucidflux_cli.errors import ImageReadError, one_line
from lucidflux_cli.imageio.metadata import ImageMetadata, read_exif, read_xmp, rgb_icc
from lucidflux_cli.imageio.samples import quantize, to_unit

log = logging.getLogger(__name__)

pillow_heif.register_heif_opener()

__all__ = ["ImageMetadata", "LoadedImage", "probe_size", "read_image"]


@dataclass
class LoadedImage:
    rgb: np.ndarray  # float32 HxWx3 in [0, 1], upright (EXIF orientation applied)
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


# --------------------------------------------------------------------------------------------
# Reading


def read_image(path: Path) -> LoadedImage:
    """Fully decode ``path`` into upright float32 RGB in [0, 1] plus optional alpha.

    Raises :class:`ImageReadError` with a one-line cause for anything that is not a readable
    image (missing, empty, not an image, truncated, unsupported mode, ...).
    """
    path = Path(path)
    problem = _unreadable_reason(path)
    if problem:
        raise ImageReadError(path, problem)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # Pillow's notes (corrupt EXIF, ...) become log lines
            loaded = _open_and_decode(path)
        for note in caught:
            log.warning("%s: %s", path, _squash(note.message))
        return loaded
    except ImageReadError:
        raise
    except _UnsupportedMode as exc:
        raise ImageReadError(
            path, f"{exc} (only RGB, RGBA, gray, palette and CMYK images are supported)"
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


def _open_and_decode(path: Path) -> LoadedImage:
    with Image.open(path) as img:
        img.load()
        return _decode(path, img)


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


def _decode(path: Path, img: Image.Image) -> LoadedImage:
    fmt = (img.format or "").lower()
    icc = img.info.get("icc_profile") or None
    orientation = _orientation(img)
    rgb, alpha, bit_depth, icc = _pixels(path, img, fmt, icc)
    rgb = _apply_orientation(rgb, orientation)
    if alpha is not None:
        alpha = _apply_orientation(alpha, orientation)
    metadata = ImageMetadata(
        format=fmt,
        exif=read_exif(path, img, fmt),
        icc_profile=icc if isinstance(icc, bytes) else None,
        xmp=read_xmp(img),
        bit_depth=bit_depth,
        mode=img.mode,
    )
    return LoadedImage(rgb=rgb, alpha=alpha, metadata=metadata, path=path)


# -- pixels ----------------------------------------------------------------------------------

_GRAY16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_TO_RGB_MODES = frozenset({"YCbCr", "HSV", "RGBX"})


def _pixels(
    path: Path, img: Image.Image, fmt: str, icc: bytes | None
) -> tuple[np.ndarray, np.ndarray | None, int, bytes | None]:
    """Return (rgb float32, alpha float32 | None, bit depth, ICC profile still valid for rgb)."""
    mode = img.mode
    if mode in ("RGB", "RGBA"):
        values = _wide_values(path, img, fmt)
        if values is not None:
            rgb, alpha = _split_alpha(values)
            return to_unit(rgb, 16), _unit_or_none(alpha, 16), 16, rgb_icc(icc)
    if mode in _GRAY16_MODES:
        gray = np.clip(np.asarray(img).astype(np.int64), 0, 65535).astype(np.uint16)
        return to_unit(_gray_to_rgb(gray), 16), None, 16, None
    if mode == "CMYK":
        converted, icc = _cmyk_to_rgb(img, icc)
        return to_unit(np.asarray(converted), 8), None, 8, icc
    converted = _to_8bit_rgb_or_rgba(img)
    values = np.asarray(converted)
    if converted.mode == "L":
        values = _gray_to_rgb(values)
    elif converted.mode == "LA":
        values = np.dstack([_gray_to_rgb(values[..., 0]), values[..., 1]])
    rgb, alpha = _split_alpha(values)
    keep_icc = rgb_icc(icc) if mode not in ("L", "LA", "1", "La") else None
    return to_unit(rgb, 8), _unit_or_none(alpha, 8), 8, keep_icc


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
    """Convert with the embedded CMYK profile when there is one; the result is then sRGB."""
    if icc and icc[16:20] == b"CMYK":
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            return ImageCms.profileToProfile(img, src, dst, outputMode="RGB"), None
        except Exception as exc:  # a broken profile should not cost the image
            log.warning("ignoring unusable CMYK ICC profile: %s", one_line(exc))
        return img.convert("RGB"), None
    return img.convert("RGB"), rgb_icc(icc)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def _split_alpha(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if values.shape[2] == 4:
        return values[..., :3], values[..., 3]
    return values[..., :3], None


def _unit_or_none(values: np.ndarray | None, bits: int) -> np.ndarray | None:
    return None if values is None else to_unit(values, bits)


# -- 16-bit RGB(A): Pillow keeps only the high byte, pypng and tifffile read all 16 bits -------


def _wide_values(path: Path, img: Image.Image, fmt: str) -> np.ndarray | None:
    """uint16 (H, W, 3|4) samples of a 16-bit RGB(A) PNG or TIFF (as Pillow's mode says), else None.

    A file the library cannot read (e.g. an LZW TIFF without imagecodecs) stays 8-bit, with a warning.
    """
    reader: Callable[[Path], np.ndarray | None]
    if fmt == "png":
        reader = _png16
    elif fmt == "tiff" and tuple(img.tag_v2.get(258, ())) in ((16, 16, 16), (16, 16, 16, 16)):
        reader = _tiff16
    else:
        return None
    try:
        values = reader(path)
    except Exception as exc:
        log.warning("%s: reading 16-bit data as 8-bit (%s)", path, one_line(exc))
        return None
    # pypng's planes already count a tRNS alpha; a TIFF's extra samples are alpha only if Pillow says so.
    channels = 4 if img.mode == "RGBA" or (fmt == "png" and values is not None and values.shape[2] == 4) else 3
    if values is None or values.shape[:2] != (img.height, img.width) or values.shape[2] < channels:
        return None
    return np.ascontiguousarray(values[..., :channels])


def _png16(path: Path) -> np.ndarray | None:
    """16-bit RGB(A) samples: pypng reads the header chunks (tRNS key included), imagecodecs' libpng
    the pixels (pypng's pure-Python unfiltering is ~10x slower); a tRNS key colour becomes alpha
    as Pillow would make it."""
    import imagecodecs

    with open(path, "rb") as fh:
        reader = pypng.Reader(file=fh)
        reader.preamble()  # the chunks before the pixels: most RGB PNGs are 8-bit and need nothing more
        if reader.bitdepth != 16 or reader.greyscale:
            return None
        key: Any = getattr(reader, "transparent", None)
    values = imagecodecs.png_decode(path.read_bytes())
    if values.dtype != np.uint16 or values.ndim != 3:
        return None
    if values.shape[2] == 3 and key is not None:
        hit = np.all(values == np.asarray(key, dtype=np.uint16), axis=2)
        values = np.dstack([values, np.where(hit, 0, 65535).astype(np.uint16)])
    return values


def _tiff16(path: Path) -> np.ndarray | None:
    """Samples of the first TIFF page (the one Pillow shows), as (H, W, samples)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        values = page.asarray()
        if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
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
