"""What a run does to each file: the job contract, and the restore job.

The run loop (:func:`lucidflux_cli.runner.run.execute`) and the schedulers (one process,
``--devices``/``--workers`` processes, torchrun ranks) are the same for every command; a job
says only what one file means:

* :meth:`Job.settle` -- files no worker is needed for (finished by an earlier run: resume; an
  output conflict), judged in the parent over the whole list, as a single run would;
* :meth:`Job.processor` -- built once in each process that does work: ``(item, publish) ->
  FileResult``; it publishes the result in the same uninterrupted step as it puts the file's
  outputs in place (so the report lists exactly the files on disk);
* :meth:`Job.complete` -- after every file: set-level work (a manifest, a quantile cut).

A job must pickle (``--devices`` workers are spawned with it).
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lucidflux_cli import atomic
from lucidflux_cli.imageio import discovery
from lucidflux_cli.imageio.discovery import DiscoveryResult, InputFile
from lucidflux_cli.runner.results import FileResult, StepCallback
from lucidflux_cli.runner.scheduling import Scheduler, SingleProcess

log = logging.getLogger("lucidflux")

Publish = Callable[[FileResult], None]
# (item, publish, on_step=None) -> the file's result, published as its outputs are put in place
Processor = Callable[..., FileResult]


class Job(abc.ABC):
    """One kind of run. ``request`` is its settings dataclass (run options from
    :class:`~lucidflux_cli.runner.settings.RunSettings`)."""

    name = "run"  # progress bar label
    done_word = "done"  # "3 restored, ..." in the summary line
    stale_temp_age_s = 0.0  # a run's temps older than this at its start are a killed run's: removed

    def __init__(self, request: Any):
        self.request = request

    @property
    def out_dir(self) -> Path:
        """The folder this run locks and writes into."""
        return self.request.out_dir

    @property
    def discovery_exclude(self) -> Path | None:
        """A folder the input walk never enters (the outputs, when they are under an input)."""
        return self.out_dir

    @property
    def lock_name(self) -> str | None:
        """The output lock's file name; None: the default. Shards of one job lock apart."""
        return None

    def provenance(self) -> dict[str, str]:
        return self.request.provenance()

    def on_device(self, device: str, progress: bool = False) -> Job:
        """This job as run by one process of several on ``device`` (progress bars: only if told)."""
        return self

    def context(self) -> contextlib.AbstractContextManager:
        """Entered around the work in every process (plugin options, ...)."""
        return contextlib.nullcontext()

    def discover(self, stdin) -> DiscoveryResult:
        """The input files: folders walked, globs expanded, ``-`` read from ``stdin``; problems logged."""
        return discover_inputs(self.request, self.request.inputs, stdin, self.discovery_exclude)

    def select(self, found: DiscoveryResult) -> DiscoveryResult:
        """The discovered files this run does (a shard takes its share)."""
        return found

    def settle(self, files: Sequence[InputFile]) -> dict[int, FileResult]:
        """Results for files (by index) that need no work: resume skips and conflicts."""
        return {}

    def plan(self, files: Sequence[InputFile]) -> list[FileResult]:
        """``--dry-run``: per file "planned", or what :meth:`settle` says the run will make of it
        ("skipped": done by an earlier run; "failed": a conflict), so a dry run and the run agree."""
        settled = self.settle(files)
        return [
            settled.get(index) or FileResult(item.path, self.planned_output(item), "planned")
            for index, item in enumerate(files)
        ]

    def planned_output(self, item: InputFile) -> Path | None:
        """Where a planned file's output would go, if the job can tell without reading it."""
        return None

    def plan_detail(self, result: FileResult) -> str | None:
        """A planned file's extra detail in the dry run (restore: its tile grid)."""
        return None

    def scheduler(self) -> Scheduler:
        """Which processes do the files: by default this one, in order."""
        return SingleProcess(self)

    def stops_after(self, result: FileResult) -> bool:
        """``--fail-fast``: the one rule every scheduler applies to each finished file."""
        return bool(getattr(self.request, "fail_fast", False)) and result.status == "failed"

    @abc.abstractmethod
    def processor(self) -> Processor:
        """The per-file function of this process (models are built on its first file)."""

    def process_all(
        self, files: Sequence[InputFile], on_result: Publish, on_step: StepCallback | None
    ) -> list[FileResult]:
        """A single process's run: the settled results, the others through :meth:`processor`."""
        settled = self.settle(files)
        process = self.processor() if len(settled) < len(files) else None
        results = []
        for index, item in enumerate(files):
            if index in settled:
                on_result(settled[index])
                results.append(settled[index])
            else:
                results.append(process(item, on_result))
            if self.stops_after(results[-1]):
                break
        return results

    def recorded(self, result: FileResult) -> None:  # noqa: B027 - a hook: most jobs journal nothing
        """In the process that reports, as each result arrives (before its event): a journal line."""

    def complete(self, results: list[FileResult]) -> None:  # noqa: B027 - a hook: restore has no set-level work
        """After the last file of a run that was not interrupted, where the report is written."""

    def summary(self, results: list[FileResult]) -> dict[str, Any]:
        """What the job adds to the summary event and the report (a funnel, a manifest path), from
        the whole run's ``results`` (every rank's, under torchrun)."""
        return {}

    def remove_stale_temps(self) -> None:
        """At the start, under the lock: temps a killed run of this job left in its outputs."""
        atomic.remove_stale_temps(self.out_dir, min_age_s=self.stale_temp_age_s)

    def describe(self, result: FileResult) -> str:
        """The log line of a finished file."""
        return f"{self.done_word} {result.source} -> {result.output} ({result.seconds:.1f} s)" + "".join(
            f"; {note}" for note in [result.note, *result.notes] if note
        )


def discover_inputs(
    request: Any, inputs: Sequence[str], stdin, exclude: Path | None = None
) -> DiscoveryResult:
    """``inputs`` found with ``request``'s discovery options (recursion, include/exclude, ``-0``);
    problems and left-out files logged. Jobs whose inputs have parts (eval's folders) call it per part."""
    stdin_lines = discovery.split_stdin(stdin.read(), request.null_separated) if "-" in inputs else None
    found = discovery.discover(
        list(inputs),
        recursive=request.recursive,
        include=request.include,
        exclude=request.exclude,
        output_dir=exclude,
        stdin_lines=stdin_lines,
    )
    for problem in found.problems:
        log.error("%s", problem)
    if found.left_out:
        log.warning("%s", found.left_out_line())
    return found
