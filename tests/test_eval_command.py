"""``lucidflux eval`` and ``restore --score`` end to end: real pyiqa metric classes, no downloads."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lucidflux_cli import manifests
from lucidflux_cli.commands.main import main
from tests.metric_cache import niqe_cache

pytest.importorskip("pyiqa")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    """ref/ (3 images), close/ (light noise), far/ (heavy noise, plus an image without a reference)."""
    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(0)
    for name in ("ref", "close", "far"):
        (root / name).mkdir()
    for index in range(3):
        truth = (rng.random((120, 128, 3)) * 255).astype(np.uint8)
        Image.fromarray(truth).save(root / "ref" / f"{index}.png")
        for name, sigma in (("close", 4), ("far", 30)):
            noisy = np.clip(truth + rng.normal(0, sigma, truth.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(root / name / f"{index}.png")
    Image.fromarray(truth).save(root / "far" / "orphan.png")
    return root


def test_two_folders_against_references_give_table_csv_and_json(folders, tmp_path):
    out = tmp_path / "results"
    code, stdout, stderr = run(
        "eval",
        str(folders / "close"),
        str(folders / "far"),
        "--reference",
        str(folders / "ref"),
        "--metrics",
        "psnr-y,ssim",
        "-o",
        str(out),
    )
    assert code == 1  # orphan.png has no reference: named, the rest scored
    assert any("orphan.png" in line and "no reference" in line for line in stderr.splitlines())
    rows = list(csv.DictReader(io.StringIO((out / "scores.csv").read_text())))
    assert len(rows) == 6 and set(rows[0]) == {"folder", "file", "psnr-y", "ssim"}
    by_folder = {
        folder: [float(r["psnr-y"]) for r in rows if r["folder"] == folder]
        for folder in (str(folders / "close"), str(folders / "far"))
    }
    assert min(by_folder[str(folders / "close")]) > max(by_folder[str(folders / "far")])
    summary = json.loads((out / "summary.json").read_text())
    close = summary[str(folders / "close")]["mean"]["psnr-y"]
    assert close == pytest.approx(np.mean(by_folder[str(folders / "close")]), abs=1e-5)
    table = (out / "table.md").read_text()
    assert table in stdout and "PSNR-Y (YCbCr) ↑" in table
    assert f"**{close:.2f}**" in table  # the better folder marked
    _, lines = manifests.read_lines(out / "scores.jsonl")
    assert len(lines) == 6 and not (out / "scores.jsonl.journal").exists()


def test_crop_border_and_the_convention_are_stated_and_scores_follow_the_crop(folders, tmp_path):
    base = [
        "eval",
        str(folders / "close"),
        "--reference",
        str(folders / "ref"),
        "--metrics",
        "psnr-y,psnr-y-full",
    ]
    assert run(*base, "-o", str(tmp_path / "whole"))[0] == 0
    assert run(*base, "--crop-border", "8", "-o", str(tmp_path / "cropped"))[0] == 0

    def rows(folder: str) -> dict[str, dict[str, str]]:
        return {
            r["file"]: r for r in csv.DictReader(io.StringIO((tmp_path / folder / "scores.csv").read_text()))
        }

    whole, cropped = rows("whole"), rows("cropped")
    for name in ("0.png", "1.png", "2.png"):
        out = np.asarray(Image.open(folders / "close" / name), dtype=np.float64)[8:-8, 8:-8]
        ref = np.asarray(Image.open(folders / "ref" / name), dtype=np.float64)[8:-8, 8:-8]
        ycbcr = np.array([65.481, 128.553, 24.966]) / 255  # BT.601 studio-range Y of 0..255 values
        mse = np.mean(((out - ref) @ ycbcr / 255) ** 2)
        assert float(cropped[name]["psnr-y"]) == pytest.approx(10 * np.log10(1 / (mse + 1e-8)), abs=1e-4)
        assert float(cropped[name]["psnr-y"]) != pytest.approx(float(whole[name]["psnr-y"]), abs=1e-4)
        assert float(whole[name]["psnr-y"]) - float(whole[name]["psnr-y-full"]) == pytest.approx(
            20 * np.log10(255 / 219), abs=1e-3
        )
    table = (tmp_path / "cropped" / "table.md").read_text()
    assert "| PSNR-Y (YCbCr) ↑ |" in table and "studio range 16-235, as BasicSR" in table
    assert "8 px cropped off every side (--crop-border" in table
    assert "no border cropped" in (tmp_path / "whole" / "table.md").read_text()


def test_an_rgba_output_is_scored_with_a_note_on_its_alpha(folders, tmp_path):
    rgba = tmp_path / "rgba"
    rgba.mkdir()
    for name in ("0.png", "1.png", "2.png"):
        image = Image.open(folders / "close" / name).convert("RGBA")
        image.putalpha(128)
        image.save(rgba / name)
    out = tmp_path / "r"
    code, stdout, stderr = run(
        "eval",
        str(rgba),
        "--reference",
        str(folders / "ref"),
        "--metrics",
        "psnr-y",
        "-o",
        str(out),
        "--json",
    )
    assert code == 0, stderr
    notes = [json.loads(line).get("note") for line in stdout.splitlines() if '"event": "file"' in line]
    assert len(notes) == 3 and all(n and "alpha ignored (not composited)" in n for n in notes)
    rows = list(csv.DictReader(io.StringIO((out / "scores.csv").read_text())))
    assert all("alpha ignored" in row["note"] for row in rows)
    plain = run(
        "eval",
        str(folders / "close"),
        "--reference",
        str(folders / "ref"),
        "--metrics",
        "psnr-y",
        "-o",
        str(tmp_path / "plain"),
    )
    assert plain[0] == 0 and "note" not in (tmp_path / "plain" / "scores.csv").read_text().splitlines()[0]
    by_file = {row["file"]: float(row["psnr-y"]) for row in rows}
    plain_rows = csv.DictReader(io.StringIO((tmp_path / "plain" / "scores.csv").read_text()))
    assert by_file == {row["file"]: float(row["psnr-y"]) for row in plain_rows}  # the colour, as stored
    assert [line for line in stderr.splitlines() if "0.png" in line and "alpha ignored" in line]


def test_a_rerun_scores_only_what_is_missing(folders, tmp_path):
    out = tmp_path / "results"
    args = [
        "eval",
        str(folders / "close"),
        "--reference",
        str(folders / "ref"),
        "--metrics",
        "psnr-y",
        "-o",
        str(out),
        "--json",
    ]
    assert run(*args)[0] == 0
    code, stdout, _ = run(*args)
    summary = json.loads(stdout.splitlines()[-1])
    assert code == 0 and (summary["done"], summary["skipped"]) == (0, 3)
    assert len(list(csv.DictReader(io.StringIO((out / "scores.csv").read_text())))) == 3


def test_a_size_mismatch_fails_that_file_in_one_line(folders, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    Image.open(folders / "close" / "0.png").resize((64, 60)).save(small / "0.png")
    (small / "1.png").write_bytes((folders / "close" / "1.png").read_bytes())
    code, _, stderr = run(
        "eval",
        str(small),
        "--reference",
        str(folders / "ref"),
        "--metrics",
        "psnr-y",
        "-o",
        str(tmp_path / "r"),
    )
    assert code == 1
    errors = [line for line in stderr.splitlines() if "0.png" in line and "failed" in line]
    assert errors and "64x60" in errors[0] and "128x120" in errors[0]


def test_a_no_reference_metric_with_cached_parameters_offline(folders, tmp_path):
    root = niqe_cache(tmp_path / "cache")
    code, stdout, stderr = run(
        "eval",
        str(folders / "close"),
        "--metrics",
        "niqe",
        "-o",
        str(tmp_path / "r"),
        "--offline",
        "--cache-dir",
        str(root),
        "--json",
    )
    assert code == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    scores = [e["details"]["niqe"] for e in events if e["event"] == "file"]
    assert len(scores) == 3 and all(np.isfinite(scores))
    assert "NIQE ↓" in (tmp_path / "r" / "table.md").read_text()


def test_offline_with_an_empty_cache_exits_3_naming_the_metric(folders, tmp_path):
    code, _, stderr = run(
        "eval",
        str(folders / "close"),
        "--metrics",
        "niqe",
        "-o",
        str(tmp_path / "r"),
        "--offline",
        "--cache-dir",
        str(tmp_path / "empty"),
    )
    assert code == 3 and "metric niqe" in stderr and "weights download --metrics niqe" in stderr


def test_full_reference_metrics_need_a_reference(folders, tmp_path):
    code, _, stderr = run("eval", str(folders / "close"), "--metrics", "psnr-y", "-o", str(tmp_path / "r"))
    assert code == 2 and "--reference" in stderr


# ------------------------------------------------------------------------------ restore --score


def test_restore_score_puts_scores_in_events_and_worse_files_in_the_report(tiny_release, tmp_path):
    from tests.conftest import weight_args

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray((rng.random((100, 112, 3)) * 255).astype(np.uint8)).save(photos / "noise.png")
    root = niqe_cache(tmp_path / "cache")
    report = tmp_path / "report.json"
    code, stdout, stderr = run(
        "restore",
        str(photos),
        "-o",
        str(tmp_path / "out"),
        "--steps",
        "1",
        "--min-side",
        "0",
        "--device",
        "cpu",
        *weight_args(tiny_release),
        "--json",
        "--score",
        "niqe",
        "--offline",
        "--cache-dir",
        str(root),
        "--report",
        str(report),
    )
    assert code == 0, stderr
    event = next(json.loads(line) for line in stdout.splitlines() if '"event": "file"' in line)
    scores = event["details"]["scores"]
    assert set(scores) == {"input", "output"} and all(np.isfinite(scores[k]["niqe"]) for k in scores)
    worse = scores["output"]["niqe"] > scores["input"]["niqe"]  # NIQE: lower is better
    assert event["details"]["worse"] == (["niqe"] if worse else [])
    document = json.loads(report.read_text())
    assert [entry["source"] for entry in document["got_worse"]] == (
        [str(photos / "noise.png")] if worse else []
    )


def test_restore_score_offline_without_the_metric_is_a_setup_error(tiny_release, tmp_path):
    from tests.conftest import weight_args

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (64, 64), "gray").save(photos / "a.png")
    code, _, stderr = run(
        "restore",
        str(photos),
        "-o",
        str(tmp_path / "out"),
        *weight_args(tiny_release),
        "--score",
        "--offline",
        "--cache-dir",
        str(tmp_path / "empty"),
    )
    assert code == 3 and "metric niqe" in stderr
    assert run("restore", str(photos), "-o", str(tmp_path / "o"), "--score", "psnr-y")[0] == 2


def test_other_metrics_score_again_and_ambiguous_references_are_refused(folders, tmp_path):
    out = tmp_path / "r"
    base = ["eval", str(folders / "close"), "--reference", str(folders / "ref"), "-o", str(out), "--json"]
    assert run(*base, "--metrics", "psnr-y")[0] == 0
    code, stdout, _ = run(*base, "--metrics", "psnr-y,ssim")
    summary = json.loads(stdout.splitlines()[-1])
    assert code == 0 and summary["done"] == 3 and summary["skipped"] == 0
    assert all(row["ssim"] for row in csv.DictReader(io.StringIO((out / "scores.csv").read_text())))
    twice = tmp_path / "ref2"
    twice.mkdir()
    for name in ("0.png", "1.png", "2.png"):
        (twice / name).write_bytes((folders / "ref" / name).read_bytes())
    Image.open(folders / "ref" / "0.png").save(twice / "0.bmp")
    (tmp_path / "close").mkdir()
    Image.open(folders / "close" / "0.png").save(tmp_path / "close" / "0.jpg", quality=95)
    code, _, stderr = run(
        "eval",
        str(tmp_path / "close"),
        "--reference",
        str(twice),
        "--metrics",
        "psnr-y",
        "-o",
        str(tmp_path / "r2"),
    )
    assert code == 2 and "more than one reference" in stderr
