"""``data filter`` made fast without changing what it measures: OpenCV measures equal to their
definitions, 8-bit reading equal to the float reader, thresholds compared on unrounded values,
the journal's bounded loss, threads and batches that keep results and order, no torch without IQA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import imagehash
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

import tests.make_images as mk
from lucidflux_cli import manifests
from lucidflux_cli.commands.main import main
from lucidflux_cli.curation.settings import FilterRequest
from lucidflux_cli.data import curation
from lucidflux_cli.errors import ImageReadError
from lucidflux_cli.imageio import fast_jpeg, media
from lucidflux_cli.imageio.ahead import map_ahead
from lucidflux_cli.imageio.samples import quantize

ROOT = Path(__file__).parents[1]
RULES = ["--iqa-metric", "none", "--min-bytes", "0", "--min-side", "0"]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def texture(seed: int, height: int = 240, width: int = 240) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.kron(rng.random((height // 8 + 1, width // 8 + 1, 3)), np.ones((8, 8, 1))) * 255)[
        :height, :width
    ].astype(np.uint8)


def records(manifest: Path) -> dict[str, dict]:
    return {line["name"]: line for line in manifests.read_lines(manifest)[1]}


# ----------------------------------------------------------------------- the measures' definitions


def reference_laplacian(gray: np.ndarray) -> np.ndarray:
    """The 3x3 Laplacian by hand on a border mirrored without repeating the edge (integers)."""
    p = np.pad(gray.astype(np.int64), 1, mode="reflect")
    return p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * p[1:-1, 1:-1]


def reference_sobel_squares(gray: np.ndarray) -> np.ndarray:
    """gx^2 + gy^2 of the 3x3 Sobel pair by hand (exact integers)."""
    p = np.pad(gray.astype(np.int64), 1, mode="reflect")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return gx * gx + gy * gy


def test_gray_is_the_rounded_601_luma_for_every_colour():
    codes = np.arange(256**3, dtype=np.uint32)
    rgb = (
        np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=-1)
        .astype(np.uint8)
        .reshape(4096, 4096, 3)
    )
    expected = ((rgb.astype(np.int64) @ np.array([299, 587, 114]) + 500) // 1000).astype(np.uint8)
    np.testing.assert_array_equal(curation.to_gray8(rgb), expected)
    assert curation.to_gray8(np.zeros((1, 1, 3), np.uint8)).shape == (1, 1)


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (2, 3), (37, 53), (300, 257)])
def test_laplacian_variance_is_the_exact_variance_rounded_once(shape):
    gray = (np.random.default_rng(shape[1]).random(shape) * 255).astype(np.uint8)
    values = reference_laplacian(gray).ravel()
    exact = (
        Fraction(int((values * values).sum()), values.size) - Fraction(int(values.sum()), values.size) ** 2
    )
    assert curation.laplacian_variance(gray) == float(exact)


def test_sobel_magnitude_is_the_square_root_of_the_exact_integer():
    gray = (np.random.default_rng(3).random((41, 67)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(
        curation.sobel_magnitude(gray), np.sqrt(reference_sobel_squares(gray).astype(float))
    )


@pytest.mark.parametrize(
    ("shape", "patch"), [((50, 61), 3), ((481, 723), 8), ((481, 723), 33), ((1000, 1210), 240)]
)
def test_flat_fraction_equals_whole_image_patch_variances(shape, patch):
    """Strips of patches give what the whole magnitude cut into patches gives, border rows included."""
    rgb = np.asarray(Image.fromarray(texture(7, *shape)).filter(ImageFilter.GaussianBlur(2)))
    gray = curation.to_gray8(rgb)
    rows, cols = shape[0] // patch, shape[1] // patch
    magnitude = np.sqrt(reference_sobel_squares(gray).astype(float))[: rows * patch, : cols * patch]
    variances = magnitude.reshape(rows, patch, cols, patch).var(axis=(1, 3))
    for threshold in np.quantile(variances, [0.1, 0.5, 0.9]) * (1 + 1e-9):  # off the exact values
        fraction, patches = curation.flat_fraction(gray, patch, threshold)
        assert patches == rows * cols and fraction == (variances < threshold).sum() / patches


def test_perceptual_hash_is_imagehash_phash():
    rgb = texture(5, 300, 420)
    assert curation.perceptual_hash(rgb) == str(imagehash.phash(Image.fromarray(rgb)))


# ------------------------------------------------------------------------------ 8-bit reading


def test_read_rgb8_gives_the_float_readers_pixels_and_notes(tmp_path):
    zoo = mk.make_image_zoo(tmp_path)
    for name, path in zoo.items():
        if name in mk.BROKEN:
            with pytest.raises(ImageReadError):
                media.read_rgb8(path)
            continue
        pages = media.read_pages(path, "first")
        image = media.read_rgb8(path)
        assert image.rgb.dtype == np.uint8 and image.rgb.flags.c_contiguous, name
        np.testing.assert_array_equal(image.rgb, quantize(pages.images[0].rgb, 8), err_msg=name)
        assert (image.bit_depth, image.alpha, image.note) == (
            pages.images[0].metadata.bit_depth,
            pages.images[0].alpha is not None,
            pages.note,
        ), name


@pytest.mark.parametrize(
    "options",
    [
        {"subsampling": 0},
        {"subsampling": 1},
        {"subsampling": 2, "quality": 60},
        {"progressive": True},
        {"optimize": True, "restart_marker_rows": 2},
        {"mode": "L"},
        {"size": (333, 171)},
        {"trailing": True},
    ],
)
def test_jpegs_decoded_by_opencv_equal_pillows_pixels(tmp_path, options):
    options = dict(options)
    width, height = options.pop("size", (320, 200))
    image = Image.fromarray(texture(8, height, width)).filter(ImageFilter.GaussianBlur(1))
    image = image.convert(options.pop("mode")) if "mode" in options else image
    path = tmp_path / "photo.jpg"
    trailing = options.pop("trailing", False)
    image.save(path, **{"quality": 90, **options})
    if trailing:  # data after the end-of-image marker: Pillow decodes it
        path.write_bytes(path.read_bytes() + b"camera notes")
    assert (fast_jpeg.decode_rgb8(path, image.size) is None) == trailing
    np.testing.assert_array_equal(media.read_rgb8(path).rgb, quantize(media.read_image(path).rgb, 8))


def test_a_truncated_jpeg_is_refused_as_before(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(texture(9, 200, 320)).save(path, quality=90)
    path.write_bytes(path.read_bytes()[:-3000])
    with pytest.raises(ImageReadError, match="truncated image data"):
        media.read_rgb8(path)


# --------------------------------------------------------------------------- thresholds, names


def judged(**values) -> tuple[str, str] | None:
    record = {
        "width": 500,
        "height": 500,
        "bytes": None,
        "laplacian_var": 1000.0,
        "flat_fraction": 0.0,
        "patches": 4,
        **values,
    }
    return curation.judge(record, curation.FilterConfig())


def test_thresholds_are_compared_on_unrounded_values():
    assert judged(laplacian_var=149.99997) == ("blur", "blurry: Laplacian variance 149.99997 < 150")
    assert judged(laplacian_var=150.0) is None and judged(laplacian_var=8000.0) is None
    assert judged(laplacian_var=8000.00001)[0] == "blur"
    assert judged(laplacian_var=120.04)[1] == "blurry: Laplacian variance 120.0 < 150"
    assert judged(flat_fraction=0.5) is None
    assert judged(flat_fraction=0.5000001, patches=4000)[0] == "flat"


def test_the_command_keeps_and_drops_at_the_exact_measured_variance(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    Image.fromarray(texture(1)).save(source / "a.png")
    manifest = tmp_path / "m.jsonl"
    assert run("data", "filter", str(source), "-o", str(manifest), *RULES)[0] == 0
    variance = records(manifest)["a.png"]["laplacian_var"]
    assert variance != round(variance, 4)  # stored as measured
    just_above = repr(float(np.nextafter(variance, np.inf)))
    assert (
        run("data", "filter", str(source), "-o", str(manifest), *RULES, "--blur-min", repr(variance))[0] == 0
    )
    assert records(manifest)["a.png"]["kept"]
    assert run("data", "filter", str(source), "-o", str(manifest), *RULES, "--blur-min", just_above)[0] == 0
    assert records(manifest)["a.png"]["stage"] == "blur"


def test_metric_names_are_taken_in_any_case():
    base = {"inputs": ["x"], "out_dir": Path("m.jsonl")}
    assert FilterRequest(**base, iqa_metric="NIQE").config().quality_metric == "niqe"
    assert FilterRequest(**base, iqa_metric="CLIPIQA").config().higher_better
    assert FilterRequest(**base, iqa_metric="None").config().quality_metric is None
    with pytest.raises(ValueError, match="needs a reference"):
        FilterRequest(**base, iqa_metric="PSNR-Y").config()
    code, _, stderr = run("data", "filter", "x", "-o", "m.jsonl", "--iqa-metric", "Nope")
    assert code == 2 and "nope" in stderr


@pytest.mark.slow
def test_the_quality_stage_batches_and_compares_unrounded_scores(tmp_path):
    pytest.importorskip("pyiqa")
    from tests.metric_cache import niqe_cache

    source = tmp_path / "src"
    source.mkdir()
    for index in range(3):
        Image.fromarray(texture(20 + index)).save(source / f"{index}.png")
    Image.fromarray(np.full((240, 240, 3), 9, np.uint8)).save(source / "blank.png")  # NIQE fails on it
    manifest, cache = tmp_path / "m.jsonl", niqe_cache(tmp_path / "cache")
    options = [
        "--iqa-metric",
        "NIQE",
        "--offline",
        "--cache-dir",
        str(cache),
        "--min-bytes",
        "0",
        "--min-side",
        "0",
        "--blur-min",
        "0",
        "--flat-max-fraction",
        "1",
        "--batch-size",
        "2",
    ]
    code, _, stderr = run("data", "filter", str(source), "-o", str(manifest), *options, "--top", "1")
    found = records(manifest)
    assert code == 1 and "blank.png" in stderr and found["blank.png"]["stage"] == "read"
    scores = {name: found[name]["score"] for name in ("0.png", "1.png", "2.png")}
    assert all(found[name]["kept"] for name in scores)
    best = min(scores, key=scores.get)  # lower is better: a cut at the best score keeps it alone
    code, _, _ = run(
        "data", "filter", str(source), "-o", str(manifest), *options, "--min-score", repr(scores[best])
    )
    assert {name for name, r in records(manifest).items() if r["kept"]} == {best}
    below = repr(float(np.nextafter(scores[best], -np.inf)))
    run("data", "filter", str(source), "-o", str(manifest), *options, "--min-score", below)
    assert not any(r["kept"] for r in records(manifest).values())


def test_score_each_shares_calls_among_same_size_images_and_keeps_the_order(tmp_path):
    pytest.importorskip("pyiqa")
    from lucidflux_cli.metrics.scoring import ScoreError, Scorer, score_each

    images = [
        texture(30, 200, 200),
        texture(31, 160, 200),
        texture(32, 200, 200),
        np.zeros((200, 200, 3), np.uint8),
        texture(33, 160, 200),
    ]
    alone = Scorer("niqe", cache_dir=tmp_path, pretrained=False, batch_size=1)
    batched = Scorer("niqe", cache_dir=tmp_path, pretrained=False, batch_size=8)
    calls = []
    original = batched._call
    batched._call = lambda name, imgs, refs, indices: (
        calls.append(len(indices)) or original(name, imgs, refs, indices)
    )
    labels = [f"{i}.png" for i in range(len(images))]
    one_by_one = [score_each(alone, [image], [label])[0] for image, label in zip(images, labels, strict=True)]
    together = score_each(batched, images, labels)
    assert isinstance(together[3], ScoreError) and together[3].label == "3.png" and not batched.failures
    for first, second in zip(one_by_one[:3] + one_by_one[4:], together[:3] + together[4:], strict=True):
        assert second == pytest.approx(first, rel=1e-5)
    assert calls[:2] == [
        2,
        3,
    ]  # the two 160x200 images, then the three 200x200 (one failing) in one call each


# ------------------------------------------------------------------------------------ journal


def test_the_journal_writes_every_line_at_once_and_fsyncs_every_n(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(manifests.os, "fsync", lambda fd: synced.append(fd))
    journal = manifests.Journal(
        tmp_path / "m.jsonl", lambda r: (r["name"],), {"a": 1}, sync_every=3, sync_seconds=3600
    )
    header = {"manifest": "test", "settings": {"a": 1}}
    for index in range(7):
        journal.append([{"name": str(index)}], header)
        assert len(manifests.read_lines(journal.path)[1]) == index + 1  # readable before any fsync
    assert len(synced) == 2
    journal.sync_seconds = 0.0
    journal.append([{"name": "7"}], header)
    assert len(synced) == 3


def test_a_rerun_redoes_exactly_the_records_a_crash_lost(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for index in range(5):
        Image.fromarray(texture(40 + index)).save(source / f"{index}.png")
    manifest = tmp_path / "m.jsonl"
    assert run("data", "filter", str(source), "-o", str(manifest), *RULES)[0] == 0
    lines = manifest.read_text().splitlines()
    # a crash before the fsync: the journal holds the header, two records and a cut line
    journal = manifest.with_name(manifest.name + ".journal")
    journal.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    manifest.unlink()
    code, stdout, _ = run("data", "filter", str(source), "-o", str(manifest), *RULES, "--json")
    events = [json.loads(line) for line in stdout.splitlines()]
    redone = sorted(
        Path(e["source"]).name for e in events if e.get("event") == "file" and e["status"] == "done"
    )
    kept_before = {json.loads(line)["name"] for line in lines[1:3]}
    assert code == 0 and redone == sorted({f"{i}.png" for i in range(5)} - kept_before)
    assert manifest.read_text().splitlines() == lines and not journal.exists()


# ------------------------------------------------------------------------------ threads, order


def test_map_ahead_keeps_the_order_and_works_only_a_window_ahead():
    started = []
    lock = threading.Lock()

    def work(item: int) -> int:
        with lock:
            started.append(item)
        time.sleep(0.001 * (item % 3))
        return item * item

    results = map_ahead(work, range(100), threads=3, ahead=4)
    assert [next(results) for _ in range(5)] == [0, 1, 4, 9, 16]
    time.sleep(0.05)
    assert len(started) <= 5 + 4  # taken, plus the window
    results.close()
    assert list(map_ahead(work, range(20), threads=4)) == [i * i for i in range(20)]
    assert list(map_ahead(work, [], threads=4)) == []


def test_threads_give_the_same_manifest(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for index in range(6):
        image = Image.fromarray(texture(50 + index, 250, 490))
        (image.filter(ImageFilter.GaussianBlur(4)) if index % 3 == 0 else image).save(source / f"{index}.png")
    outputs = []
    for threads in ("1", "3"):
        manifest = tmp_path / f"m{threads}.jsonl"
        assert run("data", "filter", str(source), "-o", str(manifest), *RULES, "--threads", threads)[0] == 0
        outputs.append(manifest.read_text().replace(f"m{threads}", "m"))
    assert outputs[0] == outputs[1]


# ------------------------------------------------------------------------------------ no torch


def test_the_filter_without_iqa_never_imports_torch(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    Image.fromarray(texture(60)).save(source / "a.png")
    wrapper = (
        "import sys\n"
        "from lucidflux_cli.commands.main import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as done:\n"
        "    print(f'exit {done.code} torch imported: {\"torch\" in sys.modules}')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            wrapper,
            "data",
            "filter",
            str(source),
            "-o",
            str(tmp_path / "m.jsonl"),
            *RULES,
            "-q",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip().splitlines()[-1] == "exit 0 torch imported: False", result.stderr
