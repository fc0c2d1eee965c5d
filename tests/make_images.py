"""Write real, small image files from seeded data for tests (media, discovery, end to end).

The makers use Pillow/piexif directly, or hand-rolled encoders where Pillow cannot write the
format (16-bit RGB PNG/TIFF), so fixtures never depend on the code under test.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import piexif
import pillow_heif
from PIL import Image, ImageCms

pillow_heif.register_heif_opener()

DATE_TAKEN = b"2019:07:14 16:32:05"
MAKE = b"LucidTest"
MODEL = b"Model Z-1"
# 48 deg 51' 29.6" N, 2 deg 17' 40.2" E
GPS_LAT = ((48, 1), (51, 1), (296, 10))
GPS_LON = ((2, 1), (17, 1), (402, 10))


def rgb_pattern(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise and a bright top-left marker, so rotations are visible."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=2)
    noisy = base + rng.integers(-20, 21, size=base.shape)
    image = np.clip(noisy, 0, 255).astype(np.uint8)
    image[: height // 4, : width // 4] = (250, 10, 10)
    return image


def rgb16_pattern(width: int, height: int, seed: int = 0) -> np.ndarray:
    """16-bit RGB whose values are mostly not multiples of 257 (so 8-bit cannot represent them)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 65536, size=(height, width, 3), dtype=np.uint16)


def srgb_icc() -> bytes:
    """lcms stamps profiles with the creation time; pin it so fixtures compare equal."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = struct.pack(">6H", 2020, 1, 1, 0, 0, 0)
    return bytes(data)


def camera_exif(orientation: int = 1) -> bytes:
    return piexif.dump(
        {
            "0th": {
                piexif.ImageIFD.Make: MAKE,
                piexif.ImageIFD.Model: MODEL,
                piexif.ImageIFD.Orientation: orientation,
                piexif.ImageIFD.Software: b"Firmware 1.0",
            },
            "Exif": {
                piexif.ExifIFD.DateTimeOriginal: DATE_TAKEN,
                piexif.ExifIFD.PixelXDimension: 64,
                piexif.ExifIFD.PixelYDimension: 40,
            },
            "GPS": {
                piexif.GPSIFD.GPSLatitudeRef: b"N",
                piexif.GPSIFD.GPSLatitude: GPS_LAT,
                piexif.GPSIFD.GPSLongitudeRef: b"E",
                piexif.GPSIFD.GPSLongitude: GPS_LON,
            },
        }
    )


def _ensure_dir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# -- makers: each writes one file and returns its path --------------------------------------


def make_jpeg_exif(
    path: Path, *, orientation: int = 6, size: tuple[int, int] = (64, 40), seed: int = 1
) -> Path:
    """Camera-style JPEG: EXIF date/make/model/GPS, given Orientation, sRGB ICC profile."""
    image = Image.fromarray(rgb_pattern(*size, seed=seed))
    image.save(_ensure_dir(path), "JPEG", quality=92, exif=camera_exif(orientation), icc_profile=srgb_icc())
    return path


def make_png_rgba(path: Path, *, size: tuple[int, int] = (48, 32), seed: int = 2) -> Path:
    """RGBA PNG with a radial alpha ramp (fully opaque centre, transparent corners)."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    dist = np.hypot((x - width / 2) / (width / 2), (y - height / 2) / (height / 2))
    alpha = np.clip(255 * (1.3 - dist), 0, 255).astype(np.uint8)
    rgba = np.dstack([rgb_pattern(width, height, seed), alpha])
    Image.fromarray(rgba).save(_ensure_dir(path), "PNG")
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def make_png16(path: Path, *, size: tuple[int, int] = (40, 24), seed: int = 3, alpha: bool = False) -> Path:
    """16-bit RGB (or RGBA) PNG, unfiltered rows; returns path. Pixels: :func:`png16_values`."""
    values = png16_values(size, seed, alpha)
    height, width, channels = values.shape
    rows = values.astype(">u2").tobytes()
    stride = width * channels * 2
    raw = b"".join(b"\0" + rows[i * stride : (i + 1) * stride] for i in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 6 if alpha else 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw))
    _ensure_dir(path).write_bytes(data + _png_chunk(b"IEND", b""))
    return path


def png16_values(size: tuple[int, int] = (40, 24), seed: int = 3, alpha: bool = False) -> np.ndarray:
    values = rgb16_pattern(*size, seed=seed)
    if alpha:
        values = np.dstack([values, rgb16_pattern(*size, seed=seed + 100)[..., 0]])
    return values


