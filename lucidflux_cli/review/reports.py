"""Pages from what runs record: a ``restore`` or ``eval`` run report (``--report`` JSON), and the
validation history of ``train``. Each is the same :class:`~.model.Page`, with its own columns."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lucidflux_cli.review import links
from lucidflux_cli.review.model import (
    FAILED,
    WORSE,
    Cell,
    HigherBetter,
    Page,
    Row,
    Score,
    means_table,
    number,
)


def unknown_direction(metric: str) -> bool | None:
    return None


class RunPaths:
    """A report's paths made absolute (they are recorded relative to the run's working folder);
    ``out_dir``, when given, replaces the recorded one (a folder moved since the run)."""

    def __init__(self, document: Mapping[str, Any], out_dir: Path | None = None):
        self.cwd = document.get("cwd")
        recorded = document.get("out_dir")
        self.recorded = links.resolve(recorded, self.cwd) if recorded else None
        self.out_dir = Path(out_dir) if out_dir is not None else self.recorded
        if self.out_dir is None:
            raise ValueError("the report names no output folder (made by an older lucidflux?); give OUT_DIR")
        self.inputs = [str(text) for text in document.get("inputs") or []]
        self.roots = links.input_roots(self.inputs, self.cwd)

    def path(self, text: str | None) -> Path | None:
        if not text:
            return None
        path = links.resolve(text, self.cwd)
        moved = self.recorded is not None and self.out_dir != self.recorded
        if moved and links.inside(path, [self.recorded]):
            return self.out_dir / os.path.relpath(path, self.recorded)
        return path

    def name(self, source: Path) -> str:
        """A source's path under the input it came from (as the outputs mirror it), else as recorded."""
        return links.relative_name(source, self.roots) or str(source)


def page_for_report(
    document: Mapping[str, Any], out_dir: Path | None = None, higher_better: HigherBetter = unknown_direction
) -> tuple[Page, list[Path]]:
    """The page of a run report and the folders its links may point into (besides the output)."""
    command = document.get("command")
    paths = RunPaths(document, out_dir)
    if command == "restore":
        return restore_page(document, paths, higher_better), paths.roots
    if command == "eval":
        return eval_page(document, paths, higher_better), paths.roots
    raise ValueError(f"review pages are made for restore and eval reports, not {command!r}")


def _title(document: Mapping[str, Any], command: str) -> str:
    when = document.get("updated") or document.get("started")
    return f"lucidflux {command}: {document.get('state', '?')} — {when}"


def _counts(document: Mapping[str, Any]) -> str:
    keys = ("planned", "done", "skipped", "failed", "not_started")
    return ", ".join(f"{document[k]} {k.replace('_', ' ')}" for k in keys if document.get(k) is not None)


# -------------------------------------------------------------------------------------- restore


def restore_page(document: Mapping[str, Any], paths: RunPaths, higher_better: HigherBetter) -> Page:
    """Columns input and output; per photo its sizes, time, tiles, pages and scores."""
    rows = [_restore_row(record, paths) for record in document.get("files", [])]
    page = Page(_title(document, "restore"), ["input", "output"], rows, subtitle=_counts(document))
    page.table = means_table(page.columns, rows, higher_better)
    return page


def _restore_row(record: Mapping[str, Any], paths: RunPaths) -> Row:
    source, output = paths.path(record.get("source")), paths.path(record.get("output"))
    details = record.get("details") or {}
    scores = details.get("scores") or {}
    before, after = scores.get("input") or {}, scores.get("output") or {}
    worse = set(details.get("worse") or [])
    row = Row(
        paths.name(source) if source else "?",
        status=record.get("status", "?"),
        # a failure's reason, or what the output left out or changed of the source (--keep-mode notes)
        reason=record.get("error")
        or "; ".join(n for n in [record.get("note"), *record.get("notes", [])] if n)
        or None,
    )
    row.cells = [Cell(source, _numbers(before)), Cell(output, _numbers(after))]
    row.scores = [
        Score(name, number(before.get(name)), number(after.get(name)), name in worse)
        for name in dict.fromkeys([*before, *after])
    ]
    if row.status == "done" and worse:
        row.status = WORSE
    row.facts = _facts(record, details)
    return row


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    return {name: value for name, value in ((k, number(v)) for k, v in values.items()) if value is not None}


