"""The ``lucidflux`` command group: each sub-command parses and validates, then calls plain functions."""

from __future__ import annotations

import click

from lucidflux_cli import __version__
from lucidflux_cli.commands.config import config_group
from lucidflux_cli.commands.data import data_group
from lucidflux_cli.commands.doctor import doctor_command
from lucidflux_cli.commands.eval import eval_command
from lucidflux_cli.commands.plugins import plugins_group
from lucidflux_cli.commands.restore import restore
from lucidflux_cli.commands.review import review_command
from lucidflux_cli.commands.train import train_command
from lucidflux_cli.commands.weights import weights_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lucidflux")
def main() -> None:
    """Restore degraded photos with LucidFlux."""


for command in (
    restore,
    eval_command,
    data_group,
    train_command,
    review_command,
    weights_group,
    plugins_group,
    config_group,
    doctor_command,
):
    main.add_command(command)
