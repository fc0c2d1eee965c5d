"""Settings from a TOML file (``--config``) and where each effective value came from.

Every ``restore`` option can be set in a TOML file: ``--config PATH``, else ``LUCIDFLUX_CONFIG``,
else the per-user file (``lucidflux config path``) when it exists. Precedence is Click's:
command line > ``LUCIDFLUX_*`` environment > file > built-in default, because the file only
fills ``ctx.default_map``.

Keys are ``restore``'s long option names, with dashes or underscores; weight paths may sit in
a ``[weights]`` table::

    steps = 30
    color-fix = "none"
    cache-dir = "~/hf-cache"
    include = ["*.jpg", "*.tif"]

    [weights]
    flux = "/models/flux1-dev.safetensors"

A repeatable option takes a string or a list of strings; a repeatable ``KEY=VALUE`` option
may also be a table of its keys. Relative paths are relative to the file's folder; ``~``
expands. An unknown key, a value of the wrong type or broken TOML is a usage error (exit 2)
naming the file.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

APP_NAME = "lucidflux"
FILE_NAME = "config.toml"
ENVVAR = "LUCIDFLUX_CONFIG"
WEIGHTS_TABLE = "weights"
META_FILE = "lucidflux.config_file"  # ctx.meta key: the file that was loaded (or None)

SOURCES = {
    ParameterSource.COMMANDLINE: "cli",
    ParameterSource.ENVIRONMENT: "env",
    ParameterSource.DEFAULT_MAP: "file",
    ParameterSource.DEFAULT: "default",
    ParameterSource.PROMPT: "prompt",
}
SOURCE_LABELS = {"cli": "command line", "env": "environment", "file": "config file", "default": "default"}


class ConfigError(click.UsageError):
    """A config file that cannot be used (exit code 2)."""


def user_config_path() -> Path:
    """The per-user config file (it need not exist): ``~/.config/lucidflux/config.toml`` on Linux."""
    import platformdirs

    return platformdirs.user_config_path(APP_NAME) / FILE_NAME


# --------------------------------------------------------------------------------- the option


class ConfigOption(click.Option):
    """``--config PATH``: eager, so the file is read before any other option takes its value."""

    def __init__(self, param_decls: Sequence[str], weight_names: Iterable[str] = (), **kwargs: Any):
        super().__init__(param_decls, **kwargs)
        self.weight_names = frozenset(weight_names)


def config_option(weight_names: Iterable[str] = ()) -> Callable:
    """Decorator adding ``--config`` to a command; ``weight_names`` may sit in ``[weights]``."""
    return click.option(
        "--config",
        "config",
        cls=ConfigOption,
        weight_names=weight_names,
        is_eager=True,
        expose_value=False,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        envvar=ENVVAR,
        callback=_apply_config,
        help="TOML file of option values (default: the per-user file, see `lucidflux config path`). "
        f"Env: {ENVVAR}.",
    )


def _apply_config(ctx: click.Context, param: ConfigOption, value: Path | None) -> None:
    path = value if value is not None else _user_file()
    path = path.absolute() if path is not None else None  # relative paths inside resolve against its folder
    ctx.meta[META_FILE] = path
    if path is not None:
        defaults = load(path, ctx, param.weight_names)
        ctx.default_map = {**(ctx.default_map or {}), **defaults}


def _user_file() -> Path | None:
    path = user_config_path()
    return path if path.is_file() else None


# ------------------------------------------------------------------------------------ reading


def load(path: Path, ctx: click.Context, weight_names: Iterable[str] = ()) -> dict[str, Any]:
    """Read ``path`` into a ``default_map`` for ``ctx.command``: ``{param name: value}``."""
    data = _read_toml(path)
    options = options_by_key(ctx.command)
    weight_names = frozenset(weight_names)
    flat: list[tuple[str, str, Any]] = []  # (key as written, normalised key, value)
    for key, value in data.items():
        if key == WEIGHTS_TABLE and isinstance(value, dict):
            flat += [(f"{WEIGHTS_TABLE}.{k}", _norm(k), v) for k, v in value.items()]
        else:
            flat.append((key, _norm(key), value))
    defaults: dict[str, Any] = {}
    for written, key, value in flat:
        option = options.get(key)
        in_weights = written.startswith(WEIGHTS_TABLE + ".")
        if option is None or (in_weights and option.name not in weight_names):
            valid = sorted(_norm(n) for n in weight_names) if in_weights else sorted(options)
            raise ConfigError(f"{path}: unknown key '{written}'{_suggest(key, valid)}")
        defaults[option.name] = _convert(option, value, path, written, ctx)
    return defaults


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:  # its message ends "(at line L, column C)"
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from error


def options_by_key(command: click.Command) -> dict[str, click.Option]:
    """``{normalised long name: option}`` of every option a config file may set."""
    found: dict[str, click.Option] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or isinstance(param, ConfigOption) or param.name == "help":
            continue
        for opt in param.opts:
            if opt.startswith("--"):
                found[_norm(opt[2:])] = param
    return found


def _key(option: click.Option) -> str:
    """The key ``config show`` lists an option under: its first long name."""
    return next(_norm(opt[2:]) for opt in option.opts if opt.startswith("--"))


def _convert(option: click.Option, value: Any, path: Path, key: str, ctx: click.Context) -> Any:
    """Check ``value`` with the option's own type now, so that errors name the file and key."""
    if option.multiple and isinstance(value, str):
        value = [value]
    if option.multiple and isinstance(value, dict):  # a table for a repeatable KEY=VALUE option
        value = [f"{k}={_scalar(v)}" for k, v in value.items()]
    if option.multiple and not isinstance(value, list):
        raise ConfigError(f"{path}: '{key}': expected a string or a list of strings")
    if isinstance(option.type, click.Path):
        value = [_path(v, path) for v in value] if option.multiple else _path(value, path)
    try:
        option.type_cast_value(ctx, value)
    except click.BadParameter as error:
        raise ConfigError(f"{path}: '{key}': {error.message}") from error
    return value


