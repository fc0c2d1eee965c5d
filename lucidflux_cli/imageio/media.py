"""Reading and writing photos as float arrays, keeping the metadata that matters to people.

This module knows nothing about models: it turns a file into upright float32 RGB (+ alpha) and
back, carrying EXIF (dates, camera, GPS), the ICC profile and XMP across, and stamping each
output with a note that lucidflux-cli produced it.

Pillow decodes 16-bit RGB(A) PNG and TIFF to 8 bits and cannot encode 16-bit RGB at all, so:
reading recovers the low bytes with a second decode through the byte-swapped unpacker, and
16-bit PNG and all TIFF output use the small encoders at the bottom of this file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import stat
import struct
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import piexif
import piexif.helper
import pillow_heif
from PIL import Image, ImageCms, ImageFile, PngImagePlugin, UnidentifiedImageError

from lucidflux_cli import __version__
from lucidflux_cli.errors import ImageReadError, ImageWriteError
from lucidflux_cli.imageio.atomic import atomic_write

log = logging.getLogger(__name__)

pillow_heif.register_heif_opener()

SOFTWARE = f"lucidflux-cli {__version__}"
DEFAULT_QUALITY = 95

# Pillow format names (and common spellings) folded onto the names used here.
_FORMAT_ALIASES = {
    "jpg": "jpeg",
    "jpe": "jpeg",
    "jfif": "jpeg",
    "mpo": "jpeg",  # Pillow calls many camera JPEGs (with a preview frame) MPO
    "tif": "tiff",
    "heic": "heif",
    "hif": "heif",
    "jp2": "jpeg2000",
    "j2k": "jpeg2000",
    "pgm": "ppm",
    "pbm": "ppm",
    "pnm": "ppm",
    "dib": "bmp",
}


class _FormatExtensions(Mapping[str, str]):
    """Writable output formats -> file extension, read live from the format registry
    (lucidflux_cli.imageio.formats: the built-ins and installed plugins, through entry points)."""

    def __getitem__(self, fmt: str) -> str:
        from lucidflux_cli.imageio import formats

        return formats.extension(fmt)

    def __iter__(self) -> Iterator[str]:
        from lucidflux_cli.imageio import formats

        return iter(formats.names())

    def __len__(self) -> int:
        return sum(1 for _ in self)


# Output formats we can write -> canonical file extension. GIF is deliberately absent: a
# 256-colour palette would undo the restoration.
EXTENSIONS: Mapping[str, str] = _FormatExtensions()

# Pillow's plugin name for each writable format.
_PIL_NAMES = {
    "png": "PNG",
    "jpeg": "JPEG",
    "webp": "WEBP",
    "tiff": "TIFF",
    "heif": "HEIF",
    "avif": "AVIF",
    "bmp": "BMP",
    "ppm": "PPM",
    "tga": "TGA",
    "jpeg2000": "JPEG2000",
}
_ALPHA_FORMATS = frozenset({"png", "webp", "tiff", "heif", "avif"})
_SIXTEEN_BIT_FORMATS = frozenset({"png", "tiff"})


@dataclass
class ImageMetadata:
    """What a source file carries besides pixels.

    ``exif`` is normalised to JPEG APP1 form (``b"Exif\\0\\0"`` + TIFF structure) with
    Orientation = 1, because the pixels handed out are already upright.
    """

    format: str
    exif: bytes | None
    icc_profile: bytes | None
    xmp: bytes | None
    bit_depth: int
    mode: str


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
        return Image.fromarray(_quantize(self.rgb, 8))


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
            log.warning("%s: %s", path, _one_line(note.message))
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
        raise ImageReadError(path, f"image too large ({_one_line(exc)})") from None
    except MemoryError:
        raise ImageReadError(path, "out of memory while decoding") from None
    except Exception as exc:  # decoders raise a zoo of types; any of them means "bad file"
        raise ImageReadError(path, _describe_read_error(exc)) from None


def _open_and_decode(path: Path) -> LoadedImage:
    with Image.open(path) as img:
        wide = _is_wide_16bit(img)  # must look at the tiles before load() consumes them
        img.load()
        return _decode(path, img, wide)


def _unreadable_reason(path: Path) -> str | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return "file not found"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return _one_line(exc.strerror or exc)
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not an image"
    if st.st_size == 0:
        return "empty file"
    return None


def _describe_read_error(exc: BaseException) -> str:
    text = _one_line(exc)
    if isinstance(exc, EOFError) or "truncated" in text.lower():
        return "truncated image data"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError) and exc.strerror and not text:
        text = exc.strerror
    return f"corrupt or unsupported image data ({type(exc).__name__}: {text})"


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _decode(path: Path, img: Image.Image, wide: bool) -> LoadedImage:
    fmt = normalize_format(img.format or "")
    icc = img.info.get("icc_profile") or None
    orientation = _orientation(img)
    rgb, alpha, bit_depth, icc = _pixels(path, img, wide, icc)
    rgb = _apply_orientation(rgb, orientation)
    if alpha is not None:
        alpha = _apply_orientation(alpha, orientation)
    metadata = ImageMetadata(
        format=fmt,
        exif=_read_exif(path, img, fmt),
        icc_profile=icc if isinstance(icc, bytes) else None,
        xmp=_read_xmp(img),
        bit_depth=bit_depth,
        mode=img.mode,
    )
    return LoadedImage(rgb=rgb, alpha=alpha, metadata=metadata, path=path)


# -- pixels ----------------------------------------------------------------------------------

_GRAY16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_TO_RGB_MODES = frozenset({"YCbCr", "HSV", "RGBX"})


def _pixels(
    path: Path, img: Image.Image, wide: bool, icc: bytes | None
) -> tuple[np.ndarray, np.ndarray | None, int, bytes | None]:
    """Return (rgb float32, alpha float32 | None, bit depth, ICC profile still valid for rgb)."""
    mode = img.mode
    if mode in ("RGB", "RGBA") and wide:
        values = _wide_values(path, img)
        if values is not None:
            rgb, alpha = _split_alpha(values)
            alpha = _transparency_key_alpha(img, rgb, alpha)
            return _unit(rgb, 16), _unit_or_none(alpha, 16), 16, _rgb_icc(icc)
    if mode in _GRAY16_MODES:
        gray = np.clip(np.asarray(img).astype(np.int64), 0, 65535).astype(np.uint16)
        return _unit(_gray_to_rgb(gray), 16), None, 16, None
    if mode == "CMYK":
        converted, icc = _cmyk_to_rgb(img, icc)
        return _unit(np.asarray(converted), 8), None, 8, icc
    converted = _to_8bit_rgb_or_rgba(img)
    values = np.asarray(converted)
    if converted.mode == "L":
        values = _gray_to_rgb(values)
    elif converted.mode == "LA":
        values = np.dstack([_gray_to_rgb(values[..., 0]), values[..., 1]])
    rgb, alpha = _split_alpha(values)
    keep_icc = _rgb_icc(icc) if mode not in ("L", "LA", "1", "La") else None
    return _unit(rgb, 8), _unit_or_none(alpha, 8), 8, keep_icc


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
            log.warning("ignoring unusable CMYK ICC profile: %s", _one_line(exc))
        return img.convert("RGB"), None
    return img.convert("RGB"), _rgb_icc(icc)


def _rgb_icc(icc: bytes | None) -> bytes | None:
    # Output is always RGB: a gray or CMYK profile would misdescribe it.
    if isinstance(icc, bytes) and icc[16:20] == b"RGB ":
        return icc
    return None


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def _split_alpha(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if values.shape[2] == 4:
        return values[..., :3], values[..., 3]
    return values[..., :3], None


def _unit(values: np.ndarray, bits: int) -> np.ndarray:
    scale = np.float32(65535.0 if bits == 16 else 255.0)
    return np.ascontiguousarray(values, dtype=np.float32) / scale


def _unit_or_none(values: np.ndarray | None, bits: int) -> np.ndarray | None:
    return None if values is None else _unit(values, bits)


def _transparency_key_alpha(img: Image.Image, rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray | None:
    """A 16-bit RGB PNG may mark one colour transparent (tRNS) instead of carrying alpha."""
    key = img.info.get("transparency")
    if alpha is not None or not isinstance(key, tuple) or len(key) != 3:
        return alpha
    hit = np.all(rgb == np.asarray(key, dtype=np.uint16), axis=2)
    return np.where(hit, 0, 65535).astype(np.uint16)


# -- 16-bit RGB(A): Pillow keeps only the high byte; a second decode yields the low byte ------

_WIDE_RAWMODES = ("RGB;16", "RGBA;16", "RGBX;16")
_NATIVE = "L" if sys.byteorder == "little" else "B"
# Decoding big-endian data with the little-endian unpacker (and vice versa) selects the low byte.
_OTHER_END = {"B": "L", "L": "B", "N": "B" if _NATIVE == "L" else "L"}


def _tile_rawmode(tile: ImageFile._Tile) -> str | None:
    args = tile.args
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def _is_wide_16bit(img: Image.Image) -> bool:
    if img.mode not in ("RGB", "RGBA") or not img.tile:
        return False
    for tile in img.tile:
        raw = _tile_rawmode(tile)
        if not raw or raw[:-1] not in _WIDE_RAWMODES or raw[-1] not in _OTHER_END:
            return False
    return True


def _low_byte_tile(tile: ImageFile._Tile) -> ImageFile._Tile:
    raw = _tile_rawmode(tile)
    assert raw is not None
    swapped = raw[:-1] + _OTHER_END[raw[-1]]
    args = swapped if isinstance(tile.args, str) else (swapped, *tile.args[1:])
    return tile._replace(args=args)


def _wide_values(path: Path, img: Image.Image) -> np.ndarray | None:
    """Full 16-bit samples of an already loaded 16-bit RGB(A) image, or None (stay 8-bit)."""
    high = np.asarray(img)
    try:
        with Image.open(path) as again:
            again.tile = [_low_byte_tile(t) for t in again.tile]
            again.load()
            low = np.asarray(again)
    except Exception as exc:
        log.warning("%s: reading 16-bit data as 8-bit (%s)", path, _one_line(exc))
        return None
    if low.shape != high.shape:
        return None
    return (high.astype(np.uint16) << 8) | low.astype(np.uint16)


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


# -- metadata --------------------------------------------------------------------------------

# Tags of IFD0 that describe the old pixel layout; copying them to another file would lie.
_STRUCTURE_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 277, 278, 279, 280, 281, 284, 290, 291}
    | {292, 293, 317, 320, 322, 323, 324, 325, 330, 332, 338, 339, 340, 341, 347, 512, 513, 514, 515}
    | {517, 518, 519, 520, 521, 529, 530, 532, 700, 34675}
)
_EXIF_IFDS = ("0th", "Exif", "GPS", "Interop")


def _read_exif(path: Path, img: Image.Image, fmt: str) -> bytes | None:
    raw: Any = path if fmt == "tiff" else img.info.get("exif")
    if not raw:
        return None
    exif = _load_exif(str(raw) if isinstance(raw, Path) else raw, path)
    if exif is None:
        return None
    if not any(exif[name] for name in ("Exif", "GPS", "Interop")) and not set(exif["0th"]) - {274}:
        return None  # only a stale Orientation: nothing worth carrying
    exif["0th"][piexif.ImageIFD.Orientation] = 1
    return encode_exif(exif, path)


def _load_exif(raw: bytes | str, where: Path) -> dict[str, Any] | None:
    """piexif dict without structure tags and thumbnail, or None (with a warning) if unreadable."""
    try:
        exif = piexif.load(raw)
    except Exception as exc:
        log.warning("%s: ignoring unreadable EXIF (%s)", where, _one_line(exc))
        return None
    for name in _EXIF_IFDS:
        exif.setdefault(name, {})
    for tag in _STRUCTURE_TAGS:
        exif["0th"].pop(tag, None)
    exif["1st"] = {}
    exif["thumbnail"] = None  # a thumbnail would show the unrestored picture
    return exif


_XMP_ORIENTATION = (
    re.compile(rb"(tiff:Orientation\s*=\s*[\"'])\s*\d\s*([\"'])"),
    re.compile(rb"(<tiff:Orientation>)\s*\d\s*(</tiff:Orientation>)"),
)


def _read_xmp(img: Image.Image) -> bytes | None:
    xmp: Any = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if not xmp and hasattr(img, "tag_v2"):
        xmp = img.tag_v2.get(700)  # TIFF keeps XMP in a tag
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, tuple):
        xmp = bytes(xmp)
    if not isinstance(xmp, bytes) or not xmp.strip(b"\0 \t\r\n"):
        return None
    for pattern in _XMP_ORIENTATION:  # pixels are upright now
        xmp = pattern.sub(rb"\g<1>1\g<2>", xmp)
    return xmp


# --------------------------------------------------------------------------------------------
# Format names


def normalize_format(name: str) -> str:
    """Lower-case format family: 'JPG'/'MPO' -> 'jpeg', 'tif' -> 'tiff', 'heic' -> 'heif'."""
    key = name.strip().lower().lstrip(".")
    return _FORMAT_ALIASES.get(key, key)


def format_from_extension(name: str) -> str:
    """Format guessed from a suffix or file name ('.JPG' -> 'jpeg'); unknown suffixes pass through."""
    return normalize_format(Path(name).suffix or name)


def output_format_for(input_format: str, requested: str) -> str:
    """Resolve ``--format``: 'same' keeps the input format when we can write it, else 'png'.

    Raises ValueError (one line) for a format we cannot write.
    """
    wanted = normalize_format(requested)
    if wanted == "same":
        source = normalize_format(input_format)
        return source if source in EXTENSIONS else "png"
    if wanted not in EXTENSIONS:
        choices = ", ".join(["same", *sorted(EXTENSIONS)])
        raise ValueError(f"unsupported output format {requested!r} (choose from {choices})")
    return wanted


# --------------------------------------------------------------------------------------------
# Writing


@dataclass
class _OutputMeta:
    exif: dict[str, Any]  # piexif layout
    exif_bytes: bytes  # the same, encoded once
    icc_profile: bytes | None
    xmp: bytes
    summary: str


def write_image(
    path: Path,
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None,
    metadata: ImageMetadata | None,
    fmt: str,
    quality: int | None = None,
    bit_depth: int = 8,
    provenance: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
) -> None:
    """Atomically write float RGB in [0, 1] (HxWx3) as ``fmt``, carrying ``metadata`` over.

    ``fmt`` names a format of the registry (lucidflux_cli.imageio.formats: the built-ins below and
    installed plugins); ``options`` are its options (None: the run's ``--format-option``).
    What follows describes the built-in formats.

    Alpha (HxW, already at the output size) is kept for png/webp/tiff/heif/avif and dropped,
    not composited, for formats without alpha (jpeg, bmp, ...). ``bit_depth=16`` applies to
    png and tiff; other formats are written with 8 bits. ``quality`` (default 95) applies to
    lossy formats; for webp, 100 means lossless. EXIF keeps dates, camera and GPS with
    Orientation = 1 and the thumbnail dropped; Software becomes "lucidflux-cli <version>", the
    provenance summary goes to UserComment (and to ImageDescription unless the photo already
    has one), PNG gets tEXt Software/Comment, and XMP gets xmp:CreatorTool and dc:description.
    On failure nothing is left behind, any previous file is untouched, and ImageWriteError is
    raised.
    """
    from lucidflux_cli.imageio import formats

    path = Path(path)
    fmt = normalize_format(fmt)
    writer = _format_writer(path, fmt, options)
    if bit_depth not in (8, 16):
        raise ImageWriteError(path, f"unsupported bit depth {bit_depth} (use 8 or 16)")
    try:
        rgb_f, alpha_f = _checked_arrays(rgb, alpha)
    except ValueError as exc:
        raise ImageWriteError(path, str(exc)) from None
    meta = _output_meta(path, metadata, provenance, (rgb_f.shape[1], rgb_f.shape[0]))
    image = formats.OutputImage(
        path=path, rgb=rgb_f, alpha=alpha_f, bit_depth=bit_depth, exif=meta.exif_bytes, icc_profile=meta.icc_profile,
        xmp=meta.xmp, summary=meta.summary, quality=quality, exif_tags=meta.exif,
    )
    try:
        atomic_write(path, lambda fp: writer.write(fp, image))
    except Exception as exc:
        cause = _describe_write_error(exc)
        if not isinstance(exc, (OSError, ImageWriteError)):  # plugin code: say whose and what
            cause = f"format {writer.name!r}: {type(exc).__name__}: {cause}"
        raise ImageWriteError(path, cause) from exc


def _format_writer(path: Path, fmt: str, options: dict[str, str] | None):
    from lucidflux_cli import plugins
    from lucidflux_cli.imageio import formats

    try:
        return formats.get(fmt, options)
    except plugins.PluginError as exc:
        if fmt not in plugins.registry(plugins.FORMATS).names():
            raise ImageWriteError(path, f"unsupported output format {fmt!r}") from None
        raise ImageWriteError(path, str(exc)) from None


def encode_builtin(fp: BinaryIO, image: Any, fmt: str, bits: int) -> None:
    """Encode a ``formats.OutputImage`` with this module's writers (the built-in formats)."""
    bits = bits if fmt in _SIXTEEN_BIT_FORMATS else 8
    pixels = _quantize(image.rgb, bits)
    alpha = _quantize(image.alpha, bits) if image.alpha is not None and fmt in _ALPHA_FORMATS else None
    meta = _OutputMeta(exif=image.exif_tags, exif_bytes=image.exif, icc_profile=image.icc_profile, xmp=image.xmp,
                       summary=image.summary)
    _WRITERS.get(fmt, _write_other)(fp, pixels, alpha, meta, fmt, image.quality, image.path)


def _describe_write_error(exc: Exception) -> str:
    # OSError's str() names the hidden temp file; its strerror ("No space left on device") does not.
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _one_line(exc) or type(exc).__name__


def _checked_arrays(rgb: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    rgb = np.ascontiguousarray(rgb)  # encoders view the buffer as bytes
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if alpha is None:
        return rgb, None
    alpha = np.ascontiguousarray(alpha)
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
    return rgb, alpha


def _quantize(values: np.ndarray, bits: int) -> np.ndarray:
    top = 65535.0 if bits == 16 else 255.0
    scaled = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0) * np.float32(top)
    # x * 255 + 0.5, truncated: the reference's (torchvision's) rounding, halves go up.
    return np.floor(np.clip(scaled + np.float32(0.5), 0.0, top)).astype(np.uint16 if bits == 16 else np.uint8)


def provenance_summary(provenance: dict[str, str] | None) -> str:
    """One readable line, e.g. 'Restored by lucidflux-cli 0.1.0 (model: x, steps: 28, seed: 7)'."""
    text = f"Restored by {SOFTWARE}"
    # A "Software" entry naming ourselves would only repeat the opening words.
    details = ", ".join(
        f"{key}: {_one_line(value)}"
        for key, value in (provenance or {}).items()
        if _one_line(value) != SOFTWARE
    )
    if details:
        text += f" ({details})"
    return text


def _output_meta(
    path: Path, metadata: ImageMetadata | None, provenance: dict[str, str] | None, size: tuple[int, int]
) -> _OutputMeta:
    summary = provenance_summary(provenance)
    source_exif = metadata.exif if metadata else None
    exif = _load_exif(source_exif, path) if source_exif else None
    exif = _stamp_exif(exif or _empty_exif(), summary, size)
    xmp = _stamp_xmp(metadata.xmp if metadata else None, summary, path)
    icc = metadata.icc_profile if metadata else None
    return _OutputMeta(
        exif=exif, exif_bytes=encode_exif(exif, path), icc_profile=icc, xmp=xmp, summary=summary
    )


def _empty_exif() -> dict[str, Any]:
    return {"0th": {}, "Exif": {}, "GPS": {}, "Interop": {}, "1st": {}, "thumbnail": None}


def _stamp_exif(exif: dict[str, Any], summary: str, size: tuple[int, int]) -> dict[str, Any]:
    zeroth, sub = exif["0th"], exif["Exif"]
    zeroth[piexif.ImageIFD.Orientation] = 1
    zeroth[piexif.ImageIFD.Software] = SOFTWARE.encode("ascii")
    description = zeroth.get(piexif.ImageIFD.ImageDescription, b"")
    if not _text(description).strip():
        zeroth[piexif.ImageIFD.ImageDescription] = summary.encode("ascii", "replace")
    encoding = "ascii" if summary.isascii() else "unicode"
    sub[piexif.ExifIFD.UserComment] = piexif.helper.UserComment.dump(summary, encoding=encoding)
    if piexif.ExifIFD.PixelXDimension in sub or piexif.ExifIFD.PixelYDimension in sub:
        sub[piexif.ExifIFD.PixelXDimension], sub[piexif.ExifIFD.PixelYDimension] = size
    # Fields the EXIF standard requires; filled in only when the source lacks them.
    for tag, value in ((282, (72, 1)), (283, (72, 1)), (296, 2)):
        zeroth.setdefault(tag, value)
    sub.setdefault(piexif.ExifIFD.ExifVersion, b"0232")
    return exif


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


# -- XMP -------------------------------------------------------------------------------------

_NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
}
_XPACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_XPACKET_END = '\n<?xpacket end="w"?>'


