"""The one manifest schema (header, kinds, version) and its JSON-lines storage: journal, shards,
merging. Every writer (``data filter``, ``data degrade``, ``data merge``, ``eval``) and every
reader (``data degrade`` reading a filter's, ``train`` reading pairs) goes through here.

A manifest is one JSON object per line: first a header (``{"manifest": KIND, "schema": N, ...}``:
the kind, the schema version, the tool, the command's settings, the shard), then one record per
image (filter, eval) or pair (degrade), sorted by key, so the same inputs give the same file
however many workers or shards made it. :data:`KINDS` says what each kind's records hold.

During a run records are appended to ``<manifest>.journal`` as files finish: each line is
written at once (a killed process loses nothing it finished) and the journal is fsynced every
:data:`SYNC_EVERY` records or :data:`SYNC_SECONDS` seconds (a crash of the machine loses at most
those). A rerun reads manifest and journal to know what is done, so it redoes exactly the records
that are missing. At the end the manifest is rewritten atomically and the journal removed. A
line cut short by a kill is ignored (its file is simply redone).

``--shard K/N``: shard K of N (0-based) takes files K, K+N, K+2N, ... of the discovered list and
writes ``<stem>.shard-K-of-N<suffix>``; ``lucidflux data merge <manifest>`` joins the N shards.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lucidflux_cli import atomic
from lucidflux_cli.errors import LucidFluxError

log = logging.getLogger("lucidflux")

Key = Callable[[dict[str, Any]], tuple]

SYNC_EVERY = 64  # journal lines between two fsyncs ...
SYNC_SECONDS = 5.0  # ... or seconds, whichever comes first: the most a machine crash can lose


class ManifestError(LucidFluxError):
    """A manifest or its shards cannot be used."""


SCHEMA = 1  # the version of the layout below; a reader refuses another one in one line


@dataclass(frozen=True)
class Kind:
    name: str  # the header's "manifest" value
    made_by: str  # the command that writes it
    fields: tuple[str, ...]  # keys every record has


KINDS = {
    kind.name: kind
    for kind in (
        # "kept" is decided over the whole set: a shard's records hold per-image verdicts only
        Kind("lucidflux-filter", "lucidflux data filter", ("name", "source")),
        # a pair is files (hq, lq, lq_up) or, with --format webdataset, a sample (tar, key)
        Kind("lucidflux-pairs", "lucidflux data degrade", ("name", "pass", "source", "params")),
        Kind("lucidflux-eval", "lucidflux eval", ()),
    )
}


def header(kind: str, settings: Any, **extra: Any) -> dict[str, Any]:
    """The first line of a manifest of ``kind`` made with ``settings``."""
    from lucidflux_cli import __version__

    return {
        "manifest": KINDS[kind].name,
        "schema": SCHEMA,
        "tool": f"lucidflux-cli {__version__}",
        "settings": settings,
        **extra,
    }


def read(path: Path, kind: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A finished manifest of ``kind``: (header, records). ManifestError in one line naming the
    file, the line and what was expected, for a missing or foreign header, another kind, another
    schema version, or a record without the kind's fields."""
    expected = KINDS[kind]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ManifestError(
            f"{path}: cannot be read ({error.strerror or error}); expected {_described(expected)}"
        ) from error
    first = _json_line(lines[0]) if lines else None
    check_header(path, first, kind)
    records = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        record = _json_line(line)
        missing = [key for key in expected.fields if not isinstance(record, dict) or key not in record]
        if missing:
            raise ManifestError(f"{path}:{number}: not a {expected.name} record (no {', '.join(missing)})")
        records.append(record)
    return first, records


def check_header(path: Path, header: Any, kind: str | None = None) -> Kind:
    """The kind of a manifest's first line (``kind`` when given), at this schema version;
    ManifestError naming ``path``'s line 1 and what was expected otherwise."""
    expected = KINDS[kind] if kind else None
    want = _described(expected) if expected else "a lucidflux manifest"
    if not isinstance(header, dict) or "manifest" not in header:
        raise ManifestError(f"{path}:1: no lucidflux manifest header; expected {want}")
    found = KINDS.get(header["manifest"])
    if found is None or (expected is not None and found.name != expected.name):
        what = _described(found) if found else f"kind {header['manifest']!r}"
        raise ManifestError(f"{path}:1: {what}; expected {want}")
    if header.get("schema") != SCHEMA:
        made = header.get("tool", "another lucidflux-cli")
        raise ManifestError(
            f"{path}:1: schema {header.get('schema', 0)} (written by {made}); this lucidflux-cli "
            f"reads schema {SCHEMA}: run `{found.made_by}` again"
        )
    return found


def _described(kind: Kind) -> str:
    return f"a {kind.name} manifest (made by `{kind.made_by}`)"


