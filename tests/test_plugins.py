"""The plugin registry: built-ins through entry points, broken plugins contained, options, weights.

Third-party plugins here are real entry points: a throw-away distribution (a ``*.dist-info``
folder with METADATA and entry_points.txt, plus its modules) put on ``sys.path``, exactly what
``pip install`` leaves behind.
"""

from __future__ import annotations

import json
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import weight_args
from PIL import Image
from test_weights import cache, hub, registry  # noqa: F401 (fixtures: a local fake hub)

from lucidflux_cli import plugins
from lucidflux_cli.commands.main import main
from lucidflux_cli.imageio import formats, media
from lucidflux_cli.model import removers

FAST = ["--steps", "1", "--device", "cpu", "--min-side", "0"]  # restore at the input size
BUILTIN_REMOVERS = {"swinir", "none"}
BUILTIN_FORMATS = {"png", "jpeg", "webp", "tiff", "heif", "avif", "bmp", "ppm", "tga", "jpeg2000"}

TEST_PLUGINS = """
from lucidflux_cli.imageio.formats import FormatCapabilities, OutputFormat
from lucidflux_cli.model.removers import Remover, RemoverModel
from lucidflux_cli.weights import WeightFile


def not_a_class():
    return None


class FailsOnBrightImages(Remover):
    summary = "raises while processing bright images"

    def load(self, weights, device):
        return RemoverModel(run=_fail_if_bright)


def _fail_if_bright(x):
    if x.mean() > 0.5:
        raise ValueError("too bright for this remover")
    return x


class NeedsOwnWeights(Remover):
    def weights(self):
        return (WeightFile("test-own-model", "someone/own-model", "model.pth"),)

    def load(self, weights, device):
        raise AssertionError("never reached offline")


class FailingFormat(OutputFormat):
    capabilities = FormatCapabilities((".fail",))

    def write(self, fp, image):
        fp.write(b"half")
        raise ValueError("encoder exploded")


class BadCapabilities(OutputFormat):
    capabilities = FormatCapabilities(("fail",))

    def write(self, fp, image):
        pass


class Shadow(Remover):
    def load(self, weights, device):
        return RemoverModel(run=lambda x: x)
"""

ENTRY_POINTS = {
    "lucidflux.removers": {
        "broken_import": "lucidflux_test_broken:Anything",
        "not_a_class": "lucidflux_test_plugins:not_a_class",
        "fails_inside": "lucidflux_test_plugins:FailsOnBrightImages",
        "needs_weights": "lucidflux_test_plugins:NeedsOwnWeights",
    },
    "lucidflux.formats": {
        "broken_format": "lucidflux_test_broken:Anything",
        "failing": "lucidflux_test_plugins:FailingFormat",
        "bad_caps": "lucidflux_test_plugins:BadCapabilities",
    },
}
MODULES = {
    "lucidflux_test_plugins": TEST_PLUGINS,
    "lucidflux_test_broken": "raise RuntimeError('boom at import')\n",
}


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write_distribution(
    root: Path, name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]
) -> Path:
    """What pip leaves for an installed package: its modules and NAME-VERSION.dist-info/."""
    info = root / f"{name.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
    sections = [
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items())
        for group, points in entry_points.items()
    ]
    (info / "entry_points.txt").write_text("\n".join(sections))
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    return root


@pytest.fixture
def installed(tmp_path):
    """Install distributions (on sys.path) for one test; the registry is rediscovered around it."""
    added: list[str] = []

    def install(
        name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str] | None = None
    ) -> None:
        folder = write_distribution(tmp_path / name, name, entry_points, modules or {})
        sys.path.insert(0, str(folder))
        added.append(str(folder))
        plugins.clear_cache()

    yield install
    for folder in added:
        sys.path.remove(folder)
    for module in MODULES:
        sys.modules.pop(module, None)
    plugins.clear_cache()


@pytest.fixture
def test_plugins(installed):
    installed("lucidflux-test-plugins", ENTRY_POINTS, MODULES)


def bright_and_dark(folder: Path) -> Path:
    folder.mkdir(parents=True)
    Image.fromarray(np.full((32, 48, 3), 20, np.uint8)).save(folder / "dark.png")
    Image.fromarray(np.full((32, 48, 3), 235, np.uint8)).save(folder / "bright.png")
    return folder