def _q(prefix: str, name: str) -> str:
    return f"{{{_NS[prefix]}}}{name}"


def _stamp_xmp(source: bytes | None, summary: str, where: Path) -> bytes:
    """XMP naming our tool; merged into the photo's own packet when that parses."""
    if source:
        try:
            return _merge_xmp(source, summary)
        except Exception as exc:  # unparseable XMP: keep it verbatim rather than lose it
            log.warning("%s: keeping XMP unchanged, cannot parse it (%s)", where, _one_line(exc))
            return source
    return _fresh_xmp(summary)


def _fresh_xmp(summary: str) -> bytes:
    body = (
        f'<x:xmpmeta xmlns:x="{_NS["x"]}">\n'
        f' <rdf:RDF xmlns:rdf="{_NS["rdf"]}">\n'
        f'  <rdf:Description rdf:about="" xmlns:xmp="{_NS["xmp"]}" xmlns:dc="{_NS["dc"]}">\n'
        f"   <xmp:CreatorTool>{xml_escape(SOFTWARE)}</xmp:CreatorTool>\n"
        '   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">'
        f"{xml_escape(summary)}</rdf:li></rdf:Alt></dc:description>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>"
    )
    return (_XPACKET_BEGIN + body + _XPACKET_END).encode("utf-8")