def make_tiff16(path: Path, *, size: tuple[int, int] = (40, 24), seed: int = 4) -> Path:
    """Uncompressed little-endian 16-bit RGB TIFF (one strip). Pixels: :func:`tiff16_values`."""
    values = tiff16_values(size, seed)
    height, width, _ = values.shape
    pixels = values.astype("<u2").tobytes()
    entries = [  # tag, type, count, value-or-offset
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 3, None),  # -> BitsPerSample array
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (273, 4, 1, None),  # -> pixel data
        (277, 3, 1, 3),
        (278, 4, 1, height),
        (279, 4, 1, len(pixels)),
        (284, 3, 1, 1),
    ]
    ifd_at = 8
    bps_at = ifd_at + 2 + 12 * len(entries) + 4
    data_at = bps_at + 6
    out = bytearray(b"II*\0" + struct.pack("<I", ifd_at) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        value = {258: bps_at, 273: data_at}.get(tag, value)
        field = struct.pack("<HH", value, 0) if kind == 3 and count == 1 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, count) + field
    out += struct.pack("<I", 0) + struct.pack("<3H", 16, 16, 16) + pixels
    _ensure_dir(path).write_bytes(bytes(out))
    return path


def tiff16_values(size: tuple[int, int] = (40, 24), seed: int = 4) -> np.ndarray:
    return rgb16_pattern(*size, seed=seed)


def make_palette_png(path: Path, *, size: tuple[int, int] = (40, 24), seed: int = 5) -> Path:
    image = Image.fromarray(rgb_pattern(*size, seed=seed)).quantize(colors=16)
    image.save(_ensure_dir(path), "PNG")
    return path


def make_gray_jpeg(path: Path, *, size: tuple[int, int] = (40, 24), seed: int = 6) -> Path:
    gray = rgb_pattern(*size, seed=seed)[..., 0]
    Image.fromarray(gray).save(_ensure_dir(path), "JPEG", quality=90)
    return path


def make_heic(path: Path, *, size: tuple[int, int] = (64, 40), seed: int = 7) -> Path:
    """HEIC carrying camera EXIF (Orientation 1: libheif applies rotation itself)."""
    image = Image.fromarray(rgb_pattern(*size, seed=seed))
    image.save(_ensure_dir(path), "HEIF", quality=90, exif=camera_exif(1))
    return path


def make_cmyk_jpeg(path: Path, *, size: tuple[int, int] = (40, 24), seed: int = 8) -> Path:
    """CMYK JPEG with an embedded ICC profile (an sRGB one: Pillow cannot create CMYK profiles)."""
    image = Image.fromarray(rgb_pattern(*size, seed=seed)).convert("CMYK")
    image.save(_ensure_dir(path), "JPEG", quality=92, icc_profile=srgb_icc())
    return path


def make_webp(path: Path, *, size: tuple[int, int] = (48, 32), seed: int = 9) -> Path:
    """Lossless WebP with EXIF, so pixels compare exactly."""
    image = Image.fromarray(rgb_pattern(*size, seed=seed))
    image.save(_ensure_dir(path), "WEBP", lossless=True, exif=camera_exif(1))
    return path


def make_bmp(path: Path, *, size: tuple[int, int] = (40, 24), seed: int = 10) -> Path:
    Image.fromarray(rgb_pattern(*size, seed=seed)).save(_ensure_dir(path), "BMP")
    return path


def make_truncated_jpeg(path: Path, *, seed: int = 11) -> Path:
    """A valid JPEG cut in half."""
    make_jpeg_exif(path, orientation=1, size=(96, 64), seed=seed)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_empty_file(path: Path) -> Path:
    _ensure_dir(path).write_bytes(b"")
    return path


def make_text_file(path: Path) -> Path:
    _ensure_dir(path).write_text("this is not an image\n", encoding="utf-8")
    return path


