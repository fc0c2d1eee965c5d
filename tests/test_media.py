"""Reading, writing and metadata round trips on real files (see make_images.py)."""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import make_images as mk
import numpy as np
import piexif
import piexif.helper
import png
import pytest
import tifffile
from PIL import Image, ImageOps

from lucidflux_cli import atomic
from lucidflux_cli.errors import ImageReadError, ImageWriteError
from lucidflux_cli.imageio import formats, media, metadata

READABLE = [
    "jpeg_exif",
    "png_rgba",
    "png16",
    "tiff16",
    "palette_png",
    "gray_jpeg",
    "heic",
    "cmyk_jpeg",
    "webp",
    "bmp",
    "cafe",
    "unicode_nested",
]
PROVENANCE = {"model": "LucidFlux", "steps": "20", "seed": "1234"}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return mk.make_image_zoo(tmp_path_factory.mktemp("zoo"))


def pil_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def as8(values: np.ndarray) -> np.ndarray:
    return np.rint(values * 255).astype(np.int32)


def as16(values: np.ndarray) -> np.ndarray:
    return np.rint(values * 65535).astype(np.uint16)


def exif_dict(loaded: media.LoadedImage) -> dict:
    assert loaded.metadata.exif is not None
    return piexif.load(loaded.metadata.exif)


def gps_degrees(value: tuple) -> float:
    return float(sum(Fraction(n, d) / 60**i for i, (n, d) in enumerate(value)))


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if atomic.is_temp_name(p.name)]


# -- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", READABLE)
def test_every_zoo_image_decodes_to_float_rgb(zoo: dict[str, Path], name: str) -> None:
    loaded = media.read_image(zoo[name])
    height, width = loaded.rgb.shape[:2]
    assert loaded.rgb.dtype == np.float32 and loaded.rgb.shape == (height, width, 3)
    assert loaded.rgb.flags["C_CONTIGUOUS"]
    assert loaded.rgb.min() >= 0.0 and loaded.rgb.max() <= 1.0
    assert loaded.size == (width, height)
    assert loaded.path == zoo[name]
    if loaded.alpha is not None:
        assert loaded.alpha.dtype == np.float32 and loaded.alpha.shape == (height, width)


def test_orientation_6_rotates_pixels_clockwise(zoo: dict[str, Path]) -> None:
    loaded = media.read_image(zoo["jpeg_exif"])
    stored = pil_rgb(zoo["jpeg_exif"])  # 64 wide, 40 high, marker at top-left
    assert stored.shape[:2] == (40, 64)
    assert loaded.size == (40, 64)  # width and height swapped
    np.testing.assert_array_equal(np.asarray(loaded.to_pil_rgb8()), np.rot90(stored, -1))
    top_right = loaded.rgb[2, -3]
    assert top_right[0] > 0.8 and top_right[1] < 0.3  # the red marker moved to the top-right


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_orientations_match_pillow_exif_transpose(tmp_path: Path, orientation: int) -> None:
    path = mk.make_jpeg_exif(tmp_path / "o.jpg", orientation=orientation, size=(40, 24))
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(media.read_image(path).to_pil_rgb8()), expected)


def test_jpeg_metadata_is_read_and_orientation_reset(zoo: dict[str, Path]) -> None:
    loaded = media.read_image(zoo["jpeg_exif"])
    meta = loaded.metadata
    assert (meta.format, meta.mode, meta.bit_depth) == ("jpeg", "RGB", 8)
    assert meta.exif is not None and meta.exif.startswith(b"Exif\0\0")
    exif = exif_dict(loaded)
    assert exif["0th"][piexif.ImageIFD.Orientation] == 1
    assert exif["0th"][piexif.ImageIFD.Make] == mk.MAKE
    assert exif["Exif"][piexif.ExifIFD.DateTimeOriginal] == mk.DATE_TAKEN
    assert meta.icc_profile == mk.srgb_icc()


