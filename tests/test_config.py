"""Config file, environment and command line: precedence, errors, per-user default (no model loading)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from lucidflux_cli.commands import configfile as config
from lucidflux_cli.commands.main import main

ORIGINAL_USER_CONFIG_PATH = config.user_config_path


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch) -> Path:
    """No LUCIDFLUX_* variables and a per-user config path inside tmp_path (not the developer's)."""
    for name in list(os.environ):
        if name.startswith("LUCIDFLUX_"):
            monkeypatch.delenv(name)
    user_file = tmp_path / "user" / "lucidflux" / "config.toml"
    monkeypatch.setattr(config, "user_config_path", lambda: user_file)
    return user_file


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def show(*args: str, env: dict[str, str] | None = None) -> dict:
    result = run("config", "show", "--json", *args, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_any_file():
    shown = show()
    assert shown["config_file"] is None
    steps = shown["settings"]["steps"]
    assert (steps["value"], steps["source"], steps["envvar"]) == (20, "default", "LUCIDFLUX_STEPS")
    assert shown["settings"]["color-fix"]["value"] == "wavelet"


def test_environment_names_follow_the_long_option_names():
    settings = show(
        env={"LUCIDFLUX_FORMAT": "png", "LUCIDFLUX_OUTPUT": "/tmp/restored", "LUCIDFLUX_JSON": "1"}
    )["settings"]
    assert (settings["format"]["value"], settings["format"]["envvar"]) == ("png", "LUCIDFLUX_FORMAT")
    assert settings["format"]["source"] == "env"
    assert str(settings["output"]["value"]) == "/tmp/restored" and settings["json"]["value"] is True


def test_precedence_cli_over_env_over_file_over_default(tmp_path):
    cfg = write(tmp_path / "c.toml", 'steps = 30\nseed = 1\nguidance = 2.5\ndevice = "cpu"\n')
    env = {"LUCIDFLUX_SEED": "2", "LUCIDFLUX_GUIDANCE": "3.5"}
    settings = show("--config", str(cfg), "--guidance", "5.5", env=env)["settings"]
    got = {
        key: (settings[key]["value"], settings[key]["source"])
        for key in ("steps", "seed", "guidance", "device", "dtype")
    }
    assert got == {
        "steps": (30, "file"),
        "seed": (2, "env"),
        "guidance": (5.5, "cli"),
        "device": ("cpu", "file"),
        "dtype": ("auto", "default"),
    }


def test_flags_lists_tables_and_relative_paths(tmp_path):
    flux = write(tmp_path / "models" / "flux1-dev.safetensors", "")
    cfg = write(
        tmp_path / "conf" / "c.toml",
        "\n".join(
            [
                "overwrite = true",
                'include = ["*.jpg", "*.png"]',
                'exclude = "tmp"',
                'color_fix = "none"',
                'cache-dir = "../hf"',
                'size = "512x0"',
                "[weights]",
                f'flux = "{flux}"',
                "",
            ]
        ),
    )
    settings = show("--config", str(cfg))["settings"]
    assert settings["overwrite"]["value"] is True
    assert settings["include"]["value"] == ["*.jpg", "*.png"]
    assert settings["exclude"]["value"] == ["tmp"]
    assert settings["color-fix"]["value"] == "none"
    assert Path(settings["cache-dir"]["value"]) == tmp_path / "conf" / ".." / "hf"  # relative to the file
    assert settings["size"]["value"] == [512, 0]
    assert settings["flux"] == {**settings["flux"], "value": str(flux), "source": "file"}


def test_per_user_file_is_picked_up_and_config_env_overrides_it(isolated, tmp_path):
    write(isolated, "steps = 11\n")
    shown = show()
    assert shown["config_file"] == str(isolated) and shown["config_source"] == "default"
    assert shown["settings"]["steps"] == {**shown["settings"]["steps"], "value": 11, "source": "file"}
    other = write(tmp_path / "other.toml", "steps = 12\n")
    shown = show(env={"LUCIDFLUX_CONFIG": str(other)})
    assert shown["config_file"] == str(other) and shown["config_source"] == "env"
    assert shown["settings"]["steps"]["value"] == 12


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_CONFIG_HOME is the Linux convention")
def test_per_user_path_follows_xdg_config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(config, "user_config_path", ORIGINAL_USER_CONFIG_PATH)
    result = run("config", "path")
    assert result.stdout.strip() == str(tmp_path / "xdg" / "lucidflux" / "config.toml")


def test_file_format_changes_the_planned_output(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "photo.jpg")
    out = tmp_path / "out"
    plain = run("restore", str(tmp_path / "photo.jpg"), "-o", str(out), "--dry-run")
    assert plain.exit_code == 0 and str(out / "photo.jpg") in plain.stdout
    cfg = write(tmp_path / "c.toml", 'format = "png"\n')
    configured = run(
        "restore", str(tmp_path / "photo.jpg"), "-o", str(out), "--dry-run", "--config", str(cfg)
    )
    assert configured.exit_code == 0, configured.output
    assert str(out / "photo.png") in configured.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stepz = 3\n", "unknown key 'stepz' (did you mean 'steps'?)"),
        ("[weights]\nsteps = 3\n", "unknown key 'weights.steps'"),
        ('steps = "many"\n', "'steps'"),
        ("include = 5\n", "'include': expected a string or a list of strings"),
        ("steps = 3\ncolor-fix = \n", "not valid TOML"),
    ],
)
def test_bad_files_are_usage_errors_naming_file_and_key(tmp_path, text, expected):
    cfg = write(tmp_path / "bad.toml", text)
    for args in (
        ["restore", "x.jpg", "-o", str(tmp_path / "out"), "--config", str(cfg)],
        ["config", "show", "--config", str(cfg)],
    ):
        result = run(*args)
        assert result.exit_code == 2
        assert str(cfg) in result.output and expected in result.output


def test_bad_toml_names_the_line(tmp_path):
    cfg = write(tmp_path / "bad.toml", "steps = 3\ncolor-fix = \n")
    result = run("config", "show", "--config", str(cfg))
    assert result.exit_code == 2 and "line 2" in result.output


def test_text_output_names_sources(tmp_path):
    cfg = write(tmp_path / "c.toml", "steps = 30\n")
    result = run("config", "show", "--config", str(cfg), "--seed", "9", env={"LUCIDFLUX_GUIDANCE": "3"})
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert f"config file: {cfg}" in result.stdout
    assert lines["--steps"].split()[1:] == ["30", "config", "file"]
    assert lines["--seed"].split()[1:] == ["9", "command", "line"]
    assert "environment (LUCIDFLUX_GUIDANCE)" in lines["--guidance"]
    assert lines["--dtype"].split()[1:] == ["auto", "default"]