def _scalar(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _path(value: Any, config_file: Path) -> Any:
    if not isinstance(value, str):
        return value  # the type check reports it
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else config_file.parent / path)


def _norm(key: str) -> str:
    return key.strip().replace("_", "-").lower()


def _suggest(key: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f"; valid keys: {', '.join(valid)}"


# ---------------------------------------------------------------------------- effective values


@dataclass(frozen=True)
class Setting:
    key: str  # the config file key, e.g. "color-fix"
    option: str  # the flag, e.g. "--color-fix"
    value: Any  # JSON-friendly
    source: str  # cli, env, file or default
    envvar: str | None


@dataclass(frozen=True)
class Effective:
    """What a ``restore`` with these arguments would use, and where each value came from."""

    config_file: Path | None
    config_source: str
    settings: dict[str, Setting]
    params: dict[str, Any]  # the converted values, by parameter name (as ``restore`` receives them)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config_file": str(self.config_file) if self.config_file else None,
            "config_source": self.config_source,
            "user_config": str(user_config_path()),
            "settings": {key: asdict(setting) for key, setting in self.settings.items()},
        }


def effective(
    command: click.Command, args: Sequence[str] = (), parent: click.Context | None = None
) -> Effective:
    """Resolve ``command``'s options from ``args``, the environment, the config file and defaults.

    Required arguments and options are made optional, so no inputs or output are needed.
    Raises click.UsageError for invalid values, as ``restore`` itself would.
    """
    shadow = _all_optional(command)
    ctx = shadow.make_context(command.name, list(args), parent=parent)
    settings = {}
    for option in dict.fromkeys(options_by_key(shadow).values()):  # one row per option, aliases once
        key = _key(option)
        settings[key] = Setting(
            key=key,
            option="--" + key,
            value=_jsonable(ctx.params.get(option.name)),
            source=SOURCES.get(ctx.get_parameter_source(option.name), "default"),
            envvar=_envvar(ctx, option),
        )
    config_source = SOURCES.get(ctx.get_parameter_source("config"), "default")
    return Effective(ctx.meta.get(META_FILE), config_source, settings, dict(ctx.params))


def _all_optional(command: click.Command) -> click.Command:
    import copy

    params = []
    for param in command.params:
        clone = copy.copy(param)
        clone.required = False
        params.append(clone)
    return click.Command(
        command.name,
        params=params,
        context_settings=dict(command.context_settings),
        add_help_option=command.add_help_option,
    )


def _envvar(ctx: click.Context, option: click.Option) -> str | None:
    if option.envvar:
        return option.envvar if isinstance(option.envvar, str) else option.envvar[0]
    if option.allow_from_autoenv and ctx.auto_envvar_prefix and option.name:
        return f"{ctx.auto_envvar_prefix}_{option.name.upper()}"
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
