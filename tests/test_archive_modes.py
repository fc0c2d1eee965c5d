"""Every mode an archive holds (issue 26): written back in its own mode, depth and value range, or
the change named in the file's notes (event, log line, report), or refused with --keep-mode strict.

One test per row of docs/archive-workflow.md's table through the image I/O (read, write as the
run does), then the real CLI with tiny weights over a folder of them. Fixtures are written by
Pillow, tifffile and piexif (tests/make_images.py), never by the code under test.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import make_images as mk
import numpy as np
import piexif
import pytest
import tifffile
from click.testing import CliRunner
from conftest import weight_args
from PIL import Image, ImageCms

from lucidflux_cli.commands.main import main
from lucidflux_cli.errors import ImageReadError
from lucidflux_cli.imageio import formats, media
from lucidflux_cli.runner.results import FileResult

FAST = ["--steps", "1", "--device", "cpu", "--min-side", "0", "--remover", "none"]


def round_trip(source: Path, target: Path, fmt: str) -> list[str]:
    """Read ``source`` and write it unrestored as ``fmt``, as a run writes it; the run's notes."""
    pages = [
        formats.Page(p.rgb, p.alpha, p.metadata, p.metadata.bit_depth, gray=p.metadata.gray)
        for p in media.read_pages(source).images
    ]
    notes = formats.conversion_notes(target, pages, fmt)
    formats.write_pages(target, pages, fmt=fmt)
    return notes


def exif_tags(path: Path, page: int) -> dict[tuple[str, int], object]:
    """(IFD, tag) -> value of one TIFF page's EXIF, as exiftool lists them: IFD0 and its Exif, GPS and
    Interop sub-IFDs (the file's header pointed at that page's IFD, so piexif reads that page)."""
    data = path.read_bytes()
    with tifffile.TiffFile(path) as tif:
        offset, order = tif.pages[page].offset, tif.byteorder
    loaded = piexif.load(data[:4] + struct.pack(order + "I", offset) + data[8:])
    return tag_values(loaded)


def tag_values(loaded: dict) -> dict[tuple[str, int], object]:
    """(IFD, tag) -> value of a piexif dict's IFD0, Exif, GPS and Interop IFDs."""
    ifds = ("0th", "Exif", "GPS", "Interop")
    return {(ifd, tag): value for ifd in ifds for tag, value in loaded[ifd].items()}


# Tags a restore writes anew: its Software, the upright Orientation, pixel layout and pointers;
# PixelX/YDimension, which EXIF allows in JPEG only (a TIFF's size is in its IFD0).
_REWRITTEN = (
    {("0th", 305), ("0th", 274), ("0th", 34665), ("0th", 34853), ("Exif", 40965)}
    | {("Exif", 40962), ("Exif", 40963)}
    | {("0th", tag) for tag in (256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 339)}
)


# -- one row of the table each -----------------------------------------------------------------


def test_32bit_integer_tiff_keeps_its_depth_and_range(tmp_path):
    source = mk.make_int32_tiff(tmp_path / "counts.tif")
    assert Image.open(source).mode == "I"  # what Pillow makes of it
    assert round_trip(source, tmp_path / "out.tif", "tiff") == []
    written = tifffile.imread(tmp_path / "out.tif")
    assert written.dtype == np.uint32
    np.testing.assert_array_equal(written, mk.int32_values())
    notes = round_trip(source, tmp_path / "out.png", "png")
    assert notes == ["32-bit integers (range 38 to 199911) scaled to 16 bits"]


def test_float_tiff_above_one_keeps_its_range(tmp_path):
    source = mk.make_hdr_tiff(tmp_path / "hdr.tif")
    assert round_trip(source, tmp_path / "out.tif", "tiff") == []
    written = tifffile.imread(tmp_path / "out.tif")
    assert written.dtype == np.float32 and written.shape == (12, 16, 3)
    np.testing.assert_allclose(written, mk.hdr_values(), rtol=0, atol=1e-6)
    assert written.max() == pytest.approx(6.5) and written.min() == pytest.approx(-0.25)
    assert round_trip(source, tmp_path / "out.png", "png") == ["float samples -0.25 to 6.5 scaled to 16 bits"]


