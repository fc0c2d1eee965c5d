"""Crash-safe file replacement: write to a temp file beside the target, then rename over it.

A reader (or a later run) therefore sees either the old file or the complete new one, never a
half-written image. Temp files are named ``.<name>.lfx<random>.tmp`` so that leftovers from a
killed run are hidden and can be recognised and removed without touching anyone else's files.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

_TEMP_MARK = ".lfx"
_TEMP_SUFFIX = ".tmp"
# mkstemp's random part is 8 characters from [a-z0-9_].
_TEMP_RE = re.compile(r"^\..+\.lfx[a-z0-9_]{8}\.tmp$")


def _current_umask() -> int:
    # os.umask can only be read by setting it; done once at import, before any threads exist.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def is_temp_name(name: str) -> bool:
    """True for names produced by :func:`atomic_open` (and nothing else we know of)."""
    return bool(_TEMP_RE.match(name))


def _short(name: str, limit: int = 200) -> str:
    # Leave room for the temp decoration within the usual 255-byte file name limit.
    return name.encode("utf-8", "surrogateescape")[:limit].decode("utf-8", "ignore")


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform/filesystem, so best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _final_mode(path: Path) -> int:
    # mkstemp creates 0600; give the result the permissions a plain open() would (or the old file's).
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temp file for binary writing; on clean exit it atomically replaces ``path``.

    On any exception (KeyboardInterrupt included) the temp file is removed, ``path`` is left
    exactly as it was, and the exception propagates.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fp:
        yield fp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temp path beside ``path`` for writers that take a file name (safetensors, torch.save);
    on clean exit its data is fsynced and it atomically replaces ``path`` (then the folder is
    fsynced, so the rename survives a power cut). On any exception the temp file is removed."""
    path = Path(path)
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{_short(path.name)}{_TEMP_MARK}", suffix=_TEMP_SUFFIX, dir=directory
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as written:  # fsync flushes the file's data whichever handle wrote it
            os.fsync(written.fileno())
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(directory)


def atomic_write(path: str | os.PathLike[str], write_fn: Callable[[BinaryIO], object]) -> None:
    """Call ``write_fn(fp)`` on a temp file and atomically move the result to ``path``."""
    with atomic_open(path) as fp:
        write_fn(fp)


def remove_stale_temps(directory: str | os.PathLike[str], *, min_age_s: float = 0.0) -> list[Path]:
    """Delete temp files left anywhere under ``directory`` by a killed run; return what was removed.

    Outputs mirror the inputs' sub-folders, so the whole tree is searched (symlinked folders are
    not followed). Only names matching our temp pattern are touched. Pass ``min_age_s`` when
    another run may be writing into the same folder right now, so its in-progress temps survive.
    """
    removed: list[Path] = []
    now = time.time()
    for folder, _subfolders, names in os.walk(directory):
        for name in names:
            if not is_temp_name(name):
                continue
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
                if not stat.S_ISREG(info.st_mode) or (min_age_s and now - info.st_mtime < min_age_s):
                    continue
                os.unlink(path)
            except OSError:
                continue
            removed.append(Path(path))
    return sorted(removed)