def gray_icc() -> bytes:
    """A small valid ICC v2 gray display profile (gamma 2.2, D50 white): lcms creates none."""

    def tag(kind: bytes, body: bytes) -> bytes:
        data = kind + b"\0\0\0\0" + body
        return data + b"\0" * (-len(data) % 4)

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    text = b"lucidflux test gray"
    tags = [
        (
            b"desc",
            tag(
                b"desc", struct.pack(">I", len(text) + 1) + text + b"\0" + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
            ),
        ),
        (b"wtpt", tag(b"XYZ ", s15(0.9642) + s15(1.0) + s15(0.8249))),
        (b"cprt", tag(b"text", b"no copyright\0")),
        (b"kTRC", tag(b"curv", struct.pack(">IH", 1, 0x0233))),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, blobs = struct.pack(">I", len(tags)), b""
    for signature, blob in tags:
        table += signature + struct.pack(">II", offset + len(blobs), len(blob))
        blobs += blob
    size = offset + len(blobs)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + b"mntrGRAYXYZ "
        + struct.pack(">6H", 2020, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + b"\0" * 48
    )
    return header + table + blobs


def cmyk_icc(grid: int = 9) -> bytes:
    """A small valid ICC v2 CMYK printer profile (Lab PCS, lut16 tables): no CMYK profile ships with
    lcms or Pillow. A2B0 maps CMYK by the naive formula's sRGB, B2A0 back with full black generation,
    both through LittleCMS's Lab, so conversions are defined but not Pillow's own formula."""

    def lab16(rgb8: np.ndarray) -> np.ndarray:  # sRGB -> ICC v2 16-bit Lab (L 0xFF00 = 100, a/b offset 128)
        lab = ImageCms.profileToProfile(
            Image.fromarray(rgb8.reshape(1, -1, 3)),
            ImageCms.createProfile("sRGB"),
            ImageCms.createProfile("LAB"),
            outputMode="LAB",
        )
        values = (np.asarray(lab).reshape(-1, 3) ^ np.array([0, 128, 128], np.uint8)).astype(np.float64)
        return np.rint(values * [65280 / 255, 256, 256]).astype(np.uint16)

    def lut16(inputs: int, outputs: int, points: int, table: np.ndarray) -> bytes:
        identity = b"".join(struct.pack(">i", 65536 if i % 4 == 0 else 0) for i in range(9))
        ramp = np.array([0, 65535], ">u2").tobytes()
        return (
            b"mft2\0\0\0\0"
            + bytes([inputs, outputs, points, 0])
            + identity
            + struct.pack(">HH", 2, 2)
            + ramp * inputs
            + table.astype(">u2").tobytes()
            + ramp * outputs
        )

    corners = np.array([[(i >> bit) & 1 for bit in (3, 2, 1, 0)] for i in range(16)], dtype=np.float64)
    rgb = np.rint(255 * (1 - corners[:, :3]) * (1 - corners[:, 3:])).astype(np.uint8)
    steps = np.linspace(0, 255, grid)
    lab = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(-1, 3)
    lab8 = np.rint(lab * [1, 65535 / 65280, 65535 / 65280]).clip(0, 255).astype(np.uint8)
    lab_image = Image.frombytes("LAB", (len(lab8), 1), (lab8 ^ np.array([0, 128, 128], np.uint8)).tobytes())
    srgb = ImageCms.profileToProfile(
        lab_image, ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), outputMode="RGB"
    )
    srgb = np.asarray(srgb).reshape(-1, 3)
    inverse = 1 - srgb / 255.0
    black = inverse.min(axis=1, keepdims=True)
    cmyk = np.rint(np.hstack([inverse - black, black]) * 65535)
    return _icc_profile(
        b"prtrCMYKLab ",
        [
            (b"A2B0", lut16(4, 3, 2, lab16(rgb))),
            (b"B2A0", lut16(3, 4, grid, cmyk)),
        ],
        b"lucidflux test CMYK",
    )


def _icc_profile(kind: bytes, lut_tags: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    """ICC v2 profile: header (class, colour space and PCS in ``kind``), desc, wtpt, cprt and ``lut_tags``."""

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    # textDescriptionType: ASCII, then empty Unicode (8 bytes) and ScriptCode (3 + 67 bytes) parts
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(name) + 1) + name + b"\0" + b"\0" * 78
    tags = [
        (b"desc", desc),
        (b"wtpt", b"XYZ \0\0\0\0" + s15(0.9642) + s15(1.0) + s15(0.8249)),
        (b"cprt", b"text\0\0\0\0no copyright\0"),
        *lut_tags,
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, blobs = struct.pack(">I", len(tags)), b""
    for signature, blob in tags:
        blob += b"\0" * (-len(blob) % 4)
        table += signature + struct.pack(">II", offset + len(blobs), len(blob))
        blobs += blob
    size = offset + len(blobs)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + kind
        + struct.pack(">6H", 2020, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + b"\0" * 48
    )
    return header + table + blobs


def make_gray_png(path: Path, *, bits: int = 8, size: tuple[int, int] = (40, 24), seed: int = 14) -> Path:
    """Grayscale PNG (colour type 0) of 8 or 16 bits, written by hand. Pixels: :func:`gray_values`."""
    values = gray_values(bits, size, seed)
    height, width = values.shape
    rows = values.astype(">u2" if bits == 16 else np.uint8).tobytes()
    stride = len(rows) // height
    raw = b"".join(b"\0" + rows[i * stride : (i + 1) * stride] for i in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, bits, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw))
    _ensure_dir(path).write_bytes(data + _png_chunk(b"IEND", b""))
    return path


