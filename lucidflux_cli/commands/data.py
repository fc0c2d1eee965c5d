"""``lucidflux data filter|degrade|merge``: training data as the LucidFlux report makes it (docs/data.md)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from lucidflux_cli.commands.logs import setup_logging
from lucidflux_cli.commands.options import envvars_from_long_names, run_job_command, settings_options
from lucidflux_cli.curation.jobs import DegradeJob, FilterJob
from lucidflux_cli.curation.settings import DegradeRequest, FilterRequest

log = logging.getLogger("lucidflux")
CONTEXT = {"help_option_names": ["-h", "--help"]}


@click.group("data", context_settings={"help_option_names": ["-h", "--help"]})
def data_group() -> None:
    """Curate training photos and synthesise degraded pairs (docs/data.md)."""


@data_group.command("degrade", context_settings=CONTEXT)
@settings_options(DegradeRequest)
def degrade(**values: Any) -> None:
    """Make PASSES synthetic (HQ, LQ, LQ upsampled) pairs per photo of INPUTS (files, folders, globs,
    - for stdin) into OUTPUT, with the second-order Real-ESRGAN degradations."""
    run_job_command(DegradeJob, DegradeRequest, values)


@data_group.command("filter", context_settings=CONTEXT)
@settings_options(FilterRequest)
def filter_command(**values: Any) -> None:
    """Measure every photo of INPUTS and keep those the paper's rules keep (blur, flat regions,
    size, duplicates, the top 20% by CLIP-IQA); the manifest OUTPUT says why each was dropped."""
    run_job_command(FilterJob, FilterRequest, values)


@data_group.command("merge", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--json", "json_events", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def merge_command(target: Path, json_events: bool, quiet: bool) -> None:
    """Join the shard manifests of TARGET (a filter manifest, or a pairs folder) made with --shard
    K/N into TARGET; a filter's duplicate and quality stages run over all shards together."""
    from lucidflux_cli.curation.jobs import merge
    from lucidflux_cli.manifests import ManifestError

    setup_logging(quiet, False, None)
    try:
        summary = merge(target)
    except ManifestError as error:
        log.error("%s; nothing merged", error)
        sys.exit(1)
    if json_events:
        print(json.dumps({"event": "summary", **summary}), flush=True)


envvars_from_long_names(degrade, "LUCIDFLUX_DEGRADE_")
envvars_from_long_names(filter_command, "LUCIDFLUX_FILTER_")
