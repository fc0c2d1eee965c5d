"""The ``restore`` job: discover, lock the output, build the pipeline lazily, restore, report.

Exit codes: 0 all restored or skipped, 1 some files failed, 2 usage error (raised by the CLI),
3 setup error (weights, device, output locked), 130 interrupted (SIGINT or SIGTERM).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from lucidflux_cli import __version__
from lucidflux_cli.engine import batch
from lucidflux_cli.engine.control import Interrupted, output_lock, stop_on_signals
from lucidflux_cli.errors import LucidFluxError
from lucidflux_cli.imageio import atomic, discovery, formats, media
from lucidflux_cli.model import tiling
from lucidflux_cli.model.sizes import DEFAULT_MIN_SIDE, output_size, probe_size, processing_size
from lucidflux_cli.model.tiling import TileOptions, describe_plan

if TYPE_CHECKING:  # the pipeline imports torch; this module stays light until a model is built
    import numpy as np
    from PIL import Image

    from lucidflux_cli.model.pipeline import LucidFluxPipeline, RestoreSettings

log = logging.getLogger("lucidflux")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SETUP, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass
class RestoreRequest:
    inputs: list[str]
    out_dir: Path
    size: tuple[int, int] | None = None
    steps: int = 20
    guidance: float = 4.0
    seed: int = 123456789
    device: str = "auto"
    devices: str | None = None  # --devices: one worker process per listed device (lucidflux_cli.engine.workers)
    shard_model: bool = False  # --shard-model: one copy of the model spread over the --devices GPUs
    dtype: str = "auto"
    compile: str = "auto"  # auto (on for CUDA), on, off
    precision: str = "bf16"  # or fp8 (torchao, Ada/Hopper)
    offload: str = "none"  # none, model, sequential
    fmt: str = "same"
    format_options: dict[str, str] = field(default_factory=dict)  # --format-option key=value
    remover: str = "swinir"  # a lucidflux.removers plugin
    remover_options: dict[str, str] = field(default_factory=dict)  # --remover-option key=value
    quality: int | None = None
    suffix: str = ""
    color_fix: str = "wavelet"
    prompt: str | None = None
    overwrite: bool = False
    recursive: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    null_separated: bool = False
    offline: bool = False
    cache_dir: Path | None = None
    weights: dict[str, Path | None] = field(default_factory=dict)
    dry_run: bool = False
    fail_fast: bool = False
    json_events: bool = False
    report: Path | None = None
    quiet: bool = False
    progress: bool = True
    scale: float = 1.0  # output = scale x input (when no --size)
    min_side: int = DEFAULT_MIN_SIDE  # restore at >= this short side, then resize to the output size
    tile_size: int | str = "auto"  # px, or "auto": by the device's memory (tiling.auto_tile_size)
    tile_overlap: int | None = None  # None: a quarter of the tile
    tile_batch: int = TileOptions.batch
    batch_size: int = 1  # --batch-size: same-size images per model call (single-process runs)

    def tiles(self, size: tuple[int, int] | None = None) -> TileOptions:
        """Tiles for an image of processing ``size``: with ``--tile-size auto`` the cheapest the
        device holds (tiling.cheapest_tiles); without a size, the largest allowed."""
        largest = resolve_tile_size(self)
        if self.tile_size != "auto" or size is None:
            return TileOptions(size=largest, overlap=self.tile_overlap, batch=self.tile_batch)
        return tiling.auto_tiles(*size, largest, self.tile_overlap, self.tile_batch)


def resolve_tile_size(request: RestoreRequest) -> int:
    """``--tile-size``, or for ``auto`` the largest tile the device's memory holds in one piece."""
    if request.tile_size != "auto":
        return int(request.tile_size)
    if request.shard_model:  # each GPU holds a part of the model: keep FLUX's native tile
        return tiling.AUTO_TILE_SIDES[-1]
    return tiling.auto_tile_size(device_memory_gib(request.device), request.precision, request.offload)


@functools.cache
def device_memory_gib(name: str) -> float | None:
    """Total memory of the CUDA device ``name`` (``auto``: the first GPU) in GiB; None for a CPU."""
    import torch

    from lucidflux_cli.model.devices import resolve_device

    try:
        device = resolve_device(name)
    except (ValueError, RuntimeError):
        return None  # validate() reports a bad --device
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(device).total_memory / 2**30


class SetupError(LucidFluxError):
    """Weights, device or model could not be prepared (exit code 3)."""


