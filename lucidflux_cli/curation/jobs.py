"""The ``data`` commands as jobs of the one run engine: ``degrade`` (pairs) and ``filter`` (curation).

Both write a manifest through a :class:`~.manifests.Journal` (resume after a kill), split work
with ``--shard K/N`` and spread files over ``--workers`` processes; per-file logic is the data
library's (:mod:`lucidflux_cli.data`), file reading and writing are imageio's.
"""

from __future__ import annotations

import abc
import dataclasses
import io
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lucidflux_cli import atomic, manifests
from lucidflux_cli.curation import degrade_parts
from lucidflux_cli.curation.degrade_parts import PairTars, read_photo
from lucidflux_cli.errors import LucidFluxError
from lucidflux_cli.imageio import media
from lucidflux_cli.imageio.discovery import DiscoveryResult, InputFile
from lucidflux_cli.runner.control import uninterrupted
from lucidflux_cli.runner.job import Job, Processor, discover_inputs
from lucidflux_cli.runner.results import FileResult, failure
from lucidflux_cli.runner.scheduling import Scheduler, SingleProcess

log = logging.getLogger("lucidflux")

PAIR_FOLDERS = ("hq", "lq", "lq_up")
MANIFEST_NAME = "manifest.jsonl"


def read_rgb8(path: Path) -> tuple[np.ndarray, str | None]:
    """The first image of ``path`` as 8-bit RGB, and a note on what is not used (pages, alpha)."""
    image = media.read_rgb8(path)
    notes = [image.note] if image.note else []
    if image.alpha:
        notes.append("alpha channel not used")
    if image.bit_depth > 8:
        notes.append(f"{image.bit_depth}-bit image used at 8 bits")
    return image.rgb, "; ".join(notes) or None


class ManifestJob(Job):
    """A job whose per-file records go into a manifest, possibly one shard of N."""

    kind = "manifest"

    def __init__(self, request: Any):
        super().__init__(request)
        self.shard = manifests.parse_shard(request.shard)
        self.journal = manifests.Journal(self.manifest_path, self.key, _json_round_trip(self.provenance()))
        self.extra: dict[str, Any] = {}

    @property
    @abc.abstractmethod
    def manifest_path(self) -> Path:
        """Where this job's manifest (this shard's, with ``--shard``) is written."""

    @property
    def lock_name(self) -> str | None:
        return f".{self.manifest_path.name}.lock" if self.shard else None

    @property
    def stale_temp_age_s(self) -> float:
        return 3600.0 if self.shard else 0.0  # other shards may be writing into the same folder now

    @staticmethod
    def _kept_images(path: Path) -> list[InputFile]:
        """The kept images of a finished, whole filter manifest; ManifestError (one line) otherwise."""
        header, lines = manifests.read(path, FilterJob.kind)
        if "shard" in header:
            raise manifests.ManifestError(
                f"{path}: shard {header['shard']} of a filter run: join the shards first "
                "(`lucidflux data merge`)"
            )
        if path.with_name(path.name + ".journal").exists():
            raise manifests.ManifestError(
                f"{path}: its filter run did not finish (a journal is beside it): run it again first"
            )
        kept = [InputFile(Path(r["source"]), Path(r["name"])) for r in lines if r.get("kept")]
        log.info("%s: %d kept images of %d", path, len(kept), len(lines))
        return kept

    @staticmethod
    def key(record: dict[str, Any]) -> tuple:
        return (record["name"],)

    def header(self) -> dict[str, Any]:
        return manifests.header(
            self.kind, self.provenance(), **({"shard": str(self.shard)} if self.shard else {})
        )

    def select(self, found: DiscoveryResult) -> DiscoveryResult:
        if self.shard is None:
            return found
        mine = [item for position, item in enumerate(found.files) if self.shard.takes(position)]
        log.info("shard %s: %d of %d files", self.shard, len(mine), len(found.files))
        return dataclasses.replace(found, files=mine)

    def scheduler(self) -> Scheduler:
        """``--workers N``: N worker processes on the job's device; one: this process."""
        if self.request.workers > 1:
            from lucidflux_cli.runner.workers import Workers

            device = getattr(self, "device", "cpu")  # degrade's resolved device; filter scores on its own
            return Workers(self, [device if device != "auto" else "cpu"] * self.request.workers)
        return SingleProcess(self)

    def summary(self, results: list[FileResult]) -> dict[str, Any]:
        return self.extra

    def name_conflicts(self, files: Sequence[InputFile]) -> dict[int, FileResult]:
        """Files whose record name another file already has (two sources with the same relative
        paths): refused, since a manifest names each image once."""
        owners: dict[str, Path] = {}
        conflicts = {}
        for position, item in enumerate(files):
            owner = owners.setdefault(item.relative.as_posix(), item.path)
            if owner != item.path:
                conflicts[position] = FileResult(
                    item.path,
                    None,
                    "failed",
                    error=(
                        f"{item.path}: same name ({item.relative.as_posix()}) as {owner}; "
                        "give the sources apart"
                    ),
                )
        return conflicts


