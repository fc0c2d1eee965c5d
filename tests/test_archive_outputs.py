"""Archive-grade outputs (issue 16): what goes in comes out, whole, under its own name.

End to end through the CLI with tiny weights, plus the image I/O and lock pieces underneath.
Depths and channel counts are read from the files' headers (PNG IHDR bytes, TIFF tags), not
through Pillow's mode, which reads RGB16 as 8-bit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import make_images as mk
import numpy as np
import piexif
import pytest
import tifffile
from click.testing import CliRunner
from conftest import weight_args
from PIL import Image

from lucidflux_cli.commands.main import main
from lucidflux_cli.errors import ImageReadError, ImageWriteError
from lucidflux_cli.imageio import formats, media
from lucidflux_cli.imageio.discovery import InputFile
from lucidflux_cli.restore import batch
from lucidflux_cli.runner import control
from lucidflux_cli.runner.control import OutputLocked, output_lock

FAST = ["--steps", "2", "--device", "cpu", "--min-side", "0", "--remover", "none"]


def restore(*args: str, release) -> tuple[int, list[dict], str]:
    """Run `lucidflux restore ... --json`: exit code, the events, stderr."""
    result = CliRunner().invoke(
        main, ["restore", *args, *FAST, *weight_args(release), "--json"], catch_exceptions=False
    )
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, events, result.stderr


def by_name(events: list[dict]) -> dict[str, dict]:
    return {Path(e["source"]).name: e for e in events if e["event"] == "file"}


def everything(folder: Path) -> list[str]:
    """Every file under ``folder``, hidden ones included, relative."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())


def png_header(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) from the IHDR chunk's bytes."""
    data = path.read_bytes()
    assert data[12:16] == b"IHDR"
    return data[24], data[25]


def tiff_layout(path: Path) -> list[tuple[int, int, int, int]]:
    """Per page: (bits per sample, samples per pixel, sample format, photometric), from the tags."""
    with tifffile.TiffFile(path) as tif:
        return [
            (page.bitspersample, page.samplesperpixel, int(page.sampleformat), int(page.photometric))
            for page in tif.pages
        ]


# -- names -----------------------------------------------------------------------------------


def test_format_same_keeps_every_name_and_extension(tmp_path, tiny_release):
    source = tmp_path / "scans"
    source.mkdir()
    names = ["a.tiff", "b.jpeg", "c.heif", "d.j2k", "d.jp2", "e.JPG"]  # d.j2k, d.jp2: no collision
    for name in names:
        Image.fromarray(mk.rgb_pattern(32, 24)).save(source / name)
    out = tmp_path / "out"
    code, events, stderr = restore(str(source), "-o", str(out), release=tiny_release)
    assert code == 0, stderr
    assert everything(out) == names
    assert [Path(e["output"]).name for e in events if e["event"] == "file"] == names
    assert out.joinpath("d.j2k").read_bytes()[:4] == b"\xff\x4f\xff\x51"  # a bare codestream, as .j2k says
    assert out.joinpath("d.jp2").read_bytes()[4:8] == b"jP  "  # a JP2 box
    # Resume judges the same names: nothing is redone.
    code, events, _ = restore(str(source), "-o", str(out), release=tiny_release)
    assert code == 0 and {e["status"] for e in events if e["event"] == "file"} == {"skipped"}


def test_another_format_changes_the_extension_and_collisions_fail_before_work(tmp_path, tiny_release):
    source = tmp_path / "scans"
    source.mkdir()
    for name in ("d.j2k", "d.jp2", "f.tiff"):
        Image.fromarray(mk.rgb_pattern(32, 24)).save(source / name)
    out = tmp_path / "out"
    code, events, _ = restore(str(source), "-o", str(out), "--format", "tiff", release=tiny_release)
    files = by_name(events)
    assert code == 1
    assert files["d.j2k"]["output"].endswith("d.tif") and files["d.j2k"]["status"] == "done"
    assert files["d.jp2"]["status"] == "failed" and "already written by" in files["d.jp2"]["error"]
    assert files["f.tiff"]["output"].endswith("f.tiff")  # its own format: its own extension
    assert everything(out) == ["d.tif", "f.tiff"]


def test_output_path_rules():
    options = batch.OutputOptions(Path("out"))
    item = InputFile(Path("in/x.TIFF"), Path("x.TIFF"))
    assert batch.expected_output(item, options) == Path("out/x.TIFF")
    assert batch.expected_output(item, batch.OutputOptions(Path("out"), fmt="png")) == Path("out/x.png")
    gif = InputFile(Path("in/g.gif"), Path("g.gif"))
    assert batch.expected_output(gif, options) == Path("out/g.png")  # GIF is not written: PNG
    misnamed = InputFile(Path("in/p.jpg"), Path("p.jpg"))  # a PNG named .jpg keeps no false name
    assert batch.output_path(misnamed, "png", options) == Path("out/p.png")


