"""``lucidflux restore`` as a job of the shared runner: one output file per input."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lucidflux_cli.errors import EXIT_SETUP, LucidFluxError
from lucidflux_cli.imageio import formats
from lucidflux_cli.imageio.discovery import InputFile
from lucidflux_cli.restore import batch
from lucidflux_cli.runner.job import Job, Processor, Publish
from lucidflux_cli.runner.results import FileResult, StepCallback
from lucidflux_cli.runner.run import run_job
from lucidflux_cli.runner.scheduling import Scheduler, SingleProcess

log = logging.getLogger("lucidflux")


class RestoreJob(Job):
    """``lucidflux restore``: one output file per input, restored by the LucidFlux pipeline."""

    name, done_word = "restore", "restored"

    def __init__(self, request: Any):
        super().__init__(request)
        self.options = batch.OutputOptions.from_request(request)
        self.scores = self._file_scorer()

    def _file_scorer(self):
        if not self.request.score:
            return None
        from lucidflux_cli.devices import resolve_device
        from lucidflux_cli.restore.scoring import FileScorer

        metrics = self.request.score.split(",")
        scorer = FileScorer(
            metrics, str(resolve_device(self.request.device)), self.request.cache_dir, self.request.offline
        )
        scorer.check()
        return scorer

    def _scored(self, publish: Publish) -> Publish:
        """``publish`` with the tile count and (--score) the scores added to each result."""
        scored = self.scores.wrap(publish) if self.scores is not None else publish
        return lambda result: scored(self._with_tiles(result))

    def _with_tiles(self, result: FileResult) -> FileResult:
        """The diffusion tiles of a restored file (of its first page), as ``--dry-run`` plans them."""
        work = (result.details or {}).get("processing_size")
        if work is not None:
            from lucidflux_cli.model.tiling import denoise_grid

            result.details["tiles"] = denoise_grid(*work, self.request.tiles(tuple(work))).count
        return result

    def on_device(self, device: str, progress: bool = False) -> RestoreJob:
        return RestoreJob(dataclasses.replace(self.request, device=device, devices=None, progress=progress))

    def context(self) -> contextlib.AbstractContextManager:
        return formats.using_options(self.request.fmt, self.request.format_options)

    def settle(self, files: Sequence[InputFile]) -> dict[int, FileResult]:
        return batch.settle(files, self.options)

    def planned_output(self, item: InputFile) -> Path:
        return batch.expected_output(item, self.options)

    def plan_detail(self, result: FileResult) -> str:
        from lucidflux_cli.restore.plan import tile_plan

        return tile_plan(result.source, self.options, self.request)

    def scheduler(self) -> Scheduler:
        """torchrun ranks, ``--devices`` worker processes (not with --shard-model), or this process."""
        from lucidflux_cli.devices import parse_devices
        from lucidflux_cli.runner import ranks, workers

        if ranks.world() is not None:  # under torchrun / accelerate launch
            return ranks.Ranks(self)
        if self.request.devices is not None and not self.request.shard_model:
            return workers.Workers(self, parse_devices(self.request.devices))
        return SingleProcess(self)

    def processor(self) -> Processor:
        from lucidflux_cli.restore.restorer import lazy_restorer

        restorer, claimed, provenance = lazy_restorer(self.request), {}, self.request.provenance()
        return lambda item, publish, on_step=None: batch.restore_file(
            item, restorer, self.options, provenance, claimed, self._scored(publish), on_step=on_step
        )

    def process_all(
        self, files: Sequence[InputFile], on_result: Publish, on_step: StepCallback | None
    ) -> list[FileResult]:
        """Files in order; same-size images batched with ``--batch-size``."""
        from lucidflux_cli.restore.restorer import lazy_restorer

        report = batch.restore_files(
            files,
            lazy_restorer(self.request),
            self.options,
            self.request.provenance(),
            on_result=self._scored(on_result),
            on_step=on_step,
            stops_after=self.stops_after,
            batch_size=self.request.batch_size,
        )
        return report.results

    def recorded(self, result: FileResult) -> None:
        if result.details and result.details.get("worse"):
            log.warning("%s: %s got worse after restoring", result.source, ", ".join(result.details["worse"]))

    def summary(self, results: list[FileResult]) -> dict[str, Any]:
        """With --score: the restored files whose score dropped, to review just those."""
        if self.scores is None:
            return {}
        return {
            "got_worse": [
                {
                    "source": str(r.source),
                    "output": str(r.output),
                    "metrics": r.details["worse"],
                    **r.details["scores"],
                }
                for r in results
                if r.details and r.details.get("worse")
            ]
        }


def run(request: Any, stdin=None) -> int:
    """``lucidflux restore``."""
    try:
        job = RestoreJob(request)
    except LucidFluxError as error:  # e.g. --score offline without the metric's weights
        log.error("%s", error)
        return EXIT_SETUP
    return run_job(job, stdin)
