"""``lucidflux review OUT_DIR|REPORT``: the review page of an earlier run, from its report alone."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from lucidflux_cli.commands.logs import setup_logging


@click.command("review", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("target", metavar="OUT_DIR|REPORT", type=click.Path(exists=True, path_type=Path))
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def review_command(target: Path, quiet: bool) -> None:
    """(Re)write the review page OUT_DIR/review/index.html of an earlier restore or eval run from its
    report alone: give the output folder (its report in review/report.json, where `restore --review`
    keeps it; outputs are found there even if the folder was moved) or the report file (--report).
    See docs/review.md."""
    from lucidflux_cli import review
    from lucidflux_cli.metrics.registry import higher_better

    setup_logging(quiet, False)
    log = logging.getLogger("lucidflux")
    report = review.default_report(target) if target.is_dir() else target
    try:
        document = json.loads(report.read_text(encoding="utf-8"))
        out_dir = target if target.is_dir() else None
        page, roots = review.page_for_report(document, out_dir, higher_better)
        written = review.PageWriter(out_dir or page_out_dir(document)).write(page, roots)
    except FileNotFoundError:
        log.error("%s: no run report there; give the report file (--report) of the run", report)
        sys.exit(1)
    except (OSError, ValueError, review.ReviewRefused) as error:
        log.error("%s: %s", report, error)
        sys.exit(1)
    log.info("wrote %s (%d photos)", written, len(page.rows))


def page_out_dir(document: dict) -> Path:
    from lucidflux_cli.review.reports import RunPaths

    return RunPaths(document).out_dir
