"""``lucidflux doctor``: the Click side of :mod:`lucidflux_cli.diagnostics.doctor`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from lucidflux_cli.commands import config
from lucidflux_cli.diagnostics.doctor import Settings, collect, render

# ----------------------------------------------------------------------------------- command


@click.command("doctor", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read restore settings (cache-dir, offline, device, weight paths) from this TOML file.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Weights cache to inspect (default: as restore would use). Env: LUCIDFLUX_CACHE.",
)
@click.option(
    "--online",
    is_flag=True,
    help="Also ask the hub who the token belongs to and whether it can read the gated FLUX.1-dev repository.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def doctor_command(
    ctx: click.Context, config_file: Path | None, cache_dir: Path | None, online: bool, as_json: bool
) -> None:
    """Check that this machine can restore: versions, devices, cache, login, and a tiny self-test."""
    settings, problem = settings_for(ctx, config_file, cache_dir)
    report = collect(settings, online=online)
    if problem:
        report.errors.insert(0, f"settings: {problem}")
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else render(report))
    sys.exit(report.exit_code)


def settings_for(
    ctx: click.Context, config_file: Path | None, cache_dir: Path | None
) -> tuple[Settings, str | None]:
    """Restore's effective settings; built-in defaults and the problem when they are invalid."""
    from lucidflux_cli.weights import REGISTRY

    args = (["--config", str(config_file)] if config_file else []) + (
        ["--cache-dir", str(cache_dir)] if cache_dir else []
    )
    try:
        params = config.effective(config.restore_command(ctx), args, parent=ctx.find_root()).params
    except click.UsageError as error:
        return Settings(cache_dir=cache_dir), error.format_message()
    overrides = {name: Path(params[name]) for name in REGISTRY if params.get(name) is not None}
    return Settings(
        cache_dir=params.get("cache_dir"),
        offline=bool(params.get("offline")),
        device=params.get("device") or "auto",
        dtype=params.get("dtype") or "auto",
        overrides=overrides,
    ), None
