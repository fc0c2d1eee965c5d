"""Links of a review page: relative, percent-encoded, and only to files inside the folders the
run wrote or read. A path that resolves elsewhere (``..``, a symlink out, an absolute path in an
edited report) gets no link; the page shows its name as text."""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote


def resolve(path: str | Path, cwd: str | Path | None) -> Path:
    """A path as recorded in a report (relative to the run's working folder) made absolute."""
    path = Path(path)
    return path if path.is_absolute() or cwd is None else Path(cwd) / path


def input_roots(inputs: Iterable[str], cwd: str | Path | None) -> list[Path]:
    """The folders a run's inputs name: a folder itself, a file's folder, a glob's fixed part;
    stdin (``-``) names none."""
    roots = []
    for text in inputs:
        if text == "-":
            continue
        if glob.has_magic(text):  # the folders before the first pattern
            parts = Path(text).parts
            fixed = parts[: next(i for i, part in enumerate(parts) if glob.has_magic(part))]
            roots.append(resolve(Path(*fixed) if fixed else Path("."), cwd))
        else:
            path = resolve(text, cwd)
            roots.append(path if path.is_dir() else path.parent)
    return roots


@functools.lru_cache(maxsize=4096)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def real_path(path: str | Path) -> str:
    """``os.path.realpath`` with the folders' part remembered: a page of 20,000 photos in a few
    folders costs one ``lstat`` per file, not one per path component."""
    folder, name = os.path.split(os.path.abspath(path))
    real = os.path.join(_real_folder(folder), name)
    return os.path.realpath(real) if os.path.islink(real) else real


def real_roots(roots: Sequence[Path]) -> tuple[str, ...]:
    return tuple(os.path.realpath(root).rstrip(os.sep) + os.sep for root in roots)


def inside(path: Path, roots: Sequence[Path] | tuple[str, ...]) -> bool:
    """Whether ``path``, symlinks resolved, lies in one of ``roots`` (paths, or :func:`real_roots`)."""
    real = real_path(path) + os.sep
    bases = roots if roots and isinstance(roots[0], str) else real_roots(roots)
    return any(real.startswith(base) for base in bases)


def relative_name(path: Path, roots: Sequence[Path]) -> str | None:
    """``path`` under the first of ``roots`` that holds it (POSIX form), else None."""
    real = real_path(path)
    for root in roots:
        base = os.path.realpath(root)
        if (real + os.sep).startswith(base.rstrip(os.sep) + os.sep):
            return Path(os.path.relpath(real, base)).as_posix()
    return None


def relative_url(target: Path, page_folder: Path) -> str:
    """``target`` as a URL relative to the page: every segment percent-encoded, so no name can
    end the path (``#``, ``?``) or become a scheme (``javascript:``)."""
    relative = os.path.relpath(os.path.abspath(target), os.path.abspath(page_folder))
    url = "/".join(quote(os.fsencode(part), safe="") for part in Path(relative).parts)  # the name's own bytes
    return url if url.startswith("..") else "./" + url


def link(target: Path | None, page_folder: Path, roots: Sequence[Path] | tuple[str, ...]) -> str | None:
    """The relative URL of an existing file inside ``roots``, else None."""
    if target is None or not inside(target, roots) or not os.path.isfile(target):
        return None
    return relative_url(target, page_folder)