def validate(request: RestoreRequest) -> None:
    """Usage errors (exit 2) before any work: raise ValueError with a one-line message."""
    from lucidflux_cli import plugins
    from lucidflux_cli.model import removers

    try:  # a broken or unknown plugin, or options it refuses, names itself and the cause
        removers.create(request.remover, request.remover_options)
        formats.select(request.fmt, request.format_options)
    except plugins.PluginError as error:
        raise ValueError(f"{error.kind} plugin {error.name!r} cannot be used: {error.cause}") from error
    media.output_format_for("png", request.fmt)  # raises ValueError for unknown formats
    if request.scale <= 0 or (request.scale != 1 and request.size is not None):
        raise ValueError("--scale must be positive and cannot be combined with --size")
    request.tiles()  # raises ValueError for impossible tile settings
    if request.device != "auto":
        import torch

        try:
            torch.device(request.device)
        except RuntimeError as error:
            raise ValueError(f"invalid --device {request.device!r}") from error
    if request.devices is not None or request.shard_model:
        from lucidflux_cli.engine import workers as parallel

        parallel.validate(request)
    _validate_batch_size(request)
    _validate_acceleration(request)


def _validate_batch_size(request: RestoreRequest) -> None:
    """Batches are formed in the single-process loop only; workers take files one at a time."""
    from lucidflux_cli.engine import ranks as distributed

    if request.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {request.batch_size}")
    if request.batch_size > 1 and ((request.devices is not None and not request.shard_model) or distributed.world()):
        raise ValueError("--batch-size above 1 works in single-process runs only (or with --shard-model), "
                         "not with --devices or torchrun")


def _validate_acceleration(request: RestoreRequest) -> None:
    from lucidflux_cli.model import acceleration
    from lucidflux_cli.model.devices import resolve_device

    acceleration.Placement(request.offload, "cpu")  # raises ValueError for unknown modes
    acceleration.resolve_compile(request.compile, resolve_device("cpu"))
    if request.precision not in acceleration.PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(acceleration.PRECISIONS)}, got {request.precision!r}")
    if request.precision == "fp8":
        if request.dtype not in ("auto", "bf16"):
            raise ValueError("--precision fp8 computes in bf16 around the float8 matmuls; drop --dtype or use bf16")
        problem = acceleration.fp8_problem(resolve_device(request.device))
        if problem:
            raise ValueError(problem)


def run(request: RestoreRequest, stdin=None) -> int:
    found = discover(request, stdin or sys.stdin)
    options = output_options(request)
    from lucidflux_cli.engine import ranks as distributed
    from lucidflux_cli.engine import workers as parallel

    if request.dry_run:
        if (distributed.world() or (0,))[0] != 0:  # under torchrun the plan is printed once, by rank 0
            return EXIT_FAILED if found.problems else EXIT_OK
        return dry_run(found, options, request)
    if not found.files:
        log.error("no input images found")
        return EXIT_FAILED if found.problems else EXIT_OK

    if distributed.world() is not None:  # under torchrun / accelerate launch
        return distributed.run(request, found, options)
    if request.devices is not None and not request.shard_model:
        return parallel.run(request, found, options)
    events = EventSink(request)
    try:
        with (output_lock(request.out_dir), stop_on_signals(), formats.using_options(request.fmt, request.format_options),
              Progress(len(found.files), request) as progress):
            atomic.remove_stale_temps(request.out_dir)
            report = batch.restore_files(
                found.files,
                lambda: build_restorer(request),
                options,
                provenance(request),
                on_result=lambda result: (events.file(result), progress.file_done()),
                on_step=progress.step,
                fail_fast=request.fail_fast,
                batch_size=request.batch_size,
            )
    except (SetupError, LucidFluxError) as error:
        log.error("%s", error)
        events.finish(None, found, EXIT_SETUP, str(error))
        return EXIT_SETUP
    except (KeyboardInterrupt, Interrupted):
        log.error("interrupted; finished files are kept, nothing is half-written; rerun to resume")
        events.finish(None, found, EXIT_INTERRUPTED, "interrupted")
        return EXIT_INTERRUPTED
    code = EXIT_FAILED if found.problems and report.exit_code == EXIT_OK else report.exit_code
    log.info("%d restored, %d skipped, %d failed", report.count("done"), report.count("skipped"), report.count("failed"))
    events.finish(report, found, code)
    return code


def output_options(request: RestoreRequest) -> batch.OutputOptions:
    return batch.OutputOptions(
        out_dir=request.out_dir, fmt=request.fmt, quality=request.quality, suffix=request.suffix,
        size=request.size, overwrite=request.overwrite, scale=request.scale, min_side=request.min_side,
    )


def discover(request: RestoreRequest, stdin) -> discovery.DiscoveryResult:
    stdin_lines = discovery.split_stdin(stdin.read(), request.null_separated) if "-" in request.inputs else None
    found = discovery.discover(
        request.inputs, recursive=request.recursive, include=request.include, exclude=request.exclude,
        output_dir=request.out_dir, stdin_lines=stdin_lines,
        extensions=discovery.IMAGE_EXTENSIONS | formats.readable_extensions(),
    )
    for problem in found.problems:
        log.error("%s", problem)
    return found


