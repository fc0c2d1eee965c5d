"""A run: validate -> discover -> (dry run | lock -> work -> report) -> exit code.

:func:`execute` is the one run loop of every command (restore, data degrade|filter, eval); the
job (:mod:`.jobs`) says what one file means, the schedulers (single process, worker processes,
torchrun ranks) only decide which process does which file. Exit codes are in :mod:`.report`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable

from lucidflux_cli import plugins, review
from lucidflux_cli.engine import batch
from lucidflux_cli.engine.control import Interrupted, stop_on_signals
from lucidflux_cli.engine.jobs import Job, RestoreJob
from lucidflux_cli.engine.report import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SETUP,
    EXIT_USAGE,
    EventSink,
    Progress,
    SetupError,
    exit_code,
    interrupted_line,
    summary_line,
)
from lucidflux_cli.engine.scheduling import Scheduler, SingleProcess
from lucidflux_cli.engine.settings import RestoreRequest, parse_devices
from lucidflux_cli.errors import LucidFluxError
from lucidflux_cli.imageio import discovery, formats
from lucidflux_cli.imageio.media import probe_size
from lucidflux_cli.model.sizes import output_size, processing_size

log = logging.getLogger("lucidflux")


def run(request: RestoreRequest, stdin=None) -> int:
    """``lucidflux restore``."""
    try:
        job = RestoreJob(request)
    except LucidFluxError as error:  # e.g. --score offline without the metric's weights
        log.error("%s", error)
        return EXIT_SETUP
    return run_job(job, choose_scheduler, stdin, dry_run=dry_run)


def run_job(job: Job, scheduler_for: Callable[[Job], Scheduler], stdin=None, dry_run=None) -> int:
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
    scheduler = scheduler_for(job)
    if request.dry_run:
        if not scheduler.writes_report:  # under torchrun the plan is printed once, by rank 0
            return EXIT_FAILED if found.problems else EXIT_OK
        return (dry_run or print_plan)(found, job)
    if not found.files:
        log.error("no input images found")
        return EXIT_FAILED if found.problems else EXIT_OK
    return execute(job, found, scheduler)


def choose_scheduler(job: Job) -> Scheduler:
    from lucidflux_cli.engine import ranks, workers

    if ranks.world() is not None:  # under torchrun / accelerate launch
        return ranks.Ranks(job)
    if job.request.devices is not None and not job.request.shard_model:
        return workers.Workers(job)
    return SingleProcess(job)


def execute(job: Job, found: discovery.DiscoveryResult, scheduler: Scheduler) -> int:
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
                    found.files, lambda result: (job.recorded(result), events.file(result), progress.file_done()),
                    progress.step)
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


def validate(request: RestoreRequest) -> None:
    """Usage errors (exit 2) before any work: raise ValueError with a one-line message."""
    from lucidflux_cli.engine import ranks
    from lucidflux_cli.model import removers

    try:  # a broken or unknown plugin, or options it refuses, names itself and the cause
        removers.create(request.remover, request.remover_options)
        formats.select(request.fmt, request.format_options)
    except plugins.PluginError as error:
        raise ValueError(f"{error.kind} plugin {error.name!r} cannot be used: {error.cause}") from error
    formats.output_format_for("png", request.fmt)  # raises ValueError for unknown formats
    if request.scale <= 0 or (request.scale != 1 and request.size is not None):
        raise ValueError("--scale must be positive and cannot be combined with --size")
    request.tiles()  # raises ValueError for impossible tile settings
    if request.device != "auto":
        import torch

        try:
            torch.device(request.device)
        except RuntimeError as error:
            raise ValueError(f"invalid --device {request.device!r}") from error
    _validate_devices(request, under_torchrun=ranks.world() is not None)
    _validate_acceleration(request)


def _validate_devices(request: RestoreRequest, under_torchrun: bool) -> None:
    """``--devices``, ``--shard-model`` and ``--batch-size`` (batches form in one process only)."""
    if request.devices is not None and under_torchrun:
        raise ValueError("--devices cannot be used under torchrun/accelerate launch: each rank uses its LOCAL_RANK GPU")
    if request.shard_model:
        from lucidflux_cli.model import sharding

        if request.offload != "none":
            raise ValueError("--shard-model and --offload are two answers to one problem; choose one")
        sharding.check_devices(parse_devices(request.devices) if request.devices is not None else [])
    elif request.devices is not None:
        parse_devices(request.devices)
    if request.batch_size > 1 and ((request.devices is not None and not request.shard_model) or under_torchrun):
        raise ValueError("--batch-size above 1 works in single-process runs only (or with --shard-model), "
                         "not with --devices or torchrun")


def _validate_acceleration(request: RestoreRequest) -> None:
    from lucidflux_cli.model import acceleration
    from lucidflux_cli.model.devices import resolve_device

    acceleration.Placement(request.offload, "cpu")  # raises ValueError for unknown modes
    acceleration.resolve_compile(request.compile, resolve_device("cpu"))
    if request.precision == "fp8":
        if request.dtype not in ("auto", "bf16"):
            raise ValueError("--precision fp8 computes in bf16 around the float8 matmuls; drop --dtype or use bf16")
        problem = acceleration.fp8_problem(resolve_device(request.device))
        if problem:
            raise ValueError(problem)


def print_plan(found: discovery.DiscoveryResult, job: Job, detail: Callable | None = None) -> int:
    """``--dry-run``: list what would be done, skipped or refused, without loading any model."""
    planned = job.plan(found.files)
    for result in planned:
        extra = detail(result) if detail is not None and result.status == "planned" else None
        if job.request.json_events:
            print(json.dumps({**result.to_event(), "plan": extra}), flush=True)
        else:
            verb = {"planned": job.name, "skipped": "skip"}.get(result.status, result.status)
            target = f" -> {result.output}" if result.output else ""
            print(f"{verb:<7} {result.source}{target}" + (f" ({extra})" if extra else "")
                  + (f": {result.error}" if result.error else ""))
    todo = sum(r.status == "planned" for r in planned)
    log.info("dry run: %d to %s, %d already done", todo, job.name, sum(r.status == "skipped" for r in planned))
    return EXIT_FAILED if found.problems or any(r.status == "failed" for r in planned) else EXIT_OK


def dry_run(found: discovery.DiscoveryResult, job: RestoreJob) -> int:
    """``restore --dry-run``: the plan with each image's tile grid."""
    return print_plan(found, job, lambda result: _tile_plan(result.source, job.options, job.request))


def _tile_plan(source, options: batch.OutputOptions, request: RestoreRequest) -> str:
    """Processing size and tile grid of one image, from its header alone."""
    from lucidflux_cli.model.tiling import describe_plan

    size = probe_size(source)
    if size is None:
        return "size unknown"
    work = processing_size(output_size(size, options.size, options.scale), options.min_side)
    return describe_plan(*work, request.tiles(work))


