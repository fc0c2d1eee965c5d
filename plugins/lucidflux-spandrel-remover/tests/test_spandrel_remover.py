"""End-to-end: the installed plugin, chosen with --remover spandrel, restores through the real CLI.

The model files are tiny but real: spandrel's own architecture classes (ESRGAN's RRDBNet at 2x,
NAFNet at 1x) saved as state dicts, as their trainers release them. LucidFlux itself runs on
the tiny random weights of the main test suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import piexif
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests"))  # the main suite's fixtures: tiny weights, image makers

from make_images import make_jpeg_exif, rgb_pattern  # noqa: E402
from plugin_testing import FAST, require_installed, shared_release  # noqa: E402
from tiny_weights import TinyRelease  # noqa: E402

from lucidflux_cli import plugins  # noqa: E402
from lucidflux_cli.commands.main import main  # noqa: E402
from lucidflux_cli.model import removers  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))
require_installed("lucidflux.removers", "spandrel", "lucidflux-spandrel-remover")


@pytest.fixture(scope="session")
def release(tmp_path_factory) -> TinyRelease:
    return shared_release(tmp_path_factory)


def lucidflux_args(release: TinyRelease) -> list[str]:
    """Every LucidFlux weight but SwinIR: the spandrel remover needs none."""
    return [
        "--flux",
        str(release.flux),
        "--ae",
        str(release.ae),
        "--lucidflux",
        str(release.lucidflux),
        "--siglip",
        str(release.siglip),
        "--prompt-embeddings",
        str(release.prompt_embeddings),
    ]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.NAFNet import NAFNet

    folder = tmp_path_factory.mktemp("spandrel-models")
    torch.manual_seed(0)
    esrgan = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2)
    nafnet = NAFNet(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1], dec_blk_nums=[1])
    gray = ESRGAN(in_nc=1, out_nc=1, num_filters=8, num_blocks=1, scale=1)
    paths = {
        "esrgan": folder / "2x_tiny_esrgan.pth",
        "nafnet": folder / "tiny_nafnet.pth",
        "gray": folder / "1x_gray.pth",
        "junk": folder / "junk.pth",
    }
    torch.save(esrgan.state_dict(), paths["esrgan"])
    torch.save({"params": nafnet.state_dict()}, paths["nafnet"])  # BasicSR's release layout
    torch.save(gray.state_dict(), paths["gray"])
    torch.save({"not": torch.zeros(3)}, paths["junk"])
    return paths


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_listed_as_a_loaded_plugin_of_its_distribution():
    plugin = plugins.registry(plugins.REMOVERS).get("spandrel")
    assert plugin.error is None
    assert plugin.distribution == "lucidflux-spandrel-remover" and plugin.version == "0.1.0"
    result = run("plugins", "info", "spandrel")
    assert result.exit_code == 0, result.output
    assert "model:" in result.output and "lucidflux-spandrel-remover 0.1.0" in result.output


@pytest.mark.parametrize("model", ["esrgan", "nafnet"])
def test_restore_through_the_cli(model, models, release, tmp_path, monkeypatch):
    # An empty cache and --offline: the run must need nothing beyond the files given (no SwinIR).
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    photo = make_jpeg_exif(tmp_path / "in" / "photo.jpg", orientation=1, size=(48, 32))
    out = tmp_path / "out"
    result = run(
        "restore",
        str(photo),
        "-o",
        str(out),
        *FAST,
        *lucidflux_args(release),
        "--offline",
        "--remover",
        "spandrel",
        "--remover-option",
        f"model={models[model]}",
    )
    assert result.exit_code == 0, result.output
    restored = Image.open(out / "photo.jpg")
    assert restored.size == (48, 32)
    comment = piexif.load(restored.info["exif"])["Exif"][piexif.ExifIFD.UserComment]
    assert b"Remover: spandrel" in comment


def test_super_resolution_output_is_brought_back_to_the_input_size(models):
    remover = removers.create("spandrel", {"model": str(models["esrgan"])})
    loaded = removers.load(remover, {}, torch.device("cpu"))
    x = torch.from_numpy(rgb_pattern(30, 20).astype(np.float32) / 255).permute(2, 0, 1)[None]
    y = loaded(torch.cat([x, x.flip(-1)]))  # a batch of two
    assert y.shape == (2, 3, 20, 30) and y.min() >= 0 and y.max() <= 1
    assert loaded.tileable and loaded.multiple_of == 1


def test_option_errors_are_usage_errors_before_any_model_loads(tmp_path, models):
    photo = make_jpeg_exif(tmp_path / "in" / "photo.jpg", orientation=1, size=(48, 32))
    base = ["restore", str(photo), "-o", str(tmp_path / "out"), *FAST, "--remover", "spandrel"]
    missing = run(*base)
    assert missing.exit_code == 2 and "remover plugin 'spandrel'" in missing.output
    assert "model=PATH is required" in missing.output
    absent = run(*base, "--remover-option", f"model={tmp_path / 'nope.pth'}")
    assert absent.exit_code == 2 and "model file not found" in absent.output
    wrong = run(*base, "--remover-option", f"model={models['nafnet']}", "--remover-option", "precision=fp8")
    assert wrong.exit_code == 2 and "precision must be one of" in wrong.output


@pytest.mark.parametrize("model, cause", [("gray", "RGB to RGB"), ("junk", "loading failed")])
def test_unusable_model_files_are_setup_errors(model, cause, models, release, tmp_path):
    photo = make_jpeg_exif(tmp_path / "in" / "photo.jpg", orientation=1, size=(48, 32))
    result = run(
        "restore",
        str(photo),
        "-o",
        str(tmp_path / "out"),
        *FAST,
        *lucidflux_args(release),
        "--remover",
        "spandrel",
        "--remover-option",
        f"model={models[model]}",
    )
    assert result.exit_code == 3, result.output
    assert "remover 'spandrel'" in result.output and cause in result.output