def dry_run(found: discovery.DiscoveryResult, options: batch.OutputOptions, request: RestoreRequest) -> int:
    """List the plan without loading any model."""
    planned = batch.plan(found.files, options)
    for result in planned:
        tiles = _tile_plan(result.source, options, request) if result.status == "planned" else None
        if request.json_events:
            print(json.dumps({**result.to_event(), "plan": tiles}), flush=True)
        else:
            verb = "restore" if result.status == "planned" else "skip   "
            print(f"{verb} {result.source} -> {result.output}" + (f" ({tiles})" if tiles else ""))
    restore_count = sum(r.status == "planned" for r in planned)
    log.info("dry run: %d to restore, %d already done", restore_count, len(planned) - restore_count)
    return EXIT_FAILED if found.problems else EXIT_OK


def _tile_plan(source: Path, options: batch.OutputOptions, request: RestoreRequest) -> str:
    """Processing size and tile grid of one image, from its header alone."""
    size = probe_size(source)
    if size is None:
        return "size unknown"
    work = processing_size(output_size(size, options.size, options.scale), options.min_side)
    return describe_plan(*work, request.tiles(work))


def provenance(request: RestoreRequest) -> dict[str, str]:
    return {
        "Model": "LucidFlux (FLUX.1-dev)",
        "Steps": str(request.steps),
        "Guidance": str(request.guidance),
        "Seed": str(request.seed),
        "ColorFix": request.color_fix,
        "Remover": request.remover,
        "Prompt": request.prompt or "(LucidFlux default embedding)",
    }


def build_restorer(request: RestoreRequest) -> batch.Restorer:
    """Resolve weights, load every component, return ``(image, size, on_step) -> pixels``."""
    from lucidflux_cli.model import acceleration, removers
    from lucidflux_cli.model.components import load_components
    from lucidflux_cli.model.devices import resolve_device, resolve_dtype
    from lucidflux_cli.model.pipeline import LucidFluxPipeline, RestoreSettings

    try:
        shard_over = _shard_devices(request)  # --shard-model: load on the host, then spread over these
        device = resolve_device(shard_over[0] if shard_over else request.device)
        dtype = resolve_dtype(request.dtype, device)
        remover = removers.create(request.remover, request.remover_options)
        # Only the chosen remover's weights are fetched (--remover none needs no SwinIR).
        paths, remover_paths = removers.resolve_weights(
            remover, _local_weights(request.weights), cache_dir=request.cache_dir, offline=request.offline,
            quiet=request.quiet or not request.progress)
        prompt = _encode_prompt(request, paths, device) if request.prompt is not None else None
        loaded_remover = removers.load(remover, remover_paths, device)
        placement = acceleration.Placement("none" if shard_over else request.offload, device)
        load_device = resolve_device("cpu") if shard_over else placement.load_device
        components = load_components(paths, load_device, dtype, prompt=prompt, remover=loaded_remover)
        if shard_over:
            from lucidflux_cli.model import sharding

            components = sharding.shard(components, shard_over)
        compiled = acceleration.apply(components, device=device, precision=request.precision,
                                      compile_mode=request.compile, placement=placement, cache_dir=request.cache_dir)
    except (LucidFluxError, ValueError, RuntimeError, OSError) as error:
        raise SetupError(str(error)) from error
    settings = RestoreSettings(steps=request.steps, guidance=request.guidance, seed=request.seed,
                               color_fix=request.color_fix, tiles=request.tiles())
    if request.tile_size == "auto":
        memory = device_memory_gib(request.device)
        log.info("tile size auto: the cheapest per image, up to %d px (%s)", settings.tiles.size,
                 f"{memory:.0f} GiB on {device}" if memory else "the CPU keeps 1024 px")
    return PipelineRestorer(LucidFluxPipeline(components, device, dtype, placement), settings,
                            "includes compiling, cached for later runs" if compiled else "includes warm-up",
                            tiles_for=request.tiles)


class PipelineRestorer:
    """A :data:`batch.Restorer` over a pipeline; ``batch`` is its :data:`batch.BatchRestorer` form."""

    def __init__(self, pipeline: LucidFluxPipeline, settings: RestoreSettings, first_call: str,
                 tiles_for: Callable[[tuple[int, int]], TileOptions] | None = None):
        from lucidflux_cli.model import acceleration

        self.pipeline, self.settings = pipeline, settings
        self.tiles_for = tiles_for  # per processing size (--tile-size auto); None: settings.tiles
        # Whichever call comes first, single or batched, logs its time (compilation, warm-up).
        self.timed = acceleration.timed_first_call(lambda call: call(), first_call)

    def __call__(self, image: Image.Image | np.ndarray, size: tuple[int, int],
                 on_step: batch.StepCallback | None = None) -> np.ndarray:
        settings = self._settings(size)
        return self.timed(lambda: self.pipeline(image, size=size, settings=settings, on_step=on_step))

    def batch(self, images: Sequence[Image.Image | np.ndarray], size: tuple[int, int],
              on_step: batch.StepCallback | None = None) -> list[np.ndarray]:
        settings = self._settings(size)
        return self.timed(lambda: self.pipeline.restore_batch(images, size, settings, on_step))

    def _settings(self, size: tuple[int, int]) -> RestoreSettings:
        return self.settings if self.tiles_for is None else replace(self.settings, tiles=self.tiles_for(size))