def events(result) -> dict[str, dict]:
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {Path(e["source"]).name: e for e in lines if e["event"] == "file"}


# ----------------------------------------------------------------------------- built-ins


def test_builtins_are_entry_points_of_this_distribution():
    for group, names in ((plugins.REMOVERS, BUILTIN_REMOVERS), (plugins.FORMATS, BUILTIN_FORMATS)):
        points = {ep.name: ep for ep in metadata.entry_points(group=group)}
        assert names <= set(points), "pip install -e . (the built-ins are entry points of lucidflux-cli)"
        for name in names:
            assert points[name].dist.metadata["Name"] == "lucidflux-cli"
            plugin = plugins.registry(group).get(name)
            assert plugin.distribution == "lucidflux-cli" and plugin.target == points[name].value


def test_there_is_no_second_path_to_the_builtins(monkeypatch, tmp_path):
    # With no entry points at all, nothing is left: no remover, no format, no extension.
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: metadata.EntryPoints(()))
    plugins.clear_cache()
    try:
        assert plugins.all_plugins() == []
        with pytest.raises(plugins.PluginError, match="no such remover is installed"):
            removers.create("swinir")
        assert dict(formats.EXTENSIONS) == {} and "png" not in formats.EXTENSIONS
        with pytest.raises(ValueError, match="unsupported output format"):
            formats.output_format_for("png", "png")
        result = run("restore", str(tmp_path), "-o", str(tmp_path / "out"), "--dry-run")
        assert result.exit_code == 2 and "remover plugin 'swinir' cannot be used" in result.output
    finally:
        monkeypatch.undo()
        plugins.clear_cache()
    assert removers.create("swinir").name == "swinir"


def test_extensions_come_from_format_capabilities():
    assert formats.EXTENSIONS["jpeg"] == ".jpg" and formats.EXTENSIONS["tiff"] == ".tif"
    assert formats.EXTENSIONS["jpg"] == ".jpg"  # aliases resolve before the registry is asked
    assert set(formats.names()) <= set(formats.EXTENSIONS) and "gif" not in formats.EXTENSIONS


def test_plugins_list_and_info_show_the_builtins():
    listed = json.loads(run("plugins", "list", "--json").stdout)
    by_name = {row["name"]: row for row in listed}
    assert {"swinir", "none", "png", "tiff"} <= set(by_name)
    assert by_name["swinir"]["group"] == "remover" and by_name["png"]["group"] == "format"
    assert by_name["png"]["distribution"] == "lucidflux-cli" and by_name["png"]["status"] == "loaded"
    table = run("plugins", "list").stdout
    assert table.splitlines()[0].split() == ["NAME", "GROUP", "DISTRIBUTION", "STATUS"]
    info = run("plugins", "info", "tiff")
    assert info.exit_code == 0 and ".tif .tiff" in info.stdout and "bits:" in info.stdout
    swinir = run("plugins", "info", "swinir", "--json")
    assert "lxq007/DiffBIR" in json.loads(swinir.stdout)[0]["weights"][0]
    unknown = run("plugins", "info", "nope")
    assert unknown.exit_code == 2 and "no plugin called 'nope'" in unknown.output


def test_remover_weights_are_only_what_the_chosen_remover_needs():
    assert [w.name for w in removers.run_weights(removers.create("swinir"))] == [
        *removers.CORE_WEIGHTS,
        "swinir",
    ]
    assert [w.name for w in removers.run_weights(removers.create("none"))] == list(removers.CORE_WEIGHTS)
    from lucidflux_cli.weights import REGISTRY

    assert {*removers.CORE_WEIGHTS, "swinir"} == {
        name for name, entry in REGISTRY.items() if not entry.optional
    }


def test_remover_model_checks_the_contract():
    model = removers.RemoverModel(run=lambda x: x[..., :2, :], name="cropper")
    with pytest.raises(removers.RemoverFailed, match="remover 'cropper' returned"):
        model(torch.zeros(1, 3, 4, 4))
    with pytest.raises(removers.RemoverFailed, match="remover 'boom' failed: ZeroDivisionError"):
        removers.RemoverModel(run=lambda x: 1 / 0, name="boom")(torch.zeros(1, 3, 4, 4))


