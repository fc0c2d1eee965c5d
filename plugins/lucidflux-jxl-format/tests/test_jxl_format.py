"""End-to-end: the installed plugin, chosen with --format jxl, writes JPEG XL through the real CLI.

Files are read back with pyjpegxl itself (not with this plugin's reader), so EXIF, ICC, XMP, bit
depth and alpha are checked as any JPEG XL reader would see them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import piexif
import pyjpegxl
import pytest
import torch
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests"))  # the main suite's fixtures: tiny weights, image makers

from make_images import DATE_TAKEN, GPS_LAT, make_jpeg_exif, make_png16, make_png_rgba, srgb_icc  # noqa: E402
from plugin_testing import FAST, require_installed, shared_release  # noqa: E402
from tiny_weights import TinyRelease  # noqa: E402

from lucidflux_cli import plugins  # noqa: E402
from lucidflux_cli.commands.main import main  # noqa: E402
from lucidflux_cli.imageio import formats, media  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))
require_installed("lucidflux.formats", "jxl", "lucidflux-jxl-format")


@pytest.fixture(scope="session")
def release(tmp_path_factory) -> TinyRelease:
    return shared_release(tmp_path_factory)


def weight_args(release: TinyRelease) -> list[str]:
    return [
        "--flux",
        str(release.flux),
        "--ae",
        str(release.ae),
        "--lucidflux",
        str(release.lucidflux),
        "--swinir",
        str(release.swinir),
        "--siglip",
        str(release.siglip),
        "--prompt-embeddings",
        str(release.prompt_embeddings),
    ]


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def restored(tmp_path_factory, release) -> dict[str, Path]:
    """One CLI run over a camera JPEG (EXIF, ICC), a 16-bit PNG and an RGBA PNG, all to JPEG XL."""
    root = tmp_path_factory.mktemp("jxl")
    make_jpeg_exif(root / "in" / "camera.jpg", orientation=6, size=(48, 32))
    make_png16(root / "in" / "deep.png", size=(48, 32))
    make_png_rgba(root / "in" / "logo.png", size=(48, 32))
    result = run(
        "restore",
        str(root / "in"),
        "-o",
        str(root / "out"),
        *FAST,
        *weight_args(release),
        "--format",
        "jxl",
        "--quality",
        "90",
        "--format-option",
        "effort=3",
    )
    assert result.exit_code == 0, result.output
    return {name: root / "out" / f"{name}.jxl" for name in ("camera", "deep", "logo")}


def decode(path: Path):
    return pyjpegxl.decode_to_numpy(path.read_bytes())


def test_listed_with_its_capabilities():
    plugin = plugins.registry(plugins.FORMATS).get("jxl")
    assert plugin.error is None and plugin.distribution == "lucidflux-jxl-format"
    assert formats.EXTENSIONS["jxl"] == ".jxl"
    info = run("plugins", "info", "jxl")
    assert info.exit_code == 0 and "keeps:        alpha, exif, icc, xmp, quality" in info.output


def test_exif_and_icc_survive(restored):
    meta, pixels = decode(restored["camera"])
    assert pixels.shape == (48, 32, 3)  # EXIF orientation 6 applied: the upright photo is 32 x 48
    assert meta.icc == srgb_icc()  # the source's profile, byte for byte
    assert meta.exif[:4] == b"\0\0\0\0"  # the Exif box's TIFF-header offset (ISO/IEC 18181-2)
    exif = piexif.load(meta.exif[4:])
    assert exif["Exif"][piexif.ExifIFD.DateTimeOriginal] == DATE_TAKEN
    assert exif["GPS"][piexif.GPSIFD.GPSLatitude] == GPS_LAT
    assert exif["0th"][piexif.ImageIFD.Orientation] == 1
    assert exif["0th"][piexif.ImageIFD.Software].startswith(b"lucidflux-cli")
    assert b"lucidflux-cli" in meta.xmp


def test_sixteen_bit_and_alpha_are_kept(restored):
    meta, pixels = decode(restored["deep"])
    assert pixels.dtype == np.uint16 and meta.bits_per_sample == 16
    meta, pixels = decode(restored["logo"])
    assert meta.has_alpha and pixels.shape == (32, 48, 4)
    assert pixels[0, 0, 3] < 128 < pixels[16, 24, 3]  # transparent corner, opaque centre


def test_lossless_at_quality_100_round_trips_exactly(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 28, 3)).astype(np.float32) / 255
    out = tmp_path / "exact.jxl"
    formats.write_image(out, rgb, alpha=None, metadata=None, fmt="jxl", quality=100)
    _, pixels = decode(out)
    np.testing.assert_array_equal(pixels, np.round(rgb * 255).astype(np.uint8))


def test_lucidflux_reads_jxl_back_with_its_metadata(restored):
    loaded = media.read_image(restored["camera"])  # through this plugin's Pillow reader
    assert loaded.metadata.format == "jxl" and loaded.size == (32, 48)
    assert loaded.metadata.icc_profile == srgb_icc()
    assert piexif.load(loaded.metadata.exif)["Exif"][piexif.ExifIFD.DateTimeOriginal] == DATE_TAKEN


def test_bad_options_are_usage_errors(tmp_path):
    base = ["restore", str(tmp_path), "-o", str(tmp_path / "out"), "--format", "jxl"]
    effort = run(*base, "--format-option", "effort=12")
    assert (
        effort.exit_code == 2
        and "format plugin 'jxl' cannot be used: effort must be from 1 to 9" in effort.output
    )
    unknown = run(*base, "--format-option", "speed=1")
    assert unknown.exit_code == 2 and "unknown option(s) speed" in unknown.output


def test_folder_walks_pick_up_jxl_inputs(tmp_path, restored, release):
    """Installing the plugin makes .jxl files part of folder walks (its Pillow reader opens them)."""
    folder = tmp_path / "archive" / "nested"
    folder.mkdir(parents=True)
    (folder / "camera.jxl").write_bytes(restored["camera"].read_bytes())
    (folder / "notes.txt").write_text("not an image")
    result = run(
        "restore",
        str(tmp_path / "archive"),
        "-o",
        str(tmp_path / "out"),
        *FAST,
        *weight_args(release),
        "--json",
    )
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [e["status"] for e in events if e.get("event") != "summary"] == ["done"]
    meta, pixels = decode(tmp_path / "out" / "nested" / "camera.jxl")  # --format same: JPEG XL again
    assert pixels.shape == (48, 32, 3) and meta.icc == srgb_icc()