def _register_prefixes(source: bytes) -> None:
    # ElementTree would otherwise rename every prefix to ns0, ns1, ... (legal but ugly).
    # The registry is process-wide, which is harmless for XMP's stable prefixes.
    for _event, (prefix, uri) in ET.iterparse(io.BytesIO(source), events=("start-ns",)):
        if prefix and not re.fullmatch(r"ns\d+", prefix):
            with contextlib.suppress(ValueError):
                ET.register_namespace(prefix, uri)


def _merge_xmp(source: bytes, summary: str) -> bytes:
    clean = source.rstrip(b"\0 \t\r\n")
    root = ET.fromstring(clean)
    _register_prefixes(clean)
    rdf = root if root.tag == _q("rdf", "RDF") else root.find(f".//{_q('rdf', 'RDF')}")
    if rdf is None:
        raise ValueError("no rdf:RDF element")
    descriptions = rdf.findall(_q("rdf", "Description"))
    has_description = False
    for desc in descriptions:
        desc.attrib.pop(_q("xmp", "CreatorTool"), None)
        for child in desc.findall(_q("xmp", "CreatorTool")):
            desc.remove(child)
        has_description |= _q("dc", "description") in desc.attrib
        has_description |= desc.find(_q("dc", "description")) is not None
    about = descriptions[0].get(_q("rdf", "about"), "") if descriptions else ""
    ours = ET.SubElement(rdf, _q("rdf", "Description"), {_q("rdf", "about"): about})
    ET.SubElement(ours, _q("xmp", "CreatorTool")).text = SOFTWARE
    if not has_description:
        alt = ET.SubElement(ET.SubElement(ours, _q("dc", "description")), _q("rdf", "Alt"))
        li = ET.SubElement(alt, _q("rdf", "li"), {"{http://www.w3.org/XML/1998/namespace}lang": "x-default"})
        li.text = summary
    return (_XPACKET_BEGIN + ET.tostring(root, encoding="unicode") + _XPACKET_END).encode("utf-8")


