"""How a run's files are spread over processes: the scheduler contract, and the single-process one.

The run loop (:func:`lucidflux_cli.runner.run.execute`) owns everything a user sees and every
rule (lock, signals, progress, events, report, exit code); the job (:mod:`.job`) says what one
file means; a scheduler only decides which process does which file. Three exist:
:class:`SingleProcess` (here), ``workers.Workers`` (``--devices``/``--workers``: processes fed by
the parent) and ``ranks.Ranks`` (torchrun / accelerate launch).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from lucidflux_cli.imageio.discovery import InputFile
from lucidflux_cli.runner.control import output_lock
from lucidflux_cli.runner.results import BatchReport, FileResult, StepCallback

ResultCallback = Callable[[FileResult], None]


class Scheduler:
    """Does the job's files; the defaults fit a run that is one process."""

    #: Whether this process writes the summary event and the report (one per run).
    writes_report = True
    #: Whether this process holds every result after :meth:`work` (so runs ``job.complete``).
    completes_here = True

    def __init__(self, job: Any):  # a runner.job.Job (which imports this module for its default)
        self.job = job
        self.request = job.request

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Set up and tear down what the processes share (a process group, ...)."""
        yield

    def lock(self, stack: contextlib.ExitStack) -> None:
        """Take the output folder for this run (raises OutputLocked) and clear a killed run's temps."""
        stack.enter_context(output_lock(self.job.out_dir, self.job.lock_name))
        self.job.remove_stale_temps()

    def count(self, files: Sequence[InputFile]) -> int:
        """How many files this process reports progress for."""
        return len(files)

    def work(
        self, files: Sequence[InputFile], on_result: ResultCallback, on_step: StepCallback | None
    ) -> list[FileResult]:
        raise NotImplementedError

    def gather(self, results: list[FileResult]) -> tuple[BatchReport | None, str | None]:
        """The whole run's report (None where another process writes it) and a setup error, if any."""
        return BatchReport(results), None

    def salvage(self, seen: list[FileResult]) -> BatchReport:
        """After an interrupt: the files finished before the stop (``seen``: this process's)."""
        return BatchReport(list(seen))

    def agree(self, code: int) -> int:
        """The exit code every process of the run returns."""
        return code


class SingleProcess(Scheduler):
    """Files in order in this process."""

    def work(
        self, files: Sequence[InputFile], on_result: ResultCallback, on_step: StepCallback | None
    ) -> list[FileResult]:
        return self.job.process_all(files, on_result, on_step)