def test_to_pil_rgb8_reproduces_decoded_8bit_values(zoo: dict[str, Path]) -> None:
    for name in ("cafe", "bmp", "webp", "palette_png"):
        np.testing.assert_array_equal(
            np.asarray(media.read_image(zoo[name]).to_pil_rgb8()), pil_rgb(zoo[name])
        )


def test_rgba_png_alpha(zoo: dict[str, Path]) -> None:
    loaded = media.read_image(zoo["png_rgba"])
    with Image.open(zoo["png_rgba"]) as img:
        expected = np.asarray(img)
    assert loaded.alpha is not None
    np.testing.assert_array_equal(as8(loaded.alpha), expected[..., 3])
    np.testing.assert_array_equal(as8(loaded.rgb), expected[..., :3])
    assert loaded.alpha.min() == 0.0 and loaded.alpha.max() == 1.0


def test_16bit_png_and_tiff_read_exactly(zoo: dict[str, Path]) -> None:
    png = media.read_image(zoo["png16"])
    tif = media.read_image(zoo["tiff16"])
    assert png.metadata.bit_depth == tif.metadata.bit_depth == 16
    assert png.metadata.format == "png" and tif.metadata.format == "tiff"
    np.testing.assert_array_equal(as16(png.rgb), mk.png16_values())
    np.testing.assert_array_equal(as16(tif.rgb), mk.tiff16_values())
    assert (mk.png16_values() % 257 != 0).mean() > 0.9  # truly 16-bit data, not scaled 8-bit


def test_16bit_rgba_png_reads_alpha_exactly(tmp_path: Path) -> None:
    loaded = media.read_image(mk.make_png16(tmp_path / "a16.png", alpha=True))
    values = mk.png16_values(alpha=True)
    assert loaded.alpha is not None
    np.testing.assert_array_equal(as16(loaded.rgb), values[..., :3])
    np.testing.assert_array_equal(as16(loaded.alpha), values[..., 3])


def test_palette_gray_and_cmyk_become_rgb(zoo: dict[str, Path]) -> None:
    palette = media.read_image(zoo["palette_png"])
    assert palette.metadata.mode == "P" and palette.alpha is None
    gray = media.read_image(zoo["gray_jpeg"])
    assert gray.metadata.mode == "L"
    assert np.array_equal(gray.rgb[..., 0], gray.rgb[..., 1]) and np.array_equal(
        gray.rgb[..., 1], gray.rgb[..., 2]
    )
    cmyk = media.read_image(zoo["cmyk_jpeg"])
    assert cmyk.metadata.mode == "CMYK"
    source = mk.rgb_pattern(40, 24, seed=8).astype(np.float32) / 255
    assert np.abs(cmyk.rgb - source).mean() < 0.05
    assert cmyk.metadata.icc_profile == mk.srgb_icc()  # an RGB profile still describes the output


def test_16bit_gray_png_reads_exactly(tmp_path: Path) -> None:
    values = mk.rgb16_pattern(20, 10, seed=5)[..., 0]
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)  # Pillow writes I;16 as 16-bit grayscale PNG
    loaded = media.read_image(path)
    assert loaded.metadata.bit_depth == 16 and loaded.metadata.mode.startswith("I")
    for channel in range(3):
        np.testing.assert_array_equal(as16(loaded.rgb[..., channel]), values)


def test_float_tiff_reads_exactly_as_gray_float(tmp_path: Path) -> None:
    values = mk.float_values((6, 4))
    path = tmp_path / "float.tif"
    Image.fromarray(values, mode="F").save(path)
    loaded = media.read_image(path)
    assert loaded.metadata.bit_depth == 32 and loaded.metadata.gray and loaded.metadata.mode == "F"
    for channel in range(3):
        np.testing.assert_array_equal(loaded.rgb[..., channel], values)