def test_float_nan_is_named(tmp_path):
    path = tmp_path / "nan.tif"
    Image.fromarray(np.array([[np.nan, 0.25, 3.0]], dtype=np.float32), mode="F").save(path)
    loaded = media.read_image(path)
    np.testing.assert_allclose(loaded.rgb[0, :, 0], [0.0, 0.25 / 3, 1.0])
    notes = round_trip(path, tmp_path / "out.tif", "tiff")
    assert notes == ["1 NaN/inf sample(s) written as the range's low end"]
    np.testing.assert_allclose(tifffile.imread(tmp_path / "out.tif"), [[0.0, 0.25, 3.0]], atol=1e-6)


def test_lab_tiff_comes_back_lab(tmp_path):
    source = mk.make_lab_tiff(tmp_path / "lab.tif")
    assert round_trip(source, tmp_path / "out.tif", "tiff") == []
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert int(tif.pages[0].photometric) == 8  # CIELAB
    with Image.open(tmp_path / "out.tif") as out, Image.open(source) as original:
        assert out.mode == "LAB"
        difference = np.abs(np.asarray(out).astype(int) - np.asarray(original).astype(int))
        assert difference.max() <= 3  # LAB -> sRGB -> LAB through LittleCMS, 8 bits each way
    notes = round_trip(source, tmp_path / "out.png", "png")
    assert notes == ["LAB -> RGB via LittleCMS (D50) (png has no LAB)"]


def test_lab_outside_srgb_is_named(tmp_path):
    Image.new("LAB", (4, 4), (128, 10, 250)).save(tmp_path / "vivid.tif")  # a = -118, b = +122
    loaded = media.read_image(tmp_path / "vivid.tif")
    assert loaded.metadata.changes == ("LAB colours outside sRGB clipped to it (100.0% of the pixels)",)


