"""Review pages: look at a run instead of reading it.

One static page, ``<output>/review/index.html``, with previews under ``review/.thumbs/``: per photo
its pictures side by side (input/output of ``restore``, the compared folders of ``eval``, the
validation steps of ``train``), a before/after slider at full resolution, sizes, times and
scores; failed photos and those whose scores got worse first. Built from a run's report alone
(``lucidflux review``) or rewritten with the report during a run (``restore --review``).

This package knows files and report documents only (no torch, no engine): it imports imageio
and below.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lucidflux_cli.review.model import HigherBetter, Page
from lucidflux_cli.review.reports import page_for_report, unknown_direction, validation_page
from lucidflux_cli.review.writer import PageWriter, ReviewRefused, check_writable, page_path

REPORT_NAME = "report.json"  # where --review keeps the run report when --report names none

__all__ = [
    "Page",
    "PageWriter",
    "ReviewRefused",
    "check_writable",
    "default_report",
    "page_for_report",
    "page_path",
    "validation_page",
    "write_report_page",
]


def default_report(out_dir: Path) -> Path:
    """The run report of a ``--review`` run that was given no ``--report``."""
    return Path(out_dir) / "review" / REPORT_NAME


def write_report_page(
    document: Mapping[str, Any], writer: PageWriter, higher_better: HigherBetter = unknown_direction
) -> Path | None:
    """Rewrite ``writer``'s page from a run report document; the page's path. While the run is
    going on, only when :meth:`PageWriter.due`: None when this rewrite is left out."""
    if document.get("state") == "running" and not writer.due():
        return None
    page, roots = page_for_report(document, writer.out_dir, higher_better)
    return writer.write(page, roots)
