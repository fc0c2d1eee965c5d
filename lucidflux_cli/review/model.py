"""What a review page shows, independent of the command that made it: columns (input/output, the
compared folders of ``eval``, the validation steps of ``train``), one row per photo with one cell
per column, and a table of means above. The renderer (:mod:`.page`) knows only this model."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Order of the page: failed first, then photos whose scores got worse (largest drop first), then the rest.
FAILED, WORSE, DONE, SKIPPED, WAITING = "failed", "worse", "done", "skipped", "not_started"
_RANK = {FAILED: 0, WORSE: 1}

HigherBetter = Callable[[str], "bool | None"]  # a metric's direction; None: unknown


@dataclass
class Cell:
    """One picture of a row (None: nothing to show) and its values (metric -> number)."""

    image: Path | None = None
    values: dict[str, float] = field(default_factory=dict)


@dataclass
class Score:
    """A metric before and after (``restore --score``); ``worse`` is the run's own verdict."""

    metric: str
    before: float | None
    after: float | None
    worse: bool = False

    @property
    def change(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    def relative_drop(self) -> float:
        """How much worse, as a fraction of the value before (0 when it did not get worse)."""
        if not self.worse or self.change is None:
            return 0.0
        return abs(self.change) / max(abs(self.before or 0.0), 1e-9)


@dataclass
class Row:
    name: str  # shown as text, and what the filter matches
    status: str = DONE  # FAILED, WORSE, DONE, SKIPPED or WAITING
    reason: str | None = None  # a failure's one line, or a note
    facts: list[tuple[str, str]] = field(default_factory=list)  # ("size in", "640x480 px"), ...
    cells: list[Cell] = field(default_factory=list)  # one per column
    scores: list[Score] = field(default_factory=list)

    @property
    def drop(self) -> float:
        return max((score.relative_drop() for score in self.scores), default=0.0)


@dataclass
class Page:
    title: str
    columns: list[str]
    rows: list[Row]
    subtitle: str = ""
    table: list[list[str]] | None = None  # header row first; plain text cells
    compare: tuple[int, int] = (0, -1)  # the columns the before/after slider opens with

    def ordered(self) -> list[Row]:
        """Failed, then got worse (largest drop first), then the rest in their own order."""

        def key(item: tuple[int, Row]) -> tuple:
            position, row = item
            return _RANK.get(row.status, 2), -row.drop if row.status == WORSE else 0.0, position

        return [row for _, row in sorted(enumerate(self.rows), key=key)]


def number(value: object) -> float | None:
    """A finite float, else None (reports write non-finite values as null)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def format_value(value: float | None) -> str:
    """Four significant decimals, two for values of 10 and over (as the metrics tables print them)."""
    if value is None:
        return "–"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def means_table(
    columns: Sequence[str],
    rows: Sequence[Row],
    higher_better: HigherBetter,
    given: Mapping[str, Mapping[str, float]] | None = None,
) -> list[list[str]] | None:
    """Metric rows x page columns: ``given`` means per column (a run's own summary), else the mean
    of the cells' values; the best of each metric marked with ``★`` where the direction is known."""
    metrics: list[str] = []
    for row in rows:
        for cell in row.cells:
            metrics += [name for name in cell.values if name not in metrics]
    for values in (given or {}).values():
        metrics += [name for name in values if name not in metrics]
    if not metrics:
        return None
    table = [["metric", *columns]]
    for metric in metrics:
        means = [_column_mean(index, column, metric, rows, given) for index, column in enumerate(columns)]
        best = _best(means, higher_better(metric))
        arrow = {True: " ↑", False: " ↓"}.get(higher_better(metric), "")
        cells = [format_value(mean) + (" ★" if index in best else "") for index, mean in enumerate(means)]
        table.append([metric + arrow, *cells])
    return table


def _column_mean(
    index: int, column: str, metric: str, rows: Sequence[Row], given: Mapping[str, Mapping[str, float]] | None
) -> float | None:
    if given is not None and column in given:
        return number(given[column].get(metric))
    values = [number(row.cells[index].values.get(metric)) for row in rows if index < len(row.cells)]
    finite = [value for value in values if value is not None]
    return math.fsum(finite) / len(finite) if finite else None


def _best(means: Sequence[float | None], higher: bool | None) -> set[int]:
    finite = {index: value for index, value in enumerate(means) if value is not None}
    if higher is None or len(finite) < 2:
        return set()
    target = (max if higher else min)(finite.values())
    return {index for index, value in finite.items() if value == target}