# -- writers ---------------------------------------------------------------------------------


def _pil_image(pixels: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    return Image.fromarray(pixels if alpha is None else np.dstack([pixels, alpha]))


def _write_png(fp: BinaryIO, pixels, alpha, meta: _OutputMeta, fmt, quality, where: Path) -> None:
    if pixels.dtype == np.uint16:
        _write_png16(fp, pixels, alpha, meta, where)
        return
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", SOFTWARE)
    info.add_text("Comment", meta.summary)
    info.add_itxt("XML:com.adobe.xmp", meta.xmp.decode("utf-8", "replace"))
    kwargs = _common_kwargs(meta, where)
    _pil_image(pixels, alpha).save(fp, "PNG", pnginfo=info, compress_level=6, **kwargs)


def _common_kwargs(meta: _OutputMeta, where: Path, *, segment_limit: int | None = None) -> dict[str, Any]:
    """Pillow's exif/icc_profile/xmp arguments; ``segment_limit`` caps EXIF and XMP (JPEG)."""
    kwargs: dict[str, Any] = {}
    exif: bytes | None = meta.exif_bytes
    if segment_limit and len(meta.exif_bytes) > segment_limit:
        exif = _shrink_exif(meta, where, segment_limit)
    if exif:
        kwargs["exif"] = exif
    if meta.icc_profile:
        kwargs["icc_profile"] = meta.icc_profile
    if segment_limit is None or len(meta.xmp) <= segment_limit:
        kwargs["xmp"] = meta.xmp
    else:
        log.warning("%s: XMP too large for this format; not written", where)
    return kwargs


def _shrink_exif(meta: _OutputMeta, where: Path, limit: int) -> bytes | None:
    # JPEG holds EXIF in one 64 KiB segment; maker notes are the usual reason it overflows.
    exif = {
        **meta.exif,
        "Exif": {k: v for k, v in meta.exif["Exif"].items() if k != piexif.ExifIFD.MakerNote},
    }
    data = encode_exif(exif, where)
    if len(data) <= limit:
        return data
    log.warning("%s: EXIF too large for this format; not written", where)
    return None


_JPEG_SEGMENT_LIMIT = 65000
_HEIF_TILE = 512


def _write_jpeg(fp: BinaryIO, pixels, alpha, meta: _OutputMeta, fmt, quality, where: Path) -> None:
    q = DEFAULT_QUALITY if quality is None else int(quality)
    kwargs = _common_kwargs(meta, where, segment_limit=_JPEG_SEGMENT_LIMIT)
    # 4:4:4 chroma at high quality: restored fine colour detail should survive the encode.
    subsampling = 0 if q >= 90 else 2
    _pil_image(pixels, None).save(fp, "JPEG", quality=q, subsampling=subsampling, **kwargs)


def _write_lossy_modern(fp: BinaryIO, pixels, alpha, meta: _OutputMeta, fmt, quality, where: Path) -> None:
    """WebP, HEIF and AVIF share Pillow's keyword set."""
    q = DEFAULT_QUALITY if quality is None else int(quality)
    kwargs = _common_kwargs(meta, where)
    if fmt == "webp":
        kwargs["lossless"] = q >= 100
    if fmt == "heif":
        # 512-pixel grid tiles, as phones write them: libde265 fails to decode single-frame
        # HEVC pictures of ~24 MP at high quality, and tiles also compress better.
        kwargs["tile_size"] = _HEIF_TILE
    _pil_image(pixels, alpha).save(fp, _PIL_NAMES[fmt], quality=q, **kwargs)


def _write_other(fp: BinaryIO, pixels, alpha, meta: _OutputMeta, fmt, quality, where: Path) -> None:
    """Best effort for the remaining Pillow writers (bmp, ppm, tga, jpeg2000): pixels + ICC."""
    kwargs: dict[str, Any] = {"icc_profile": meta.icc_profile} if meta.icc_profile else {}
    _pil_image(pixels, alpha).save(fp, _PIL_NAMES[fmt], **kwargs)


# -- 16-bit PNG ------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_text(key: str, value: str) -> bytes:
    try:
        return _png_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        return _png_itxt(key, value)


def _png_itxt(key: str, value: str) -> bytes:
    # keyword, no compression, empty language tag and translated keyword, UTF-8 text
    return _png_chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8"))


def _png16_idat(samples: np.ndarray) -> bytes:
    height, width, channels = samples.shape
    rows = samples.astype(">u2").view(np.uint8).reshape(height, width * channels * 2)
    bpp = channels * 2
    filtered = rows.copy()
    filtered[:, bpp:] -= rows[:, :-bpp]  # PNG filter 1 ("Sub"), byte-wise modulo 256
    data = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    data[:, 0] = 1
    data[:, 1:] = filtered
    return zlib.compress(data.tobytes(), 6)


def _write_png16(
    fp: BinaryIO, pixels: np.ndarray, alpha: np.ndarray | None, meta: _OutputMeta, where: Path
) -> None:
    samples = pixels if alpha is None else np.dstack([pixels, alpha])
    height, width = samples.shape[:2]
    color_type = 6 if alpha is not None else 2
    out = [
        _PNG_SIGNATURE,
        _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)),
    ]
    if meta.icc_profile:
        out.append(_png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(meta.icc_profile)))
    out.append(_png_chunk(b"eXIf", meta.exif_bytes.removeprefix(b"Exif\0\0")))
    out.append(_png_text("Software", SOFTWARE))
    out.append(_png_text("Comment", meta.summary))
    out.append(_png_itxt("XML:com.adobe.xmp", meta.xmp.decode("utf-8", "replace")))
    out.append(_png_chunk(b"IDAT", _png16_idat(samples)))
    out.append(_png_chunk(b"IEND", b""))
    for part in out:
        fp.write(part)