def gray_values(bits: int = 8, size: tuple[int, int] = (40, 24), seed: int = 14) -> np.ndarray:
    if bits == 16:
        return rgb16_pattern(*size, seed=seed)[..., 1]
    return rgb_pattern(*size, seed=seed)[..., 1]


def make_gray_tiff16(path: Path, *, size: tuple[int, int] = (40, 24), seed: int = 15) -> Path:
    """16-bit gray TIFF with a gray ICC profile (tifffile writes the fixture)."""
    import tifffile

    values = gray_values(16, size, seed)
    tifffile.imwrite(
        _ensure_dir(path), values, photometric="minisblack", iccprofile=gray_icc(), metadata=None
    )
    return path


def make_float_tiff(path: Path, *, size: tuple[int, int] = (40, 24), seed: int = 16) -> Path:
    """32-bit float gray TIFF (Pillow's mode F) with a gray ICC profile and camera EXIF."""
    values = float_values(size, seed)
    Image.fromarray(values, mode="F").save(
        _ensure_dir(path), "TIFF", exif=camera_exif(1), icc_profile=gray_icc()
    )
    return path


def float_values(size: tuple[int, int] = (40, 24), seed: int = 16) -> np.ndarray:
    """float32 in [0, 1], most values not representable in 16 bits."""
    return np.random.default_rng(seed).random((size[1], size[0]), dtype=np.float32)


PAGE_SIZES = ((48, 32), (40, 24), (24, 40))  # each page its own size, so order shows


def make_multipage_tiff(path: Path, *, seed: int = 17) -> Path:
    """Three palette pages of different sizes, each with its own ImageDescription (page i)."""
    import tifffile

    rng = np.random.default_rng(seed)
    with tifffile.TiffWriter(_ensure_dir(path)) as tif:
        for index, (width, height) in enumerate(PAGE_SIZES):
            indices = rng.integers(0, 16, size=(height, width), dtype=np.uint8)
            colormap = rng.integers(0, 65536, size=(3, 256), dtype=np.uint16)
            tif.write(
                indices,
                photometric="palette",
                colormap=colormap,
                description=f"page {index + 1}",
                metadata=None,
            )
    return path


def make_int32_tiff(path: Path, *, size: tuple[int, int] = (16, 12)) -> Path:
    """32-bit unsigned integer gray TIFF (Pillow's mode I when it opens it), values 38 to 199,911."""
    import tifffile

    tifffile.imwrite(_ensure_dir(path), int32_values(size), photometric="minisblack", metadata=None)
    return path


def int32_values(size: tuple[int, int] = (16, 12)) -> np.ndarray:
    values = np.linspace(38, 199_911, size[0] * size[1]).round().astype(np.uint32).reshape(size[1], size[0])
    return np.random.default_rng(30).permutation(values.ravel()).reshape(values.shape)


def make_hdr_tiff(path: Path, *, size: tuple[int, int] = (16, 12)) -> Path:
    """float32 RGB TIFF with values from -0.25 to 6.5 (HDR), with an sRGB profile."""
    import tifffile

    tifffile.imwrite(
        _ensure_dir(path), hdr_values(size), photometric="rgb", iccprofile=srgb_icc(), metadata=None
    )
    return path


def hdr_values(size: tuple[int, int] = (16, 12)) -> np.ndarray:
    values = np.random.default_rng(31).random((size[1], size[0], 3), dtype=np.float32) * 6.75 - 0.25
    values[0, 0] = (-0.25, 6.5, 1.0)
    return values


def make_lab_tiff(path: Path, *, size: tuple[int, int] = (16, 12), seed: int = 32) -> Path:
    """CIE LAB TIFF (photometric 8) of photo colours, written by Pillow."""
    Image.fromarray(rgb_pattern(*size, seed=seed)).convert("LAB").save(_ensure_dir(path), "TIFF")
    return path


