"""``lucidflux eval``: the paper's quality metrics on folders of images (docs/eval.md)."""

from __future__ import annotations

from typing import Any

import click

from lucidflux_cli.commands.options import envvars_from_long_names, run_job_command, settings_options
from lucidflux_cli.evaluation.job import EvalJob
from lucidflux_cli.evaluation.settings import EvalRequest


@click.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
@settings_options(EvalRequest)
def eval_command(**values: Any) -> None:
    """Score every image of each FOLDER (INPUTS) with no-reference metrics, and with full-reference
    ones against --reference; several folders give a side-by-side table like the paper's Table 1.
    Needs the eval extra: pip install 'lucidflux-cli[eval]' (pyiqa; non-commercial licence)."""
    run_job_command(EvalJob, EvalRequest, values)


envvars_from_long_names(eval_command, "LUCIDFLUX_EVAL_")