# -- TIFF structures: shared by EXIF blobs and TIFF files -------------------------------------
# piexif parses EXIF well, but its dump() leaves no next-IFD field in sub-IFDs and does not
# word-align values (ExifTool flags both), so EXIF and TIFF are serialised here instead.

_Entries = dict[int, tuple[int, int, bytes]]  # tag -> (TIFF type, count, big-endian payload)

_TIFF_CODES = {1: "B", 3: "H", 4: "I", 6: "b", 7: "B", 8: "h", 9: "i", 11: "f", 12: "d"}
_EXIF_POINTER, _GPS_POINTER, _INTEROP_POINTER = 34665, 34853, 40965
_POINTER_TAGS = frozenset({_EXIF_POINTER, _GPS_POINTER, _INTEROP_POINTER})


def _tiff_payload(kind: int, value: Any) -> tuple[int, bytes]:
    """(count, big-endian bytes) of one field value as piexif represents it."""
    if kind == 2:  # ASCII, NUL-terminated
        data = value if isinstance(value, bytes) else str(value).encode("latin-1", "replace")
        data = data if data.endswith(b"\0") else data + b"\0"
        return len(data), data
    if kind in (1, 7) and isinstance(value, (bytes, bytearray)):
        return len(value), bytes(value)
    if kind in (5, 10):  # (num, den) or a sequence of them
        pairs = [value] if isinstance(value[0], int) else list(value)
        code = "I" if kind == 5 else "i"
        return len(pairs), struct.pack(f">{2 * len(pairs)}{code}", *(n for pair in pairs for n in pair))
    values = (value,) if isinstance(value, (int, float)) else tuple(value)
    return len(values), struct.pack(f">{len(values)}{_TIFF_CODES[kind]}", *values)


