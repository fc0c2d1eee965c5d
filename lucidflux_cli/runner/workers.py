"""Data-parallel runs on one machine (``--devices``, ``--workers``): one worker process per device.

Each worker builds the job's processor (for restore: its own pipeline, built lazily, like a single
run) and does and writes whole files with the job's per-file logic, so outputs are those of a
single run. The parent hands
out one file at a time to whichever worker is idle (a shared queue in effect: a slow image does
not idle the others) and so always knows which file each worker holds. It owns everything the
user sees: the output lock, progress, ``--json`` events, the log of results, the report, and
SIGINT/SIGTERM. Workers talk to it over their own pipe, so a worker killed mid-message can only
garble its own channel.

A worker that dies (OOM-kill, lost device) has its file retried once, preferably on another
device; a file that kills two workers fails alone. A slot whose worker died is restarted once.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from lucidflux_cli.errors import LucidFluxError
from lucidflux_cli.imageio.discovery import InputFile
from lucidflux_cli.runner.control import Interrupted, stop_on_signals
from lucidflux_cli.runner.job import Job
from lucidflux_cli.runner.report import EXIT_INTERRUPTED, SetupError
from lucidflux_cli.runner.results import BatchReport, FileResult, StepCallback
from lucidflux_cli.runner.scheduling import ResultCallback, Scheduler

log = logging.getLogger("lucidflux")

MAX_SLOT_DEATHS = 2  # a device whose worker died twice is given up (lost device)
STOP_TIMEOUT_S = 60.0


class Workers(Scheduler):
    """One spawned worker process (for restore: one model copy) per device, fed by this process."""

    def __init__(self, job: Job, devices: list[str]):
        super().__init__(job)
        self.devices = devices  # one worker each (repeats allowed: cpu,cpu)

    def work(
        self, files: Sequence[InputFile], on_result: ResultCallback, on_step: StepCallback | None
    ) -> list[FileResult]:
        return Pool(list(files), self.job, self.devices, on_result).run().results


@dataclass
class Worker:
    slot: int
    device: str
    process: multiprocessing.process.BaseProcess
    conn: Connection
    task: int | None = None  # index of the file it holds

    @property
    def name(self) -> str:
        return f"{self.device}#{self.slot}"


@dataclass
class Pool:
    """Hands files to idle workers, collects results, retries the files of dead workers."""

    files: list[InputFile]
    job: Job
    devices: list[str]
    on_result: Callable[[FileResult], None]
    pending: deque[int] = field(default_factory=deque)
    results: dict[int, FileResult] = field(default_factory=dict)
    deaths: dict[int, list[int | None]] = field(
        default_factory=dict
    )  # file -> exit codes of workers that died on it
    avoid: dict[int, int] = field(default_factory=dict)  # retried file -> slot it died on
    slot_deaths: dict[int, int] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)
    stopping: bool = False  # --fail-fast: hand out nothing more

    def run(self) -> BatchReport:
        settled = self.job.settle(self.files)  # resume skips and conflicts: no worker needed for them
        for index in range(len(self.files)):
            if index not in settled:
                self.pending.append(index)
                continue
            self.record(index, settled[index])
            if self.job.stops_after(settled[index]):  # --fail-fast: as one process, none after it
                break
        context = multiprocessing.get_context("spawn")  # fork would copy the parent's threads and CUDA state
        try:
            if self.pending:
                self.workers = [self.start(context, slot, device) for slot, device in enumerate(self.devices)]
            while self.pending or any(w.task is not None for w in self.workers):
                self.feed()
                self.poll(context)
        except BaseException:
            self.stop(terminate=True)
            raise
        self.stop(terminate=False)
        return BatchReport([self.results[index] for index in sorted(self.results)])

    def start(self, context, slot: int, device: str) -> Worker:
        parent_end, child_end = context.Pipe()
        threads = cpu_threads(self.devices) if device == "cpu" else None
        process = context.Process(
            target=worker_main,
            name=f"lucidflux-{device}#{slot}",
            daemon=True,
            args=(child_end, self.job, device, f"{device}#{slot}", log.getEffectiveLevel(), threads),
        )
        process.start()
        child_end.close()  # so the parent sees EOF when the worker dies
        return Worker(slot, device, process, parent_end)

    def feed(self) -> None:
        for worker in self.workers:
            if worker.task is None and not self.stopping:
                index = self.next_for(worker)
                if index is not None:
                    worker.task = index
                    worker.conn.send((index, self.files[index]))

    def next_for(self, worker: Worker) -> int | None:
        """The next file, skipping retries that died on this worker's slot while another slot lives."""
        others = any(w.slot != worker.slot for w in self.workers)
        for position, index in enumerate(self.pending):
            if self.avoid.get(index) != worker.slot or not others:
                del self.pending[position]
                return index
        return None

    def poll(self, context) -> None:
        ready = set(wait([w.conn for w in self.workers] + [w.process.sentinel for w in self.workers]))
        for worker in [w for w in self.workers if w.conn in ready or w.process.sentinel in ready]:
            self.drain(worker)
            if not worker.process.is_alive() or worker.conn.closed:
                self.bury(context, worker)

    def drain(self, worker: Worker) -> None:
        try:
            while worker.conn.poll():
                self.handle(worker, worker.conn.recv())
        except (EOFError, OSError):
            worker.conn.close()
        except LucidFluxError:
            raise
        except Exception:  # a message cut short by the worker's death
            worker.conn.close()

    def handle(self, worker: Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "setup_error":
            raise SetupError(message[1])
        _, index, result = message
        worker.task = None
        result.retried = index in self.avoid
        self.finish(index, result)

    def finish(self, index: int, result: FileResult) -> None:
        """A worker's result, or a failure made here (a worker died twice, none left)."""
        self.record(index, result)
        if self.job.stops_after(result):  # --fail-fast: hand out nothing more
            self.stopping = True
            self.pending.clear()

    def record(self, index: int, result: FileResult) -> None:
        self.results[index] = result
        self.on_result(result)

    def bury(self, context, worker: Worker) -> None:
        """A worker died unexpectedly: retry its file once elsewhere, restart its slot once."""
        if worker.process.is_alive():  # its channel broke but it lingers
            worker.process.kill()
        worker.process.join()
        code = worker.process.exitcode
        self.workers.remove(worker)
        self.slot_deaths[worker.slot] = self.slot_deaths.get(worker.slot, 0) + 1
        if worker.task is not None:
            self.retry_or_fail(worker, worker.task, code)
        if self.slot_deaths[worker.slot] < MAX_SLOT_DEATHS:
            log.warning("worker %s died (%s); starting a new one", worker.name, describe_exit(code))
            self.workers.append(self.start(context, worker.slot, worker.device))
        else:
            log.warning(
                "worker %s died again (%s); going on without %s",
                worker.name,
                describe_exit(code),
                worker.device,
            )
        if not self.workers:
            for index in list(self.pending):
                self.finish(
                    index,
                    FileResult(
                        self.files[index].path,
                        None,
                        "failed",
                        error=f"{self.files[index].path}: no worker left (all devices lost)",
                    ),
                )
            self.pending.clear()

    def retry_or_fail(self, worker: Worker, index: int, code: int | None) -> None:
        path = self.files[index].path
        codes = self.deaths.setdefault(index, [])
        codes.append(code)
        if len(codes) >= 2:
            causes = ", ".join(describe_exit(c) for c in codes)
            self.finish(
                index,
                FileResult(
                    path,
                    None,
                    "failed",
                    worker=worker.name,
                    retried=True,
                    error=f"{path}: worker died twice ({causes})",
                ),
            )
            return
        log.warning(
            "worker %s died (%s) while restoring %s; retrying it once on another worker",
            worker.name,
            describe_exit(code),
            path,
        )
        self.avoid[index] = worker.slot
        self.pending.appendleft(index)

    def stop(self, terminate: bool) -> None:
        """Normal end: tell idle workers to exit. Interrupt or error: SIGTERM them (they stop cleanly)."""
        for worker in self.workers:
            try:
                if terminate or worker.task is not None:
                    worker.process.terminate()
                else:
                    worker.conn.send(None)
            except OSError:
                pass
        for worker in self.workers:
            worker.process.join(STOP_TIMEOUT_S)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            if terminate:  # a file finished just before the stop is still reported (and counted)
                with contextlib.suppress(Exception):
                    self.drain(worker)
            worker.conn.close()
        self.workers = []


def cpu_threads(devices: list[str]) -> int:
    """Torch threads per CPU worker: the cores shared out, since oversubscribed OpenMP threads
    spin against each other (20x slower measured with 2 workers x 2 threads on 2 cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, devices.count("cpu")))


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


# ------------------------------------------------------------------------------------ worker


def worker_main(
    conn: Connection, job: Job, device: str, name: str, log_level: int, threads: int | None = None
) -> None:
    """Entry point of a worker process: do the files the parent sends until it sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    if threads is not None:  # before torch starts its thread pool; a job without torch never imports it
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
        if "torch" in sys.modules:  # unpickling the job brought it in already
            sys.modules["torch"].set_num_threads(threads)
    logging.basicConfig(level=log_level, format=f"lucidflux[{name}]: %(message)s", force=True)
    job = job.on_device(device)
    try:
        with stop_on_signals(), job.context():
            try:
                process = job.processor()
            except (SetupError, LucidFluxError) as error:
                conn.send(("setup_error", str(error)))
                return
            while (message := conn.recv()) is not None:
                index, item = message

                def publish(result: FileResult, index: int = index) -> None:
                    result.worker = name
                    conn.send(("result", index, result))

                try:
                    process(item, publish)
                except (SetupError, LucidFluxError) as error:
                    conn.send(("setup_error", str(error)))
                    return
    except (Interrupted, KeyboardInterrupt):
        sys.exit(EXIT_INTERRUPTED)
    except EOFError:  # the parent is gone
        sys.exit(EXIT_INTERRUPTED)
