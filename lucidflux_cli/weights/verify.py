"""``weights verify``: rehash cached files against the pinned sha256 or the hub's own hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from lucidflux_cli.weights.cache import cached_file, hub_hashes
from lucidflux_cli.weights.registry import WeightFile


@dataclass(frozen=True)
class FileCheck:
    """``weights verify`` result for one file: ok, mismatch, missing or unverified."""

    name: str
    filename: str
    status: str
    path: Path | None = None
    detail: str = ""


def verify(entry: WeightFile, cache_dir: Path | str | None = None) -> list[FileCheck]:
    """Rehash each cached file of ``entry`` against the registry's sha256 or the hub's hash.

    The hub's hash is the name of the cache blob behind the file: sha256 for LFS files, the git
    blob sha1 otherwise. Never touches the network.
    """
    checks = []
    hashes: dict[Path, str | None] | None = None
    for filename in entry.filenames:
        path = cached_file(entry, filename, cache_dir)
        if path is None:
            hint = f"run `lucidflux weights download {entry.name}`"
            checks.append(FileCheck(entry.name, filename, "missing", detail=hint))
            continue
        if entry.filename is not None and entry.sha256:
            expected = entry.sha256
        else:
            hashes = hub_hashes(entry, cache_dir) if hashes is None else hashes  # one cache scan per entry
            expected = hashes.get(path)
        checks.append(_check(entry.name, filename, path, expected))
    return checks


def _check(name: str, filename: str, path: Path, expected: str | None) -> FileCheck:
    if expected is None or len(expected) not in (40, 64):
        return FileCheck(name, filename, "unverified", path, "no checksum known for this file")
    actual = git_blob_sha1(path) if len(expected) == 40 else sha256(path)
    if actual == expected.lower():
        return FileCheck(name, filename, "ok", path)
    return FileCheck(
        name,
        filename,
        "mismatch",
        path,
        f"expected {expected}, got {actual}; re-download with `lucidflux weights download --force {name}`",
    )


def sha256(path: Path) -> str:
    """The file's sha256 (hex), read in 8 MB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """Git's object id of a (non-LFS) file: sha1 of ``blob <size>\\0`` + content."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()