def test_heic_with_exif(zoo: dict[str, Path]) -> None:
    loaded = media.read_image(zoo["heic"])
    assert loaded.metadata.format == "heif" and loaded.size == (64, 40)
    exif = exif_dict(loaded)
    assert exif["0th"][piexif.ImageIFD.Model] == mk.MODEL
    assert gps_degrees(exif["GPS"][piexif.GPSIFD.GPSLatitude]) == pytest.approx(48.858222, abs=1e-5)
    expected = mk.rgb_pattern(64, 40, seed=7).astype(np.float32) / 255
    assert np.abs(loaded.rgb - expected).mean() < 0.05


def test_lossless_webp_and_bmp_exact(zoo: dict[str, Path]) -> None:
    np.testing.assert_array_equal(as8(media.read_image(zoo["webp"]).rgb), mk.rgb_pattern(48, 32, seed=9))
    np.testing.assert_array_equal(as8(media.read_image(zoo["bmp"]).rgb), mk.rgb_pattern(40, 24, seed=10))


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("truncated", "truncated image data"),
        ("empty", "empty file"),
        ("text", "not an image (cannot identify image file)"),
    ],
)
def test_bad_files_raise_one_line_errors(zoo: dict[str, Path], name: str, cause: str) -> None:
    with pytest.raises(ImageReadError) as info:
        media.read_image(zoo[name])
    message = str(info.value)
    assert message == f"{zoo[name]}: {cause}"
    assert "\n" not in message and info.value.path == zoo[name]


def test_missing_and_directory_inputs(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="file not found"):
        media.read_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageReadError, match="is a directory"):
        media.read_image(tmp_path)


def test_corrupt_png_is_one_line(tmp_path: Path, zoo: dict[str, Path]) -> None:
    data = bytearray(zoo["png_rgba"].read_bytes())
    data[60:90] = b"\xff" * 30  # inside IDAT: broken compressed stream / CRC
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    with pytest.raises(ImageReadError) as info:
        media.read_image(bad)
    assert str(info.value).startswith(f"{bad}: ") and "\n" not in str(info.value)


@pytest.mark.parametrize("maker", [mk.make_png16, mk.make_tiff16])
def test_truncated_16bit_files_are_one_line_errors(tmp_path: Path, maker) -> None:
    # The 16-bit path decodes twice (Pillow, then pypng/tifffile): a cut file must still fail cleanly.
    path = maker(tmp_path / "cut.img")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 4])
    with pytest.raises(ImageReadError) as info:
        media.read_image(path)
    assert str(info.value) == f"{path}: truncated image data"


def test_16bit_png_transparency_key_becomes_alpha(tmp_path: Path) -> None:
    values = mk.png16_values()
    key = tuple(int(v) for v in values[0, 0])
    path = tmp_path / "keyed.png"
    with path.open("wb") as fp:
        writer = png.Writer(values.shape[1], values.shape[0], bitdepth=16, greyscale=False, transparent=key)
        writer.write(fp, values.reshape(values.shape[0], -1).tolist())
    loaded = media.read_image(path)
    assert loaded.metadata.bit_depth == 16 and loaded.alpha is not None
    np.testing.assert_array_equal(as16(loaded.rgb), values)
    np.testing.assert_array_equal(loaded.alpha == 0, np.all(values == key, axis=2))


def test_planar_16bit_tiff_reads_exactly(tmp_path: Path) -> None:
    values = mk.tiff16_values()
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, np.moveaxis(values, -1, 0), photometric="rgb", planarconfig="separate")
    loaded = media.read_image(path)
    assert loaded.metadata.bit_depth == 16
    np.testing.assert_array_equal(as16(loaded.rgb), values)


def test_lzw_16bit_tiff_reads_exactly_with_imagecodecs(tmp_path: Path) -> None:
    pytest.importorskip("imagecodecs")  # tifffile's LZW codec; without it such files are read as 8-bit
    values = mk.tiff16_values()
    path = tmp_path / "lzw.tif"
    tifffile.imwrite(path, values, photometric="rgb", compression="lzw")
    np.testing.assert_array_equal(as16(media.read_image(path).rgb), values)