def _tiff_field(kind: int, value: Any) -> tuple[int, int, bytes]:
    count, data = _tiff_payload(kind, value)
    return kind, count, data


def _tiff_entries(tags: dict[int, Any], table: str, where: Path) -> _Entries:
    """Encode one piexif IFD dict (types from piexif's tables); values that do not fit are dropped."""
    types = piexif.TAGS[table]
    entries: _Entries = {}
    for tag, value in tags.items():
        kind = types.get(tag, {}).get("type")
        if kind is None or tag in _POINTER_TAGS:
            continue
        try:
            entries[tag] = _tiff_field(kind, value)
        except (struct.error, TypeError, ValueError, IndexError, KeyError):
            log.warning("%s: dropping EXIF tag %s/%d that cannot be encoded", where, table, tag)
    return entries


def _tiff_ifd(entries: _Entries, at: int) -> bytes:
    """Serialise one IFD placed at offset ``at``; values over 4 bytes follow its table."""
    table_size = 2 + 12 * len(entries) + 4
    table = bytearray(struct.pack(">H", len(entries)))
    extra = bytearray()
    for tag in sorted(entries):
        kind, count, data = entries[tag]
        if len(data) <= 4:
            field = data.ljust(4, b"\0")
        else:
            field = struct.pack(">I", at + table_size + len(extra))
            extra += data + (b"\0" if len(data) % 2 else b"")  # keep offsets word-aligned
        table += struct.pack(">HHI", tag, kind, count) + field
    table += struct.pack(">I", 0)  # no next IFD
    return bytes(table + extra)


