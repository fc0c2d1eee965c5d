"""What a run tells the user: per-file log lines, ``--json`` events, progress bars, the
``--report`` file, and the exit code. Every scheduler reports through here.

Exit codes: 0 all restored or skipped, 1 some files failed, 2 usage error (raised by the CLI),
3 setup error (weights, device, output locked), 130 interrupted (SIGINT or SIGTERM).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from lucidflux_cli import __version__, atomic, review
from lucidflux_cli.errors import (  # noqa: F401 - the exit codes are read from here too
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SETUP,
    EXIT_USAGE,
    LucidFluxError,
)
from lucidflux_cli.imageio.discovery import DiscoveryResult
from lucidflux_cli.runner.results import BatchReport, FileResult

log = logging.getLogger("lucidflux")


class SetupError(LucidFluxError):
    """Weights, device or model could not be prepared (exit code 3)."""


def exit_code(
    report: BatchReport | None, found: DiscoveryResult, error: str | None = None, interrupted: bool = False
) -> int:
    """The one rule: interrupted > setup error > a failed file or an input problem > success."""
    if interrupted:
        return EXIT_INTERRUPTED
    if error is not None:
        return EXIT_SETUP
    if (report is not None and report.count("failed")) or found.problems:
        return EXIT_FAILED
    return EXIT_OK


def summary_line(report: BatchReport, done_word: str = "restored") -> str:
    retried = sum(r.retried for r in report.results)
    return (
        f"{report.count('done')} {done_word}, {report.count('skipped')} skipped, "
        f"{report.count('failed')} failed"
        + (f" ({retried} retried after a worker died)" if retried else "")
        + (
            f"; {report.bugs} failed through a bug (tracebacks with -v and in --log-file)"
            if report.bugs
            else ""
        )
    )


class EventSink:
    """Per-file log lines, ``--json`` events on stdout, and the ``--report`` file.

    The report is rewritten atomically as files finish (at most every ``--report-every``
    seconds), so even a SIGKILL or a power cut leaves a valid report of what was finished; the
    last write says how the run ended. ``writes_report``: only one process of a multi-process
    run writes the report and the summary.
    """

    def __init__(self, job: Any, found: DiscoveryResult, writes_report: bool = True):
        """``job``: the run's :class:`~lucidflux_cli.runner.job.Job` (not imported: jobs import
        the restorer, which raises this module's SetupError)."""
        self.job, self.request, self.found, self.writes_report = job, job.request, found, writes_report
        self.started = dt.datetime.now(dt.timezone.utc)
        self.seen: list[FileResult] = []  # every result so far, for an interrupted run's report
        self.last_write = time.monotonic()
        self.review = review_writer(job) if writes_report else None  # --review: the page beside the report
        default = review.default_report(job.out_dir) if self.review else None
        self.report_path = self.request.report or default

    def file(self, result: FileResult) -> None:
        self.seen.append(result)
        if self.request.json_events:
            print(json.dumps(result.to_event()), flush=True)
        if result.status == "failed":
            log.error("failed %s", result.error)
            if result.traceback:  # a bug: the whole story for -v and the log file
                log.debug("traceback of the failure of %s:\n%s", result.source, result.traceback.rstrip())
        elif result.status == "skipped":
            log.info("skipped %s (exists: %s)", result.source, result.output)
        else:
            log.info("%s", self.job.describe(result))
        if (
            self.writes_report
            and self.report_path
            and time.monotonic() - self.last_write >= self.request.report_every
        ):
            self._write_report(self.seen, self._summary(self.seen, None, None), state="running")

    def finish(self, report: BatchReport | None, code: int, error: str | None = None) -> None:
        """The summary event and the final report; without a whole-run ``report`` (an interrupt,
        a setup error) the files finished in this process so far."""
        if not self.writes_report:
            return
        results = report.results if report is not None else self.seen
        summary = self._summary(results, code, error)
        if self.request.json_events:
            print(json.dumps(summary), flush=True)
        if self.report_path:
            self._write_report(results, summary, final_state(code, error))

    def _summary(self, results: list[FileResult], code: int | None, error: str | None) -> dict:
        """Counts that add up: done + skipped + failed + not_started = the files planned."""
        return {
            "event": "summary",
            "exit_code": code,
            "planned": len(self.found.files),
            "done": sum(r.status == "done" for r in results),
            "skipped": sum(r.status == "skipped" for r in results),
            "failed": sum(r.status == "failed" for r in results),
            "not_started": len(self._not_started(results)),
            "bugs": sum(r.bug for r in results),
            "problems": self.found.problems,
            "left_out": [str(path) for path in self.found.left_out],  # image files no format restores
            "error": error,
            **(self.job.summary(results) if code is not None else {}),
        }

    def _not_started(self, results: list[FileResult]) -> list[FileResult]:
        finished = {r.source for r in results}
        return [
            FileResult(item.path, None, "not_started")
            for item in self.found.files
            if item.path not in finished
        ]

    def _write_report(self, results: list[FileResult], summary: dict, state: str) -> None:
        files = [r.to_record() for r in results] + [
            {"source": str(r.source), "status": r.status} for r in self._not_started(results)
        ]
        where = {
            "cwd": os.getcwd(),  # the paths below are as given, relative to it
            "out_dir": os.path.abspath(self.job.out_dir),
            "inputs": [str(text) for text in getattr(self.request, "inputs", [])],
        }
        document = write_report(
            self.report_path,
            self.job.name,
            self.job.provenance(),
            self.started,
            state,
            {**where, **summary, "files": files},
        )
        self.last_write = time.monotonic()
        if self.review is not None:
            self._write_review(document)

    def _write_review(self, document: dict) -> None:
        """The review page follows the report; a page that cannot be written is one line, the run goes on."""
        from lucidflux_cli.metrics.registry import higher_better

        try:
            review.write_report_page(document, self.review, higher_better)
        except review.ReviewRefused as error:
            log.error("%s", error)
            self.review = None
        except (OSError, ValueError) as error:
            log.warning("review page not written: %s", error)


