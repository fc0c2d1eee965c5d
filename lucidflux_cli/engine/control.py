"""Run control for unattended batches: one writer per output folder, clean stops on signals."""

from __future__ import annotations

import contextlib
import errno
import fcntl
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

    ``flock`` is released by the kernel when the process dies, so a killed run never leaves
    a stale lock behind; the file itself is harmless.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    handle = open(path, "a+")  # noqa: SIM115 (held for the duration of the context)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise OutputLocked(f"{out_dir}: another lucidflux run (pid {owner}) is writing here; wait for it or use another -o") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield path
    finally:
        handle.close()


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