def _tiff_layout(ifd0: _Entries, exif: _Entries, gps: _Entries, interop: _Entries, ifd0_at: int) -> bytes:
    """IFD0 followed by the Exif, GPS and Interop IFDs it (or the Exif IFD) points to."""
    chain: list[tuple[_Entries, _Entries, int]] = [(ifd0, ifd0, 0)]
    if exif or interop:  # Interop hangs off the Exif IFD, so that one must exist
        chain.append((exif, ifd0, _EXIF_POINTER))
    if gps:
        chain.append((gps, ifd0, _GPS_POINTER))
    if interop:
        chain.append((interop, exif, _INTEROP_POINTER))
    # Pointer values do not change sizes: place placeholders, measure, then fill in offsets.
    for _entries, owner, tag in chain[1:]:
        owner[tag] = _tiff_field(4, 0)
    positions, at = [], ifd0_at
    for entries, _owner, _tag in chain:
        positions.append(at)
        at += len(_tiff_ifd(entries, at))
    for (_entries, owner, tag), where in zip(chain[1:], positions[1:], strict=True):
        owner[tag] = _tiff_field(4, where)
    return b"".join(
        _tiff_ifd(entries, where) for (entries, _o, _t), where in zip(chain, positions, strict=True)
    )


def _exif_ifds(exif: dict[str, Any], where: Path) -> tuple[_Entries, _Entries, _Entries, _Entries]:
    zeroth = {t: v for t, v in exif["0th"].items() if t not in _STRUCTURE_TAGS}
    return (
        _tiff_entries(zeroth, "Image", where),
        _tiff_entries(exif["Exif"], "Exif", where),
        _tiff_entries(exif["GPS"], "GPS", where),
        _tiff_entries(exif["Interop"], "Interop", where),
    )


