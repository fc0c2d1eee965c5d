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
def output_lock(out_dir: Path, name: str | None = None) -> Iterator[Path]:
    """Hold an exclusive, non-blocking lock on ``out_dir`` for the whole run.

    The lock is the OS's (``flock`` on POSIX; on Windows filelock's ``LockFileEx``), which the
    kernel releases when the process dies, so a killed run never leaves a stale lock. The file
    ``.lucidflux.lock`` exists only while a run holds it: it is removed on the way out, so the
    folder ends up holding outputs only (docs/archive-workflow.md); one left by a killed run is
    taken over and removed by the next run. The holder writes its pid into it so that a refused
    run can name it. ``name``: another lock file, so shards of one job (``--shard K/N``) writing
    one folder exclude only a second run of the same shard.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (name or LOCK_NAME)
    hold = _hold_posix if os.name == "posix" else _hold_filelock
    with hold(path, out_dir):
        yield path


def _refused(path: Path, out_dir: Path) -> OutputLocked:
    return OutputLocked(
        f"{out_dir}: another lucidflux run (pid {_read_owner(path)}) is writing here; "
        "wait for it or use another -o"
    )


@contextlib.contextmanager
def _hold_posix(path: Path, out_dir: Path) -> Iterator[None]:
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _refused(path, out_dir) from None
        # Removing the file on exit is safe only with this check: a run that opened the file just
        # before its holder removed it now holds a lock on a name-less file; it tries again.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(current, os.fstat(fd)):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # still holding the lock: nobody can be between open and check here
        os.close(fd)


@contextlib.contextmanager
def _hold_filelock(path: Path, out_dir: Path) -> Iterator[None]:
    import filelock  # on Windows it removes the file on release itself

    lock = filelock.FileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise _refused(path, out_dir) from None
    try:
        path.write_text(str(os.getpid()))
        yield
    finally:
        lock.release()


def _read_owner(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM (and SIGINT) into :class:`Interrupted` in the main thread (held back while
    :func:`uninterrupted` code runs)."""

    def handler(signum, frame):
        global _pending
        if _held:
            _pending = signum
            return
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


_held = 0  # depth of uninterrupted() blocks
_pending: int | None = None  # a signal that arrived inside one


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """A signal arriving inside is raised at the end: an output put in place is also reported,
    so an interrupted run's report lists exactly the files on disk."""
    global _held, _pending
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if not _held and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)
