"""A run: validate -> discover -> (dry run | lock -> work -> report) -> exit code.

:func:`execute` is the one run loop of every command (restore, data degrade|filter, eval, train);
the job (:mod:`.job`) says what one file means, the schedulers (single process, worker processes,
torchrun ranks) only decide which process does which file. Exit codes are in :mod:`.report`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys

from lucidflux_cli import review
from lucidflux_cli.errors import LucidFluxError
from lucidflux_cli.imageio import discovery
from lucidflux_cli.runner.control import Interrupted, stop_on_signals
from lucidflux_cli.runner.job import Job
from lucidflux_cli.runner.report import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    EventSink,
    Progress,
    SetupError,
    exit_code,
    interrupted_line,
    summary_line,
)

log = logging.getLogger("lucidflux")


def run_job(job: Job, stdin=None) -> int:
    """Any command's run: discover, then the plan (``--dry-run``) or the run loop."""
    request = job.request
    try:
        if getattr(request, "review", False) and not request.dry_run:
            review.check_writable(job.out_dir)  # a page of someone else's is never overwritten
    except review.ReviewRefused as error:
        log.error("%s", error)
        return EXIT_USAGE
    try:
        found = job.select(job.discover(stdin or sys.stdin))
    except ValueError as error:  # inputs that cannot be taken as given (e.g. ambiguous references)
        log.error("%s", error)
        return EXIT_USAGE
    scheduler = job.scheduler()
    if request.dry_run:
        if not scheduler.writes_report:  # under torchrun the plan is printed once, by rank 0
            return EXIT_FAILED if found.problems else EXIT_OK
        return print_plan(found, job)
    if not found.files:
        log.error("no input images found")
        return EXIT_FAILED if found.problems else EXIT_OK
    return execute(job, found, scheduler)


def execute(job: Job, found: discovery.DiscoveryResult, scheduler) -> int:
    """The one run loop: lock -> progress -> per-file events -> report -> exit code; interrupts and
    setup errors end it the same way whichever scheduler does the files."""
    request = job.request
    events = EventSink(job, found, writes_report=scheduler.writes_report)
    report = error = None
    interrupted = False
    with scheduler.session():
        try:
            with contextlib.ExitStack() as stack:
                scheduler.lock(stack)
                stack.enter_context(stop_on_signals())
                stack.enter_context(job.context())
                progress = stack.enter_context(Progress(scheduler.count(found.files), request, job.name))
                results = scheduler.work(
                    found.files,
                    lambda result: (job.recorded(result), events.file(result), progress.file_done()),
                    progress.step,
                )
                if scheduler.completes_here:  # set-level work, still holding the lock
                    job.complete(results)
            report, error = scheduler.gather(results)
        except (SetupError, LucidFluxError) as failure:
            error = str(failure)
        except (KeyboardInterrupt, Interrupted):
            interrupted = True
        code = exit_code(report, found, error, interrupted)
        if interrupted:
            salvaged = scheduler.salvage(events.seen)  # every process's finished files, where reachable
            if scheduler.writes_report:
                log.error("%s", interrupted_line(salvaged.results, len(found.files)))
            events.finish(salvaged, code, "interrupted")
            return code
        if error is not None and scheduler.writes_report:
            log.error("%s", error)
        if report is not None:
            log.info("%s", summary_line(report, job.done_word))
        events.finish(report, code, error)
        return scheduler.agree(code)


def print_plan(found: discovery.DiscoveryResult, job: Job) -> int:
    """``--dry-run``: what the run would do, skip or refuse, by the rule the run itself applies
    (:meth:`Job.plan`), without loading any model; the exit code is the run's for those files."""
    planned = job.plan(found.files)
    for result in planned:
        extra = job.plan_detail(result) if result.status == "planned" else None
        if job.request.json_events:
            print(json.dumps({**result.to_event(), "plan": extra}), flush=True)
        else:
            verb = {"planned": job.name, "skipped": "skip"}.get(result.status, result.status)
            target = f" -> {result.output}" if result.output else ""
            print(
                f"{verb:<7} {result.source}{target}"
                + (f" ({extra})" if extra else "")
                + (f": {result.error}" if result.error else "")
            )
    todo = sum(r.status == "planned" for r in planned)
    log.info(
        "dry run: %d to %s, %d already done", todo, job.name, sum(r.status == "skipped" for r in planned)
    )
    return EXIT_FAILED if found.problems or any(r.status == "failed" for r in planned) else EXIT_OK