def test_format_names_and_extensions_come_from_the_format_classes() -> None:
    assert formats.canonical("MPO") == "jpeg" and formats.canonical(".jfif") == "jpeg"
    assert formats.canonical("pgm") == "ppm" and formats.canonical("j2k") == "jpeg2000"
    assert formats.extension("tif") == ".tif" and formats.extension("heic") == ".heic"
    readable = formats.readable_extensions()
    assert {".jpe", ".jfif", ".hif", ".pgm", ".pnm", ".j2k", ".tiff"} <= readable
    assert not {".gif", ".mpo", ".pbm", ".dib"} & readable  # names Pillow knows, never walked


def test_broken_exif_is_dropped_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "broken_exif.jpg"
    bad_exif = b"Exif\0\0MM\0*\0\0\0\x08\xff\xff" + b"\x01" * 20
    Image.fromarray(mk.rgb_pattern(32, 16)).save(path, "JPEG", exif=bad_exif)
    with caplog.at_level(logging.WARNING, logger="lucidflux_cli.imageio"):
        loaded = media.read_image(path)
    assert loaded.metadata.exif is None and loaded.size == (32, 16)
    assert "EXIF" in caplog.text
    out = tmp_path / "out.jpg"
    formats.write_image(out, loaded.rgb, alpha=None, metadata=loaded.metadata, fmt="jpeg")
    assert media.read_image(out).size == (32, 16)


# -- writing ---------------------------------------------------------------------------------

ROUND_TRIP_FORMATS = ["png", "jpeg", "webp", "tiff", "heif"]


@pytest.mark.parametrize("fmt", ROUND_TRIP_FORMATS)
def test_write_keeps_exif_icc_and_records_provenance(zoo: dict[str, Path], tmp_path: Path, fmt: str) -> None:
    source = media.read_image(zoo["jpeg_exif"])
    out = tmp_path / f"restored{formats.EXTENSIONS[fmt]}"
    formats.write_image(out, source.rgb, alpha=None, metadata=source.metadata, fmt=fmt, provenance=PROVENANCE)
    back = media.read_image(out)
    assert back.metadata.format == fmt and back.size == source.size == (40, 64)
    exif = exif_dict(back)
    zeroth, sub, gps = exif["0th"], exif["Exif"], exif["GPS"]
    assert zeroth[piexif.ImageIFD.Orientation] == 1
    assert zeroth[piexif.ImageIFD.Make] == mk.MAKE and zeroth[piexif.ImageIFD.Model] == mk.MODEL
    assert sub[piexif.ExifIFD.DateTimeOriginal] == mk.DATE_TAKEN
    assert gps[piexif.GPSIFD.GPSLatitudeRef] == b"N"
    assert gps_degrees(gps[piexif.GPSIFD.GPSLatitude]) == pytest.approx(gps_degrees(mk.GPS_LAT))
    assert gps_degrees(gps[piexif.GPSIFD.GPSLongitude]) == pytest.approx(gps_degrees(mk.GPS_LON))
    assert zeroth[piexif.ImageIFD.Software] == metadata.SOFTWARE.encode()
    summary = piexif.helper.UserComment.load(sub[piexif.ExifIFD.UserComment])
    assert summary == metadata.provenance_summary(PROVENANCE)
    assert "seed: 1234" in summary and summary.startswith("Restored by lucidflux-cli")
    assert zeroth[piexif.ImageIFD.ImageDescription].decode() == summary
    assert back.metadata.icc_profile == mk.srgb_icc()
    assert back.metadata.xmp is not None and metadata.SOFTWARE.encode() in back.metadata.xmp
    tolerance = 0 if fmt in ("png", "tiff") else 0.2
    assert np.abs(back.rgb - source.rgb).max() <= tolerance + 1e-6


