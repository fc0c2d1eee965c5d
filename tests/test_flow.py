"""The whole system as a user chains it (docs/flow.md): photos -> data filter -> data degrade ->
train (with validation) -> restore with the trained weights -> eval against the originals.

Each step reads exactly what the step before wrote, untouched; tiny random weights, CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import weight_args
from PIL import Image, ImageFilter

from lucidflux_cli.commands.main import main


def _texture(seed: int, size: int = 480) -> np.ndarray:
    """8-px blocks of random colour: sharp enough for the filter, not noise."""
    rng = np.random.default_rng(seed)
    return (np.kron(rng.random((size // 8, size // 8, 3)), np.ones((8, 8, 1))) * 255).astype(np.uint8)


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _summary(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_filter_degrade_train_restore_eval_chain(tiny_release, tmp_path):
    photos, val = tmp_path / "photos", tmp_path / "validation"
    photos.mkdir()
    val.mkdir()
    for seed in (1, 2):
        Image.fromarray(_texture(seed)).save(photos / f"photo{seed}.png")
    Image.fromarray(_texture(1)).filter(ImageFilter.GaussianBlur(6)).save(photos / "blurred.png")
    Image.fromarray(_texture(9, 64)).resize((32, 32)).save(val / "held-out.png")
    weights = weight_args(tiny_release)

    # 1. curate: the blurred photo is dropped, the two sharp ones kept
    curated = tmp_path / "curated.jsonl"
    code, out, err = _run(
        "data", "filter", photos, "-o", curated, "--iqa-metric", "none", "--min-bytes", "0", "--json"
    )
    assert code == 0, err
    assert _summary(out)["funnel"]["quality"] == 2  # kept after the last stage

    # 2. synthesise pairs from the filter's manifest
    pairs = tmp_path / "pairs"
    code, out, err = _run("data", "degrade", curated, "-o", pairs, "--passes", "1", "--seed", "3", "--json")
    assert code == 0, err
    assert _summary(out)["pairs"] == 2

    # 3. train on the folder degrade wrote, with a validation page
    run = tmp_path / "run"
    code, out, err = _run(
        "train",
        "--pairs",
        pairs,
        "-o",
        run,
        "--steps",
        "2",
        "--crop",
        "32",
        "--device",
        "cpu",
        "--seed",
        "5",
        "--validation",
        val,
        "--validate-every",
        "2",
        "--validation-steps",
        "1",
        "--validation-metrics",
        "none",
        "--json",
        *weights,
    )
    assert code == 0, err
    assert (run / "step-2.pth").is_file() and (run / "validation" / "step-2" / "held-out.png").is_file()

    # 4. restore the pairs' LQ images with the trained condition module, to the HQ size
    restored = tmp_path / "restored"
    restore_weights = [
        arg if arg != str(tiny_release.lucidflux) else str(run / "step-2.pth") for arg in weights
    ]
    code, out, err = _run(
        "restore",
        pairs / "lq",
        "-o",
        restored,
        "--scale",
        "4",
        "--steps",
        "1",
        "--device",
        "cpu",
        "--json",
        *restore_weights,
    )
    assert code == 0, err
    assert _summary(out)["done"] == 2

    # 5. score the restorations against the pairs' HQ originals
    results = tmp_path / "results"
    code, out, err = _run(
        "eval",
        restored,
        "--reference",
        pairs / "hq",
        "--metrics",
        "psnr-y,ssim",
        "-o",
        results,
        "--device",
        "cpu",
        "--json",
    )
    assert code == 0, err
    rows = (results / "scores.csv").read_text().splitlines()
    assert len(rows) == 3  # a header and one row per restored pair
