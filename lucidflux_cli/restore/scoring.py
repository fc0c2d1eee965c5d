"""Quality scores of restored files (``restore --score``): the input and the output of each file
scored with no-reference metrics, and whether the output got worse.

The scores ride on the file's result (``details``), so they reach ``--json`` events, the report
and its ``got_worse`` list without another pass over the files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from lucidflux_cli.errors import one_line
from lucidflux_cli.imageio.media import read_rgb
from lucidflux_cli.runner.results import FileResult

log = logging.getLogger("lucidflux")


class FileScorer:
    """Scores a finished restore's input and output; built lazily in each process that restores."""

    def __init__(self, metrics: Sequence[str], device: str, cache_dir: Path | None, offline: bool):
        self.metrics, self.device, self.cache_dir, self.offline = tuple(metrics), device, cache_dir, offline
        self._scorer = None

    def check(self) -> None:
        """A missing metric offline is a setup error before any work (MetricUnavailable)."""
        self.scorer().check()

    def scorer(self):
        if self._scorer is None:
            from lucidflux_cli.metrics.scoring import Scorer

            self._scorer = Scorer(
                self.metrics, device=self.device, batch_size=1, cache_dir=self.cache_dir, offline=self.offline
            )
        return self._scorer

    def add_scores(self, result: FileResult) -> FileResult:
        """Scores of a restored file's input and output in ``result.details``; a scoring failure is
        a note, never the file's failure (its output is written and good)."""
        from lucidflux_cli.metrics.cache import MetricUnavailable
        from lucidflux_cli.metrics.tables import got_worse

        if result.status != "done" or result.output is None:
            return result
        try:
            before, after = self.scorer().score([read_rgb(result.source), read_rgb(result.output)])
        except MetricUnavailable:
            raise
        except Exception as error:
            note = f"not scored: {one_line(error)}"
            result.note = f"{result.note}; {note}" if result.note else note
            return result
        rounded = [{name: round(float(value), 6) for name, value in row.items()} for row in (before, after)]
        result.details = {
            **(result.details or {}),
            "scores": {"input": rounded[0], "output": rounded[1]},
            "worse": got_worse(before, after),
        }
        return result

    def wrap(self, publish: Callable[[FileResult], None]) -> Callable[[FileResult], None]:
        return lambda result: publish(self.add_scores(result))