def review_writer(job: Any) -> review.PageWriter | None:
    """The page writer of a ``--review`` run (None without it, or when its place is not ours)."""
    if not getattr(job.request, "review", False):
        return None
    try:
        review.check_writable(job.out_dir)
    except review.ReviewRefused as error:
        log.error("%s", error)
        return None
    return review.PageWriter(job.out_dir)


def write_report(
    path: Path, command: str, settings: dict[str, Any], started: dt.datetime, state: str, body: dict[str, Any]
) -> dict[str, Any]:
    """The one ``--report`` writer of every command: the common head (tool, command, state, times,
    settings), then ``body``; atomic, so a reader or a killed run never sees half a report.
    ``state``: running (a periodic update), finished, interrupted or stopped (setup error)."""
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    document = {
        "tool": f"lucidflux-cli {__version__}",
        "state": state,
        "started": started.isoformat(),
        "updated": now,
        "finished": None if state == "running" else now,
        "command": command,
        "settings": settings,
        **body,
    }
    data = json.dumps(document, indent=2).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.atomic_write(path, lambda handle: handle.write(data))
    return document


def final_state(code: int, error: str | None) -> str:
    """How a run ended, as its report says it."""
    return "interrupted" if code == EXIT_INTERRUPTED else "stopped" if error else "finished"


def interrupted_line(results: list[FileResult], planned: int) -> str:
    """The last log line of an interrupted run: what is finished and how to go on."""
    count = {status: sum(r.status == status for r in results) for status in ("done", "skipped", "failed")}
    return (
        f"interrupted after {len(results)} of {planned} files ({count['done']} restored, {count['skipped']} "
        f"skipped, {count['failed']} failed); finished files are kept, nothing is half-written; "
        "run the same command again to resume"
    )


class Progress:
    """tqdm bars for files and denoising steps; silent when not a terminal or quiet."""

    def __init__(self, total: int, request, name: str = "restore"):
        self.enabled = request.progress and not request.quiet and sys.stderr.isatty()
        self.total, self.name = total, name
        self.files = self.steps = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from tqdm import tqdm

            self.files = tqdm(total=self.total, unit="file", desc=self.name, position=0)
            self.steps = tqdm(total=0, unit="step", desc="denoise", position=1, leave=False)
        return self

    def __exit__(self, *exc) -> None:
        for bar in (self.steps, self.files):
            if bar is not None:
                bar.close()

    def file_done(self) -> None:
        if self.files is not None:
            self.files.update(1)

    def step(self, done: int, total: int) -> None:
        if self.steps is not None:
            if done == 1:
                self.steps.reset(total=total)
            self.steps.update(1)
