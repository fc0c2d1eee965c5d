"""The shared runner: one settings type behind every option, one run loop, failures that are bugs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
import numpy as np
from click.testing import CliRunner
from PIL import Image

from lucidflux_cli import atomic
from lucidflux_cli.commands.main import main
from lucidflux_cli.commands.restore import restore as restore_command
from lucidflux_cli.restore import restorer
from lucidflux_cli.restore import settings as restore_settings
from lucidflux_cli.restore.settings import RestoreRequest
from lucidflux_cli.runner import settings
from lucidflux_cli.runner.settings import WEIGHT_OPTIONS


def _click_params() -> dict[str, click.Parameter]:
    return {param.name: param for param in restore_command.params if param.name not in ("help", "config")}


def test_every_restore_option_is_one_settings_field_with_the_same_default():
    params = _click_params()
    fields = {item.name: (item, spec) for item, spec in settings.options(RestoreRequest)}
    assert set(params) == set(fields) | set(WEIGHT_OPTIONS)  # nothing declared outside the settings type
    for name, (item, spec) in fields.items():
        param = params[name]
        if spec.argument:
            assert isinstance(param, click.Argument) and param.required
            continue
        default = settings.default_of(item)
        assert param.default == (() if spec.multiple else default), name
        assert param.opts == list(spec.long_names(name)) or set(param.opts) == set(spec.long_names(name)), (
            name
        )
        assert bool(param.is_flag) == spec.flag, name
        assert param.help == spec.help, name
    assert set(dataclasses.asdict(RestoreRequest(inputs=[], out_dir=Path("o")))) - set(fields) == {
        "weights",
        "progress",
    }


def test_sampling_defaults_are_the_reference_scripts():
    # The published inference script samples 20 steps at guidance 4.0 with seed 123456789; the
    # pipeline must get exactly those when no option is given.
    sampling = RestoreRequest(inputs=[], out_dir=Path("out")).sampling()
    assert (sampling.steps, sampling.guidance, sampling.seed, sampling.color_fix) == (
        20,
        4.0,
        123456789,
        "wavelet",
    )


def test_key_value_and_tile_size_parsing():
    assert settings.parse_key_values(["a=1", " b = x=y "]) == {"a": "1", "b": "x=y"}
    assert (
        restore_settings.parse_tile_size("AUTO") == "auto"
        and restore_settings.parse_tile_size("1536") == 1536
    )
    for bad in (
        lambda: settings.parse_key_values(["novalue"]),
        lambda: restore_settings.parse_tile_size("big"),
    ):
        try:
            bad()
        except ValueError:
            continue
        raise AssertionError("accepted a malformed value")


def _photo(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_a_killed_runs_temp_files_in_sub_folders_are_removed_by_the_rerun(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    _photo(source / "1987" / "a.png")
    _photo(source / "1987" / "deep" / "b.png", seed=1)
    for done in ("1987/a.png", "1987/deep/b.png"):  # what the killed run finished
        _photo(out / done, seed=9)
    leftovers = [
        out / "1987" / ".a.png.lfxabcd1234.tmp",
        out / "1987" / "deep" / ".b.png.lfx_zzz9999.tmp",
        out / ".c.png.lfxqwertyui.tmp",
    ]
    for temp in leftovers:
        temp.write_bytes(b"half an image")
        assert atomic.is_temp_name(temp.name)
    keep = out / "1987" / "notes.tmp"  # not ours: never touched
    keep.write_text("mine")
    result = CliRunner().invoke(
        main, ["restore", str(source), "-o", str(out), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["skipped"] == 2
    assert [p for p in out.rglob("*") if atomic.is_temp_name(p.name)] == []
    assert keep.read_text() == "mine"


class _BuggyRestorer:
    """Stands in for the model: a bug on the second image, correct pixels otherwise."""

    def __init__(self):
        self.calls = 0

    def __call__(self, image, size, on_step=None):
        self.calls += 1
        if self.calls == 2:
            return {}["missing key"]  # a KeyError: no input can cause this, only our code
        return np.zeros((size[1], size[0], 3), dtype=np.float32)


def test_a_failure_from_a_bug_keeps_its_traceback_and_counts_as_a_bug(tmp_path, monkeypatch):
    source, out = tmp_path / "in", tmp_path / "out"
    for index in range(3):
        _photo(source / f"{index}.png", seed=index)
    (source / "3-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    monkeypatch.setattr(restorer, "build_restorer", lambda request: _BuggyRestorer())
    log_file, report = tmp_path / "run.log", tmp_path / "report.json"
    args = ["restore", str(source), "-o", str(out), "--min-side", "0", "--json", "--report", str(report)]
    quiet = CliRunner().invoke(main, [*args, "--log-file", str(log_file)], catch_exceptions=False)
    assert quiet.exit_code == 1
    assert "Traceback" not in quiet.stderr  # the terminal gets one line per failure without -v
    assert "1.png: KeyError: 'missing key'" in quiet.stderr
    logged = log_file.read_text()
    assert "Traceback (most recent call last)" in logged and 'return {}["missing key"]' in logged
    document = json.loads(report.read_text())
    entries = {Path(entry["source"]).name: entry for entry in document["files"]}
    assert entries["1.png"]["bug"] is True and "KeyError" in entries["1.png"]["traceback"]
    assert (
        "bug" not in entries["3-broken.png"] and "traceback" not in entries["3-broken.png"]
    )  # bad input, not a bug
    assert document["bugs"] == 1 and document["failed"] == 2 and document["done"] == 2
    events = [json.loads(line) for line in quiet.stdout.splitlines()]
    assert all("traceback" not in event for event in events)

    verbose = CliRunner().invoke(main, [*args, "--overwrite", "-v"], catch_exceptions=False)
    assert verbose.exit_code == 1 and "Traceback (most recent call last)" in verbose.stderr


def test_image_files_a_walk_leaves_out_are_named_not_dropped_silently(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    _photo(source / "a.png")
    _photo(out / "a.png", seed=9)  # already restored: the run only skips
    (source / "sub").mkdir()
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue")]
    frames[0].save(source / "sub" / "anim.gif", save_all=True, append_images=frames[1:])
    (source / "notes.txt").write_text("not an image")
    result = CliRunner().invoke(
        main, ["restore", str(source), "-o", str(out), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "left out 1 image file(s) that folder walks do not restore (1 .gif)" in result.stderr
    assert "anim.gif" in result.stderr and "notes.txt" not in result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["left_out"] == [str(source / "sub" / "anim.gif")] and summary["skipped"] == 1
