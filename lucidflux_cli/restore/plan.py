"""``lucidflux restore`` before any work: its usage checks, and the tile grid its ``--dry-run`` shows."""

from __future__ import annotations

import logging

from lucidflux_cli import plugins
from lucidflux_cli.devices import parse_device, parse_devices
from lucidflux_cli.imageio import formats
from lucidflux_cli.imageio.media import probe_size
from lucidflux_cli.model.sizes import output_size, processing_size
from lucidflux_cli.restore import batch
from lucidflux_cli.restore.settings import RestoreRequest

log = logging.getLogger("lucidflux")


def validate(request: RestoreRequest) -> None:
    """Usage errors (exit 2) before any work: raise ValueError with a one-line message."""
    from lucidflux_cli.model import removers
    from lucidflux_cli.runner import ranks

    try:  # a broken or unknown plugin, or options it refuses, names itself and the cause
        removers.create(request.remover, request.remover_options)
        formats.select(request.fmt, request.format_options)
    except plugins.PluginError as error:
        raise ValueError(f"{error.kind} plugin {error.name!r} cannot be used: {error.cause}") from error
    formats.output_format_for("png", request.fmt)  # raises ValueError for unknown formats
    if request.scale <= 0 or (request.scale != 1 and request.size is not None):
        raise ValueError("--scale must be positive and cannot be combined with --size")
    request.tiles()  # raises ValueError for impossible tile settings
    if request.device != "auto":
        parse_device(request.device)
    _validate_devices(request, under_torchrun=ranks.world() is not None)
    _validate_acceleration(request)


def _validate_devices(request: RestoreRequest, under_torchrun: bool) -> None:
    """``--devices``, ``--shard-model`` and ``--batch-size`` (batches form in one process only)."""
    if request.devices is not None and under_torchrun:
        raise ValueError(
            "--devices cannot be used under torchrun/accelerate launch: each rank uses its LOCAL_RANK GPU"
        )
    if request.shard_model:
        from lucidflux_cli.model import sharding

        if request.offload != "none":
            raise ValueError("--shard-model and --offload are two answers to one problem; choose one")
        sharding.check_devices(parse_devices(request.devices) if request.devices is not None else [])
    elif request.devices is not None:
        parse_devices(request.devices)
    if request.batch_size > 1 and (
        (request.devices is not None and not request.shard_model) or under_torchrun
    ):
        raise ValueError(
            "--batch-size above 1 works in single-process runs only (or with --shard-model), "
            "not with --devices or torchrun"
        )


def _validate_acceleration(request: RestoreRequest) -> None:
    from lucidflux_cli.devices import resolve_device
    from lucidflux_cli.model import acceleration

    acceleration.Placement(request.offload, "cpu")  # raises ValueError for unknown modes
    acceleration.resolve_compile(request.compile, resolve_device("cpu"))
    if request.precision == "fp8":
        if request.dtype not in ("auto", "bf16"):
            raise ValueError(
                "--precision fp8 computes in bf16 around the float8 matmuls; drop --dtype or use bf16"
            )
        problem = acceleration.fp8_problem(resolve_device(request.device))
        if problem:
            raise ValueError(problem)


def tile_plan(source, options: batch.OutputOptions, request: RestoreRequest) -> str:
    """Processing size and tile grid of one image, from its header alone."""
    from lucidflux_cli.model.tiling import describe_plan

    size = probe_size(source)
    if size is None:
        return "size unknown"
    work = processing_size(output_size(size, options.size, options.scale), options.min_side)
    return describe_plan(*work, request.tiles(work))
