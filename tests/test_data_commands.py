"""``lucidflux data filter|degrade|merge`` end to end on synthetic photos (issue 14's Done-when)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

from lucidflux_cli import manifests
from lucidflux_cli.commands.main import main
from lucidflux_cli.data import curation

ROOT = Path(__file__).parents[1]
RULES = ["--iqa-metric", "none", "--min-bytes", "0", "--min-side", "0"]


def _texture(seed: int, size: int = 480) -> np.ndarray:
    """8-px blocks of random colour: Laplacian variance ~2700, inside the paper's 150-8000."""
    rng = np.random.default_rng(seed)
    return (np.kron(rng.random((size // 8, size // 8, 3)), np.ones((8, 8, 1))) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def curated(tmp_path_factory) -> Path:
    """textured (kept), blurred, flat, a near-duplicate of the textured one, another texture, a
    broken file."""
    folder = tmp_path_factory.mktemp("curate")
    texture = _texture(1)
    Image.fromarray(texture).save(folder / "textured.png")
    Image.fromarray(texture).filter(ImageFilter.GaussianBlur(6)).save(folder / "blurred.png")
    flat = np.full_like(texture, 128)
    flat[:240, :240] = texture[:240, :240]  # one textured patch of four: 75% flat
    Image.fromarray(flat).save(folder / "flat.png")
    Image.fromarray(texture[:, :, :]).save(folder / "copy.jpg", quality=97)  # same photo, another file
    Image.fromarray(_texture(2)).save(folder / "other.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return folder


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def records(manifest: Path) -> dict[str, dict]:
    header, lines = manifests.read_lines(manifest)
    assert header is not None and header["manifest"].startswith("lucidflux-")
    return {line["name"]: line for line in lines}


# ------------------------------------------------------------------------------------- filter


def test_filter_keeps_texture_and_drops_blur_flat_duplicates_and_broken_files(curated, tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    code, stdout, stderr = run("data", "filter", str(curated), "-o", str(manifest), *RULES, "--json")
    assert code == 1  # one file could not be read; the others went on
    found = records(manifest)
    assert found["blurred.png"]["stage"] == "blur" and found["blurred.png"]["laplacian_var"] < 150
    assert found["flat.png"]["stage"] == "flat" and found["flat.png"]["flat_fraction"] == 0.75
    assert found["other.png"]["kept"] and 150 <= found["textured.png"]["laplacian_var"] <= 8000
    # the same photo twice: one is kept (same pixels: the larger file), the other names it
    twins = [found["textured.png"], found["copy.jpg"]]
    assert sorted(r["kept"] for r in twins) == [False, True]
    kept, dropped = sorted(twins, key=lambda r: not r["kept"])
    assert dropped["stage"] == "duplicate" and dropped["reason"] == f"duplicate of {kept['name']}"
    assert kept["bytes"] >= dropped["bytes"]
    assert found["broken.jpg"]["stage"] == "read" and "broken.jpg" in found["broken.jpg"]["reason"]
    assert any("broken.jpg" in line and line.count("\n") == 0 for line in stderr.splitlines())
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["funnel"] == {
        "images": 6,
        "read": 5,
        "size": 5,
        "blur": 4,
        "flat": 3,
        "duplicate": 2,
        "quality": 2,
    }
    assert (
        "filter: 6 images -> read 5 -> size 5 -> blur 4 -> flat 3 -> duplicate 2 -> quality 2 kept" in stderr
    )


def test_filter_defaults_are_the_papers_thresholds_and_documented():
    config = curation.FilterConfig()
    assert (
        config.blur_min,
        config.blur_max,
        config.patch,
        config.flat_gradient_var,
        config.flat_max_fraction,
        config.quality_top,
    ) == (150, 8000, 240, 800, 0.5, 0.2)
    assert config.quality_metric == "clipiqa"
    docs = (ROOT / "docs" / "data.md").read_text()
    for text in ("150", "8000", "240x240", "800", "50%", "0.8 quantile", "384", "100 KB"):
        assert text in docs, text


def test_rerun_measures_only_new_or_changed_files(curated, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("textured.png", "other.png"):
        (source / name).write_bytes((curated / name).read_bytes())
    manifest = tmp_path / "m.jsonl"
    assert run("data", "filter", str(source), "-o", str(manifest), *RULES)[0] == 0
    Image.fromarray(_texture(3)).save(source / "third.png")
    code, stdout, _ = run("data", "filter", str(source), "-o", str(manifest), *RULES, "--json")
    summary = json.loads(stdout.splitlines()[-1])
    assert code == 0 and (summary["done"], summary["skipped"]) == (1, 2)
    assert set(records(manifest)) == {"textured.png", "other.png", "third.png"}


def test_the_quantile_stage_keeps_exactly_the_top_fifth():
    for count in (10, 100, 37):
        scores = np.random.default_rng(count).permutation(count).astype(float)  # distinct
        rows = [
            {"name": f"{i}", "stage": None, "score": s, "width": 1, "height": 1, "phash": f"{i:016x}"}
            for i, s in enumerate(scores)
        ]
        config = curation.FilterConfig(near_duplicate_bits=0)
        curation.select(rows, config)
        kept = sorted(r["score"] for r in rows if r["kept"])
        expected = int(np.ceil(0.2 * (count - 1)))  # scores above the 0.8 quantile
        assert kept == sorted(scores)[count - len(kept) :]  # the best ones
        assert len(kept) in (expected, expected + 1) and abs(len(kept) - 0.2 * count) < 1
    # lower is better (NIQE): the best fifth is the lowest scores
    rows = [
        {"name": f"{i}", "stage": None, "score": float(i), "width": 1, "height": 1, "phash": f"{i:016x}"}
        for i in range(10)
    ]
    curation.select(rows, curation.FilterConfig(near_duplicate_bits=0, higher_better=False))
    assert sorted(r["score"] for r in rows if r["kept"]) == [0.0, 1.0]


def test_the_quality_stage_of_the_command_keeps_the_best_fifth_by_the_metric(tmp_path):
    pytest.importorskip("pyiqa")
    from tests.metric_cache import niqe_cache

    source = tmp_path / "src"
    source.mkdir()
    for index in range(10):
        Image.fromarray(_texture(10 + index, 240)).save(source / f"{index}.png")
    manifest, root = tmp_path / "m.jsonl", niqe_cache(tmp_path / "cache")
    code, _, stderr = run(
        "data",
        "filter",
        str(source),
        "-o",
        str(manifest),
        "--iqa-metric",
        "niqe",
        "--offline",
        "--cache-dir",
        str(root),
        "--min-bytes",
        "0",
        "--min-side",
        "0",
    )
    assert code == 0, stderr
    found = list(records(manifest).values())
    scores = sorted(r["score"] for r in found)
    assert len(set(scores)) == 10  # NIQE: lower is better, so the two lowest are the top fifth
    assert sorted(r["score"] for r in found if r["kept"]) == scores[:2]
    assert all(r["stage"] == "quality" for r in found if not r["kept"])


def test_measures_match_their_definitions_on_a_small_array():
    gray = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 250]], dtype=np.uint8)
    padded = np.pad(gray.astype(float), 1, mode="reflect")
    lap = np.array(
        [
            [
                padded[y, x + 1]
                + padded[y + 2, x + 1]
                + padded[y + 1, x]
                + padded[y + 1, x + 2]
                - 4 * padded[y + 1, x + 1]
                for x in range(3)
            ]
            for y in range(3)
        ]
    )
    assert curation.laplacian_variance(gray) == pytest.approx(lap.var())
    # centre pixel's Sobel by hand: gx = (30+120+250) - (10+80+70), gy = (70+160+250) - (10+40+30)
    assert curation.sobel_magnitude(gray)[1, 1] == pytest.approx(np.hypot(400 - 160, 480 - 80))
    assert curation.to_gray8(np.array([[[255, 0, 0]]], dtype=np.uint8))[0, 0] == 76  # 0.299 * 255


def test_shards_and_merge_equal_a_single_run(curated, tmp_path):
    single, sharded = tmp_path / "single.jsonl", tmp_path / "sharded.jsonl"
    run("data", "filter", str(curated), "-o", str(single), *RULES)
    for index in range(3):
        run("data", "filter", str(curated), "-o", str(sharded), *RULES, "--shard", f"{index}/3")
    shard_lines = [records(tmp_path / f"sharded.shard-{i}-of-3.jsonl") for i in range(3)]
    assert sorted(n for part in shard_lines for n in part) == sorted(records(single))
    code, stdout, _ = run("data", "merge", str(sharded), "--json")
    assert code == 0, stdout
    assert sharded.read_text() == single.read_text()


def test_merge_names_a_missing_shard(curated, tmp_path):
    manifest = tmp_path / "m.jsonl"
    run("data", "filter", str(curated), "-o", str(manifest), *RULES, "--shard", "0/2")
    code, _, stderr = run("data", "merge", str(manifest))
    assert code == 1 and "shard(s) 1 of 2 missing" in stderr and not manifest.exists()


def test_bad_shard_and_unknown_metric_are_usage_errors(curated, tmp_path):
    assert run("data", "filter", str(curated), "-o", str(tmp_path / "m.jsonl"), "--shard", "3/3")[0] == 2
    code, _, stderr = run(
        "data", "filter", str(curated), "-o", str(tmp_path / "m.jsonl"), "--iqa-metric", "nope"
    )
    assert code == 2 and "nope" in stderr


# ------------------------------------------------------------------------------------ degrade


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    (folder / "sub").mkdir()
    rng = np.random.default_rng(5)
    for name, size in (("a.jpg", (400, 500)), ("b.png", (384, 384)), ("sub/c.jpg", (390, 420))):
        Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(folder / name)
    return folder


def degrade_subprocess(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "lucidflux_cli", "data", "degrade", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def one_worker(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pairs1")
    code, _, stderr = run("data", "degrade", str(photos), "-o", str(out), "--passes", "2", "--seed", "7")
    assert code == 0, stderr
    return out


def test_degrade_writes_every_pass_of_every_photo_and_its_manifest(one_worker):
    files = tree(one_worker)
    for folder, side in (("hq", 1024), ("lq", 256), ("lq_up", 1024)):
        for name in ("a_p0", "a_p1", "b_p0", "b_p1", "sub/c_p0", "sub/c_p1"):
            assert Image.open(one_worker / folder / f"{name}.png").size == (side, side)
    found = records(one_worker / "manifest.jsonl")
    assert len(manifests.read_lines(one_worker / "manifest.jsonl")[1]) == 6 and set(found) == {
        "a.jpg",
        "b.png",
        "sub/c.jpg",
    }
    assert {"hq", "lq", "lq_up", "params", "pass"} <= set(found["a.jpg"])
    assert "manifest.jsonl.journal" not in files


@pytest.mark.slow
def test_same_seed_gives_identical_bytes_with_three_workers(photos, one_worker, tmp_path):
    out = tmp_path / "pairs3"
    code, _, stderr = run(
        "data", "degrade", str(photos), "-o", str(out), "--passes", "2", "--seed", "7", "--workers", "3"
    )
    assert code == 0, stderr
    assert tree(out) == tree(one_worker)


def test_another_seed_gives_other_pairs(photos, one_worker, tmp_path):
    out = tmp_path / "other"
    run("data", "degrade", str(photos / "b.png"), "-o", str(out), "--passes", "1", "--seed", "8")
    assert (out / "lq" / "b_p0.png").read_bytes() != (one_worker / "lq" / "b_p0.png").read_bytes()


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_pairs(photos, one_worker, tmp_path):
    out = tmp_path / "killed"
    args = [str(photos), "-o", str(out), "--passes", "2", "--seed", "7", "--json"]
    process = degrade_subprocess(*args)
    deadline = time.monotonic() + 300
    while not (out / "manifest.jsonl.journal").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the first photo's pairs are in place and journalled
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    assert not (out / "manifest.jsonl").exists()
    again = degrade_subprocess(*args)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["skipped"] >= 1 and summary["skipped"] + summary["done"] == 3
    assert tree(out) == tree(one_worker)


@pytest.mark.slow
def test_degrade_shards_and_merge_equal_a_single_run(photos, one_worker, tmp_path):
    out = tmp_path / "shards"
    for index in range(2):
        code, _, stderr = run(
            "data",
            "degrade",
            str(photos),
            "-o",
            str(out),
            "--passes",
            "2",
            "--seed",
            "7",
            "--shard",
            f"{index}/2",
        )
        assert code == 0, stderr
    assert run("data", "merge", str(out))[0] == 0
    merged = {name: data for name, data in tree(out).items() if ".shard-" not in name}
    assert merged == tree(one_worker)


def test_a_broken_photo_fails_alone_in_one_line(photos, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "good.png").write_bytes((photos / "b.png").read_bytes())
    (source / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code, stdout, stderr = run(
        "data", "degrade", str(source), "-o", str(tmp_path / "out"), "--passes", "1", "--json"
    )
    assert code == 1
    errors = [line for line in stderr.splitlines() if "bad.png" in line]
    assert errors and errors[0].startswith("lucidflux: failed")
    assert (tmp_path / "out" / "hq" / "good_p0.png").exists()
    assert json.loads(stdout.splitlines()[-1])["pairs"] == 1


def test_degrade_takes_the_kept_images_of_a_filter_manifest(curated, tmp_path):
    manifest = tmp_path / "curated.jsonl"
    run("data", "filter", str(curated), "-o", str(manifest), *RULES)
    kept = {name for name, record in records(manifest).items() if record["kept"]}
    code, _, stderr = run("data", "degrade", str(manifest), "-o", str(tmp_path / "pairs"), "--passes", "1")
    assert code == 0, stderr
    assert {r["name"] for r in manifests.read_lines(tmp_path / "pairs" / "manifest.jsonl")[1]} == kept
    code, _, stderr = run(
        "data", "degrade", str(tmp_path / "pairs" / "manifest.jsonl"), "-o", str(tmp_path / "x")
    )
    assert code == 1 and "expected a lucidflux-filter manifest" in stderr


def test_a_rerun_with_other_settings_redoes_everything(photos, tmp_path):
    out = tmp_path / "pairs"
    args = ["data", "degrade", str(photos / "b.png"), "-o", str(out), "--passes", "1", "--json"]
    assert run(*args, "--seed", "1")[0] == 0
    first = (out / "lq" / "b_p0.png").read_bytes()
    # a killed run's journal of seed 1 must not count as done for seed 2 either
    (out / "manifest.jsonl").rename(out / "manifest.jsonl.journal")
    code, stdout, _ = run(*args, "--seed", "2")
    summary = json.loads(stdout.splitlines()[-1])
    assert code == 0 and (summary["done"], summary["skipped"]) == (1, 0)
    assert (out / "lq" / "b_p0.png").read_bytes() != first
    header, lines = manifests.read_lines(out / "manifest.jsonl")
    assert header["settings"]["seed"] == "2" and len(lines) == 1


def test_two_sources_with_the_same_names_are_refused_not_merged(curated, tmp_path):
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "textured.png").write_bytes((curated / "textured.png").read_bytes())
    manifest = tmp_path / "m.jsonl"
    code, _, stderr = run(
        "data", "filter", str(curated / "textured.png"), str(twin), "-o", str(manifest), *RULES
    )
    assert code == 1 and "same name (textured.png)" in stderr
    assert [r["name"] for r in manifests.read_lines(manifest)[1]].count("textured.png") == 1


def test_settings_that_cannot_work_are_usage_errors(curated, photos, tmp_path):
    import torch

    assert (
        run("data", "filter", str(curated), "-o", str(tmp_path / "m.jsonl"), "--iqa-metric", "psnr-y")[0] == 2
    )
    if not torch.cuda.is_available():
        assert run("data", "degrade", str(photos), "-o", str(tmp_path / "p"), "--device", "cuda")[0] == 2


def test_degrade_refuses_a_shard_manifest(curated, tmp_path):
    manifest = tmp_path / "m.jsonl"
    run("data", "filter", str(curated), "-o", str(manifest), *RULES, "--shard", "0/2")
    code, _, stderr = run(
        "data", "degrade", str(tmp_path / "m.shard-0-of-2.jsonl"), "-o", str(tmp_path / "p")
    )
    assert code == 1 and "join the shards first" in stderr


# ----------------------------------------------------------------------- safer sources, shards


def test_a_photo_under_the_filters_minimum_is_refused_unless_allowed(tmp_path):
    Image.fromarray(np.full((3, 5, 3), 90, np.uint8)).save(tmp_path / "tiny.png")
    code, _, stderr = run(
        "data", "degrade", str(tmp_path / "tiny.png"), "-o", str(tmp_path / "p"), "--passes", "1"
    )
    lines = [line for line in stderr.splitlines() if "tiny.png" in line]
    assert code == 1 and len(lines) == 1 and "5x3 px is under --min-side 384" in lines[0]
    assert not (tmp_path / "p" / "hq" / "tiny_p0.png").exists()
    code, _, stderr = run(
        "data",
        "degrade",
        str(tmp_path / "tiny.png"),
        "-o",
        str(tmp_path / "p"),
        "--passes",
        "1",
        "--min-side",
        "0",
    )
    assert code == 0, stderr
    assert Image.open(tmp_path / "p" / "hq" / "tiny_p0.png").size == (1024, 1024)


def test_transparent_pixels_are_refused_or_composited_over_the_background(tmp_path):
    rgba = np.zeros((400, 400, 4), np.uint8)
    rgba[..., :3] = (255, 0, 0)  # red everywhere, but only the top half is visible
    rgba[:200, :, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "cut.png")
    code, _, stderr = run(
        "data", "degrade", str(tmp_path / "cut.png"), "-o", str(tmp_path / "p"), "--passes", "1"
    )
    assert code == 1 and "50.0% of its pixels are transparent" in stderr and "cut.png" in stderr
    assert (
        run("data", "degrade", str(tmp_path / "cut.png"), "-o", str(tmp_path / "x"), "--background", "pink")[
            0
        ]
        == 2
    )
    code, _, stderr = run(
        "data",
        "degrade",
        str(tmp_path / "cut.png"),
        "-o",
        str(tmp_path / "p"),
        "--passes",
        "1",
        "--background",
        "#00ff00",
        "--seed",
        "1",
    )
    assert code == 0, stderr
    hq = np.asarray(Image.open(tmp_path / "p" / "hq" / "cut_p0.png")).reshape(-1, 3).astype(int)
    # the crop mirrors a 400 px photo: red (opaque) and green (the background), never red under alpha 0
    colours = {tuple(c) for c in hq[::97]}
    assert colours <= {(255, 0, 0), (0, 255, 0)} and len(colours) == 2, colours


def test_the_header_holds_the_table_and_versions_and_a_changed_source_is_redone(photos, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("a.jpg", "b.png"):
        (source / name).write_bytes((photos / name).read_bytes())
    out = tmp_path / "pairs"
    args = ["data", "degrade", str(source), "-o", str(out), "--passes", "1", "--json"]
    assert run(*args)[0] == 0
    header, lines = manifests.read_lines(out / "manifest.jsonl")
    settings = header["settings"]
    assert settings["table"]["stage1"]["kernel"]["beta_plateau"] == [1.0, 2.0]
    assert settings["table"]["final"]["sinc_prob"] == 0.8 and settings["draws"] == "lucidflux-degrade-v2"
    assert set(settings["versions"]) == {"numpy", "torch", "Pillow", "libjpeg", "zlib"}
    by_name = {r["name"]: r for r in lines}
    assert by_name["b.png"]["source_bytes"] == (source / "b.png").stat().st_size
    assert len(by_name["b.png"]["source_sha256"]) == 64
    before = (out / "lq" / "a_p0.png").read_bytes()
    Image.fromarray(np.asarray(Image.open(source / "b.png"))[::-1]).save(
        source / "b.png"
    )  # same size, new pixels
    code, stdout, _ = run(*args)
    summary = json.loads(stdout.splitlines()[-1])
    assert code == 0 and (summary["done"], summary["skipped"]) == (1, 1)
    after = records(out / "manifest.jsonl")
    assert after["b.png"]["source_sha256"] != by_name["b.png"]["source_sha256"]
    assert (out / "lq" / "a_p0.png").read_bytes() == before
    # pairs made with another torch (or numpy, Pillow, libjpeg) are redone, never mixed with these
    text = (out / "manifest.jsonl").read_text()
    torch_version = settings["versions"]["torch"]
    (out / "manifest.jsonl").write_text(text.replace(f'"torch": "{torch_version}"', '"torch": "0.0"', 1))
    code, stdout, _ = run(*args)
    assert code == 0 and json.loads(stdout.splitlines()[-1])["done"] == 2
    assert manifests.read_lines(out / "manifest.jsonl")[0]["settings"]["versions"]["torch"] == torch_version


def _tar_members(folder: Path) -> dict[str, bytes]:
    from lucidflux_cli.imageio.shards import index_tar

    return {
        name: member.read_bytes()
        for tar in sorted(folder.glob("*.tar"))
        for name, member in index_tar(tar).items()
    }


@pytest.fixture(scope="module")
def tar_pairs(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tars")
    code, _, stderr = run(
        "data",
        "degrade",
        str(photos),
        "-o",
        str(out),
        "--passes",
        "2",
        "--seed",
        "7",
        "--format",
        "webdataset",
        "--pairs-per-tar",
        "4",
    )
    assert code == 0, stderr
    return out


def test_webdataset_shards_hold_the_folder_layouts_bytes(tar_pairs, one_worker):
    assert sorted(p.name for p in tar_pairs.iterdir()) == [
        "manifest.jsonl",
        "pairs-000000.tar",
        "pairs-000001.tar",
    ]
    members = _tar_members(tar_pairs)
    names = ("a_p0", "a_p1", "b_p0", "b_p1", "sub/c_p0", "sub/c_p1")
    assert sorted(members) == sorted(f"{n}.{part}" for n in names for part in ("hq.png", "lq.png", "json"))
    for name in names:
        for part in ("hq", "lq"):
            assert members[f"{name}.{part}.png"] == (one_worker / part / f"{name}.png").read_bytes()
    folder_params = {
        (r["name"], r["pass"]): r["params"] for r in manifests.read_lines(one_worker / "manifest.jsonl")[1]
    }
    draws = json.loads(members["sub/c_p1.json"])
    assert (draws["name"], draws["pass"]) == ("sub/c.jpg", 1) and draws["params"] == folder_params[
        ("sub/c.jpg", 1)
    ]
    header, lines = manifests.read_lines(tar_pairs / "manifest.jsonl")
    assert header["tars"] == ["pairs-000000.tar", "pairs-000001.tar"]
    assert {(r["key"], r["tar"]) for r in lines} >= {
        ("a_p0", "pairs-000000.tar"),
        ("sub/c_p1", "pairs-000001.tar"),
    }


def test_the_webdataset_package_reads_the_shards(tar_pairs):
    webdataset = pytest.importorskip("webdataset")
    dataset = webdataset.WebDataset([str(p) for p in sorted(tar_pairs.glob("*.tar"))], shardshuffle=False)
    samples = list(dataset)
    assert [s["__key__"] for s in samples] == ["a_p0", "a_p1", "b_p0", "b_p1", "sub/c_p0", "sub/c_p1"]
    assert all({"hq.png", "lq.png", "json"} <= set(s) for s in samples)


@pytest.mark.slow
def test_shards_are_the_same_bytes_with_two_workers_and_a_lost_tar_is_redone_alone(
    photos, tar_pairs, tmp_path
):
    out = tmp_path / "tars"
    args = [
        "data",
        "degrade",
        str(photos),
        "-o",
        str(out),
        "--passes",
        "2",
        "--seed",
        "7",
        "--format",
        "webdataset",
        "--pairs-per-tar",
        "4",
        "--json",
    ]
    assert run(*args, "--workers", "2")[0] == 0
    assert tree(out) == tree(tar_pairs)
    kept = (out / "pairs-000000.tar").stat().st_mtime_ns
    (out / "pairs-000001.tar").unlink()  # as if the run had been killed before this tar
    code, stdout, _ = run(*args)
    summary = json.loads(stdout.splitlines()[-1])
    assert code == 0 and (summary["done"], summary["skipped"]) == (1, 2)
    assert tree(out) == tree(tar_pairs) and (out / "pairs-000000.tar").stat().st_mtime_ns == kept


@pytest.mark.slow
def test_a_killed_shard_run_keeps_its_staged_pairs_and_resumes_to_the_same_tars(photos, tar_pairs, tmp_path):
    out = tmp_path / "killed"
    args = [
        str(photos),
        "-o",
        str(out),
        "--passes",
        "2",
        "--seed",
        "7",
        "--format",
        "webdataset",
        "--pairs-per-tar",
        "4",
        "--json",
    ]
    process = degrade_subprocess(*args)
    deadline = time.monotonic() + 300
    while not (out / "manifest.jsonl.journal").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the first photo's pairs are staged and journalled, its tar not yet written
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    again = degrade_subprocess(*args)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["skipped"] >= 1 and summary["skipped"] + summary["done"] == 3
    assert tree(out) == tree(tar_pairs)  # no staged file left, the same tars and manifest


@pytest.mark.slow
def test_machine_shards_of_tars_merge_into_one_manifest(photos, tar_pairs, tmp_path):
    out = tmp_path / "split"
    for index in range(2):
        code, _, stderr = run(
            "data",
            "degrade",
            str(photos),
            "-o",
            str(out),
            "--passes",
            "2",
            "--seed",
            "7",
            "--format",
            "webdataset",
            "--shard",
            f"{index}/2",
        )
        assert code == 0, stderr
    assert run("data", "merge", str(out))[0] == 0
    header, lines = manifests.read_lines(out / "manifest.jsonl")
    assert header["tars"] == ["pairs-0of2-000000.tar", "pairs-1of2-000000.tar"]
    assert _tar_members(out) == _tar_members(tar_pairs)  # the same members, in other tars
    from lucidflux_cli.training.pairs import find_pairs

    assert [p.name for p in find_pairs(out)] == [f"{r['name']}#{r['pass']}" for r in lines]
