"""``lucidflux train``: fine-tune the condition module on pairs (docs/training.md)."""

from __future__ import annotations

import sys
from typing import Any

import click

from lucidflux_cli.commands.logs import setup_logging
from lucidflux_cli.commands.options import envvars_from_long_names, settings_options
from lucidflux_cli.commands.restore import weight_options
from lucidflux_cli.finetune.settings import TrainRequest
from lucidflux_cli.runner.settings import WEIGHT_OPTIONS


@click.command("train", context_settings={"help_option_names": ["-h", "--help"]})
@settings_options(TrainRequest)
@weight_options
def train_command(**values: Any) -> None:
    """Train the condition module (both branches, their modulations and the SigLIP connector) on
    --pairs, FLUX.1-dev, its VAE, SigLIP and SwinIR frozen; checkpoints in the released layout
    (`restore --lucidflux run/step-N.pth`). Several GPUs: `accelerate launch -m lucidflux_cli train ...`."""
    from lucidflux_cli.finetune import run as train_run

    setup_logging(values["quiet"], values["verbose"], values["log_file"])
    weights = {name: values.pop(name, None) for name in WEIGHT_OPTIONS}
    request = TrainRequest(weights=weights, **values)
    try:
        request.options()
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    sys.exit(train_run.run(request))


envvars_from_long_names(train_command, "LUCIDFLUX_TRAIN_")