# -- pages and frames ------------------------------------------------------------------------


def test_multipage_tiff_comes_out_whole_in_order_with_each_pages_metadata(tmp_path, tiny_release):
    source = tmp_path / "scans"
    mk.make_multipage_tiff(source / "multipage.tiff")
    Image.fromarray(mk.rgb_pattern(48, 32)).save(source / "single.png")  # a batch neighbour
    out = tmp_path / "out"
    code, events, stderr = restore(str(source), "-o", str(out), "--batch-size", "4", release=tiny_release)
    assert code == 0, stderr
    assert by_name(events)["multipage.tiff"]["status"] == "done"
    assert everything(out) == ["multipage.tiff", "single.png"]
    with tifffile.TiffFile(out / "multipage.tiff") as tif:
        assert len(tif.pages) == 3
        assert [(page.imagewidth, page.imagelength) for page in tif.pages] == list(mk.PAGE_SIZES)
        assert [page.description for page in tif.pages] == ["page 1", "page 2", "page 3"]
        assert all(b"lucidflux-cli" in page.tags["Software"].value.encode() for page in tif.pages)


def test_frames_first_restores_page_one_and_says_so(tmp_path, tiny_release):
    source = mk.make_multipage_tiff(tmp_path / "scans" / "multipage.tiff")
    out = tmp_path / "out"
    code, events, stderr = restore(str(source), "-o", str(out), "--frames", "first", release=tiny_release)
    assert code == 0, stderr
    event = by_name(events)["multipage.tiff"]
    assert event["status"] == "done" and "page 1 of 3 only" in event["note"]
    assert "page 1 of 3 only" in stderr
    assert len(tiff_layout(out / "multipage.tiff")) == 1


def test_multipage_tiff_to_a_one_page_format_fails_clearly(tmp_path, tiny_release):
    source = mk.make_multipage_tiff(tmp_path / "scans" / "multipage.tiff")
    code, events, _ = restore(
        str(source), "-o", str(tmp_path / "out"), "--format", "png", release=tiny_release
    )
    event = by_name(events)["multipage.tiff"]
    assert code == 1 and event["status"] == "failed"
    assert "3 pages" in event["error"] and "--format tiff" in event["error"] and "\n" not in event["error"]
    assert everything(tmp_path / "out") == []


def test_animated_gif_is_reported_and_frames_first_restores_its_first_frame(tmp_path, tiny_release):
    gif = mk.make_animated_gif(tmp_path / "in" / "anim.gif")
    still = mk.make_png16(tmp_path / "in" / "still.png")
    out = tmp_path / "out"
    code, events, stderr = restore(str(gif), str(still), "-o", str(out), release=tiny_release)
    event = by_name(events)["anim.gif"]
    assert code == 1 and event["status"] == "failed"  # the batch went on
    assert (
        event["error"]
        == f"{gif}: animated GIF with 3 frames: not restored (--frames first restores its first frame only)"
    )
    assert by_name(events)["still.png"]["status"] == "done"
    code, events, _ = restore(str(gif), "-o", str(out), "--frames", "first", release=tiny_release)
    event = by_name(events)["anim.gif"]
    assert code == 0 and event["status"] == "done" and "first frame only" in event["note"]
    assert everything(out) == ["anim.png", "still.png"]


@pytest.mark.parametrize(("name", "kind"), [("anim.png", "PNG (APNG)"), ("anim.webp", "WebP")])
def test_other_animations_are_refused_in_one_line(tmp_path, name, kind):
    frames = [Image.fromarray(mk.rgb_pattern(16, 12, seed=i)) for i in range(2)]
    frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    with pytest.raises(
        ImageReadError, match=rf"{name}: animated {re.escape(kind)} with 2 frames: not restored"
    ):
        media.read_pages(tmp_path / name)
    assert "first frame only" in media.read_pages(tmp_path / name, "first").note


def test_mpo_gives_its_primary_image_and_names_the_rest(tmp_path):
    pages = media.read_pages(mk.make_mpo(tmp_path / "stereo.mpo"))
    assert len(pages.images) == 1 and pages.images[0].size == (40, 24)
    assert "MPO file with 2 images: restored the primary image; 1 other image(s)" in pages.note


# -- gray, depth, float ----------------------------------------------------------------------


