"""``lucidflux train``: the training loop under the shared runner's rules.

Training is a loop of optimiser steps, not of files, so it does not go through the runner's
per-file ``execute``; it takes the runner's parts: the output lock on the run folder, ``--json``
events (one per step and a summary), the one report writer (``runner.report.write_report``),
one-line errors and the exit codes (0 done, 1 bad input, 2 usage, 3 setup, 130 interrupted
after saving). The
steps, checkpoints, signals and resume are :class:`~lucidflux_cli.training.loop.Trainer`'s.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from lucidflux_cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_SETUP, LucidFluxError
from lucidflux_cli.runner.control import output_lock
from lucidflux_cli.runner.report import final_state, write_report

log = logging.getLogger("lucidflux")


def latest_state(folder: Path) -> Path | None:
    """The newest ``step-N.state.pt`` of a run folder (what a rerun resumes from)."""
    states = [
        (int(m[1]), p)
        for p in folder.glob("step-*.state.pt")
        if (m := re.fullmatch(r"step-(\d+)\.state\.pt", p.name))
    ]
    return max(states)[1] if states else None


def load_pipeline(request: Any):
    """The frozen models and the condition module: the released one, or zero-initialised."""
    import torch

    from lucidflux_cli.devices import resolve_device
    from lucidflux_cli.model import removers
    from lucidflux_cli.model.components import load_components
    from lucidflux_cli.model.pipeline import LucidFluxPipeline
    from lucidflux_cli.training.trainable import from_scratch

    device = resolve_device(_process_device(request.device))
    if device.type == "cuda":
        torch.cuda.set_device(device)  # accelerate and libraries use "the" current GPU
    dtype = (
        torch.bfloat16 if device.type == "cuda" else torch.float32
    )  # the frozen side; trainable parts float32
    remover = removers.create("swinir", {})
    paths, remover_paths = removers.resolve_weights(
        remover, request.weights, cache_dir=request.cache_dir, offline=request.offline, quiet=request.quiet
    )
    components = load_components(paths, device, dtype, remover=removers.load(remover, remover_paths, device))
    if request.from_scratch:
        components = from_scratch(components, seed=request.seed)
    return LucidFluxPipeline(components, device, dtype)


def run(request: Any) -> int:
    """Train; the exit code. Under ``accelerate launch``/torchrun every process runs this: the main
    one locks the run folder, builds the input cache first, and reports."""
    from lucidflux_cli.training.pairs import PairError, find_pairs

    main = _rank() == 0
    events = TrainEvents(request, reports=main)
    try:
        pairs = find_pairs(request.pairs)  # bad input fails before any model is loaded
        log.info("%d training pairs from %s", len(pairs), request.pairs)
        if request.validation is not None and not _validation_images(request.validation):
            raise ValueError(f"--validation {request.validation}: no images there")
        request.out_dir.mkdir(parents=True, exist_ok=True)
        with output_lock(request.out_dir) if main else contextlib.nullcontext():
            outcome = _train(request, events, len(pairs))
    except (PairError, ValueError) as error:  # bad pairs, a state of another run or architecture
        log.error("%s", error)
        return events.finish(EXIT_FAILED, error=str(error))
    except LucidFluxError as error:  # weights, device, the output folder locked
        log.error("%s", error)
        return events.finish(EXIT_SETUP, error=str(error))
    except KeyboardInterrupt:
        log.error("interrupted before training started; nothing to save")
        return events.finish(EXIT_INTERRUPTED)
    if outcome.interrupted:
        log.error(
            "interrupted (%s) at step %d; saved step-%d; run the same command again to resume",
            outcome.interrupted,
            outcome.steps,
            outcome.steps,
        )
        return events.finish(EXIT_INTERRUPTED, outcome)
    log.info("trained to step %d; weights: %s", outcome.steps, request.out_dir / f"step-{outcome.steps}.pth")
    return events.finish(EXIT_OK, outcome)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _process_device(requested: str) -> str:
    """Under accelerate launch / torchrun each process takes its own GPU (cuda:LOCAL_RANK)."""
    import torch

    from lucidflux_cli.devices import rank_device

    local = os.environ.get("LOCAL_RANK")
    return requested if local is None else rank_device(requested, int(local), torch.cuda.is_available())


def _train(request: Any, events: TrainEvents, pair_count: int):
    from lucidflux_cli.training.cache import cached_pairs
    from lucidflux_cli.training.loop import Trainer, make_accelerator

    options = request.options()
    pipeline = load_pipeline(request)
    accelerator = make_accelerator(pipeline.device)
    with accelerator.main_process_first(), events.bar(pair_count, "cache") as bar:
        data = cached_pairs(
            pipeline, request.pairs, request.out_dir / "cache", lambda done, total: bar.update(1)
        )
    trainer = Trainer(pipeline, data, options, accelerator)
    state = latest_state(request.out_dir)
    if state is not None:
        _warn_changed_options(request.out_dir / "run-config.json", options)
        trainer.resume(state)
        log.info("resumed from %s (step %d of %d)", state.name, trainer.step, request.steps)
    validation = _validation(request, pipeline, accelerator.autocast) if accelerator.is_main_process else None
    with events.bar(request.steps, "train", initial=trainer.step) as bar:

        def on_step(step: int, loss: float, rate: float) -> None:
            events.step(step, loss, rate)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            bar.update(1)
            if validation is not None and step % request.validate_every == 0:
                events.validation(step, validation.run(step, events.losses))

        return trainer.run(request.steps, request.out_dir, on_step)


def _warn_changed_options(saved: Path, options) -> None:
    """A resumed run continues the saved one: say which options now differ from it."""
    from dataclasses import asdict

    try:
        before = json.loads(saved.read_text())
    except (OSError, ValueError):
        return
    now = json.loads(json.dumps(asdict(options), default=str))
    changed = sorted(key for key in set(before) | set(now) if before.get(key) != now.get(key))
    if changed:
        log.warning("resuming with other options than the saved run: %s", ", ".join(changed))


def _validation_images(folder: Path) -> list:
    from lucidflux_cli.imageio import discovery

    return discovery.discover([str(folder)], recursive=True).files


def _validation(request: Any, pipeline, precision):
    if request.validation is None:
        return None
    from lucidflux_cli.finetune.validation import Validation

    return Validation(request, pipeline, precision)  # in the training steps' autocast and dtypes


class TrainEvents:
    """Step events, the summary and the report of a training run; progress bars on a terminal."""

    def __init__(self, request: Any, reports: bool = True):
        self.request, self.reports = request, reports  # one process of several reports
        self.started = dt.datetime.now(dt.timezone.utc)
        self.losses: list[tuple[int, float]] = []
        self.validation_errors: list[str] = []  # one line each; the run went on
        self.last_report = time.monotonic()

    def bar(self, total: int, name: str, initial: int = 0):
        from tqdm import tqdm

        enabled = self.reports and self.request.progress and not self.request.quiet and sys.stderr.isatty()
        return contextlib.closing(
            tqdm(
                total=total,
                initial=initial,
                desc=name,
                disable=not enabled,
                unit="step" if name == "train" else "pair",
            )
        )

    def step(self, step: int, loss: float, rate: float) -> None:
        self.losses.append((step, loss))
        if not self.reports:
            return
        if self.request.json_events:
            print(
                json.dumps({"event": "step", "step": step, "loss": loss, "steps_per_second": round(rate, 4)}),
                flush=True,
            )
        log.debug("step %d: loss %.5f (%.2f steps/s)", step, loss, rate)
        if self.request.report and time.monotonic() - self.last_report >= self.request.report_every:
            self._write_report(self._summary(None, None, None), "running")

    def validation(self, step: int, error: str | None) -> None:
        """A validation's outcome: a failure goes into the summary and report (and a --json event)."""
        if error is None:
            return
        self.validation_errors.append(error)
        if self.reports and self.request.json_events:
            print(json.dumps({"event": "validation", "step": step, "error": error}), flush=True)
        if self.reports and self.request.report:
            self._write_report(self._summary(None, None, None), "running")

    def finish(self, code: int, outcome=None, error: str | None = None) -> int:
        summary = self._summary(code, outcome, error)
        if not self.reports:
            return code
        if self.request.json_events:
            print(json.dumps(summary), flush=True)
        if self.request.report:
            self._write_report(summary, final_state(code, error))
        return code

    def _summary(self, code: int | None, outcome, error: str | None) -> dict[str, Any]:
        return {
            "event": "summary",
            "exit_code": code,
            "steps": outcome.steps if outcome else None,
            "target_steps": self.request.steps,
            "interrupted": outcome.interrupted if outcome else None,
            "checkpoints": [str(p) for p in outcome.checkpoints] if outcome else [],
            "last_loss": self.losses[-1][1] if self.losses else None,
            "error": error,
            "validation_errors": list(self.validation_errors),
        }

    def _write_report(self, summary: dict[str, Any], state: str) -> None:
        write_report(
            self.request.report,
            "train",
            self.request.provenance(),
            self.started,
            state,
            {**summary, "losses": [{"step": step, "loss": loss} for step, loss in self.losses]},
        )
        self.last_report = time.monotonic()