def test_png_text_chunks_and_xmp(zoo: dict[str, Path], tmp_path: Path) -> None:
    source = media.read_image(zoo["jpeg_exif"])
    out = tmp_path / "x.png"
    formats.write_image(
        out, source.rgb, alpha=None, metadata=source.metadata, fmt="png", provenance=PROVENANCE
    )
    with Image.open(out) as img:
        assert img.info["Software"] == metadata.SOFTWARE
        assert img.info["Comment"] == metadata.provenance_summary(PROVENANCE)
        assert b"<xmp:CreatorTool>lucidflux-cli" in img.info["xmp"]


def test_existing_description_and_xmp_are_kept(tmp_path: Path) -> None:
    src = tmp_path / "captioned.jpg"
    exif = piexif.dump({"0th": {piexif.ImageIFD.ImageDescription: b"Grandma, 1962"}})
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        b'tiff:Orientation="6" xmp:CreatorTool="Scanner 3000">'
        b"<dc:creator><rdf:Seq><rdf:li>Aunt May</rdf:li></rdf:Seq></dc:creator>"
        b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    Image.fromarray(mk.rgb_pattern(32, 16)).save(src, "JPEG", exif=exif, xmp=xmp)
    loaded = media.read_image(src)
    assert loaded.metadata.xmp is not None and b'tiff:Orientation="1"' in loaded.metadata.xmp
    out = tmp_path / "out.jpg"
    formats.write_image(
        out, loaded.rgb, alpha=None, metadata=loaded.metadata, fmt="jpeg", provenance=PROVENANCE
    )
    back = media.read_image(out)
    exif_back = exif_dict(back)
    assert exif_back["0th"][piexif.ImageIFD.ImageDescription] == b"Grandma, 1962"
    comment = piexif.helper.UserComment.load(exif_back["Exif"][piexif.ExifIFD.UserComment])
    assert comment == metadata.provenance_summary(PROVENANCE)
    xmp_back = back.metadata.xmp or b""
    assert b"Aunt May" in xmp_back and b"Scanner 3000" not in xmp_back
    assert xmp_back.count(b"CreatorTool") == 2 and b"lucidflux-cli" in xmp_back  # open + close tag
    assert b'Orientation="1"' in xmp_back


def test_write_without_metadata_still_records_provenance(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).random((16, 24, 3), dtype=np.float32)
    for fmt in ("png", "jpeg", "tiff"):
        out = tmp_path / f"plain{formats.EXTENSIONS[fmt]}"
        formats.write_image(out, rgb, alpha=None, metadata=None, fmt=fmt)
        exif = exif_dict(media.read_image(out))
        assert exif["0th"][piexif.ImageIFD.Software] == metadata.SOFTWARE.encode()
        assert exif["0th"][piexif.ImageIFD.ImageDescription] == f"Restored by {metadata.SOFTWARE}".encode()


@pytest.mark.parametrize("fmt", ["png", "tiff"])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_16bit_round_trip_is_exact(tmp_path: Path, fmt: str, with_alpha: bool) -> None:
    values = mk.rgb16_pattern(37, 21, seed=42)  # odd sizes: rows not aligned to anything
    rgb = values.astype(np.float32) / 65535
    alpha = mk.rgb16_pattern(37, 21, seed=43)[..., 0].astype(np.float32) / 65535 if with_alpha else None
    out = tmp_path / f"deep{formats.EXTENSIONS[fmt]}"
    formats.write_image(out, rgb, alpha=alpha, metadata=None, fmt=fmt, bit_depth=16)
    back = media.read_image(out)
    assert back.metadata.bit_depth == 16
    np.testing.assert_array_equal(as16(back.rgb), values)
    if alpha is None:
        assert back.alpha is None
    else:
        assert back.alpha is not None
        np.testing.assert_array_equal(as16(back.alpha), as16(alpha))


def test_16bit_source_round_trips_through_write(zoo: dict[str, Path], tmp_path: Path) -> None:
    for name, fmt in (("png16", "png"), ("tiff16", "tiff")):
        source = media.read_image(zoo[name])
        out = tmp_path / f"{name}{formats.EXTENSIONS[fmt]}"
        formats.write_image(out, source.rgb, alpha=None, metadata=source.metadata, fmt=fmt, bit_depth=16)
        np.testing.assert_array_equal(as16(media.read_image(out).rgb), as16(source.rgb))


