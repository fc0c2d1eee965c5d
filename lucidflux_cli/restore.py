"""The ``restore`` job: discover inputs, build the pipeline lazily, restore, report, exit code."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lucidflux_cli import batch, discovery, media
from lucidflux_cli.errors import LucidFluxError

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
    dtype: str = "auto"
    fmt: str = "same"
    quality: int | None = None
    color_fix: str = "wavelet"
    prompt: str | None = None
    overwrite: bool = False
    recursive: bool = True
    offline: bool = False
    cache_dir: Path | None = None
    weights: dict[str, Path | None] = field(default_factory=dict)
    quiet: bool = False


class SetupError(LucidFluxError):
    """Weights, device or model could not be prepared (exit code 3)."""


def validate(request: RestoreRequest) -> None:
    """Usage errors (exit 2) before any work: raise ValueError with a one-line message."""
    media.output_format_for("png", request.fmt)  # raises ValueError for unknown formats
    if request.device != "auto":
        import torch

        try:
            torch.device(request.device)
        except RuntimeError as error:
            raise ValueError(f"invalid --device {request.device!r}") from error


def run(request: RestoreRequest) -> int:
    stdin_lines = sys.stdin.read().splitlines() if "-" in request.inputs else None
    found = discovery.discover(
        request.inputs, recursive=request.recursive, output_dir=request.out_dir, stdin_lines=stdin_lines
    )
    for problem in found.problems:
        log.error("%s", problem)
    if not found.files:
        log.error("no input images found")
        return EXIT_FAILED if found.problems else EXIT_OK
    options = batch.OutputOptions(
        out_dir=request.out_dir, fmt=request.fmt, quality=request.quality, size=request.size,
        overwrite=request.overwrite,
    )
    try:
        report = batch.restore_files(
            found.files, lambda: build_restorer(request), options, provenance(request), on_result=_log_result
        )
    except SetupError as error:
        log.error("%s", error)
        return EXIT_SETUP
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED
    log.info(
        "%d restored, %d skipped, %d failed", report.count("done"), report.count("skipped"), report.count("failed")
    )
    if found.problems and report.exit_code == EXIT_OK:
        return EXIT_FAILED
    return report.exit_code


def provenance(request: RestoreRequest) -> dict[str, str]:
    return {
        "Model": "LucidFlux (FLUX.1-dev)",
        "Steps": str(request.steps),
        "Guidance": str(request.guidance),
        "Seed": str(request.seed),
        "ColorFix": request.color_fix,
        "Prompt": request.prompt or "(LucidFlux default embedding)",
    }


def build_restorer(request: RestoreRequest) -> batch.Restorer:
    """Resolve weights, load every component, return ``(image, size) -> pixels``."""
    from lucidflux_cli.components import load_components, resolve_device, resolve_dtype
    from lucidflux_cli.pipeline import LucidFluxPipeline, RestoreSettings
    from lucidflux_cli.weights import resolve_weights

    try:
        device = resolve_device(request.device)
        dtype = resolve_dtype(request.dtype, device)
        paths = resolve_weights(request.weights, cache_dir=request.cache_dir, offline=request.offline)
        prompt = None
        if request.prompt is not None:
            prompt = _encode_prompt(request, paths, device)
        components = load_components(paths, device, dtype, prompt=prompt)
    except (LucidFluxError, ValueError, RuntimeError) as error:
        raise SetupError(str(error)) from error
    pipeline = LucidFluxPipeline(components, device, dtype)
    settings = RestoreSettings(steps=request.steps, guidance=request.guidance, seed=request.seed,
                               color_fix=request.color_fix)
    return lambda image, size: pipeline(image, size=size, settings=settings)


def _encode_prompt(request: RestoreRequest, paths, device):
    from lucidflux_cli.prompt import encode_prompt

    flux_dir = paths.flux if paths.flux.is_dir() else paths.flux.parent
    cache = request.cache_dir or _default_cache_dir()
    embedding = encode_prompt(request.prompt, flux_dir, device=device, cache_dir=cache / "prompts")
    return embedding.txt, embedding.vec


def _default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("lucidflux"))


def _log_result(result: batch.FileResult) -> None:
    if result.status == "failed":
        log.error("failed %s", result.error)
    elif result.status == "skipped":
        log.info("skipped %s (exists: %s)", result.source, result.output)
    else:
        log.info("restored %s -> %s (%.1f s)", result.source, result.output, result.seconds)
