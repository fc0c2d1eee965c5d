"""``lucidflux eval`` as a job of the run engine: quality metrics per image, tables per folder.

Work unit: one image of one compared folder. Scores are journalled as they come
(``<out>/scores.jsonl.journal``), so an interrupted run keeps them and a rerun scores only what is
missing; at the end ``scores.jsonl``, ``scores.csv``, ``summary.json`` and ``table.md`` are
written atomically. Metric code and tables are :mod:`lucidflux_cli.metrics`'.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lucidflux_cli import atomic, manifests
from lucidflux_cli.errors import LucidFluxError
from lucidflux_cli.imageio import media
from lucidflux_cli.imageio.discovery import DiscoveryResult, InputFile
from lucidflux_cli.imageio.media import read_rgb
from lucidflux_cli.runner.control import uninterrupted
from lucidflux_cli.runner.job import Job, Processor, discover_inputs
from lucidflux_cli.runner.results import FileResult, failure

log = logging.getLogger("lucidflux")

SCORES = "scores.jsonl"


class EvalJob(Job):
    """Score every image of each FOLDER; with ``--reference``, pair files by relative path."""

    name, done_word = "eval", "scored"

    def __init__(self, request: Any):
        from lucidflux_cli.metrics import registry
        from lucidflux_cli.metrics.scoring import Scorer

        super().__init__(request)
        reference = request.reference is not None
        self.metrics = (
            registry.parse_metrics(request.metrics)
            if request.metrics
            else registry.default_metrics(reference=reference)
        )
        needs_reference = registry.full_reference(self.metrics) + registry.folder_level(self.metrics)
        if needs_reference and not reference:
            raise ValueError(f"{', '.join(needs_reference)} compare with references: give --reference DIR")
        self.per_image = registry.no_reference(self.metrics) + registry.full_reference(self.metrics)
        for name in self.metrics:
            if registry.get(name).opt_in:  # asked for by name: say what it costs
                log.warning("%s: %s", name, registry.get(name).opt_in)
        from lucidflux_cli.devices import resolve_device  # torch: not for --help

        self.device = str(resolve_device(request.device))
        self.scorer = Scorer(
            self.metrics,
            device=self.device,
            batch_size=request.batch_size,
            cache_dir=request.cache_dir,
            offline=request.offline,
            crop_border=request.crop_border,
        )
        self.scorer.check()  # offline and missing: a setup error naming the metric, before any work
        self.journal = manifests.Journal(request.out_dir / SCORES, self.key, self.provenance())
        self.columns: dict[Path, str] = {}  # image -> the folder (column) it belongs to
        self.references: dict[Path, Path] = {}  # image -> its reference
        self.unpaired: dict[Path, str] = {}  # image -> why it has no reference
        self.extra: dict[str, Any] = {}

    @property
    def folders(self) -> list[str]:
        """The compared folders as given, normalised (``out/`` and ``out`` are one column)."""
        return [os.path.normpath(folder) for folder in self.request.inputs]

    @staticmethod
    def key(record: dict[str, Any]) -> tuple:
        return (record["folder"], record["file"])

    def provenance(self) -> dict[str, Any]:
        crop = {"crop_border": self.request.crop_border} if self.request.crop_border else {}
        return {
            "metrics": list(self.metrics),
            "reference": str(self.request.reference) if self.request.reference else None,
            **crop,
        }

    def header(self) -> dict[str, Any]:
        return manifests.header("lucidflux-eval", self.provenance())

    # ---------------------------------------------------------------------------- planning

    def discover(self, stdin) -> DiscoveryResult:
        """Each folder walked on its own (its files are one column), then paired with the references."""
        from lucidflux_cli.metrics import pairing

        found = DiscoveryResult()
        for folder in self.folders:
            part = discover_inputs(self.request, [folder], stdin, self.discovery_exclude)
            found.files.extend(part.files)
            found.problems.extend(part.problems)
            found.left_out.extend(part.left_out)
            self.columns.update({item.path: folder for item in part.files})
        if self.request.reference is not None:
            refs = discover_inputs(self.request, [str(self.request.reference)], stdin, self.discovery_exclude)
            by_name = {item.relative.as_posix(): item.path for item in refs.files}
            for folder in self.folders:
                mine = {
                    item.relative.as_posix(): item
                    for item in found.files
                    if self.columns[item.path] == folder
                }
                try:
                    paired = pairing.pair(mine, by_name)
                except pairing.PairingError as error:
                    raise ValueError(str(error)) from error
                self.references.update({mine[out].path: by_name[ref] for out, ref in paired.pairs})
                for name in paired.unpaired:
                    self.unpaired[mine[name].path] = (
                        f"no reference {name} (or with another extension) in {self.request.reference}"
                    )
                log.info("%s vs %s: %s", folder, self.request.reference, paired.describe())
        return found

    def settle(self, files: Sequence[InputFile]) -> dict[int, FileResult]:
        done = {} if self.request.overwrite else self.journal.load()  # other metrics: scored again
        settled = {}
        for position, item in enumerate(files):
            record = done.get((self.columns[item.path], item.relative.as_posix()))
            if item.path in self.unpaired:
                settled[position] = FileResult(
                    item.path, None, "failed", error=f"{item.path}: {self.unpaired[item.path]}"
                )
            elif record is not None:
                settled[position] = FileResult(item.path, None, "skipped", details=record)
        return settled

    # -------------------------------------------------------------------------------- work

    def processor(self) -> Processor:
        def process(item: InputFile, publish, on_step=None) -> FileResult:
            return self._score([item], publish)[0]

        return process

    def process_all(self, files: Sequence[InputFile], on_result, on_step) -> list[FileResult]:
        """Images scored ``--batch-size`` at a time (one model call per metric and batch)."""
        settled = self.settle(files)
        results: list[FileResult] = []
        todo = [item for position, item in enumerate(files) if position not in settled]
        for position in sorted(settled):
            on_result(settled[position])
            results.append(settled[position])
            if self.stops_after(settled[position]):
                return results
        for start in range(0, len(todo), self.request.batch_size):
            batch = self._score(todo[start : start + self.request.batch_size], on_result)
            results.extend(batch)
            if any(self.stops_after(result) for result in batch):
                break
        return results

    def _score(self, items: Sequence[InputFile], publish) -> list[FileResult]:
        """Read, score and publish a batch; a file that cannot be read or paired fails alone."""
        from lucidflux_cli.metrics.cache import MetricUnavailable

        started = time.monotonic()
        loaded, results, notes = [], {}, {}
        for item in items:
            try:
                image, note = read_scored(item.path)
                reference, reference_note = (
                    read_scored(self.references[item.path]) if self.request.reference else (None, None)
                )
                notes[item.path] = "; ".join(n for n in (note, reference_note) if n) or None
                if reference is not None and reference.shape != image.shape:
                    raise LucidFluxError(
                        f"{item.path}: {image.shape[1]}x{image.shape[0]} px but its reference "
                        f"{self.references[item.path]} is {reference.shape[1]}x{reference.shape[0]}"
                    )
                loaded.append((item, image, reference))
            except Exception as error:
                results[item.path] = failure(item.path, error, time.monotonic() - started)
        if loaded:
            try:
                rows = self.scorer.score(
                    [image for _, image, _ in loaded],
                    [ref for *_, ref in loaded] if self.request.reference else None,
                    labels=[str(item.path) for item, *_ in loaded],
                )
            except MetricUnavailable:
                raise
            except Exception as error:  # e.g. an image too small for a metric: redo one at a time
                if len(loaded) > 1:
                    return [r for item in items for r in self._score([item], publish)]
                rows = None
                results[loaded[0][0].path] = failure(loaded[0][0].path, error, time.monotonic() - started)
            share = (time.monotonic() - started) / len(items)
            for (item, *_), row in zip(loaded, rows or [], strict=False):
                note = notes[item.path]
                record = {
                    "folder": self.columns[item.path],
                    "file": item.relative.as_posix(),
                    **{name: _rounded(value) for name, value in row.items()},
                    **({"note": note} if note else {}),
                }
                results[item.path] = FileResult(
                    item.path, None, "done", seconds=share, details=record, note=note
                )
        ordered = [results[item.path] for item in items]
        for result in ordered:
            with uninterrupted():
                publish(result)
        return ordered

    def recorded(self, result: FileResult) -> None:
        if result.status == "done":
            self.journal.append([result.details], self.header())

    # -------------------------------------------------------------------------------- tables

    def complete(self, results: list[FileResult]) -> None:
        from lucidflux_cli.metrics import registry, tables

        rows = [r.details for r in results if r.details is not None]
        scored = {r.source for r in results if r.status in ("done", "skipped")}
        folder_values = self._folder_metrics(registry.folder_level(self.metrics), scored)
        summary = tables.summary(rows, self.per_image, folder_values)
        out = self.request.out_dir
        self.journal.close(self.header(), rows)
        files = {
            "scores.csv": tables.rows_csv(sorted(rows, key=self.key), self.per_image),
            "summary.json": tables.summary_json(summary),
            "table.md": tables.summary_markdown(
                summary,
                [m for m in self.metrics],
                paper=self.request.paper,
                crop_border=self.request.crop_border,
            ),
        }
        for name, text in files.items():
            data = text.encode("utf-8")
            atomic.atomic_write(out / name, lambda handle, data=data: handle.write(data))
        self.extra = {"summary": summary, "results": str(out)}
        log.info("wrote %s, scores.csv, summary.json and table.md in %s", SCORES, out)
        if not self.request.quiet and not self.request.json_events:  # stdout: the table, or JSON only
            print(files["table.md"], end="")

    def _folder_metrics(self, names: Sequence[str], scored: set[Path]) -> dict[str, dict[str, float]]:
        """FID of each folder's scored images against their references (each read once more;
        features are taken image by image, so a large folder is never all in memory)."""
        values: dict[str, dict[str, float]] = {}
        if not names:
            return values
        from lucidflux_cli.metrics import fid

        def features(paths: list[Path]) -> np.ndarray:
            return np.concatenate([self.scorer.fid_features([read_rgb(path)]) for path in paths])

        for folder in self.folders:
            mine = sorted(
                path for path, column in self.columns.items() if column == folder and path in scored
            )
            if len(mine) < 2:
                log.warning("%s: fewer than 2 scored images; no FID", folder)
                continue
            distance = fid.distance(features(mine), features([self.references[path] for path in mine]))
            values[folder] = {name: float(distance) for name in names}
        return values

    def summary(self, results: list[FileResult]) -> dict[str, Any]:
        return self.extra

    def describe(self, result: FileResult) -> str:
        scores = ", ".join(
            f"{k} {v:.4g}"
            for k, v in (result.details or {}).items()
            if k not in ("folder", "file") and isinstance(v, float)
        )
        return f"scored {result.source}: {scores}" + (f"; {result.note}" if result.note else "")


def read_scored(path: Path) -> tuple[np.ndarray, str | None]:
    """The first image of ``path`` as float32 RGB, and a note when it has an alpha channel."""
    from lucidflux_cli.metrics.arrays import ALPHA_NOTE

    loaded = media.read_pages(path, "first").images[0]
    return np.asarray(loaded.rgb, dtype=np.float32), (
        f"{path.name} {ALPHA_NOTE}" if loaded.alpha is not None else None
    )


def _rounded(value: Any) -> Any:
    return round(float(value), 6) if isinstance(value, (int, float)) else value