def test_gray_in_gray_out_at_the_inputs_depth(tmp_path, tiny_release):
    source = tmp_path / "scans"
    mk.make_gray_png(source / "gray8.png", bits=8)
    mk.make_gray_png(source / "gray16.png", bits=16)
    mk.make_gray_tiff16(source / "gray16.tif")
    mk.make_gray_jpeg(source / "gray.jpg")
    out = tmp_path / "out"
    code, _, stderr = restore(str(source), "-o", str(out), release=tiny_release)
    assert code == 0, stderr
    assert png_header(out / "gray8.png") == (8, 0)  # 8-bit, colour type 0: gray
    assert png_header(out / "gray16.png") == (16, 0)
    assert tiff_layout(out / "gray16.tif") == [(16, 1, 1, 1)]  # 16 bits, one sample, uint, min-is-black
    with tifffile.TiffFile(out / "gray16.tif") as tif:
        assert tif.pages.first.tags["InterColorProfile"].value == mk.gray_icc()
    with Image.open(out / "gray.jpg") as img:
        assert img.layers == 1  # a one-component JPEG
    colour = tmp_path / "colour"
    code, _, stderr = restore(str(source), "-o", str(colour), "--keep-color", release=tiny_release)
    assert code == 0, stderr
    assert png_header(colour / "gray8.png") == (8, 2) and png_header(colour / "gray16.png") == (16, 2)
    assert tiff_layout(colour / "gray16.tif") == [(16, 3, 1, 2)]
    assert "GRAY ICC profile is not written: the output is RGB" in stderr


def test_float_tiff_round_trip_through_the_cli(tmp_path, tiny_release):
    source = mk.make_float_tiff(tmp_path / "scans" / "film.tif")
    out = tmp_path / "out"
    code, _, stderr = restore(str(source), "-o", str(out), release=tiny_release)
    assert code == 0, stderr
    assert tiff_layout(out / "film.tif") == [(32, 1, 3, 1)]  # float32, one sample, min-is-black
    values = tifffile.imread(out / "film.tif")
    assert values.dtype == np.float32 and values.shape == (24, 40) and 0 <= values.min() <= values.max() <= 1
    assert len(np.unique(values)) > 256  # not quantised to 8 bits on the way
    assert np.abs(values * 65535 - np.rint(values * 65535)).max() > 1e-3  # nor to 16 bits
    loaded = media.read_image(out / "film.tif")
    assert loaded.metadata.icc_profile == mk.gray_icc()
    exif = piexif.load(loaded.metadata.exif)
    assert exif["Exif"][piexif.ExifIFD.DateTimeOriginal] == mk.DATE_TAKEN


def test_float_and_gray16_tiffs_round_trip_exactly(tmp_path):
    for maker, expected in ((mk.make_float_tiff, mk.float_values()), (mk.make_gray_tiff16, None)):
        source = maker(tmp_path / f"{maker.__name__}.tif")
        loaded = media.read_image(source)
        target = tmp_path / f"out-{source.name}"
        formats.write_image(
            target,
            loaded.rgb,
            alpha=None,
            metadata=loaded.metadata,
            fmt="tiff",
            bit_depth=loaded.metadata.bit_depth,
            gray=True,
        )
        written, original = tifffile.imread(target), tifffile.imread(source)
        assert written.dtype == original.dtype and written.shape == original.shape
        np.testing.assert_array_equal(written, original)
        if expected is not None:
            np.testing.assert_array_equal(written, expected)


def test_float_rgb_multipage_tiff_that_pillow_cannot_open_round_trips_exactly(tmp_path):
    values = np.random.default_rng(1).random((12, 16, 3), dtype=np.float32)
    with tifffile.TiffWriter(tmp_path / "film.tif") as tif:
        tif.write(values, photometric="rgb", iccprofile=mk.srgb_icc(), description="frame 1", metadata=None)
        tif.write(values[::-1].copy(), photometric="rgb", description="frame 2", metadata=None)
    pages = media.read_pages(tmp_path / "film.tif")
    assert [page.metadata.bit_depth for page in pages.images] == [32, 32] and pages.note is None
    formats.write_pages(
        tmp_path / "out.tif", [formats.Page(p.rgb, p.alpha, p.metadata, 32) for p in pages.images], fmt="tiff"
    )
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        np.testing.assert_array_equal(tif.pages[0].asarray(), values)
        np.testing.assert_array_equal(tif.pages[1].asarray(), values[::-1])
        assert [page.description for page in tif.pages] == ["frame 1", "frame 2"]
        assert tif.pages[0].tags["InterColorProfile"].value == mk.srgb_icc()


def test_float_samples_outside_unit_range_keep_their_range(tmp_path):
    path = tmp_path / "hdr.tif"
    Image.fromarray(np.array([[-0.5, 0.25, 3.0]], dtype=np.float32), mode="F").save(path)
    loaded = media.read_image(path)  # restored in [0, 1], the range given back on writing (issue 26)
    np.testing.assert_allclose(loaded.rgb[0, :, 0], [0.0, 0.75 / 3.5, 1.0])
    formats.write_image(
        tmp_path / "out.tif",
        loaded.rgb,
        alpha=None,
        metadata=loaded.metadata,
        fmt="tiff",
        bit_depth=32,
        gray=True,
    )
    np.testing.assert_allclose(tifffile.imread(tmp_path / "out.tif"), [[-0.5, 0.25, 3.0]], atol=1e-6)


