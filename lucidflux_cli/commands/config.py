"""``lucidflux config show|path``: every restore option's effective value and its source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lucidflux_cli.commands import configfile
from lucidflux_cli.commands.configfile import ENVVAR, SOURCE_LABELS, Effective, effective
from lucidflux_cli.commands.restore import restore


def restore_command(ctx: click.Context) -> click.Command:
    """The ``restore`` command of the running CLI."""
    root = ctx.find_root()
    if isinstance(root.command, click.Group):
        found = root.command.get_command(root, "restore")
        if found is not None:
            return found
    return restore  # called outside ``lucidflux`` (tests, embedding)


# ------------------------------------------------------------------------------------ commands


@click.group("config", context_settings={"help_option_names": ["-h", "--help"]})
def config_group() -> None:
    """Show where settings come from; find the per-user config file."""


@config_group.command("show", context_settings={"ignore_unknown_options": True})
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"Config file to read instead of {ENVVAR} / the per-user file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("restore_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def show_command(
    ctx: click.Context, config_file: Path | None, as_json: bool, restore_args: tuple[str, ...]
) -> None:
    """Every restore option's effective value and its source (command line, env, file, default).

    RESTORE_ARGS are restore options to take into account, e.g. `lucidflux config show --steps 30`.
    """
    args = (["--config", str(config_file)] if config_file else []) + list(restore_args)
    result = effective(restore_command(ctx), args, parent=ctx.find_root())
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else render(result))


@config_group.command("path")
def path_command() -> None:
    """Print the per-user config file's path (it may not exist yet)."""
    click.echo(str(configfile.user_config_path()))


def render(result: Effective) -> str:
    if result.config_file is not None:
        how = {"cli": "--config", "env": ENVVAR, "default": "per-user file"}.get(result.config_source, "")
        lines = [f"config file: {result.config_file} ({how})"]
    else:
        lines = [f"config file: none ({configfile.user_config_path()} does not exist)"]
    rows = [("OPTION", "VALUE", "SOURCE")]
    for setting in result.settings.values():
        source = SOURCE_LABELS.get(setting.source, setting.source)
        if setting.source == "env" and setting.envvar:
            source += f" ({setting.envvar})"
        value = (
            "x".join(map(str, setting.value))
            if setting.key == "size" and setting.value
            else _text(setting.value)
        )
        rows.append((setting.option, value, source))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines += [f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {row[2]}" for row in rows]
    return "\n".join(lines)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value == "":
        return '""'
    if isinstance(value, list):
        return ", ".join(map(str, value)) if value else "-"
    return str(value)