def test_16bit_request_for_8bit_format_writes_8bit(tmp_path: Path) -> None:
    rgb = mk.rgb16_pattern(8, 8).astype(np.float32) / 65535
    out = tmp_path / "x.jpg"
    formats.write_image(out, rgb, alpha=None, metadata=None, fmt="jpeg", bit_depth=16)
    assert media.read_image(out).metadata.bit_depth == 8


@pytest.mark.parametrize(("fmt", "tolerance"), [("png", 0), ("tiff", 0), ("webp", 0), ("heif", 0.25)])
def test_alpha_round_trip(zoo: dict[str, Path], tmp_path: Path, fmt: str, tolerance: float) -> None:
    source = media.read_image(zoo["png_rgba"])
    out = tmp_path / f"a{formats.EXTENSIONS[fmt]}"
    quality = 100 if fmt == "webp" else None  # 100 = lossless WebP
    formats.write_image(
        out, source.rgb, alpha=source.alpha, metadata=source.metadata, fmt=fmt, quality=quality
    )
    back = media.read_image(out)
    assert back.alpha is not None and source.alpha is not None
    assert np.abs(back.alpha - source.alpha).max() <= tolerance + 1e-6


def test_jpeg_drops_alpha(zoo: dict[str, Path], tmp_path: Path) -> None:
    source = media.read_image(zoo["png_rgba"])
    out = tmp_path / "flat.jpg"
    formats.write_image(out, source.rgb, alpha=source.alpha, metadata=source.metadata, fmt="jpeg")
    back = media.read_image(out)
    assert back.alpha is None and back.metadata.mode == "RGB"


def test_out_of_range_and_nan_values_are_clipped(tmp_path: Path) -> None:
    rgb = np.array([[[-0.5, 0.5, 1.7], [np.nan, 1.0, 0.0]]], dtype=np.float32)
    out = tmp_path / "clip.png"
    formats.write_image(out, rgb, alpha=None, metadata=None, fmt="png")
    np.testing.assert_array_equal(pil_rgb(out), [[[0, 128, 255], [0, 255, 0]]])


def test_every_listed_format_can_be_written(tmp_path: Path) -> None:
    rgb = mk.rgb_pattern(24, 16).astype(np.float32) / 255
    for fmt, ext in formats.EXTENSIONS.items():
        out = tmp_path / f"any{ext}"
        formats.write_image(out, rgb, alpha=None, metadata=None, fmt=fmt)
        assert media.read_image(out).size == (24, 16), fmt


def test_invalid_write_arguments(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3), dtype=np.float32)
    with pytest.raises(ImageWriteError, match="unsupported output format"):
        formats.write_image(tmp_path / "x.gif", rgb, alpha=None, metadata=None, fmt="gif")
    with pytest.raises(ImageWriteError, match="HxWx3"):
        formats.write_image(tmp_path / "x.png", rgb[..., 0], alpha=None, metadata=None, fmt="png")
    with pytest.raises(ImageWriteError, match="alpha shape"):
        formats.write_image(tmp_path / "x.png", rgb, alpha=np.zeros((3, 4)), metadata=None, fmt="png")
    with pytest.raises(ImageWriteError, match="bit depth"):
        formats.write_image(tmp_path / "x.png", rgb, alpha=None, metadata=None, fmt="png", bit_depth=12)
    with pytest.raises(ImageWriteError) as info:
        formats.write_image(tmp_path / "missing" / "x.png", rgb, alpha=None, metadata=None, fmt="png")
    assert str(info.value).startswith(str(tmp_path / "missing" / "x.png")) and "\n" not in str(info.value)


# -- atomic writes ---------------------------------------------------------------------------


def _raise_midway(im: Image.Image, fp, filename, *args, **kwargs) -> None:
    fp.write(b"\x89PNG partial data")
    raise OSError("disk full (simulated)")


