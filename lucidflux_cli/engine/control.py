"""Run control for unattended batches: one writer per output folder, clean stops on signals."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from lucidflux_cli.errors import LucidFluxError

LOCK_NAME = ".lucidflux.lock"


class OutputLocked(LucidFluxError):
    """Another run holds the output folder."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; raised between files/steps so nothing is half-written."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[Path]:
    """Hold an exclusive, non-blocking lock on ``out_dir`` for the whole run.

    filelock uses the OS lock (``flock`` on POSIX, ``LockFileEx`` on Windows), which the kernel
    releases when the process dies, so a killed run never leaves a stale lock behind. The holder
    writes its pid into the file so that a refused run can name it.
    """
    import filelock

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    lock = filelock.FileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        owner = _read_owner(path)
        raise OutputLocked(f"{out_dir}: another lucidflux run (pid {owner}) is writing here; "
                           "wait for it or use another -o") from None
    try:
        path.write_text(str(os.getpid()))
        yield path
    finally:
        lock.release()


def _read_owner(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM (and SIGINT) into :class:`Interrupted` in the main thread."""

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