# ------------------------------------------------------------------------------------ degrade


class DegradeJob(ManifestJob):
    """Each photo -> ``passes`` (HQ 1024, LQ 256, LQ upsampled) pairs, PNG, and their manifest lines;
    ``--format webdataset``: the pairs go into tar shards (:class:`~.degrade_parts.PairTars`)."""

    name, done_word, kind = "degrade", "degraded", "lucidflux-pairs"

    def __init__(self, request: Any):
        from lucidflux_cli.data import preset
        from lucidflux_cli.data.sources import parse_background

        self.config = preset(request.preset)
        self.background = parse_background(request.background)
        self._provenance = degrade_parts.provenance(request, self.config)  # the manifest header's, once
        super().__init__(request)
        from lucidflux_cli.devices import resolve_device  # torch: not for --help

        self.device = str(resolve_device(request.device))
        self.tars = (
            PairTars(
                request.out_dir,
                max(1, request.pairs_per_tar // request.passes),
                self.shard,
                self.journal,
                self.header,
            )
            if request.format == "webdataset"
            else None
        )

    def provenance(self) -> dict[str, Any]:
        return self._provenance

    @property
    def manifest_path(self) -> Path:
        path = self.request.out_dir / MANIFEST_NAME
        return self.shard.path(path) if self.shard else path

    def discover(self, stdin) -> DiscoveryResult:
        """As every command, except that a filter manifest (``.jsonl``) gives its kept images,
        named as the filter named them (their path under the filtered folder)."""
        listed = [arg for arg in self.request.inputs if arg.endswith(".jsonl")]
        others = [arg for arg in self.request.inputs if not arg.endswith(".jsonl")]
        found = DiscoveryResult()
        if others:
            found = discover_inputs(self.request, others, stdin, self.discovery_exclude)
        for argument in listed:
            try:
                kept = self._kept_images(Path(argument))
            except manifests.ManifestError as error:
                found.problems.append(str(error))
                log.error("%s", error)
                continue
            found.files.extend(kept)
        return found

    @staticmethod
    def key(record: dict[str, Any]) -> tuple:
        return (record["name"], record["pass"])

    def outputs(self, item: InputFile, index: int) -> dict[str, Path]:
        if self.tars is not None:
            return self.tars.staged(item.relative.as_posix(), index)
        relative = item.relative.with_name(f"{item.relative.stem}_p{index}.png")
        return {folder: self.request.out_dir / folder / relative for folder in PAIR_FOLDERS}

    def _first_output(self, item: InputFile) -> Path:
        return next(iter(self.outputs(item, 0).values()))

    def _present(self, record: dict[str, Any]) -> bool:
        if self.tars is not None:
            return self.tars.present(record)
        return all((self.request.out_dir / record[folder]).exists() for folder in PAIR_FOLDERS)

    def settle(self, files: Sequence[InputFile]) -> dict[int, FileResult]:
        done = {} if self.request.overwrite else self.journal.load()
        owners: dict[Path, Path] = {}
        settled = {}
        for position, item in enumerate(files):
            first = self._first_output(item)
            owner = owners.setdefault(first, item.path)
            if owner != item.path:
                settled[position] = FileResult(
                    item.path,
                    None,
                    "failed",
                    error=(
                        f"{item.path}: its pairs would overwrite those of {owner} "
                        "(same name, other extension); "
                        "rename one or degrade them apart"
                    ),
                )
            elif self._finished(
                item, [done.get((item.relative.as_posix(), k)) for k in range(self.request.passes)]
            ):
                settled[position] = FileResult(item.path, first, "skipped")
        if self.tars is not None:
            self.tars.plan(files, {files[p].path: done for p, r in settled.items() if r.status == "skipped"})
        return settled

    def _finished(self, item: InputFile, records: list[dict[str, Any] | None]) -> bool:
        """Every pass recorded and in place, from this very source file."""
        return all(r is not None and self._present(r) for r in records) and degrade_parts.same_source(
            item.path, records
        )

    def processor(self) -> Processor:
        import torch

        from lucidflux_cli.data import make_pairs, rng_for
        from lucidflux_cli.data.sources import file_identity

        torch.set_num_threads(self.request.threads)

        def process(item: InputFile, publish, on_step=None) -> FileResult:
            started = time.monotonic()
            name = item.relative.as_posix()
            try:
                identity = file_identity(item.path.read_bytes())
                image, note = read_photo(item.path, self.background, self.request.min_side)
                if min(image.shape[:2]) < self.config.gt_size:
                    small = (
                        f"{image.shape[1]}x{image.shape[0]} px is smaller than the {self.config.gt_size} px "
                        "GT crop: mirror-padded, as the reference does"
                    )
                    note = f"{note}; {small}" if note else small
                made = []
                rngs = [rng_for(self.request.seed, name, index) for index in range(self.request.passes)]
                for index, pair in enumerate(make_pairs(image, rngs, self.config, self.device)):
                    made.append((index, pair, self._encoded(name, index, pair, identity)))
            except Exception as error:  # an unreadable photo fails alone
                result = failure(item.path, error, time.monotonic() - started)
                publish(result)
                return result
            with uninterrupted():  # the pairs put in place are reported too
                try:
                    records = [
                        {**self._write_pair(item, name, index, pair, encoded), **identity}
                        for index, pair, encoded in made
                    ]
                except OSError as error:  # a full disk: this photo fails, its journal line is not written
                    result = failure(item.path, error, time.monotonic() - started)
                else:
                    result = FileResult(
                        item.path,
                        self._first_output(item),
                        "done",
                        seconds=time.monotonic() - started,
                        note=note,
                        details={"pairs": records},
                    )
                publish(result)
            return result

        return process

    def _encoded(self, name: str, index: int, pair, identity: dict[str, Any]) -> dict[str, bytes]:
        """The files of one pair: three PNGs, or a tar sample's two PNGs and its draws."""
        if self.tars is None:
            return {folder: _png(getattr(pair, folder), self.request.png_level) for folder in PAIR_FOLDERS}
        draws = {"name": name, "pass": index, "params": pair.params, **identity}
        return {
            "hq.png": _png(pair.hq, self.request.png_level),
            "lq.png": _png(pair.lq, self.request.png_level),
            "json": json.dumps(draws, sort_keys=True).encode("utf-8"),
        }

    def _write_pair(
        self, item: InputFile, name: str, index: int, pair, encoded: dict[str, bytes]
    ) -> dict[str, Any]:
        """Put one pass's files in place (atomically); its manifest record."""
        if self.tars is not None:
            return {
                "name": name,
                "pass": index,
                "source": str(item.path.absolute()),
                "key": self.tars.stage(name, index, encoded),
                "params": pair.params,
            }
        paths = self.outputs(item, index)
        for folder, data in encoded.items():
            paths[folder].parent.mkdir(parents=True, exist_ok=True)
            atomic.atomic_write(paths[folder], lambda handle, data=data: handle.write(data))
        return {
            "name": name,
            "pass": index,
            "source": str(item.path.absolute()),
            **{folder: paths[folder].relative_to(self.request.out_dir).as_posix() for folder in PAIR_FOLDERS},
            "params": pair.params,
        }

    def recorded(self, result: FileResult) -> None:
        """The pairs' records go to the journal; the event and report keep their count."""
        records = result.details["pairs"] if result.status == "done" else []
        if self.tars is not None:
            records = self.tars.assign(result.source, records)
        if records:
            self.journal.append(records, self.header())
            result.details = {"pairs": len(records)}
        if self.tars is not None:
            self.tars.finished(result.source)

    def complete(self, results: list[FileResult]) -> None:
        if self.tars is not None:
            self.tars.pack_rest()
        records = [r for r in self.journal.load().values() if self._present(r)]
        header = self.header()
        if self.tars is not None:
            header["tars"] = sorted({r["tar"] for r in records})
        self.journal.close(header, records)
        self.extra = {"pairs": len(records), "manifest": str(self.manifest_path)}
        log.info("%d pairs listed in %s", len(records), self.manifest_path)

    def describe(self, result: FileResult) -> str:
        return f"degraded {result.source} -> {self.request.passes} pairs ({result.seconds:.1f} s)" + (
            f"; {result.note}" if result.note else ""
        )


def _png(pixels: np.ndarray, level: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------- filter


class FilterJob(ManifestJob):
    """Each photo -> its measurements and the first rule it fails; then the set-level stages."""

    name, done_word, kind = "filter", "measured", "lucidflux-filter"

    def __init__(self, request: Any):
        self.config = request.config()
        super().__init__(request)
        try:
            import cv2  # noqa: F401
            import imagehash  # noqa: F401
        except ImportError as error:
            raise LucidFluxError(
                "lucidflux data filter needs the data extra: pip install 'lucidflux-cli[data]'"
            ) from error
        if self.config.quality_metric is not None:
            self.scorer().check()  # offline and not cached: a setup error naming the metric, before any work

    def scorer(self):
        from lucidflux_cli.metrics.scoring import Scorer

        return Scorer(
            self.config.quality_metric,
            device=self.request.device,
            batch_size=self.request.batch_size,
            cache_dir=self.request.cache_dir,
            offline=self.request.offline,
        )

    @property
    def manifest_path(self) -> Path:
        path = self.request.out_dir
        return self.shard.path(path) if self.shard else path

    @property
    def out_dir(self) -> Path:
        return self.request.out_dir.parent

    @property
    def lock_name(self) -> str | None:
        return f".{self.manifest_path.name}.lock"

    @property
    def discovery_exclude(self) -> Path | None:
        return None

    def remove_stale_temps(self) -> None:
        """Only this manifest's own temps: its folder may hold anything (a home folder, outputs
        that another command is writing right now)."""
        for temp in self.out_dir.glob(f".{self.manifest_path.name}*"):
            if atomic.is_temp_name(temp.name):
                temp.unlink(missing_ok=True)

    def provenance(self) -> dict[str, Any]:
        return {"filter": dataclasses.asdict(self.config)}

    def settle(self, files: Sequence[InputFile]) -> dict[int, FileResult]:
        """Files measured by an earlier run with these settings, unchanged since (size, mtime)."""
        if self.request.overwrite:
            return self.name_conflicts(files)
        done = self.journal.load()  # records of other settings are measured again
        settled = self.name_conflicts(files)
        for position, item in enumerate(files):
            record = done.get((item.relative.as_posix(),))
            if position in settled:
                continue
            if record and record.get("stage") != "read" and record.get("stamp") == _stamp(item.path):
                settled[position] = FileResult(item.path, None, "skipped", details=_per_image(record))
        return settled

    def processor(self) -> Processor:
        """One photo at a time (``--workers``: each worker process)."""
        scorer = self.scorer() if self.config.quality_metric is not None else None
        return lambda item, publish, on_step=None: self._finish([self._measure(item)], scorer, publish)[0]

    def process_all(self, files: Sequence[InputFile], on_result, on_step) -> list[FileResult]:
        """Photos measured ``--threads`` at a time (results in order); those the quality metric
        scores wait for a batch of ``--batch-size``."""
        from lucidflux_cli.imageio.ahead import cpu_cores, map_ahead

        settled = self.settle(files)
        results: list[FileResult] = []
        for position in sorted(settled):  # no measuring needed: resumed, or a name conflict
            on_result(settled[position])
            results.append(settled[position])
            if self.stops_after(settled[position]):
                return results
        todo = [item for position, item in enumerate(files) if position not in settled]
        scorer = self.scorer() if self.config.quality_metric is not None and todo else None
        waiting: list[tuple[FileResult, np.ndarray | None]] = []
        for result, rgb in map_ahead(self._measure, todo, self.request.threads or cpu_cores()):
            done = len(results)
            if rgb is None:  # dropped by a rule, failed, or no quality stage: done now
                results.extend(self._finish([(result, None)], scorer, on_result))
            else:
                waiting.append((result, rgb))
            if len(waiting) >= self.request.batch_size:
                results.extend(self._finish(waiting, scorer, on_result))
                waiting = []
            if any(self.stops_after(result) for result in results[done:]):
                break
        return results + self._finish(waiting, scorer, on_result)

    def _measure(self, item: InputFile) -> tuple[FileResult, np.ndarray | None]:
        """A photo's record and verdict; its pixels too when the quality metric is still to score it."""
        from lucidflux_cli.data import curation

        started = time.monotonic()
        record: dict[str, Any] = {"name": item.relative.as_posix(), "source": str(item.path.absolute())}
        try:
            record.update(stamp=_stamp(item.path), bytes=item.path.stat().st_size)
            rgb, note = read_rgb8(item.path)
            record.update(curation.measure(rgb, self.config))
            failed = curation.judge(record, self.config)
        except Exception as error:
            result = failure(item.path, error, time.monotonic() - started)
            result.details = {**record, "stage": "read", "reason": result.error}
            return result, None
        record.update(stage=failed[0] if failed else None, reason=failed[1] if failed else None)
        result = FileResult(
            item.path, None, "done", seconds=time.monotonic() - started, note=note, details=record
        )
        return result, rgb if failed is None and self.config.quality_metric is not None else None

    def _finish(
        self, measured: list[tuple[FileResult, np.ndarray | None]], scorer, publish
    ) -> list[FileResult]:
        """Score the photos that wait for it (same sizes side by side, so they share calls), publish all."""
        from lucidflux_cli.metrics.scoring import score_each

        results = [result for result, _ in measured]
        scored = [(position, rgb) for position, (_, rgb) in enumerate(measured) if rgb is not None]
        if scored:
            started = time.monotonic()
            scores = score_each(
                scorer, [rgb for _, rgb in scored], [str(results[p].source) for p, _ in scored]
            )
            share = (time.monotonic() - started) / len(scored)
            for (position, _), score in zip(scored, scores, strict=True):
                results[position] = self._with_score(results[position], score, share)
        for result in results:
            publish(result)
        return results

    def _with_score(self, result: FileResult, score: float | Exception, seconds: float) -> FileResult:
        if isinstance(score, Exception):  # the metric failed on this photo: it fails alone, redone by a rerun
            failed = failure(result.source, score, result.seconds + seconds)
            failed.details = {**result.details, "stage": "read", "reason": failed.error}
            return failed
        result.details["score"] = score  # unrounded: the quality cut compares this value
        result.seconds += seconds
        return result

    def recorded(self, result: FileResult) -> None:
        if result.details is not None and result.status != "skipped":
            self.journal.append([result.details], self.header())

    def complete(self, results: list[FileResult]) -> None:
        """Records of this run's files; one run: the set-level stages and the final manifest; a
        shard: per-image decisions only, the set-level stages come with ``data merge``."""
        from lucidflux_cli.data import curation

        records = [_per_image(r.details) for r in results if r.details is not None]
        if self.shard is None:
            self.extra = curation.select(records, self.config)
            log.info("%s", funnel_line(self.extra["funnel"]))
        self.journal.close(self.header(), records)
        self.extra["manifest"] = str(self.manifest_path)

    def describe(self, result: FileResult) -> str:
        record = result.details or {}
        verdict = record.get("reason") or (
            "passes" if record.get("score") is None else f"{self.config.quality_metric} {record['score']:.4f}"
        )
        return f"measured {result.source}: {verdict}"


def _json_round_trip(value: Any) -> Any:
    """``value`` as it reads back from a manifest header (tuples become lists, ...)."""
    return json.loads(json.dumps(value))


def _stamp(path: Path) -> str:
    """Size and modification time: a changed file is measured again."""
    info = path.stat()
    return f"{info.st_size}:{info.st_mtime_ns}"


def _per_image(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the per-image pass left it (an earlier run's set-level verdicts removed)."""
    set_level = record.get("stage") in ("duplicate", "quality")
    return {key: value for key, value in record.items() if key != "kept"} | (
        {"stage": None, "reason": None} if set_level else {}
    )


def funnel_line(funnel: dict[str, int]) -> str:
    """``1000 images -> read 998 -> size 990 -> ... -> quality 200 kept``."""
    stages = " -> ".join(f"{stage} {count}" for stage, count in funnel.items() if stage != "images")
    return f"filter: {funnel['images']} images -> {stages} kept"


# -------------------------------------------------------------------------------- run and merge


def merge(target: Path) -> dict[str, Any]:
    """Join the shard manifests of ``target`` (a manifest, or a pairs folder) into it; a filter's
    set-level stages (duplicates, the quality quantile) run over all shards together, so the
    result equals one run's. Raises ManifestError."""
    manifest = target / MANIFEST_NAME if target.is_dir() else target
    header, records = manifests.load_shards(manifest)
    try:
        return _merged(manifest, header, records)
    except (KeyError, TypeError, ValueError) as error:  # a hand-edited or foreign header or record
        raise manifests.ManifestError(f"{manifest}: its shards cannot be merged ({error!r})") from error


def _merged(manifest: Path, header: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    from lucidflux_cli.data import curation

    summary: dict[str, Any] = {"manifest": str(manifest), "records": len(records)}
    if header.get("manifest") == FilterJob.kind:
        config = curation.FilterConfig(**header["settings"]["filter"])
        summary.update(curation.select(records, config))  # shards hold per-image verdicts only
        log.info("%s", funnel_line(summary["funnel"]))
        key = ManifestJob.key
    elif header.get("manifest") == DegradeJob.kind:
        key = DegradeJob.key
        if any("tar" in record for record in records):
            header["tars"] = sorted({record["tar"] for record in records})
    else:
        raise manifests.ManifestError(f"{manifest}: unknown manifest kind {header.get('manifest')!r}")
    manifests.write(manifest, header, records, key)
    log.info("merged %d records into %s", len(records), manifest)
    return summary