def test_gray_with_alpha_png_keeps_both_channels(tmp_path):
    gray_alpha = np.dstack([mk.gray_values(8), np.full((24, 40), 128, np.uint8)])
    Image.fromarray(gray_alpha, mode="LA").save(tmp_path / "la.png")
    loaded = media.read_image(tmp_path / "la.png")
    assert loaded.metadata.gray and loaded.alpha is not None
    formats.write_image(
        tmp_path / "out.png", loaded.rgb, alpha=loaded.alpha, metadata=loaded.metadata, fmt="png", gray=True
    )
    assert png_header(tmp_path / "out.png") == (8, 4)  # gray + alpha
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), gray_alpha)


def test_16bit_gray_with_alpha_png_stays_16bit_gray_with_alpha(tmp_path):
    import png

    values = np.dstack([mk.gray_values(16, (5, 4)), mk.gray_values(16, (5, 4), seed=2)])
    with open(tmp_path / "la16.png", "wb") as fh:  # Pillow would read this as 8-bit RGBA
        png.Writer(5, 4, greyscale=True, alpha=True, bitdepth=16).write(fh, values.reshape(4, -1).tolist())
    loaded = media.read_image(tmp_path / "la16.png")
    assert loaded.metadata.bit_depth == 16 and loaded.metadata.gray
    for fmt, name in (("png", "out.png"), ("tiff", "out.tif")):
        formats.write_image(
            tmp_path / name,
            loaded.rgb,
            alpha=loaded.alpha,
            metadata=loaded.metadata,
            fmt=fmt,
            bit_depth=16,
            gray=True,
        )
    assert png_header(tmp_path / "out.png") == (16, 4)
    assert tiff_layout(tmp_path / "out.tif") == [(16, 2, 1, 1)]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), values)


def test_several_pages_need_a_format_that_holds_them(tmp_path):
    page = formats.Page(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ImageWriteError, match="2 pages, but format 'png' holds one per file"):
        formats.write_pages(tmp_path / "x.png", [page, page], fmt="png")
    assert not list(tmp_path.iterdir())


# -- nothing of ours stays in the output folder ----------------------------------------------


def test_the_lock_file_exists_only_while_a_run_holds_it(tmp_path):
    out = tmp_path / "out"
    with output_lock(out) as path:
        assert path.read_text() == str(os.getpid())
        with pytest.raises(OutputLocked, match=f"pid {os.getpid()}"), output_lock(out):
            pass
    assert everything(out) == []
    out.joinpath(control.LOCK_NAME).write_text("12345")  # left by a killed run: taken over, removed
    with output_lock(out):
        pass
    assert everything(out) == []


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_removing_the_lock_file_opens_no_race(tmp_path, monkeypatch):
    """A run that opens the lock file just before its holder removes it must not run beside the
    run that creates the next one."""
    out = tmp_path / "out"
    holder = contextlib.ExitStack()
    holder.enter_context(output_lock(out))
    real_open = os.open
    opened = []

    def open_then_holder_finishes(path, *args, **kwargs):
        fd = real_open(path, *args, **kwargs)
        if str(path).endswith(control.LOCK_NAME):
            opened.append(path)
            if len(opened) == 1:
                holder.close()  # the holder removes the file and releases it right after our open
        return fd

    monkeypatch.setattr(os, "open", open_then_holder_finishes)
    with output_lock(out) as path:
        assert len(opened) == 2 and path.exists()  # it saw the name-less file and locked the new one
        monkeypatch.setattr(os, "open", real_open)
        with pytest.raises(OutputLocked), output_lock(out):
            pass
    assert everything(out) == []


@pytest.mark.slow
def test_output_folder_holds_only_outputs_after_a_run_and_after_a_kill_and_rerun(tmp_path, tiny_release):
    source = tmp_path / "in"
    source.mkdir()
    for index in range(5):
        Image.fromarray(mk.rgb_pattern(48, 32, seed=index)).save(source / f"{index}.png")
    out = tmp_path / "out"
    report = out / "run.json"  # a report the user asked for, inside the folder
    command = [
        sys.executable,
        "-m",
        "lucidflux_cli",
        "restore",
        str(source),
        "-o",
        str(out),
        *FAST,
        *weight_args(tiny_release),
        "--report",
        str(report),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list(out.glob("*.png")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # no clean-up at all: what a crash or the OOM killer leaves
    process.communicate(timeout=60)
    assert control.LOCK_NAME in everything(out)  # what the kill leaves ...
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert everything(out) == [
        "0.png",
        "1.png",
        "2.png",
        "3.png",
        "4.png",
        "run.json",
    ]  # ... the rerun removes
