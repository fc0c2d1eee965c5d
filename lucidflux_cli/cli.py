"""Command line: parse and validate, then call plain functions (batch, components, pipeline)."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import click

from lucidflux_cli import __version__

WEIGHT_OPTIONS = {
    "flux": "FLUX.1-dev transformer: flux1-dev.safetensors (bf16 or fp8) or a diffusers FLUX.1-dev folder",
    "ae": "FLUX autoencoder: ae.safetensors or a diffusers vae/ folder",
    "lucidflux": "lucidflux.pth (condition branches, modulations, connector)",
    "swinir": "DiffBIR SwinIR checkpoint (general_swinir_v1.ckpt)",
    "siglip": "SigLIP folder (google/siglip2-so400m-patch16-512)",
    "prompt_embeddings": "prompt_embeddings.pt (precomputed T5/CLIP prompt)",
}


def _size(ctx, param, value):
    from lucidflux_cli.sizes import parse_size

    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


def _weight_options(function):
    for name, help_text in reversed(WEIGHT_OPTIONS.items()):
        flag = "--" + name.replace("_", "-")
        function = click.option(flag, name, type=click.Path(exists=True, path_type=Path), help=help_text)(function)
    return function


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lucidflux")
def main() -> None:
    """Restore degraded photos with LucidFlux."""


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder; the input tree is mirrored under it.")
@click.option("--size", callback=_size, help="Exact output size WxH (one side 0 keeps the aspect ratio). Default: input size.")
@click.option("--steps", type=click.IntRange(1, 1000), default=20, show_default=True, help="Denoising steps.")
@click.option("--guidance", type=float, default=4.0, show_default=True, help="FLUX guidance embedding value.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=123456789, show_default=True, help="Noise seed.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--dtype", type=click.Choice(["auto", "bf16", "fp16", "fp32"]), default="auto", show_default=True,
              help="auto: bf16 on CUDA, fp32 on CPU.")
@click.option("--format", "fmt", default="same", show_default=True, help="same, png, jpeg, webp, tiff or heif.")
@click.option("--quality", type=click.IntRange(1, 100), help="JPEG/WebP/HEIF quality.")
@click.option("--color-fix", type=click.Choice(["wavelet", "none"]), default="wavelet", show_default=True)
@click.option("--prompt", help="Encode this prompt with FLUX.1-dev's T5/CLIP instead of the shipped embedding.")
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist (default: skip them).")
@click.option("--no-recursive", is_flag=True, help="Do not descend into sub-folders.")
@click.option("--offline", is_flag=True, help="Use only cached weights; never download.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), envvar="LUCIDFLUX_CACHE",
              help="Weights cache (default: the Hugging Face cache).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@_weight_options
def restore(inputs, out_dir, size, steps, guidance, seed, device, dtype, fmt, quality, color_fix, prompt,
            overwrite, no_recursive, offline, cache_dir, quiet, verbose, **weights) -> None:
    """Restore INPUTS (files, folders, globs) into OUTPUT."""
    from lucidflux_cli import restore as run

    _setup_logging(quiet, verbose)
    options = run.RestoreRequest(
        inputs=list(inputs), out_dir=out_dir, size=size, steps=steps, guidance=guidance, seed=seed,
        device=device, dtype=dtype, fmt=fmt, quality=quality, color_fix=color_fix, prompt=prompt,
        overwrite=overwrite, recursive=not no_recursive, offline=offline, cache_dir=cache_dir,
        weights=weights, quiet=quiet,
    )
    try:
        run.validate(options)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    sys.exit(run.run(options))


def _setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="lucidflux: %(message)s", stream=sys.stderr, force=True)
    for noisy in ("diffusers", "transformers", "huggingface_hub", "urllib3", "PIL"):
        logging.getLogger(noisy).setLevel(logging.ERROR if not verbose else logging.INFO)
    warnings.filterwarnings("ignore", category=FutureWarning)
