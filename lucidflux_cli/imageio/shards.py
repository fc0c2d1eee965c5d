"""WebDataset tar shards of training pairs: written atomically, read in place (never extracted).

Layout (the ``webdataset`` package's): consecutive members ``KEY.hq.png``, ``KEY.lq.png``,
``KEY.json`` per sample. webdataset cuts a member name at the first dot of its base name, so a
key may hold ``/`` but no ``.``: :func:`sample_key` escapes dots (and ``%``) as in URLs.

Tars are written here with :mod:`tarfile`, not webdataset's ``ShardWriter``: that one writes
straight under the final name (a killed run would leave a truncated tar that readers take for a
shard) and stamps members with the current time (other bytes on every run). Here a tar is built
in a temp file, fsynced and renamed, with fixed headers (mtime 0, uid/gid 0, mode 644), so the
same pairs give the same bytes.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lucidflux_cli import atomic

PARTS = ("hq.png", "lq.png", "json")  # what each sample holds; lq_up is derived when training
STAGING = ".staging"  # per-pair files of tars not written yet (a killed run keeps them)


def sample_key(relative: str, pass_index: int) -> str:
    """``sub/photo.v2.jpg``, pass 1 -> ``sub/photo%2Ev2_p1``: the webdataset key of one pair."""
    path = PurePosixPath(relative)
    stem = path.with_suffix("").name.replace("%", "%25").replace(".", "%2E")
    return (path.parent / f"{stem}_p{pass_index}").as_posix().removeprefix("./")


def tar_name(index: int, shard: str | None = None) -> str:
    """``pairs-000012.tar``; a machine's share of a ``--shard K/N`` run: ``pairs-3of16-000012.tar``."""
    tag = f"{shard.replace('/', 'of')}-" if shard else ""
    return f"pairs-{tag}{index:06d}.tar"


@dataclass(frozen=True)
class TarMember:
    """One file inside a tar, read in place by offset."""

    tar: Path
    name: str
    offset: int
    size: int

    def read_bytes(self) -> bytes:
        with open(self.tar, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(self.size)
        if len(data) != self.size:
            raise OSError(f"{self}: the tar ends inside this member")
        return data

    def __str__(self) -> str:
        return f"{self.tar}:{self.name}"


def index_tar(path: Path) -> dict[str, TarMember]:
    """The regular files of an uncompressed tar by name (headers only: data is skipped, not read)."""
    members = {}
    with tarfile.open(path, "r:") as tar:
        for info in tar:
            if info.isfile():
                members[info.name] = TarMember(Path(path), info.name, info.offset_data, info.size)
    return members


def write_tar(path: Path, members: Iterable[tuple[str, bytes]]) -> None:
    """``members`` (name, bytes), in the given order, as the tar ``path``, atomically."""
    import io

    def write(handle) -> None:
        with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.atomic_write(path, write)


def staged_path(folder: Path, key: str, part: str) -> Path:
    return folder / STAGING / f"{key}.{part}"


def stage(folder: Path, key: str, parts: dict[str, bytes]) -> None:
    """One pair's members as files under ``folder/.staging`` (each atomically) until its tar is written."""
    for part, data in parts.items():
        path = staged_path(folder, key, part)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.atomic_write(path, lambda handle, data=data: handle.write(data))


def is_staged(folder: Path, key: str) -> bool:
    return all(staged_path(folder, key, part).is_file() for part in PARTS)


def pack(folder: Path, name: str, keys: list[str], previous: dict[str, dict[str, TarMember]]) -> None:
    """Write tar ``name`` from ``keys`` (sorted: the same bytes however the pairs were made): each
    member from its staged file, else from the tar that held it before (``previous``: key ->
    part -> member; a rerun that adds a photo to a written tar). Staged files are removed after."""
    members = []
    for key in sorted(keys):
        for part in PARTS:
            staged = staged_path(folder, key, part)
            data = staged.read_bytes() if staged.is_file() else previous[key][part].read_bytes()
            members.append((f"{key}.{part}", data))
    write_tar(folder / name, members)
    for key in keys:
        for part in PARTS:
            staged_path(folder, key, part).unlink(missing_ok=True)


def samples(members: dict[str, TarMember]) -> dict[str, dict[str, TarMember]]:
    """Members grouped by sample key: key -> part (``hq.png``, ...) -> member, in tar order."""
    grouped: dict[str, dict[str, TarMember]] = {}
    for name, member in members.items():
        path = PurePosixPath(name)
        stem, dot, part = path.name.partition(".")
        if dot:
            grouped.setdefault((path.parent / stem).as_posix().removeprefix("./"), {})[part] = member
    return grouped
