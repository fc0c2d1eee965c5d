"""Parts of ``data degrade``'s job: reading a source photo, its provenance, and the tar shards.

``--format webdataset``: photo ``i`` of a run's (sorted) file list goes to tar ``i // photos``.
A photo's pairs are staged as files under ``.staging/`` as it finishes (a killed run keeps
them: only unfinished photos are redone); when every photo of a tar has its result, the tar is
written atomically from the staged files (and from its previous version, when a rerun adds to
it) and the staged files are removed. Tars of photos that failed are written at the end with
the pairs that were made; a rerun adds the missing ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lucidflux_cli import manifests
from lucidflux_cli.imageio import media, shards
from lucidflux_cli.imageio.discovery import InputFile

log = logging.getLogger("lucidflux")

Record = dict[str, Any]


def read_photo(
    path: Path, background: tuple[int, int, int] | None, min_side: int
) -> tuple[np.ndarray, str | None]:
    """A degrade source as 8-bit RGB: refused when too small, or transparent without a background."""
    from lucidflux_cli.data.sources import SourceRefused, check_size, flatten_alpha
    from lucidflux_cli.imageio.samples import quantize

    pages = media.read_pages(path, "first")
    loaded = pages.images[0]
    try:
        check_size(*loaded.size, min_side)
        rgb = quantize(flatten_alpha(loaded.rgb, loaded.alpha, background), 8)
    except SourceRefused as error:
        raise SourceRefused(f"{path}: {error}") from None
    notes = [pages.note] if pages.note else []
    if loaded.alpha is not None and not (loaded.alpha >= 1.0).all():
        notes.append(f"transparent pixels composited over #{bytes(background).hex()}")
    if loaded.metadata.bit_depth > 8:
        notes.append(f"{loaded.metadata.bit_depth}-bit image used at 8 bits")
    return rgb, "; ".join(notes) or None


def same_source(path: Path, records: Sequence[Record]) -> bool:
    """Whether ``records`` were made from this very file (same size, then same SHA-256)."""
    from lucidflux_cli.data.sources import file_identity

    try:
        if path.stat().st_size != records[0].get("source_bytes"):
            return False
        digest = file_identity(path.read_bytes())["source_sha256"]
    except OSError:
        return False
    return all(record.get("source_sha256") == digest for record in records)


def provenance(request: Any, config: Any) -> dict[str, Any]:
    """The request's settings, the preset's whole table, the draw order and the libraries the
    bytes depend on: a resume under any other of them redoes every pair."""
    from lucidflux_cli.data import degrade
    from lucidflux_cli.data.sources import preset_table, stack_versions

    return {
        **request.provenance(),
        "draws": degrade.SEED_DOMAIN.decode(),
        "table": preset_table(config),
        "versions": stack_versions(),
    }


class PairTars:
    """Which tar each photo's pairs go to, and writing each tar once all its photos are done."""

    def __init__(
        self,
        folder: Path,
        photos_per_tar: int,
        shard: manifests.Shard | None,
        journal: manifests.Journal,
        header: Callable[[], dict[str, Any]],
    ):
        self.folder, self.photos_per_tar, self.shard = folder, photos_per_tar, shard
        self.journal, self.header = journal, header
        self.tar_of: dict[Path, str] = {}  # source -> its tar (this run's grouping)
        self.waiting: dict[str, set[Path]] = {}  # tar -> sources without a result yet
        self.records: dict[str, list[Record]] = {}  # tar -> its pairs' records so far
        self._indexes: dict[str, dict[str, dict[str, shards.TarMember]]] = {}

    # -- in the workers
    def staged(self, name: str, index: int) -> dict[str, Path]:
        key = shards.sample_key(name, index)
        return {part: shards.staged_path(self.folder, key, part) for part in shards.PARTS}

    def stage(self, name: str, index: int, parts: dict[str, bytes]) -> str:
        key = shards.sample_key(name, index)
        shards.stage(self.folder, key, parts)
        return key

    # -- in the parent
    def samples_of(self, tar: str) -> dict[str, dict[str, shards.TarMember]]:
        if tar not in self._indexes:
            path = self.folder / tar
            self._indexes[tar] = shards.samples(shards.index_tar(path)) if path.is_file() else {}
        return self._indexes[tar]

    def present(self, record: Record) -> bool:
        """The pair's files are staged, or in the tar its record names."""
        return shards.is_staged(self.folder, record["key"]) or (
            "tar" in record and record["key"] in self.samples_of(record["tar"])
        )

    def plan(self, files: Sequence[InputFile], skipped: dict[Path, dict[tuple, Record]]) -> None:
        """Group this run's files into tars; photos done by an earlier run bring their records."""
        tag = str(self.shard) if self.shard else None
        for position, item in enumerate(files):
            tar = shards.tar_name(position // self.photos_per_tar, tag)
            self.tar_of[item.path] = tar
            self.waiting.setdefault(tar, set()).add(item.path)
            self.records.setdefault(tar, [])
            done = skipped.get(item.path)
            if done is not None:
                name = item.relative.as_posix()
                self.records[tar].extend(r for key, r in done.items() if key[0] == name)

    def assign(self, source: Path, records: list[Record]) -> list[Record]:
        """This run's records of ``source``, naming their tar."""
        tar = self.tar_of[source]
        made = [{**record, "tar": tar} for record in records]
        self.records[tar].extend(made)
        return made

    def finished(self, source: Path) -> None:
        """``source`` has its result: write its tar if it was the last one missing."""
        tar = self.tar_of.get(source)
        waiting = self.waiting.get(tar)
        if waiting is None:
            return
        waiting.discard(source)
        if not waiting:
            self._pack(tar)

    def pack_rest(self) -> None:
        """At the end: the tars still waiting for a photo (it failed) get the pairs that were made."""
        for tar, waiting in self.waiting.items():
            if waiting:
                waiting.clear()
                self._pack(tar)
        staging = self.folder / shards.STAGING
        for folder in sorted(staging.rglob("*"), reverse=True) + [staging]:  # deepest first
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    def _pack(self, tar: str) -> None:
        records = self.records.get(tar, [])
        if not records:
            return
        keys = [record["key"] for record in records]
        moved = [record for record in records if record.get("tar") != tar]
        staged = [key for key in keys if shards.is_staged(self.folder, key)]
        if not staged and not moved and set(self.samples_of(tar)) == set(keys):
            return  # the tar is already exactly these pairs
        previous = {
            record["key"]: self.samples_of(record["tar"])[record["key"]]
            for record in records
            if record["key"] not in staged
        }
        shards.pack(self.folder, tar, keys, previous)
        self._indexes.pop(tar, None)
        if moved:  # an earlier run put these pairs in another tar: their records say where they are now
            self.journal.append([{**record, "tar": tar} for record in moved], self.header())
        log.info("wrote %s (%d pairs)", self.folder / tar, len(records))