# ---------------------------------------------------------------------- options, --remover none


def test_option_errors_are_usage_errors(tmp_path):
    base = ["restore", str(tmp_path), "-o", str(tmp_path / "out"), "--dry-run"]
    unknown = run(*base, "--remover-option", "strength=2")
    assert (
        unknown.exit_code == 2
        and "remover plugin 'swinir' cannot be used: unknown option(s) strength" in unknown.output
    )
    malformed = run(*base, "--remover-option", "strength")
    assert malformed.exit_code == 2 and "expected KEY=VALUE" in malformed.output
    same = run(*base, "--format-option", "bits=16")
    assert same.exit_code == 2 and "--format-option needs an explicit --format" in same.output
    bits = run(*base, "--format", "jpeg", "--format-option", "bits=16")
    assert (
        bits.exit_code == 2 and "format plugin 'jpeg' cannot be used: unknown option(s) bits" in bits.output
    )
    depth = run(*base, "--format", "tif", "--format-option", "bits=12")
    assert depth.exit_code == 2 and "bits must be one of 8, 16" in depth.output
    assert run(*base, "--remover", "missing").exit_code == 2


def test_remover_none_needs_no_swinir_and_format_options_reach_the_writer(tmp_path, tiny_release):
    source = bright_and_dark(tmp_path / "in")
    args = weight_args(tiny_release)
    del args[args.index("--swinir") : args.index("--swinir") + 2]  # not given, not cached, not needed
    result = run(
        "restore",
        str(source / "dark.png"),
        "-o",
        str(tmp_path / "out"),
        *FAST,
        *args,
        "--offline",
        "--cache-dir",
        str(tmp_path / "empty-cache"),
        "--remover",
        "none",
        "--format",
        "png",
        "--format-option",
        "bits=16",
    )
    assert result.exit_code == 0, result.output
    written = media.read_image(tmp_path / "out" / "dark.png")
    assert written.metadata.bit_depth == 16 and written.size == (48, 32)  # an 8-bit source, written 16-bit
    assert "Remover: none" in Image.open(tmp_path / "out" / "dark.png").info["Comment"]


# --------------------------------------------------------------------------- broken plugins


def test_broken_plugins_are_listed_with_their_errors(test_plugins):
    listed = {row["name"]: row for row in json.loads(run("plugins", "list", "--json").stdout)}
    assert listed["broken_import"]["status"] == "failed"
    assert (
        listed["broken_import"]["error"]
        == "cannot import lucidflux_test_broken:Anything (RuntimeError: boom at import)"
    )
    assert listed["broken_import"]["distribution"] == "lucidflux-test-plugins"
    assert "not a subclass of the remover contract class" in listed["not_a_class"]["error"]
    assert "extensions must be like" in listed["bad_caps"]["error"]
    assert listed["broken_format"]["status"] == "failed"
    assert listed["fails_inside"]["status"] == "loaded" and listed["swinir"]["status"] == "loaded"
    table = run("plugins", "list")
    assert table.exit_code == 0 and "failed: cannot import lucidflux_test_broken" in table.stdout
    info = run("plugins", "info", "broken_import")
    assert (
        info.exit_code == 1 and "RuntimeError: boom at import" in info.stdout and "Traceback" in info.stdout
    )
    assert "failing" not in formats.EXTENSIONS or formats.EXTENSIONS["failing"] == ".fail"
    assert "bad_caps" not in formats.EXTENSIONS and "broken_format" not in formats.EXTENSIONS


def test_choosing_a_broken_plugin_is_a_usage_error_naming_it(test_plugins, tmp_path):
    base = ["restore", str(tmp_path), "-o", str(tmp_path / "out")]
    remover = run(*base, "--remover", "broken_import")
    assert remover.exit_code == 2
    assert (
        "remover plugin 'broken_import' cannot be used: cannot import lucidflux_test_broken:Anything "
        "(RuntimeError: boom at import)"
    ) in remover.output
    wrong = run(*base, "--remover", "not_a_class")
    assert wrong.exit_code == 2 and "not_a_class" in wrong.output and "is a function" in wrong.output
    fmt = run(*base, "--format", "broken_format")
    assert fmt.exit_code == 2 and "format plugin 'broken_format' cannot be used" in fmt.output
    assert not (tmp_path / "out").exists()