def test_cmyk_jpeg_with_adobe_marker_and_profile_stays_cmyk_through_its_profile(tmp_path):
    source = mk.make_cmyk_jpeg_profiled(tmp_path / "print.jpg")
    with Image.open(source) as img:
        assert img.mode == "CMYK" and img.info.get("adobe")
    loaded = media.read_image(source)
    profile = ImageCms.ImageCmsProfile(io.BytesIO(mk.cmyk_icc()))
    with Image.open(source) as img:  # the model sees the profile's sRGB, not Pillow's formula
        expected = ImageCms.profileToProfile(img, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
        assert not np.array_equal(np.asarray(expected), np.asarray(img.convert("RGB")))
    np.testing.assert_array_equal(np.rint(loaded.rgb * 255).astype(np.uint8), np.asarray(expected))
    assert round_trip(source, tmp_path / "out.jpg", "jpeg") == []
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.mode == "CMYK" and out.info.get("adobe") and out.info["icc_profile"] == mk.cmyk_icc()
        assert piexif.load(out.info["exif"])["Exif"][piexif.ExifIFD.DateTimeOriginal] == mk.DATE_TAKEN
    assert round_trip(source, tmp_path / "out.tif", "tiff") == []
    with Image.open(tmp_path / "out.tif") as out:  # back to CMYK through the same profile (lossless here)
        assert out.mode == "CMYK" and out.info["icc_profile"] == mk.cmyk_icc()
        separated = ImageCms.profileToProfile(
            expected, ImageCms.createProfile("sRGB"), profile, outputMode="CMYK"
        )
        np.testing.assert_array_equal(np.asarray(out), np.asarray(separated))
    notes = round_trip(source, tmp_path / "out.png", "png")
    assert notes == ["CMYK -> RGB via the embedded profile (png has no CMYK)"]
    assert "icc_profile" not in Image.open(tmp_path / "out.png").info  # a CMYK profile misdescribes RGB


def test_cmyk_without_profile_says_black_is_separated_anew(tmp_path):
    Image.fromarray(mk.rgb_pattern(16, 12)).convert("CMYK").save(tmp_path / "plain.tif")
    assert round_trip(tmp_path / "plain.tif", tmp_path / "out.tif", "tiff") == [
        "CMYK without a usable profile: converted by Pillow's formula, black separated anew"
    ]
    with Image.open(tmp_path / "out.tif") as out, Image.open(tmp_path / "plain.tif") as original:
        assert out.mode == "CMYK"  # same appearance by Pillow's formula, black generation redone
        np.testing.assert_array_equal(np.asarray(out.convert("RGB")), np.asarray(original.convert("RGB")))


@pytest.mark.parametrize(
    ("make", "note"),
    [
        (
            lambda p: mk.make_palette_png(p / "x.png"),
            "palette image written as RGB (outputs have no palette)",
        ),
        (
            lambda p: Image.fromarray(mk.gray_values() > 128).save(p / "x.png") or p / "x.png",
            "1-bit black-and-white written as 8-bit gray",
        ),
    ],
)
def test_modes_no_output_keeps_are_named(tmp_path, make, note):
    source = make(tmp_path)
    assert round_trip(source, tmp_path / "out.png", "png") == [note]


def test_depth_and_alpha_a_format_cannot_hold_are_named(tmp_path):
    assert round_trip(mk.make_png16(tmp_path / "deep.png"), tmp_path / "out.jpg", "jpeg") == [
        "16-bit samples written as 8 bits (jpeg)"
    ]
    assert round_trip(mk.make_png_rgba(tmp_path / "logo.png"), tmp_path / "logo.jpg", "jpeg") == [
        "alpha channel not written (jpeg has none)"
    ]
    assert round_trip(mk.make_png16(tmp_path / "again.png"), tmp_path / "out.png", "png") == []


def test_every_page_of_a_float_tiff_keeps_every_exif_tag(tmp_path):
    source = mk.make_float_pages_exif(tmp_path / "film.tif", pages=3)
    assert round_trip(source, tmp_path / "out.tif", "tiff") == []
    for page in range(3):
        before, after = exif_tags(source, page), exif_tags(tmp_path / "out.tif", page)
        assert ("GPS", piexif.GPSIFD.GPSLatitude) in before
        assert ("Exif", piexif.ExifIFD.DateTimeOriginal) in before
        kept = {key: value for key, value in before.items() if key not in _REWRITTEN}
        assert {key: after.get(key) for key in kept} == kept, f"page {page + 1}"
        assert after[("0th", 305)].startswith(b"lucidflux-cli")


def test_every_page_of_a_float_rgb_tiff_keeps_its_xmp_iptc_and_icc(tmp_path):
    source = mk.make_float_rgb_pages_tagged(tmp_path / "reel.tif")
    assert round_trip(source, tmp_path / "out.tif", "tiff") == []
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert len(tif.pages) == 3
        for index, page in enumerate(tif.pages):
            assert page.dtype == np.float32 and page.tags.valueof(34675) == mk.srgb_icc()
            assert page.tags.valueof(33723) == mk.page_iptc(index)
            assert f"frame {index + 1}</dc:source>".encode() in bytes(page.tags.valueof(700))


def test_jpeg_exif_round_trip_keeps_every_tag_and_value_as_written(tmp_path):
    """piexif writes the fixture; the output keeps each (IFD, tag) and its raw value (GPS 296/10 stays
    296/10: Pillow's EXIF writer would reduce it to 148/5, docs/architecture.md)."""
    source = mk.make_jpeg_exif(tmp_path / "camera.jpg", orientation=1)
    assert round_trip(source, tmp_path / "out.jpg", "jpeg") == []
    loaded = {name: piexif.load(str(path)) for name, path in (("in", source), ("out", tmp_path / "out.jpg"))}
    before, after = tag_values(loaded["in"]), tag_values(loaded["out"])
    kept = {key: value for key, value in before.items() if key not in _REWRITTEN}
    assert {key: after.get(key) for key in kept} == kept
    assert after[("GPS", piexif.GPSIFD.GPSLatitude)] == mk.GPS_LAT


def test_modes_that_cannot_come_back_are_refused_in_one_line(tmp_path):
    tifffile.imwrite(tmp_path / "c16.tif", np.full((4, 4, 4), 30000, np.uint16), photometric="separated")
    tifffile.imwrite(tmp_path / "l16.tif", np.full((4, 4, 3), 30000, np.uint16), photometric="cielab")
    with pytest.raises(ImageReadError, match=r"c16.tif: 16-bit CMYK TIFF: not restored \(Pillow reads it"):
        media.read_image(tmp_path / "c16.tif")
    with pytest.raises(ImageReadError, match=r"TIFF samples \(3 x 16-bit uint, photometric CIELAB\)"):
        media.read_image(tmp_path / "l16.tif")


# -- the notes field ---------------------------------------------------------------------------


def test_notes_are_a_list_in_events_and_records():
    result = FileResult(
        Path("a.tif"),
        Path("o/a.png"),
        "done",
        note="restored page 1 of 2 only",
        notes=["CMYK -> RGB via the embedded profile (png has no CMYK)"],
    )
    assert result.to_event()["notes"] == ["CMYK -> RGB via the embedded profile (png has no CMYK)"]
    assert result.to_event()["note"] == "restored page 1 of 2 only"
    assert "notes" not in FileResult(Path("b.tif"), None, "done").to_record()


# -- the real CLI ------------------------------------------------------------------------------


def run(*args: str, release) -> tuple[int, dict[str, dict], dict, str]:
    result = CliRunner().invoke(
        main, ["restore", *args, *FAST, *weight_args(release), "--json"], catch_exceptions=False
    )
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    files = {Path(e["source"]).name: e for e in events if e["event"] == "file"}
    return result.exit_code, files, events[-1], result.stderr


def test_cli_keeps_modes_names_changes_and_strict_refuses(tmp_path, tiny_release):
    source = tmp_path / "archive"
    mk.make_int32_tiff(source / "counts.tif")
    mk.make_hdr_tiff(source / "hdr.tif")
    mk.make_lab_tiff(source / "lab.tif")
    mk.make_cmyk_jpeg_profiled(source / "print.jpg")
    mk.make_float_pages_exif(source / "film.tif")
    same = tmp_path / "same"
    code, files, _summary, stderr = run(str(source), "-o", str(same), release=tiny_release)
    assert code == 0, stderr
    assert all(event["status"] == "done" and "notes" not in event for event in files.values()), files
    assert tifffile.imread(same / "counts.tif").dtype == np.uint32
    assert tifffile.imread(same / "hdr.tif").dtype == np.float32
    assert Image.open(same / "lab.tif").mode == "LAB" and Image.open(same / "print.jpg").mode == "CMYK"
    latitude = ("GPS", piexif.GPSIFD.GPSLatitude)
    assert exif_tags(same / "film.tif", 1)[latitude] == exif_tags(source / "film.tif", 1)[latitude]

    png, report = tmp_path / "png", tmp_path / "run.json"
    one_page = [str(source / name) for name in ("counts.tif", "hdr.tif", "lab.tif", "print.jpg")]
    code, files, _summary, stderr = run(
        *one_page, "-o", str(png), "--format", "png", "--report", str(report), release=tiny_release
    )
    assert code == 0, stderr
    assert files["counts.tif"]["notes"] == ["32-bit integers (range 38 to 199911) scaled to 16 bits"]
    assert files["print.jpg"]["notes"] == ["CMYK -> RGB via the embedded profile (png has no CMYK)"]
    assert "; 32-bit integers (range 38 to 199911) scaled to 16 bits" in stderr  # the file's log line
    records = {Path(r["source"]).name: r for r in json.loads(report.read_text())["files"]}
    assert records["lab.tif"]["notes"] == ["LAB -> RGB via LittleCMS (D50) (png has no LAB)"]

    palette = mk.make_palette_png(tmp_path / "more" / "palette.png")
    strict = tmp_path / "strict"
    code, files, summary, stderr = run(
        str(palette),
        str(source / "counts.tif"),
        str(source / "lab.tif"),
        "-o",
        str(strict),
        "--keep-mode",
        "strict",
        release=tiny_release,
    )
    assert code == 1 and (summary["failed"], summary["done"]) == (1, 2)
    refused = files["palette.png"]
    assert refused["status"] == "failed" and "\n" not in refused["error"]
    assert refused["error"] == (
        f"{palette}: not restored (--keep-mode strict): "
        "palette image written as RGB (outputs have no palette)"
    )
    assert files["counts.tif"]["status"] == files["lab.tif"]["status"] == "done"
    assert not (strict / "palette.png").exists()