def _json_line(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def takes(self, position: int) -> bool:
        return position % self.count == self.index

    def path(self, manifest: Path) -> Path:
        return manifest.with_name(f"{manifest.stem}.shard-{self.index}-of-{self.count}{manifest.suffix}")


def parse_shard(text: str | None, environ: dict[str, str] | None = None) -> Shard | None:
    """``K/N`` (0 <= K < N), ``auto`` (torchrun's RANK/WORLD_SIZE, else a SLURM array's task id
    and count), or None. ValueError with a one-line reason."""
    if text is None or text == "":
        return None
    env = os.environ if environ is None else environ
    if text.strip().lower() == "auto":
        if "RANK" in env and "WORLD_SIZE" in env:
            index, count = int(env["RANK"]), int(env["WORLD_SIZE"])
        elif "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
        else:
            raise ValueError(
                "--shard auto: neither RANK/WORLD_SIZE (torchrun) nor SLURM_ARRAY_TASK_ID/COUNT is set"
            )
    else:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise ValueError(f"--shard {text!r}: expected K/N (shard K of N, counting from 0) or auto")
        index, count = int(match[1]), int(match[2])
    if not 0 <= index < count:
        raise ValueError(f"--shard {index}/{count}: K must be in 0..N-1")
    return Shard(index, count)


def read_lines(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(header, records) of a manifest or journal; a missing file is empty; broken lines skipped."""
    header, records = None, []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue  # the last line of a killed run's journal
        if isinstance(value, dict) and "manifest" in value:
            header = value
        elif isinstance(value, dict):
            records.append(value)
    return header, records


def write(path: Path, header: dict[str, Any], records: Iterable[dict[str, Any]], key: Key) -> None:
    """The whole manifest, atomically: header, then records sorted by ``key``."""
    lines = [json.dumps(header, sort_keys=True)] + [
        json.dumps(r, sort_keys=True) for r in sorted(records, key=key)
    ]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.atomic_write(path, lambda handle: handle.write(data))


class Journal:
    """What a run has finished so far: the manifest of earlier runs plus this run's appended lines.

    Both start with a header holding the settings; records made with other settings (another
    seed, other metrics or rules) are never taken as done: :meth:`load` ignores them, and the
    first :meth:`append` of the run starts the journal afresh.
    """

    def __init__(
        self,
        manifest: Path,
        key: Key,
        settings: Any,
        sync_every: int = SYNC_EVERY,
        sync_seconds: float = SYNC_SECONDS,
    ):
        self.manifest, self.key, self.settings = manifest, key, settings
        self.path = manifest.with_name(manifest.name + ".journal")
        self.fresh = False  # whether this run's first append starts a new journal
        self.sync_every, self.sync_seconds = sync_every, sync_seconds
        self.unsynced, self.synced_at = 0, time.monotonic()

    def load(self) -> dict[tuple, dict[str, Any]]:
        """Records by key made with these settings; journal lines (newer) win over the manifest's."""
        records: list[dict[str, Any]] = []
        for path in (self.manifest, self.path):
            header, lines = read_lines(path)
            if header is None:
                continue
            if header.get("settings") != self.settings or header.get("schema") != SCHEMA:
                log.warning(
                    "%s was made with other settings; its %d records are done again", path, len(lines)
                )
                self.fresh = self.fresh or path == self.path
                continue
            records.extend(lines)
        return {self.key(record): record for record in records}

    def append(self, records: Iterable[dict[str, Any]], header: dict[str, Any]) -> None:
        lines = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.fresh or not self.path.exists():
            lines = json.dumps(header, sort_keys=True) + "\n" + lines
            self.path.unlink(missing_ok=True)
            self.fresh = False
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()  # in the OS's hands: a killed process loses none of these lines
            self.unsynced += lines.count("\n")
            if self.unsynced >= self.sync_every or time.monotonic() - self.synced_at >= self.sync_seconds:
                os.fsync(handle.fileno())  # on the disk: a crash of the machine loses none either
                self.unsynced, self.synced_at = 0, time.monotonic()

    def close(self, header: dict[str, Any], records: Iterable[dict[str, Any]]) -> None:
        """Write the manifest from ``records`` and drop the journal."""
        write(self.manifest, header, records, self.key)
        self.path.unlink(missing_ok=True)


def shard_files(manifest: Path) -> tuple[list[Path], int]:
    """The shard manifests of ``manifest`` and their count N; ManifestError when shards are
    missing, of different N, or unfinished (a journal still beside one)."""
    pattern = (
        glob.escape(str(manifest.with_name(f"{manifest.stem}.shard-")))
        + f"*-of-*{glob.escape(manifest.suffix)}"
    )
    found: dict[int, dict[int, Path]] = {}
    for name in glob.glob(pattern):
        match = re.search(r"\.shard-(\d+)-of-(\d+)" + re.escape(manifest.suffix) + "$", name)
        if match:
            found.setdefault(int(match[2]), {})[int(match[1])] = Path(name)
    if not found:
        raise ManifestError(
            f"{manifest}: no shard manifests ({manifest.stem}.shard-K-of-N{manifest.suffix}) beside it"
        )
    if len(found) > 1:
        raise ManifestError(
            f"{manifest}: shards of different counts ({', '.join(map(str, sorted(found)))}); "
            "remove the stale ones"
        )
    ((count, shards),) = found.items()
    missing = [str(index) for index in range(count) if index not in shards]
    if missing:
        raise ManifestError(f"{manifest}: shard(s) {', '.join(missing)} of {count} missing; run them first")
    paths = [shards[index] for index in range(count)]
    unfinished = [p for p in paths if p.with_name(p.name + ".journal").exists()]
    if unfinished:
        raise ManifestError(
            f"{unfinished[0]}: this shard did not finish (its journal is there); rerun it first"
        )
    return paths, count


def load_shards(manifest: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every shard's records, and their common header (shard removed); settings must agree."""
    paths, _ = shard_files(manifest)
    header, records = None, []
    for path in paths:
        own, lines = read_lines(path)
        check_header(path, own)  # a shard of another schema would merge into a manifest none reads
        own = {k: v for k, v in own.items() if k not in ("shard", "tars")}  # each shard lists its own tars
        if header is not None and own != header:
            raise ManifestError(
                f"{path}: made with other settings than {paths[0].name}; shards must share them"
            )
        header = own
        records.extend(lines)
    return header, records
