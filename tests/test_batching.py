"""--batch-size: same-size images restored together equal one-at-a-time restores (CPU, tiny weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import weight_args
from make_images import make_truncated_jpeg, rgb_pattern
from PIL import Image

from lucidflux_cli.commands.main import main
from lucidflux_cli.imageio.discovery import InputFile
from lucidflux_cli.model.pipeline import LucidFluxPipeline, RestoreSettings
from lucidflux_cli.restore import batch

FAST = ["--steps", "2", "--device", "cpu", "--min-side", "0"]
SETTINGS = RestoreSettings(steps=2, seed=5)


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def to8(pixels: np.ndarray) -> np.ndarray:
    return (pixels * 255 + 0.5).clip(0, 255).astype(np.uint8)


def events(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"event": "file"')]


@pytest.fixture
def batch_sizes(monkeypatch) -> list[int]:
    """Images per restore (one model call per stage and step when untiled), for every restore the
    pipeline runs."""
    seen: list[int] = []
    restore = LucidFluxPipeline._restore

    def spy(self, images, *args):
        seen.append(len(images))
        return restore(self, images, *args)

    monkeypatch.setattr(LucidFluxPipeline, "_restore", spy)
    return seen


def test_restore_batch_equals_single_restores(tiny_pipeline, batch_sizes):
    images = [Image.fromarray(rgb_pattern(48, 32, seed=seed)) for seed in range(3)]
    batched = tiny_pipeline.restore_batch(images, (48, 32), SETTINGS)
    singles = [tiny_pipeline(image, size=(48, 32), settings=SETTINGS) for image in images]
    assert batch_sizes == [3, 1, 1, 1]
    for together, alone in zip(batched, singles, strict=True):
        assert together.shape == alone.shape == (32, 48, 3) and together.dtype == np.float32
        assert np.abs(together - alone).max() <= 1e-5  # measured on CPU float32: about 1e-6
        assert np.abs(to8(together).astype(int) - to8(alone).astype(int)).max() <= 1  # measured: identical
    assert np.abs(batched[0] - batched[1]).mean() > 1 / 255  # each image really is its own


def test_restore_batch_of_one_is_the_single_restore(tiny_pipeline):
    image = Image.fromarray(rgb_pattern(48, 32, seed=7))
    [together] = tiny_pipeline.restore_batch([image], (48, 32), SETTINGS)
    assert np.array_equal(together, tiny_pipeline(image, size=(48, 32), settings=SETTINGS))


def _mixed_folder(root: Path) -> list[str]:
    """Discovery order: three 48x32, one 32x48, two 48x32 -> groups of 3, 1, 2 with --batch-size 3."""
    sizes = [(48, 32), (48, 32), (48, 32), (32, 48), (48, 32), (48, 32)]
    names = []
    for index, (width, height) in enumerate(sizes):
        names.append(f"{index}.png")
        Image.fromarray(rgb_pattern(width, height, seed=index)).save(root / names[-1])
    return names


@pytest.mark.slow
def test_mixed_sizes_through_the_cli_match_one_at_a_time(tmp_path, tiny_release, batch_sizes):
    (tmp_path / "in").mkdir()
    names = _mixed_folder(tmp_path / "in")
    one = run("restore", str(tmp_path / "in"), "-o", str(tmp_path / "one"), *FAST, *weight_args(tiny_release))
    assert one.exit_code == 0, one.output
    assert batch_sizes == [1] * 6
    batch_sizes.clear()
    three = run(
        "restore",
        str(tmp_path / "in"),
        "-o",
        str(tmp_path / "three"),
        *FAST,
        "--batch-size",
        "3",
        "--json",
        *weight_args(tiny_release),
    )
    assert three.exit_code == 0, three.output
    assert batch_sizes == [3, 1, 2]
    assert [Path(e["source"]).name for e in events(three.stdout)] == names  # reported in discovery order
    for name in names:
        alone = np.asarray(Image.open(tmp_path / "one" / name)).astype(int)
        together = np.asarray(Image.open(tmp_path / "three" / name)).astype(int)
        assert alone.shape == together.shape and np.abs(alone - together).max() <= 1


def test_batch_size_from_the_environment(tmp_path, tiny_release, batch_sizes, monkeypatch):
    (tmp_path / "in").mkdir()
    _mixed_folder(tmp_path / "in")
    monkeypatch.setenv("LUCIDFLUX_BATCH_SIZE", "2")
    result = run(
        "restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *FAST, *weight_args(tiny_release)
    )
    assert result.exit_code == 0, result.output
    assert batch_sizes == [2, 1, 1, 2]


def test_a_broken_file_inside_a_group_fails_alone(tmp_path, tiny_release, batch_sizes):
    (tmp_path / "in").mkdir()
    for index in (0, 2, 3):
        Image.fromarray(rgb_pattern(48, 32, seed=index)).save(tmp_path / "in" / f"{index}.png")
    make_truncated_jpeg(tmp_path / "in" / "1.jpg")
    result = run(
        "restore",
        str(tmp_path / "in"),
        "-o",
        str(tmp_path / "out"),
        *FAST,
        "--batch-size",
        "3",
        "--json",
        *weight_args(tiny_release),
    )
    assert result.exit_code == 1
    status = {Path(e["source"]).name: e["status"] for e in events(result.stdout)}
    assert status == {"0.png": "done", "1.jpg": "failed", "2.png": "done", "3.png": "done"}
    assert batch_sizes == [3]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.*g")) == ["0.png", "2.png", "3.png"]


def test_a_model_error_on_one_image_of_a_group_fails_only_that_file(
    tmp_path, tiny_release, batch_sizes, monkeypatch
):
    (tmp_path / "in").mkdir()
    for index in range(3):
        pixels = rgb_pattern(48, 32, seed=index) if index != 1 else np.full((32, 48, 3), 90, np.uint8)
        Image.fromarray(pixels).save(tmp_path / "in" / f"{index}.png")
    remove = LucidFluxPipeline.remove

    def picky_remover(self, x):  # a remover that rejects flat images, whatever batch they come in
        if any(bool(item.max() == item.min()) for item in x):
            raise ValueError("flat image")
        return remove(self, x)

    monkeypatch.setattr(LucidFluxPipeline, "remove", picky_remover)
    result = run(
        "restore",
        str(tmp_path / "in"),
        "-o",
        str(tmp_path / "out"),
        *FAST,
        "--batch-size",
        "3",
        "--json",
        *weight_args(tiny_release),
    )
    assert result.exit_code == 1
    found = {Path(e["source"]).name: e for e in events(result.stdout)}
    assert {name: e["status"] for name, e in found.items()} == {
        "0.png": "done",
        "1.png": "failed",
        "2.png": "done",
    }
    assert "flat image" in found["1.png"]["error"]
    assert batch_sizes == [3, 1, 1, 1]  # the group, then one at a time


@pytest.mark.parametrize("args", [["--batch-size", "0"], ["--batch-size", "2", "--devices", "cpu,cpu"]])
def test_usage_errors(tmp_path, args):
    Image.fromarray(rgb_pattern(48, 32)).save(tmp_path / "a.png")
    result = run("restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), *FAST, *args)
    assert result.exit_code == 2 and "--batch-size" in result.output


def test_batch_size_under_torchrun_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    Image.fromarray(rgb_pattern(48, 32)).save(tmp_path / "a.png")
    result = run("restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), *FAST, "--batch-size", "2")
    assert result.exit_code == 2 and "torchrun" in result.output


def _item(root: Path, name: str) -> InputFile:
    return InputFile(root / name, Path(name))


def test_batch_layer_groups_by_processing_size_and_retries_one_by_one(tmp_path):
    for index, size in enumerate([(48, 32), (48, 32), (32, 48), (48, 32)]):
        Image.fromarray(rgb_pattern(*size, seed=index)).save(tmp_path / f"{index}.png")
    calls: list[tuple[str, int]] = []

    class Restorer:
        def __call__(self, image, size, on_step):
            calls.append(("one", 1))
            if image.size == (32, 48):  # the one 32x48 image is "bad"
                raise RuntimeError("bad pixels")
            return np.full((size[1], size[0], 3), 0.5, np.float32)

        def batch(self, images, size, on_step):
            calls.append(("batch", len(images)))
            return [np.full((size[1], size[0], 3), 0.5, np.float32) for _ in images]

    options = batch.OutputOptions(out_dir=tmp_path / "out", min_side=0)
    items = [_item(tmp_path, f"{index}.png") for index in range(4)]
    report = batch.restore_files(items, Restorer, options, {}, batch_size=4)
    assert [r.status for r in report.results] == ["done", "done", "failed", "done"]
    assert calls == [("batch", 2), ("one", 1), ("one", 1)]  # groups: [0, 1], [2], [3]
    assert all(r.seconds > 0 for r in report.results)
