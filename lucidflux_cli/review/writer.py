"""Writing ``<folder>/review/index.html`` and its previews, atomically, never over a file the tool
did not write."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lucidflux_cli import atomic
from lucidflux_cli.errors import LucidFluxError
from lucidflux_cli.review import links
from lucidflux_cli.review.model import Cell, Page, Row, Score, format_value
from lucidflux_cli.review.page import MARKER, render
from lucidflux_cli.review.thumbs import Preview, Thumbnails

FOLDER = "review"


class ReviewRefused(LucidFluxError):
    """The page's place holds a file the tool did not write."""


def page_path(out_dir: Path) -> Path:
    return Path(out_dir) / FOLDER / "index.html"


def check_writable(out_dir: Path) -> None:
    """Raise :class:`ReviewRefused` (one line) if ``review/index.html`` exists and is not ours."""
    path = page_path(out_dir)
    if path.is_dir():
        raise ReviewRefused(f"{path}: is a folder; not writing the review page there")
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096).decode("utf-8", "replace")
    except FileNotFoundError:
        return
    except OSError as error:
        raise ReviewRefused(
            f"{path}: cannot be read ({error.strerror}); not writing the review page"
        ) from error
    if MARKER not in head:
        raise ReviewRefused(
            f"{path}: exists and was not written by lucidflux; not overwriting it "
            "(move it away, or use another output folder)"
        )


class PageWriter:
    """Writes the page of one output folder; keep one per run so previews are made once."""

    # During a run the page is rewritten at most this share of the time (a page of 20,000 photos
    # takes seconds to build: with the report rewritten after every file it would slow the run).
    BUSY_SHARE = 0.1

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.folder = self.out_dir / FOLDER
        self.thumbs = Thumbnails(self.folder)
        self.cost, self.finished_at = 0.0, -math.inf

    def due(self) -> bool:
        """Whether a page of a running run is due (the last one ended long enough ago)."""
        return time.monotonic() - self.finished_at >= self.cost / self.BUSY_SHARE

    def write(self, page: Page, roots: Sequence[Path] = ()) -> Path:
        """Previews, then the page; links only to files inside the output folder or ``roots``."""
        started = time.monotonic()
        check_writable(self.out_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.thumbs.start_page()
        data = page_data(page, self.thumbs, self.folder, links.real_roots([self.out_dir, *roots]))
        text = render(data).encode("utf-8")
        target = page_path(self.out_dir)
        atomic.atomic_write(target, lambda handle: handle.write(text))
        self.thumbs.prune()
        self.finished_at = time.monotonic()
        self.cost = self.finished_at - started
        return target


def page_data(page: Page, thumbs: Thumbnails, page_folder: Path, roots: tuple[str, ...]) -> dict[str, Any]:
    """The JSON blob the page's script draws: every path already a safe relative URL or None."""
    rows = page.ordered()
    counts = {
        "all": len(rows),
        "failed": sum(r.status == "failed" for r in rows),
        "worse": sum(r.status == "worse" for r in rows),
    }
    compare = [index % len(page.columns) if page.columns else 0 for index in page.compare]
    return {
        "title": page.title,
        "subtitle": page.subtitle,
        "columns": page.columns,
        "table": page.table,
        "compare": compare,
        "counts": counts,
        "rows": [_row(row, thumbs, page_folder, roots) for row in rows],
    }


def _row(row: Row, thumbs: Thumbnails, page_folder: Path, roots: tuple[str, ...]) -> dict[str, Any]:
    return {
        "name": row.name,
        "status": row.status,
        "reason": row.reason,
        "facts": row.facts,
        "cells": [
            _cell(cell, thumbs, page_folder, roots, previews=row.status != "not_started")
            for cell in row.cells
        ],
        "scores": [_score(score) for score in row.scores],
    }


def _cell(
    cell: Cell, thumbs: Thumbnails, page_folder: Path, roots: tuple[str, ...], previews: bool
) -> dict[str, Any]:
    url = links.link(cell.image, page_folder, roots)
    preview: Preview | None = thumbs.preview(cell.image) if previews and url is not None else None
    thumb = links.relative_url(preview.thumb, page_folder) if preview and preview.thumb else None
    view = links.relative_url(preview.view, page_folder) if preview and preview.view else url
    missing = None
    if cell.image is not None and url is None:
        missing = "no file" if not cell.image.exists() else "outside the run's folders: not linked"
    elif preview is not None and preview.error:
        missing = "no preview: the file cannot be decoded"
    return {
        "thumb": thumb,
        "link": url,
        "view": view if thumb else None,
        "missing": missing,
        "label": cell.image.name if cell.image is not None else None,
        "values": [[name, format_value(value)] for name, value in cell.values.items()],
    }


def _score(score: Score) -> list[Any]:
    change = score.change
    text = "–"
    if change is not None:
        percent = f" ({change / abs(score.before) * 100:+.1f}%)" if score.before else ""
        text = f"{change:+.4g}{percent}"
    return [score.metric, format_value(score.before), format_value(score.after), text, score.worse]
