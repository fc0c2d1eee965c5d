"""Multi-machine runs under ``torchrun`` / ``accelerate launch`` (WORLD_SIZE > 1).

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
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

from lucidflux_cli import devices
from lucidflux_cli.errors import LucidFluxError, one_line
from lucidflux_cli.imageio.discovery import InputFile
from lucidflux_cli.runner.control import OutputLocked
from lucidflux_cli.runner.job import Job
from lucidflux_cli.runner.report import SetupError
from lucidflux_cli.runner.results import BatchReport, FileResult, StepCallback
from lucidflux_cli.runner.scheduling import ResultCallback, Scheduler

log = logging.getLogger("lucidflux")

TIMEOUT_ENV = "LUCIDFLUX_DIST_TIMEOUT"  # seconds a rank waits for the others at the end
DEFAULT_TIMEOUT_S = 7 * 24 * 3600  # ranks finish at different times; the gather must outlast that
SALVAGE_TIMEOUT_S = 10.0  # after an interrupt: how long rank 0 waits for the others' finished files


def world() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` when launched by torchrun with more than one process."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1 or "RANK" not in os.environ:
        return None
    return int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0") or 0)


def share(count: int, rank: int, size: int) -> range:
    """Indices of the files rank ``rank`` of ``size`` restores (round-robin)."""
    return range(rank, count, size)


class Ranks(Scheduler):
    """This process is one rank of a torchrun / accelerate launch: it restores its share of the files.

    Rank 0 holds the output lock, gathers every rank's results and writes the one report; every
    rank exits with rank 0's code. Jobs with set-level work (``job.complete``) use ``--shard``
    under torchrun instead.
    """

    completes_here = False

    def __init__(self, job: Job):
        import torch

        self.rank, self.size, local_rank = world()
        self.device = devices.rank_device(
            getattr(job.request, "device", "auto"), local_rank, torch.cuda.is_available()
        )
        super().__init__(job.on_device(self.device, progress=job.request.progress and self.rank == 0))
        self.writes_report = self.rank == 0
        self.setup_error: str | None = None
        self.agreed = False  # reached the end together (not interrupted)
        self.order: dict = {}  # file -> its place in discovery order, to merge the ranks' results
        self.stop_flag: Path | None = None  # exists once a rank failed a file under --fail-fast

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        import torch
        import torch.distributed as dist

        _prefix_log(f"rank {self.rank}/{self.size}")
        timeout = dt.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
        dist.init_process_group("gloo", timeout=timeout)
        try:
            if self.device.startswith("cuda:") and torch.cuda.is_available():
                torch.cuda.set_device(torch.device(self.device))  # libraries that use "the" current GPU
            yield
            if self.agreed:  # a normal end: every rank is here. Leave together: a rank tearing its
                dist.barrier()  # group down while another still talks to it aborts in gloo's threads
        finally:
            dist.destroy_process_group()

    def lock(self, stack: contextlib.ExitStack) -> None:
        """Rank 0 alone holds the output lock for the whole run: ranks of one run never contend,
        while another run (single or distributed) is still refused."""
        import torch.distributed as dist

        error = [None, secrets.token_hex(4)]  # rank 0's token names this run's --fail-fast flag
        if self.rank == 0:
            try:
                super().lock(stack)  # also clears temps before any rank of this run writes
            except (LucidFluxError, OSError) as failure:
                error[0] = str(failure)
        dist.broadcast_object_list(error, src=0)  # the others wait here until rank 0 has the lock
        if error[0] is not None:
            raise OutputLocked(error[0])
        # A temp-file name: a killed run's flag is removed by the next run with its other temps.
        self.stop_flag = Path(self.job.out_dir) / f".fail-fast.lfx{error[1]}.tmp"

    def count(self, files: Sequence[InputFile]) -> int:
        return len(share(len(files), self.rank, self.size))

    def work(
        self, files: Sequence[InputFile], on_result: ResultCallback, on_step: StepCallback | None
    ) -> list[FileResult]:
        """This rank's files; a setup error is kept for :meth:`gather`, so no rank waits forever."""
        self.order = {item.path: index for index, item in enumerate(files)}  # to merge in discovery order
        settled = self.job.settle(files)  # judged over the whole list, as a single run
        process = self.job.processor()
        mine: list[FileResult] = []

        def publish(result: FileResult) -> None:
            result.worker = f"rank {self.rank}"
            mine.append(result)
            on_result(result)

        for index in share(len(files), self.rank, self.size):
            if self.stop_flag is not None and self.stop_flag.exists():  # another rank failed (--fail-fast)
                break
            item = files[index]
            try:
                if index in settled:
                    publish(settled[index])
                else:
                    process(item, publish, on_step=on_step)
            except (SetupError, LucidFluxError) as error:
                self.setup_error = str(error)
                break
            if mine and self.job.stops_after(mine[-1]):  # and tell the other ranks to stop too
                if self.stop_flag is not None:
                    self.stop_flag.touch()
                break
        return mine

    def gather(self, results: list[FileResult]) -> tuple[BatchReport | None, str | None]:
        """Rank 0: every rank's results in discovery order, and the first setup error."""
        import torch.distributed as dist

        parts = [None] * self.size if self.rank == 0 else None
        dist.gather_object((results, self.setup_error), parts, dst=0)
        if self.rank != 0:
            return None, self.setup_error
        if self.stop_flag is not None:  # every rank has stopped: the flag has done its work
            self.stop_flag.unlink(missing_ok=True)
        errors = [error for _, error in parts if error]
        return self._merged([result for mine, _ in parts for result in mine]), (errors[0] if errors else None)

    def salvage(self, seen: list[FileResult]) -> BatchReport:
        """After an interrupt (torchrun sends SIGTERM to every rank): meet the other ranks for a
        short while and collect what each finished; a rank that does not come (dead, or still
        working) leaves rank 0's report with what rank 0 knows. torchrun kills ranks 30 s after
        its SIGTERM, so this waits less."""
        import torch.distributed as dist

        try:
            dist.monitored_barrier(timeout=dt.timedelta(seconds=SALVAGE_TIMEOUT_S), wait_all_ranks=True)
            parts = [None] * self.size if self.rank == 0 else None
            dist.gather_object(list(seen), parts, dst=0)
        except (RuntimeError, ValueError) as error:
            if self.rank == 0:
                log.warning(
                    "the other ranks' finished files could not be collected (%s); the report lists "
                    "rank 0's, and the outputs of all ranks are on disk",
                    one_line(error),
                )
            return BatchReport(list(seen))
        if self.rank != 0:
            return BatchReport(list(seen))
        return self._merged([result for part in parts for result in part])

    def _merged(self, results: list[FileResult]) -> BatchReport:
        return BatchReport(sorted(results, key=lambda result: self.order.get(result.source, len(self.order))))

    def agree(self, code: int) -> int:
        import torch.distributed as dist

        codes = [code]
        dist.broadcast_object_list(codes, src=0)  # every rank exits with the run's code
        self.agreed = True
        return codes[0]


def _prefix_log(tag: str) -> None:
    """Name the rank in every stderr line: torchrun interleaves the ranks' output."""
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setFormatter(logging.Formatter(f"lucidflux[{tag}]: %(message)s"))