def _shard_devices(request: RestoreRequest) -> list[str]:
    if not request.shard_model:
        return []
    from lucidflux_cli.engine.workers import parse_devices

    return parse_devices(request.devices or "")


def _local_weights(weights: dict[str, Path | None]) -> dict[str, Path | None]:
    """A diffusers FLUX.1-dev folder given as --flux also provides the autoencoder (its vae/)."""
    flux = weights.get("flux")
    if weights.get("ae") is None and flux is not None and (Path(flux) / "vae").is_dir():
        return {**weights, "ae": Path(flux) / "vae"}
    return weights


def _encode_prompt(request: RestoreRequest, paths, device):
    from lucidflux_cli.model.prompt import encode_prompt
    from lucidflux_cli.weights import cache_root

    cache = Path(request.cache_dir) if request.cache_dir else cache_root(None)
    folder = _text_encoder_folder(request, paths)
    embedding = encode_prompt(request.prompt, folder, device=device, cache_dir=cache / "lucidflux-prompts")
    return embedding.txt, embedding.vec


def _text_encoder_folder(request: RestoreRequest, paths) -> Path:
    """--text-encoders, else a FLUX.1-dev folder that has them (--flux), else the registry's (fetched)."""
    from lucidflux_cli import weights

    given = request.weights.get("text_encoders")
    if given is not None:
        return Path(given)
    flux_dir = paths.flux if paths.flux.is_dir() else paths.flux.parent
    if (flux_dir / "text_encoder").is_dir():
        return flux_dir
    return weights.fetch(weights.REGISTRY["text_encoders"], cache_dir=request.cache_dir, offline=request.offline,
                         quiet=request.quiet or not request.progress)


class EventSink:
    """Per-file log lines, ``--json`` events on stdout, and the ``--report`` file."""

    def __init__(self, request: RestoreRequest):
        self.request = request
        self.started = dt.datetime.now(dt.timezone.utc)

    def file(self, result: batch.FileResult) -> None:
        if self.request.json_events:
            print(json.dumps(result.to_event()), flush=True)
        if result.status == "failed":
            log.error("failed %s", result.error)
        elif result.status == "skipped":
            log.info("skipped %s (exists: %s)", result.source, result.output)
        else:
            log.info("restored %s -> %s (%.1f s)", result.source, result.output, result.seconds)

    def finish(self, report: batch.BatchReport | None, found: discovery.DiscoveryResult, code: int,
               error: str | None = None) -> None:
        results = report.results if report else []
        summary = {
            "event": "summary",
            "exit_code": code,
            "done": sum(r.status == "done" for r in results),
            "skipped": sum(r.status == "skipped" for r in results),
            "failed": sum(r.status == "failed" for r in results),
            "problems": found.problems,
            "error": error,
        }
        if self.request.json_events:
            print(json.dumps(summary), flush=True)
        if self.request.report:
            document = {
                "tool": f"lucidflux-cli {__version__}",
                "started": self.started.isoformat(),
                "finished": dt.datetime.now(dt.timezone.utc).isoformat(),
                "settings": provenance(self.request),
                **summary,
                "files": [r.to_event() for r in results],
            }
            data = json.dumps(document, indent=2).encode()
            self.request.report.parent.mkdir(parents=True, exist_ok=True)
            atomic.atomic_write(self.request.report, lambda handle: handle.write(data))


class Progress:
    """tqdm bars for files and denoising steps; silent when not a terminal or quiet."""

    def __init__(self, total: int, request: RestoreRequest):
        self.enabled = request.progress and not request.quiet and sys.stderr.isatty()
        self.total = total
        self.files = self.steps = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from tqdm import tqdm

            self.files = tqdm(total=self.total, unit="file", desc="restore", position=0)
            self.steps = tqdm(total=0, unit="step", desc="denoise", position=1, leave=False)
        return self

    def __exit__(self, *exc) -> None:
        for bar in (self.steps, self.files):
            if bar is not None:
                bar.close()

    def file_done(self) -> None:
        if self.files is not None:
            self.files.update(1)

    def step(self, done: int, total: int) -> None:
        if self.steps is not None:
            if done == 1:
                self.steps.reset(total=total)
            self.steps.update(1)