def _size(value: Any) -> str | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{value[0]}×{value[1]} px"
    return None


def _facts(record: Mapping[str, Any], details: Mapping[str, Any]) -> list[tuple[str, str]]:
    facts = [
        ("size in", _size(details.get("input_size"))),
        ("size out", _size(details.get("output_size"))),
        ("time", f"{record['seconds']:.1f} s" if number(record.get("seconds")) else None),
        ("tiles", str(details["tiles"]) if details.get("tiles") is not None else None),
        ("pages", str(details["pages"]) if details.get("pages") is not None else None),
        ("worker", record.get("worker")),
    ]
    return [(label, text) for label, text in facts if text]


# ----------------------------------------------------------------------------------------- eval


def eval_page(document: Mapping[str, Any], paths: RunPaths, higher_better: HigherBetter) -> Page:
    """One column per compared folder, one row per relative file name, the means table above."""
    folders = [os.path.normpath(text) for text in paths.inputs]
    by_name: dict[str, Row] = {}
    for record in document.get("files", []):
        source = paths.path(record.get("source"))
        details = record.get("details") or {}
        folder, name = _eval_place(source, details, folders, paths)
        if folder not in folders:
            continue
        row = by_name.setdefault(name, Row(name, cells=[Cell() for _ in folders]))
        row.cells[folders.index(folder)] = Cell(
            source, _numbers({k: v for k, v in details.items() if k not in ("folder", "file")})
        )
        if record.get("status") == FAILED:
            row.status, row.reason = FAILED, record.get("error")
        elif record.get("status") == "not_started" and row.status != FAILED:
            row.status = "not_started"
    rows = list(by_name.values())
    summary = document.get("summary") or {}
    given = {
        folder: summary[folder]["mean"] for folder in folders if isinstance(summary.get(folder), dict)
    } or None
    page = Page(_title(document, "eval"), folders, rows, subtitle=_counts(document))
    page.table = means_table(folders, rows, higher_better, given)
    return page


def _eval_place(
    source: Path | None, details: Mapping[str, Any], folders: Sequence[str], paths: RunPaths
) -> tuple[str | None, str]:
    """(compared folder, relative file) of an eval record: from its scores, else from its path."""
    if "folder" in details and "file" in details:
        return os.path.normpath(str(details["folder"])), str(details["file"])
    for folder in folders:
        name = links.relative_name(source, [links.resolve(folder, paths.cwd)]) if source is not None else None
        if name is not None:
            return folder, name
    return None, str(source)


# ---------------------------------------------------------------------------------------- train


def validation_page(
    folder: Path,
    images: Sequence[tuple[str, str]],
    history: Sequence[Mapping[str, Any]],
    higher_better: HigherBetter = unknown_direction,
) -> Page:
    """``train --validation``: a column for the LQ inputs, then one per validation step (oldest
    first), so a row shows one image through training. ``images``: (shown name, file name under
    ``folder/lq`` and ``folder/step-N``); ``history``: ``{"step": N, metric: mean, ...}``."""
    steps = sorted(int(entry["step"]) for entry in history)
    columns = ["LQ", *[f"step {step}" for step in steps]]
    folders = ["lq", *[f"step-{step}" for step in steps]]
    rows = [Row(shown, cells=[Cell(folder / sub / file) for sub in folders]) for shown, file in images]
    page = Page("lucidflux train: validation", columns, rows, subtitle=f"{len(steps)} validation step(s)")
    given = {f"step {entry['step']}": {k: v for k, v in entry.items() if k != "step"} for entry in history}
    page.table = means_table(columns, rows, higher_better, given)
    return page
