"""The model side of a run: resolve weights, load the components, wrap the pipeline as a
:data:`batch.Restorer` (the only thing the per-file logic knows of the model)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lucidflux_cli import devices
from lucidflux_cli.errors import LucidFluxError
from lucidflux_cli.restore import batch
from lucidflux_cli.restore.settings import RestoreRequest
from lucidflux_cli.runner.report import SetupError
from lucidflux_cli.runner.results import StepCallback

if TYPE_CHECKING:  # the pipeline imports torch; this module stays light until a model is built
    import numpy as np
    from PIL import Image

    from lucidflux_cli.model.pipeline import LucidFluxPipeline, RestoreSettings

log = logging.getLogger("lucidflux")


def lazy_restorer(request: RestoreRequest) -> Callable[[], batch.Restorer]:
    """The restorer, built on first call (a run that only skips files loads no model), then reused."""
    return functools.cache(functools.partial(build_restorer, request))


def build_restorer(request: RestoreRequest) -> batch.Restorer:
    """Resolve weights, load every component, return ``(image, size, on_step) -> pixels``."""
    from lucidflux_cli.devices import resolve_device, resolve_dtype
    from lucidflux_cli.model import acceleration, removers
    from lucidflux_cli.model.components import load_components
    from lucidflux_cli.model.pipeline import LucidFluxPipeline

    try:
        shard_over = _shard_devices(request)  # --shard-model: load on the host, then spread over these
        device = resolve_device(shard_over[0] if shard_over else request.device)
        dtype = resolve_dtype(request.dtype, device)
        remover = removers.create(request.remover, request.remover_options)
        # Only the chosen remover's weights are fetched (--remover none needs no SwinIR).
        paths, remover_paths = removers.resolve_weights(
            remover,
            _local_weights(request.weights),
            cache_dir=request.cache_dir,
            offline=request.offline,
            quiet=request.quiet or not request.progress,
        )
        prompt = _encode_prompt(request, paths, device) if request.prompt is not None else None
        loaded_remover = removers.load(remover, remover_paths, device)
        placement = acceleration.Placement("none" if shard_over else request.offload, device)
        load_device = resolve_device("cpu") if shard_over else placement.load_device
        components = load_components(paths, load_device, dtype, prompt=prompt, remover=loaded_remover)
        if shard_over:
            from lucidflux_cli.model import sharding

            components = sharding.shard(components, shard_over)
        compiled = acceleration.apply(
            components,
            device=device,
            precision=request.precision,
            compile_mode=request.compile,
            placement=placement,
            cache_dir=request.cache_dir,
        )
    except (LucidFluxError, ValueError, RuntimeError, OSError) as error:
        raise SetupError(str(error)) from error
    if request.tile_size == "auto":
        memory = devices.device_memory_gib(request.device)
        log.info(
            "tile size auto: the cheapest per image, up to %d px (%s)",
            request.largest_tile(),
            f"{memory:.0f} GiB on {device}" if memory else "the CPU keeps 1024 px",
        )
    return PipelineRestorer(
        LucidFluxPipeline(components, device, dtype, placement),
        request.sampling,
        "includes compiling, cached for later runs" if compiled else "includes warm-up",
    )


class PipelineRestorer:
    """A :data:`batch.Restorer` over a pipeline; ``batch`` is its :data:`batch.BatchRestorer` form."""

    def __init__(
        self,
        pipeline: LucidFluxPipeline,
        settings_for: Callable[[tuple[int, int]], RestoreSettings],
        first_call: str,
    ):
        from lucidflux_cli.model import acceleration

        self.pipeline = pipeline
        self.settings_for = settings_for  # per processing size: --tile-size auto picks tiles per image
        # Whichever call comes first, single or batched, logs its time (compilation, warm-up).
        self.timed = acceleration.timed_first_call(lambda call: call(), first_call)

    def __call__(
        self, image: Image.Image | np.ndarray, size: tuple[int, int], on_step: StepCallback | None = None
    ) -> np.ndarray:
        settings = self.settings_for(size)
        return self.timed(lambda: self.pipeline(image, size=size, settings=settings, on_step=on_step))

    def batch(
        self,
        images: Sequence[Image.Image | np.ndarray],
        size: tuple[int, int],
        on_step: StepCallback | None = None,
    ) -> list[np.ndarray]:
        settings = self.settings_for(size)
        return self.timed(lambda: self.pipeline.restore_batch(images, size, settings, on_step))


def _shard_devices(request: RestoreRequest) -> list[str]:
    if not request.shard_model:
        return []
    from lucidflux_cli.devices import parse_devices

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
    return weights.fetch(
        weights.REGISTRY["text_encoders"],
        cache_dir=request.cache_dir,
        offline=request.offline,
        quiet=request.quiet or not request.progress,
    )
