"""Results as text: per-image CSV and JSON lines, a summary JSON, a side-by-side Markdown table.

A row is a dict with ``folder`` and ``file`` (relative path) and one float per metric; a missing
or non-finite value is left empty in CSV, ``null`` in JSON and ``–`` in Markdown.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lucidflux_cli.metrics.registry import METRICS, YCBCR_OFFSET_DB, get

Row = Mapping[str, Any]

# The paper's LucidFlux row on RealLQ250 (Table 1), for comparison in docs and tables.
PAPER_LUCIDFLUX_REALLQ250: dict[str, float] = {
    "clipiqa+": 0.7406,
    "qalign": 4.3935,
    "musiq": 73.01,
    "maniqa": 0.5589,
    "nima": 5.4836,
    "clipiqa": 0.7122,
    "niqe": 3.6742,
}
PAPER_COLUMN = "LucidFlux (paper, RealLQ250)"


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def rows_csv(rows: Iterable[Row], metrics: Sequence[str]) -> str:
    """CSV text: ``folder,file,<metrics...>``, one line per row, and a ``note`` column when a row
    has one (what was done with an image's alpha, say)."""
    rows = list(rows)
    notes = any(row.get("note") for row in rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["folder", "file", *metrics, *(["note"] if notes else [])])
    for row in rows:
        values = [_finite(row.get(m)) for m in metrics]
        cells = ["" if v is None else repr(v) for v in values]
        writer.writerow(
            [row.get("folder", ""), row.get("file", ""), *cells, *([row.get("note") or ""] if notes else [])]
        )
    return out.getvalue()


def row_json(row: Row) -> str:
    """One JSON line (no newline): non-finite values become null."""
    clean = {k: (_finite(v) if isinstance(v, float) else v) for k, v in row.items()}
    return json.dumps(clean, ensure_ascii=False, allow_nan=False)


def rows_jsonl(rows: Iterable[Row]) -> str:
    """JSON lines, one per row (append-friendly: a rerun can add the rows it completes)."""
    return "".join(row_json(r) + "\n" for r in rows)


def summary(
    rows: Iterable[Row],
    metrics: Sequence[str],
    folder_metrics: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per folder: ``count`` (rows), ``mean`` per metric (over the rows that have it) and ``n`` per
    metric; folder-level values (``{"results/a": {"fid": 12.3}}``) are added to ``mean`` as given."""
    sums: dict[str, dict[str, list[float]]] = {}
    counts: dict[str, int] = {}
    for row in rows:
        folder = str(row.get("folder", ""))
        counts[folder] = counts.get(folder, 0) + 1
        per = sums.setdefault(folder, {})
        for m in metrics:
            value = _finite(row.get(m))
            if value is not None:
                per.setdefault(m, []).append(value)
    out: dict[str, dict[str, Any]] = {}
    for folder in list(counts) + [f for f in (folder_metrics or {}) if f not in counts]:
        per = sums.get(folder, {})
        mean = {m: math.fsum(per[m]) / len(per[m]) for m in metrics if per.get(m)}
        n = {m: len(per[m]) for m in metrics if per.get(m)}
        for name, value in (folder_metrics or {}).get(folder, {}).items():
            if _finite(value) is not None:
                mean[name] = float(value)
        out[folder] = {"count": counts.get(folder, 0), "mean": mean, "n": n}
    return out


def summary_json(summary_: Mapping[str, Any]) -> str:
    """The summary as indented JSON text."""
    return json.dumps(summary_, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def format_value(value: float) -> str:
    """Four decimals, two for values of 10 and over (MUSIQ, PSNR, FID), as the paper prints them."""
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def best(values: Mapping[str, float | None], metric: str) -> set[str]:
    """The column(s) with the best finite value for ``metric`` (ties: all of them); none when fewer
    than two columns have a value (nothing to compare)."""
    finite = {k: v for k, v in values.items() if _finite(v) is not None}
    if len(finite) < 2:
        return set()
    pick = max if get(metric).higher_better else min
    target = pick(finite.values())
    return {k for k, v in finite.items() if v == target}


def got_worse(before: Mapping[str, float], after: Mapping[str, float], margin: float = 0.0) -> list[str]:
    """The metrics (in ``after``'s order) whose value moved the wrong way by more than ``margin``
    (in the metric's own units): for ``restore --score``, input scores vs output scores."""
    worse = []
    for name, new in after.items():
        old, new_value = _finite(before.get(name)), _finite(new)
        if old is None or new_value is None:
            continue
        change = new_value - old if get(name).higher_better else old - new_value
        if change < -margin:
            worse.append(name)
    return worse


def conventions(metrics: Sequence[str], crop_border: int = 0) -> list[str]:
    """Lines under a table saying how its pixel-fidelity numbers were made, so they are compared
    with numbers made the same way (PSNR-Y's two conventions are 1.32 dB apart)."""
    notes = []
    if "psnr-y" in metrics:
        notes.append(
            "PSNR-Y (YCbCr): the Y of ITU-R BT.601 YCbCr, studio range 16-235, as BasicSR and SR papers "
            "compute it."
        )
    if "psnr-y-full" in metrics:
        notes.append(
            f"PSNR-Y (full-range luma): 0.299 R + 0.587 G + 0.114 B in 0-255 (pyiqa's psnry), "
            f"{YCBCR_OFFSET_DB:.2f} dB below the YCbCr convention for the same images."
        )
    cropped = [get(m).label for m in metrics if get(m).crops_border]
    if cropped:
        border = f"{crop_border} px cropped off every side" if crop_border else "no border cropped"
        notes.append(f"{', '.join(cropped)}: {border} (--crop-border, BasicSR's crop_border).")
    return notes


def markdown_table(
    columns: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] | None = None,
    counts: Mapping[str, int] | None = None,
    notes: Sequence[str] = (),
) -> str:
    """Side by side like the paper's Table 1: one column per folder (``columns``: name -> {metric:
    mean}), one row per metric with its direction, the best value per row in bold. ``counts`` adds
    an ``images`` row. Add ``{PAPER_COLUMN: PAPER_LUCIDFLUX_REALLQ250}`` to compare with the paper."""
    if metrics is None:
        present = {m for values in columns.values() for m in values}
        metrics = [m for m in METRICS if m in present]
    names = list(columns)
    lines = ["| metric | " + " | ".join(_cell(n) for n in names) + " |", "|---|" + "---:|" * len(names)]
    for metric in metrics:
        info = get(metric)
        values = {n: columns[n].get(metric) for n in names}
        winners = best(values, metric)
        cells = []
        for n in names:
            value = _finite(values[n])
            text = "–" if value is None else format_value(value)
            cells.append(f"**{text}**" if n in winners else text)
        lines.append(f"| {info.label} {info.arrow} | " + " | ".join(cells) + " |")
    if counts is not None:
        lines.append("| images | " + " | ".join(str(counts.get(n, "–")) for n in names) + " |")
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def summary_markdown(
    summary_: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    paper: bool = False,
    crop_border: int = 0,
) -> str:
    """:func:`markdown_table` of a :func:`summary` (``paper``: add the paper's LucidFlux column),
    with the :func:`conventions` of its metrics under it."""
    columns: dict[str, Mapping[str, float]] = {f: s["mean"] for f, s in summary_.items()}
    counts: dict[str, int] = {f: int(s["count"]) for f, s in summary_.items()}
    if paper:
        columns[PAPER_COLUMN] = PAPER_LUCIDFLUX_REALLQ250
        counts[PAPER_COLUMN] = 250
    shown = list(metrics) if metrics is not None else list(METRICS)
    present = [m for m in shown if any(m in values for values in columns.values())]
    return markdown_table(columns, metrics, counts, conventions(present, crop_border))
