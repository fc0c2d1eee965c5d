"""End-to-end: the real `lucidflux restore` command on real image files with tiny weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import piexif
import pytest
from click.testing import CliRunner
from conftest import weight_args
from make_images import BROKEN, DATE_TAKEN, GPS_LAT, make_image_zoo, make_jpeg_exif, make_png16, rgb_pattern
from PIL import Image

from lucidflux_cli import atomic
from lucidflux_cli.commands.main import main
from lucidflux_cli.imageio import formats, media
from lucidflux_cli.runner.control import output_lock

FAST = ["--steps", "1", "--device", "cpu", "--min-side", "0"]


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def outputs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if atomic.is_temp_name(p.name)]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("zoo")
    return root, make_image_zoo(root)


@pytest.fixture(scope="module")
def restored(zoo, tiny_release, tmp_path_factory):
    root, files = zoo
    out = tmp_path_factory.mktemp("out")
    report = out.parent / "report.json"
    result = run(
        "restore",
        str(root),
        "-o",
        str(out),
        *FAST,
        *weight_args(tiny_release),
        "--json",
        "--report",
        str(report),
    )
    return result, out, files, root, report


def test_folder_restore_exit_code_and_per_file_report(restored):
    result, out, files, root, report = restored
    assert result.exit_code == 1, result.output  # the broken files failed, the rest went through
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    by_source = {Path(e["source"]).name: e for e in events if e["event"] == "file"}
    for name in BROKEN:
        event = by_source[files[name].name]
        assert event["status"] == "failed"
        assert str(files[name]) in event["error"] and "\n" not in event["error"]
    good = [k for k in files if k not in BROKEN]
    assert all(by_source[files[k].name]["status"] == "done" for k in good)
    summary = events[-1]
    assert summary["event"] == "summary" and summary["done"] == len(good) and summary["failed"] == len(BROKEN)
    document = json.loads(report.read_text())
    assert document["exit_code"] == 1 and len(document["files"]) == len(files)


def test_outputs_mirror_the_tree_and_decode(restored):
    _, out, files, root, _ = restored
    for key, source in files.items():
        target = out / source.relative_to(root)
        ext = formats.extension(formats.output_format_for(formats.format_from_extension(source.name), "same"))
        target = target.with_suffix(ext)
        if key in BROKEN:
            assert not target.exists()
        else:
            loaded = media.read_image(target)
            assert loaded.size == media.read_image(source).size
    assert no_temp_files(out)


def test_metadata_survives(restored):
    _, out, files, root, _ = restored
    jpeg = out / files["jpeg_exif"].relative_to(root)
    exif = piexif.load(Image.open(jpeg).info["exif"])
    assert exif["Exif"][piexif.ExifIFD.DateTimeOriginal] == DATE_TAKEN
    assert exif["GPS"][piexif.GPSIFD.GPSLatitude] == GPS_LAT
    assert exif["0th"][piexif.ImageIFD.Orientation] == 1
    assert exif["0th"][piexif.ImageIFD.Software].startswith(b"lucidflux-cli")
    source = media.read_image(files["jpeg_exif"])  # orientation 6: upright size is swapped
    assert Image.open(jpeg).size == source.size
    png = out / files["png_rgba"].relative_to(root)
    assert Image.open(png).mode == "RGBA"
    assert "lucidflux-cli" in Image.open(png).info.get("Software", "")
    for key in ("png16", "tiff16"):
        loaded = media.read_image(out / files[key].relative_to(root))
        assert loaded.metadata.bit_depth == 16
    heic = out / files["heic"].relative_to(root).with_suffix(".heic")
    assert media.read_image(heic).metadata.format == "heif"


def test_second_run_resumes_by_skipping_done_files(restored, tiny_release):
    _, out, files, root, _ = restored
    before = {p: p.stat().st_mtime_ns for p in outputs(out)}
    result = run(
        "restore",
        str(root),
        "-o",
        str(out),
        *FAST,
        *weight_args(tiny_release),
        "--json",
        "--exclude",
        "broken",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["done"] == 0 and summary["skipped"] == len(files) - len(BROKEN)
    assert {p: p.stat().st_mtime_ns for p in outputs(out)} == before


def test_single_file_with_size_format_and_seed_is_deterministic(tmp_path, tiny_release):
    photo = make_jpeg_exif(tmp_path / "in" / "photo.jpg", orientation=1, size=(96, 64))
    args = [str(photo), *FAST, *weight_args(tiny_release), "--size", "72x0", "--format", "png", "--seed", "5"]
    assert run("restore", *args, "-o", str(tmp_path / "a")).exit_code == 0
    assert run("restore", *args, "-o", str(tmp_path / "b")).exit_code == 0
    a = np.asarray(Image.open(tmp_path / "a" / "photo.png"))
    b = np.asarray(Image.open(tmp_path / "b" / "photo.png"))
    assert a.shape == (48, 72, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_stdin_list_and_dry_run_load_no_weights(tmp_path):
    first = make_png16(tmp_path / "a.png")
    second = make_png16(tmp_path / "b.png")
    result = run(
        "restore", "-", "-o", str(tmp_path / "out"), "--dry-run", "--offline", input=f"{first}\n{second}\n"
    )
    assert result.exit_code == 0, result.output
    assert "restore" in result.stdout and "a.png" in result.stdout and "b.png" in result.stdout
    assert not (tmp_path / "out").exists() or not outputs(tmp_path / "out")


def test_usage_errors_exit_2(tmp_path):
    assert run("restore", str(tmp_path), "-o", str(tmp_path / "o"), "--format", "gif").exit_code == 2
    assert run("restore", str(tmp_path), "-o", str(tmp_path / "o"), "--size", "big").exit_code == 2
    assert run("restore", str(tmp_path), "-o", str(tmp_path / "o"), "--steps", "0").exit_code == 2


def test_missing_weights_offline_is_a_setup_error(tmp_path, monkeypatch):
    make_png16(tmp_path / "in" / "a.png")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    result = run("restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--offline")
    assert result.exit_code == 3
    assert "flux1-dev.safetensors" in result.output


def test_locked_output_folder_is_refused(tmp_path, tiny_release):
    make_png16(tmp_path / "in" / "a.png")
    with output_lock(tmp_path / "out"):
        result = run(
            "restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *FAST, *weight_args(tiny_release)
        )
    assert result.exit_code == 3
    assert "another lucidflux run" in result.output


@pytest.mark.slow
def test_sigterm_mid_batch_then_resume(tmp_path, tiny_release):
    source = tmp_path / "in"
    source.mkdir()
    for index in range(6):
        Image.fromarray(rgb_pattern(64, 48, seed=index)).save(source / f"{index}.png")
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "lucidflux_cli",
        "restore",
        str(source),
        "-o",
        str(out),
        "--steps",
        "2",
        "--min-side",
        "0",
        "--device",
        "cpu",
        *weight_args(tiny_release),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list(out.glob("*.png")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr.decode()
    done_first = outputs(out)
    assert 1 <= len(done_first) < 6
    assert no_temp_files(out)
    for path in done_first:
        media.read_image(path)
    second = subprocess.run(command + ["--json"], env=env, capture_output=True, timeout=600)
    assert second.returncode == 0, second.stderr.decode()
    summary = json.loads(second.stdout.decode().splitlines()[-1])
    assert summary["skipped"] == len(done_first) and summary["done"] == 6 - len(done_first)
    assert len(outputs(out)) == 6
    for path in outputs(out):
        media.read_image(path)


def test_prompt_is_encoded_with_the_flux_text_encoders_and_cached(tmp_path, tiny_release):
    from tiny_text_encoders import write_tiny_text_encoders

    flux_dir = tmp_path / "FLUX.1-dev"
    flux_dir.mkdir()
    (flux_dir / "flux1-dev.safetensors").symlink_to(tiny_release.flux)
    write_tiny_text_encoders(flux_dir)
    photo = make_png16(tmp_path / "in" / "a.png")
    args = [
        str(photo),
        *FAST,
        *weight_args(tiny_release),
        "--format",
        "png",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    args[args.index("--flux") + 1] = str(flux_dir / "flux1-dev.safetensors")
    assert run("restore", *args, "-o", str(tmp_path / "default")).exit_code == 0
    result = run("restore", *args, "-o", str(tmp_path / "prompted"), "--prompt", "a sharp old photograph")
    assert result.exit_code == 0, result.output
    default = np.asarray(Image.open(tmp_path / "default" / "a.png"), dtype=np.int32)
    prompted = np.asarray(Image.open(tmp_path / "prompted" / "a.png"), dtype=np.int32)
    assert np.abs(default - prompted).mean() > 0.5
    assert list((tmp_path / "cache").rglob("prompt-*.safetensors"))


def test_prompt_offline_without_text_encoders_names_them(tmp_path, tiny_release):
    photo = make_png16(tmp_path / "in" / "a.png")
    result = run(
        "restore",
        str(photo),
        "-o",
        str(tmp_path / "out"),
        *FAST,
        *weight_args(tiny_release),
        "--prompt",
        "a photo",
        "--offline",
        "--cache-dir",
        str(tmp_path / "empty"),
    )
    assert result.exit_code == 3, result.output
    assert "text_encoders" in result.output and "--text-encoders PATH" in result.output
    assert not outputs(tmp_path / "out")


def test_quiet_silences_the_terminal_but_not_the_log_file(tmp_path, tiny_release):
    photo = make_png16(tmp_path / "in" / "a.png")
    log_file = tmp_path / "logs" / "run.log"
    result = run(
        "restore",
        str(photo),
        "-o",
        str(tmp_path / "out"),
        *FAST,
        *weight_args(tiny_release),
        "-q",
        "--log-file",
        str(log_file),
    )
    assert result.exit_code == 0, result.output
    assert "restored" not in result.stderr
    assert (
        f"restored {photo}" in log_file.read_text()
        and "1 restored, 0 skipped, 0 failed" in log_file.read_text()
    )


def test_inputs_are_never_overwritten_and_outputs_never_collide(tmp_path, tiny_release):
    folder = tmp_path / "photos"
    original = make_png16(folder / "a.png")
    before = original.read_bytes()
    result = run("restore", str(folder), "-o", str(folder), *FAST, *weight_args(tiny_release))
    assert "it is the output folder" in result.output  # a folder is never its own output
    result = run("restore", str(original), "-o", str(folder), *FAST, *weight_args(tiny_release))
    assert result.exit_code == 1
    assert "would overwrite the input" in result.output
    assert original.read_bytes() == before
    twin = make_png16(tmp_path / "other" / "a.png", seed=9)
    result = run(
        "restore", str(folder), str(twin), "-o", str(tmp_path / "out"), *FAST, *weight_args(tiny_release)
    )
    assert result.exit_code == 1 and "already written by" in result.output  # photos/a.png and other/a.png
    assert len(outputs(tmp_path / "out")) == 1


def test_commands_that_load_no_model_import_no_model_code():
    """`--help`, `config`, `weights list`... start at once: the CLI imports no torch or diffusers."""
    code = (
        "import sys, lucidflux_cli.commands.main; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_restore_says_only_what_lucidflux_says(tmp_path, tiny_release):
    """No import-time chatter from the libraries (diffusers, transformers, torch; torchao's when
    the fp8 extra is installed) on stderr: every line there is ours."""
    Image.fromarray(rgb_pattern(64, 48)).save(tmp_path / "photo.png")
    command = [
        sys.executable,
        "-m",
        "lucidflux_cli",
        "restore",
        str(tmp_path),
        "-o",
        str(tmp_path / "out"),
        "--steps",
        "1",
        "--min-side",
        "0",
        "--device",
        "cpu",
        *weight_args(tiny_release),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "photo.png").is_file()
    assert done.stderr and all(line.startswith("lucidflux: ") for line in done.stderr.splitlines()), (
        done.stderr
    )
