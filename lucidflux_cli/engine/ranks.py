"""Multi-machine restore under ``torchrun`` / ``accelerate launch`` (WORLD_SIZE > 1).

Split: rank r takes files r, r+W, r+2W, ... of the full discovered list (sorted, before any
resume-skipping). Every rank computes the same split on its own, with no shared state and no
locking on the shared folder (flock over NFS is unreliable), while other ranks are already
writing; a rerun gives each rank the same files, and finished ones are skipped. Interleaving
spreads a folder of big scans over all ranks rather than giving them to one. The price: no
load balancing between ranks (within a machine, prefer ``--devices`` for that).

torch.distributed (always gloo: only small Python objects are exchanged, and gloo needs no GPU
memory) is used for the rendezvous and three collectives: rank 0 takes the output lock and
broadcasts the outcome, and at the end gathers every rank's results to write the one report.
Outputs are written atomically by the rank that owns them, so a rank that dies leaves only
finished files and temps that the next run removes; torchrun then stops the other ranks
(exit 130, nothing half-written) and a rerun resumes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os

from lucidflux_cli.engine import batch
from lucidflux_cli.engine.control import Interrupted, output_lock, stop_on_signals
from lucidflux_cli.errors import LucidFluxError
from lucidflux_cli.imageio import atomic, discovery, formats

log = logging.getLogger("lucidflux")

TIMEOUT_ENV = "LUCIDFLUX_DIST_TIMEOUT"  # seconds a rank waits for the others at the end
DEFAULT_TIMEOUT_S = 7 * 24 * 3600  # ranks finish at different times; the gather must outlast that


def world() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` when launched by torchrun with more than one process."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1 or "RANK" not in os.environ:
        return None
    return int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0") or 0)


def share(count: int, rank: int, size: int) -> range:
    """Indices of the files rank ``rank`` of ``size`` restores (round-robin)."""
    return range(rank, count, size)


def rank_device(requested: str, local_rank: int, cuda_available: bool) -> str:
    """``auto``/``cuda``: this rank's GPU (cuda:LOCAL_RANK), or cpu without CUDA; else as asked."""
    if requested == "auto":
        return f"cuda:{local_rank}" if cuda_available else "cpu"
    if requested == "cuda":
        return f"cuda:{local_rank}"
    return requested


def run(request, found: discovery.DiscoveryResult, options: batch.OutputOptions) -> int:
    import torch
    import torch.distributed as dist

    rank, size, local_rank = world()
    _prefix_log(f"rank {rank}/{size}")
    timeout = dt.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    dist.init_process_group("gloo", timeout=timeout)
    try:
        device = rank_device(request.device, local_rank, torch.cuda.is_available())
        if device.startswith("cuda:") and torch.cuda.is_available():
            torch.cuda.set_device(torch.device(device))  # libraries that use "the" current GPU
        return _run_rank(request, found, options, rank, size, device)
    finally:
        dist.destroy_process_group()


def _run_rank(request, found, options, rank: int, size: int, device: str) -> int:
    import dataclasses

    import torch.distributed as dist

    from lucidflux_cli.engine import run as job

    request = dataclasses.replace(request, device=device, progress=request.progress and rank == 0)
    events = job.EventSink(request)
    with contextlib.ExitStack() as stack:
        locked = [_lock_on_rank0(stack, request) if rank == 0 else None]
        dist.broadcast_object_list(locked, src=0)  # the others wait here until rank 0 has the lock
        if locked[0] is not None:
            if rank == 0:
                log.error("%s", locked[0])
                events.finish(None, found, job.EXIT_SETUP, locked[0])
            return job.EXIT_SETUP
        try:
            mine, error = _restore_share(request, found, options, rank, size, events)
        except (KeyboardInterrupt, Interrupted):  # torchrun stops every rank when one dies
            log.error("interrupted; finished files are kept, nothing is half-written; rerun to resume")
            return job.EXIT_INTERRUPTED
        parts = [None] * size if rank == 0 else None
        dist.gather_object((mine, error), parts, dst=0)
        code = [_merge(found, parts, events) if rank == 0 else None]
        dist.broadcast_object_list(code, src=0)  # every rank exits with the run's code
        return code[0]


def _lock_on_rank0(stack: contextlib.ExitStack, request) -> str | None:
    """Rank 0 alone holds the output lock for the whole run: ranks of one run never contend,
    while another run (single or distributed) is still refused. Returns an error or None."""
    try:
        stack.enter_context(output_lock(request.out_dir))
    except (LucidFluxError, OSError) as error:
        return str(error)
    atomic.remove_stale_temps(request.out_dir)  # before any rank of this run writes
    return None


def _restore_share(request, found, options, rank: int, size: int, events) -> tuple[list[tuple[int, batch.FileResult]], str | None]:
    """Restore this rank's files; returns ``[(index, result)]`` and a setup error, if any."""
    from lucidflux_cli.engine import run as job

    files = found.files
    conflicts = batch.output_conflicts(files, options)  # judged over the whole list, as a single run would
    indices = share(len(files), rank, size)
    restorers: list[batch.Restorer] = []
    claimed: dict = {}
    name = f"rank {rank}"

    def restorer() -> batch.Restorer:
        if not restorers:
            restorers.append(job.build_restorer(request))
        return restorers[0]

    mine: list[tuple[int, batch.FileResult]] = []
    with (stop_on_signals(), formats.using_options(request.fmt, request.format_options),
          job.Progress(len(indices), request) as progress):
        for index in indices:
            item = files[index]
            try:
                result = conflicts.get(item.path) or batch.restore_file(
                    item, restorer, options, job.provenance(request), claimed, on_step=progress.step)
            except (job.SetupError, LucidFluxError) as error:
                log.error("%s", error)
                return mine, str(error)
            result.worker = name
            mine.append((index, result))
            events.file(result)
            progress.file_done()
            if request.fail_fast and result.status == "failed":  # this rank only; others finish their share
                break
    return mine, None


def _merge(found, parts: list, events) -> int:
    """Rank 0: one report in discovery order, and the run's exit code."""
    from lucidflux_cli.engine import run as job

    results = sorted((pair for mine, _ in parts for pair in mine), key=lambda pair: pair[0])
    report = batch.BatchReport([result for _, result in results])
    errors = [error for _, error in parts if error]
    if errors:
        code = job.EXIT_SETUP
    else:
        code = job.EXIT_FAILED if found.problems and report.exit_code == job.EXIT_OK else report.exit_code
    log.info("all ranks: %d restored, %d skipped, %d failed", report.count("done"), report.count("skipped"),
             report.count("failed"))
    events.finish(report, found, code, errors[0] if errors else None)
    return code


def _prefix_log(tag: str) -> None:
    """Name the rank in every stderr line: torchrun interleaves the ranks' output."""
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setFormatter(logging.Formatter(f"lucidflux[{tag}]: %(message)s"))