def test_builtins_still_restore_while_a_broken_plugin_is_installed(test_plugins, tmp_path, tiny_release):
    source = bright_and_dark(tmp_path / "in")
    result = run(
        "restore", str(source / "dark.png"), "-o", str(tmp_path / "out"), *FAST, *weight_args(tiny_release)
    )
    assert result.exit_code == 0, result.output
    assert media.read_image(tmp_path / "out" / "dark.png").size == (48, 32)


def test_a_remover_raising_while_processing_fails_that_file_only(test_plugins, tmp_path, tiny_release):
    source = bright_and_dark(tmp_path / "in")
    result = run(
        "restore",
        str(source),
        "-o",
        str(tmp_path / "out"),
        *FAST,
        *weight_args(tiny_release),
        "--remover",
        "fails_inside",
        "--json",
    )
    assert result.exit_code == 1, result.output
    by_file = events(result)
    assert by_file["dark.png"]["status"] == "done"
    assert by_file["bright.png"]["status"] == "failed"
    assert "remover 'fails_inside' failed: ValueError: too bright" in by_file["bright.png"]["error"]
    assert str(source / "bright.png") in by_file["bright.png"]["error"]


def test_a_format_raising_while_writing_fails_that_file_and_leaves_nothing(
    test_plugins, tmp_path, tiny_release
):
    source = bright_and_dark(tmp_path / "in")
    result = run(
        "restore",
        str(source / "dark.png"),
        "-o",
        str(tmp_path / "out"),
        *FAST,
        *weight_args(tiny_release),
        "--format",
        "failing",
        "--json",
    )
    assert result.exit_code == 1, result.output
    error = events(result)["dark.png"]["error"]
    assert "format 'failing': ValueError: encoder exploded" in error
    assert [p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")] == []


def test_weights_of_a_plugin_honour_offline(test_plugins, tmp_path, tiny_release):
    source = bright_and_dark(tmp_path / "in")
    result = run(
        "restore",
        str(source / "dark.png"),
        "-o",
        str(tmp_path / "out"),
        *FAST,
        *weight_args(tiny_release),
        "--remover",
        "needs_weights",
        "--offline",
        "--cache-dir",
        str(tmp_path / "empty-cache"),
    )
    assert result.exit_code == 3
    assert "someone/own-model:model.pth" in result.output and "offline" in result.output


def test_weights_download_fetches_what_a_plugin_declares(test_plugins, registry, hub, cache):  # noqa: F811
    hub.add_repo("someone/own-model", {"model.pth": b"plugin weights"})
    result = run("weights", "download", "-q", "--cache-dir", str(cache), "--remover", "needs_weights")
    assert result.exit_code == 0, result.output
    fetched = dict(line.split("\t") for line in result.output.splitlines() if "\t" in line)
    assert set(fetched) == {
        "flux",
        "ae",
        "lucidflux",
        "siglip",
        "prompt_embeddings",
        "test-own-model",
    }  # no swinir
    assert Path(fetched["test-own-model"]).read_bytes() == b"plugin weights"
    both = run("weights", "download", "flux", "--remover", "needs_weights")
    assert both.exit_code == 2 and "not two of them" in both.output
    broken = run("weights", "download", "--remover", "broken_import")
    assert (
        broken.exit_code == 2
        and "remover plugin 'broken_import' cannot be used: " in broken.output
        and "boom at import" in broken.output
    )


def test_two_distributions_claiming_one_name_are_both_refused(installed, tmp_path):
    installed(
        "lucidflux-shadow", {"lucidflux.removers": {"swinir": "lucidflux_test_plugins:Shadow"}}, MODULES
    )
    clash = run("restore", str(tmp_path), "-o", str(tmp_path / "out"), "--dry-run")
    assert clash.exit_code == 2
    assert "'swinir' is registered by both" in clash.output
    assert "lucidflux-shadow 0.0.1" in clash.output and "lucidflux-cli" in clash.output
