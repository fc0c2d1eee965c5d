"""``lucidflux restore``: its options are generated from
:class:`~lucidflux_cli.restore.settings.RestoreRequest`.

Every option can also come from a ``LUCIDFLUX_<LONG NAME>`` environment variable
(``LUCIDFLUX_STEPS=30``) or a config file key; the command line wins.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lucidflux_cli.commands.configfile import config_option
from lucidflux_cli.commands.logs import setup_logging
from lucidflux_cli.commands.options import envvars_from_long_names, settings_options
from lucidflux_cli.restore.settings import RestoreRequest
from lucidflux_cli.runner.settings import WEIGHT_OPTIONS


def weight_options(function: Callable) -> Callable:
    for name, help_text in reversed(WEIGHT_OPTIONS.items()):
        flag = "--" + name.replace("_", "-")
        option = click.option(
            flag,
            name,
            type=click.Path(exists=True, path_type=Path),
            help=help_text,
            envvar=f"LUCIDFLUX_{name.upper()}",
        )
        function = option(function)
    return function


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@settings_options(RestoreRequest)
@config_option(weight_names=WEIGHT_OPTIONS)
@weight_options
def restore(**values: Any) -> None:
    """Restore INPUTS (files, folders, globs, or - for paths on stdin) into OUTPUT."""
    from lucidflux_cli.restore import job, plan

    setup_logging(values["quiet"], values["verbose"], values["log_file"])
    request = RestoreRequest.from_values(values)
    try:
        plan.validate(request)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    sys.exit(job.run(request))


envvars_from_long_names(restore)