def encode_exif(exif: dict[str, Any], where: Path) -> bytes:
    """A piexif-style dict as JPEG APP1 EXIF bytes (``b"Exif\\0\\0"`` + big-endian TIFF)."""
    return b"Exif\0\0MM\0*" + struct.pack(">I", 8) + _tiff_layout(*_exif_ifds(exif, where), 8)


# -- TIFF files (8 and 16 bit, deflate + horizontal predictor) -------------------------------

_STRIP_TARGET_BYTES = 1 << 18


def _tiff_strips(samples: np.ndarray) -> tuple[list[bytes], int]:
    height, width, channels = samples.shape
    diff = samples.copy()
    diff[:, 1:] -= samples[:, :-1]  # Predictor 2: per-component horizontal difference
    raw = diff.astype(diff.dtype.newbyteorder(">")).tobytes()
    row_bytes = width * channels * samples.dtype.itemsize
    rows = max(1, min(height, _STRIP_TARGET_BYTES // row_bytes))
    step = rows * row_bytes
    return [zlib.compress(raw[i : i + step], 6) for i in range(0, len(raw), step)], rows


def _tiff_image_tags(samples: np.ndarray, offsets: list[int], strips: list[bytes], rows: int) -> _Entries:
    height, width, channels = samples.shape
    tags = {
        256: _tiff_field(4, width),
        257: _tiff_field(4, height),
        258: _tiff_field(3, (8 * samples.dtype.itemsize,) * channels),
        259: _tiff_field(3, 8),  # Adobe deflate
        262: _tiff_field(3, 2),  # RGB
        273: _tiff_field(4, tuple(offsets)),
        277: _tiff_field(3, channels),
        278: _tiff_field(4, rows),
        279: _tiff_field(4, tuple(len(s) for s in strips)),
        284: _tiff_field(3, 1),  # chunky
        317: _tiff_field(3, 2),  # horizontal predictor
        339: _tiff_field(3, (1,) * channels),  # unsigned integers
    }
    if channels == 4:
        tags[338] = _tiff_field(3, 2)  # unassociated alpha
    return tags


def _write_tiff(fp: BinaryIO, pixels, alpha, meta: _OutputMeta, fmt, quality, where: Path) -> None:
    """Big-endian TIFF: header, pixel strips, then IFD0 (+ Exif/GPS/Interop IFDs)."""
    samples = pixels if alpha is None else np.dstack([pixels, alpha])
    strips, rows = _tiff_strips(samples)
    offsets, pos = [], 8
    for strip in strips:
        offsets.append(pos)
        pos += len(strip) + len(strip) % 2
    ifd0, exif, gps, interop = _exif_ifds(meta.exif, where)
    ifd0.update(_tiff_image_tags(samples, offsets, strips, rows))
    for tag in (piexif.ExifIFD.PixelXDimension, piexif.ExifIFD.PixelYDimension):
        exif.pop(tag, None)  # EXIF-in-TIFF does not allow these
    if meta.icc_profile:
        ifd0[34675] = (7, len(meta.icc_profile), meta.icc_profile)
    if meta.xmp:
        ifd0[700] = (1, len(meta.xmp), meta.xmp)
    fp.write(b"MM\0*" + struct.pack(">I", pos))
    for strip in strips:
        fp.write(strip + (b"\0" if len(strip) % 2 else b""))
    fp.write(_tiff_layout(ifd0, exif, gps, interop, pos))


_WRITERS: dict[str, Callable[..., None]] = {
    "png": _write_png,
    "jpeg": _write_jpeg,
    "webp": _write_lossy_modern,
    "heif": _write_lossy_modern,
    "avif": _write_lossy_modern,
    "tiff": _write_tiff,
}