def make_cmyk_jpeg_profiled(path: Path, *, size: tuple[int, int] = (16, 12), seed: int = 33) -> Path:
    """CMYK JPEG as print workflows write it: Adobe APP14 marker and an embedded CMYK profile."""
    image = Image.fromarray(rgb_pattern(*size, seed=seed)).convert("CMYK")
    image.save(_ensure_dir(path), "JPEG", quality=95, icc_profile=cmyk_icc(), exif=camera_exif(1))
    return path


def make_float_pages_exif(path: Path, *, pages: int = 2, size: tuple[int, int] = (16, 12)) -> Path:
    """Multi-page 32-bit float TIFF (Pillow writes it), camera EXIF with Exif and GPS sub-IFDs on each
    page."""
    frames = [Image.fromarray(float_values(size, seed=40 + index), mode="F") for index in range(pages)]
    frames[0].save(_ensure_dir(path), "TIFF", save_all=True, append_images=frames[1:], exif=camera_exif(1))
    return path


def page_iptc(index: int) -> bytes:
    """An IPTC-NAA record (record version, caption) naming page ``index``; a LONG-sized length."""
    caption = f"page {index + 1}".encode()
    record = b"\x1c\x02\x00\x00\x02\x00\x04" + b"\x1c\x02\x78" + len(caption).to_bytes(2, "big") + caption
    return record + b"\0" * (-len(record) % 4)


def page_xmp(index: int) -> bytes:
    return (
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        f'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:source>reel 7, '
        f"frame {index + 1}</dc:source></rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


def make_float_rgb_pages_tagged(path: Path, *, pages: int = 3, size: tuple[int, int] = (16, 12)) -> Path:
    """Multi-page float32 RGB TIFF (tifffile; Pillow cannot open it), each page with its own ICC profile
    (sRGB), XMP packet and IPTC record (stored LONG, as Photoshop does)."""
    import tifffile

    with tifffile.TiffWriter(_ensure_dir(path)) as tif:
        for index in range(pages):
            values = np.random.default_rng(50 + index).random((size[1], size[0], 3), dtype=np.float32)
            iptc = np.frombuffer(page_iptc(index), dtype="<u4")
            tif.write(
                values,
                photometric="rgb",
                iccprofile=srgb_icc(),
                metadata=None,
                extratags=[
                    (700, 1, len(page_xmp(index)), page_xmp(index), True),
                    (33723, 4, len(iptc), iptc, True),
                ],
            )
    return path


def make_animated_gif(path: Path, *, frames: int = 3, size: tuple[int, int] = (32, 24)) -> Path:
    images = [Image.fromarray(rgb_pattern(*size, seed=i)).quantize(colors=32) for i in range(frames)]
    images[0].save(_ensure_dir(path), "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def make_mpo(path: Path, *, size: tuple[int, int] = (40, 24)) -> Path:
    """A two-image MPO (as stereo cameras write): Pillow reads the first as the primary image."""
    images = [Image.fromarray(rgb_pattern(*size, seed=20 + i)) for i in range(2)]
    images[0].save(_ensure_dir(path), "MPO", save_all=True, append_images=images[1:], quality=92)
    return path


def make_image_zoo(root: Path) -> dict[str, Path]:
    """Every fixture under ``root`` (nested folders, unicode and space names); name -> path."""
    root = Path(root)
    return {
        "jpeg_exif": make_jpeg_exif(root / "camera" / "IMG_0001.jpg"),
        "png_rgba": make_png_rgba(root / "graphics" / "logo.png"),
        "png16": make_png16(root / "scans" / "deep16.png"),
        "tiff16": make_tiff16(root / "scans" / "deep16.tif"),
        "palette_png": make_palette_png(root / "graphics" / "palette.png"),
        "gray_jpeg": make_gray_jpeg(root / "old" / "gray.jpg"),
        "heic": make_heic(root / "phone" / "IMG_0002.heic"),
        "cmyk_jpeg": make_cmyk_jpeg(root / "print" / "cmyk.jpg"),
        "webp": make_webp(root / "web" / "photo.webp"),
        "bmp": make_bmp(root / "old" / "scan.bmp"),
        "cafe": make_jpeg_exif(root / "café photo.jpg", orientation=1, seed=12),
        "unicode_nested": make_png_rgba(root / "日本" / "写真 1.png", seed=13),
        "truncated": make_truncated_jpeg(root / "broken" / "truncated.jpg"),
        "empty": make_empty_file(root / "broken" / "empty.jpg"),
        "text": make_text_file(root / "broken" / "notes.jpg"),
    }


# Zoo entries that are not readable images.
BROKEN = ("truncated", "empty", "text")