def test_failed_write_keeps_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "photo.png"
    out.write_bytes(b"previous result")
    monkeypatch.setitem(Image.SAVE, "PNG", _raise_midway)
    rgb = np.zeros((8, 8, 3), dtype=np.float32)
    with pytest.raises(ImageWriteError) as info:
        formats.write_image(out, rgb, alpha=None, metadata=None, fmt="png")
    assert str(info.value) == f"{out}: disk full (simulated)"
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_failed_16bit_write_and_interrupt_leave_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "deep.png"
    rgb = np.zeros((8, 8, 3), dtype=np.float32)

    def boom(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(png, "write_chunks", boom)
    with pytest.raises(KeyboardInterrupt):
        formats.write_image(out, rgb, alpha=None, metadata=None, fmt="png", bit_depth=16)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_and_sets_normal_permissions(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    atomic.atomic_write(target, lambda fp: fp.write(b"one"))
    atomic.atomic_write(target, lambda fp: fp.write(b"two"))
    assert target.read_bytes() == b"two"
    assert target.stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK
    assert no_temp_files(tmp_path)


def test_atomic_write_with_very_long_name(tmp_path: Path) -> None:
    target = tmp_path / ("写" * 80 + ".png")  # 243 bytes: no room left for a naive temp name
    atomic.atomic_write(target, lambda fp: fp.write(b"ok"))
    assert target.read_bytes() == b"ok" and no_temp_files(tmp_path)


def test_remove_stale_temps_only_touches_our_pattern(tmp_path: Path) -> None:
    ours = tmp_path / ".photo.jpg.lfxab12cd_9.tmp"
    ours.write_bytes(b"x")
    keep = [
        tmp_path / ".photo.jpg.tmp",
        tmp_path / "photo.jpg",
        tmp_path / ".notes.lfx.tmp",
        tmp_path / "a.tmp",
    ]
    for path in keep:
        path.write_bytes(b"x")
    assert atomic.remove_stale_temps(tmp_path) == [ours]
    assert sorted(tmp_path.iterdir()) == sorted(keep)
    young = tmp_path / ".x.png.lfx00000000.tmp"
    young.write_bytes(b"x")
    assert atomic.remove_stale_temps(tmp_path, min_age_s=3600) == []
    os.utime(young, (1, 1))
    assert atomic.remove_stale_temps(tmp_path, min_age_s=3600) == [young]


# -- format names ----------------------------------------------------------------------------


def test_output_format_for() -> None:
    assert formats.output_format_for("jpeg", "same") == "jpeg"
    assert formats.output_format_for("mpo", "same") == "jpeg"
    assert formats.output_format_for("gif", "same") == "png"
    assert formats.output_format_for("heif", "same") == "heif"
    assert formats.output_format_for("png", "JPG") == "jpeg"
    assert formats.output_format_for("png", "tif") == "tiff"
    assert formats.output_format_for("png", "heic") == "heif"
    with pytest.raises(ValueError, match="unsupported output format 'gif'"):
        formats.output_format_for("png", "gif")
    expected = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif", "heif": ".heic"}
    assert expected.items() <= formats.EXTENSIONS.items()
    assert (
        formats.format_from_extension(".JPG") == "jpeg" and formats.format_from_extension("x.heic") == "heif"
    )


def test_16bit_png_text_chunks_hold_unicode(tmp_path: Path) -> None:
    # The 16-bit PNG writer adds its own text chunks to pypng's output; Pillow must parse them back.
    out = tmp_path / "deep.png"
    rgb = np.full((4, 4, 3), 0.5, dtype=np.float32)
    provenance = {"source": "café ✓"}
    formats.write_image(out, rgb, alpha=None, metadata=None, fmt="png", bit_depth=16, provenance=provenance)
    with Image.open(out) as img:
        assert img.info["Software"] == metadata.SOFTWARE
        assert img.info["Comment"] == metadata.provenance_summary(provenance)
