"""Command line: parse and validate, then call plain functions (restore, weights, ...).

Every ``restore`` option can also come from a ``LUCIDFLUX_<OPTION>`` environment variable
(``LUCIDFLUX_STEPS=30``); the command line wins.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import click

from lucidflux_cli import __version__
from lucidflux_cli.commands.config import config_group, config_option
from lucidflux_cli.commands.doctor import doctor_command
from lucidflux_cli.commands.plugins import plugins_group
from lucidflux_cli.commands.weights import weights_group

WEIGHT_OPTIONS = {
    "flux": "FLUX.1-dev transformer: flux1-dev.safetensors (bf16 or fp8) or a diffusers FLUX.1-dev folder",
    "ae": "FLUX autoencoder: ae.safetensors or a diffusers vae/ folder",
    "lucidflux": "lucidflux.pth (condition branches, modulations, connector)",
    "swinir": "DiffBIR SwinIR checkpoint (general_swinir_v1.ckpt)",
    "siglip": "SigLIP folder (google/siglip2-so400m-patch16-512)",
    "prompt_embeddings": "prompt_embeddings.pt (precomputed T5/CLIP prompt)",
    "text_encoders": "for --prompt: a FLUX.1-dev folder with text_encoder/, tokenizer/, text_encoder_2/, tokenizer_2/",
}
QUIET_LOGGERS = ("diffusers", "transformers", "huggingface_hub", "urllib3", "PIL", "httpx", "httpx2", "httpcore",
                 "httpcore2", "filelock", "torch.utils._pytree")


def _size(ctx, param, value):
    from lucidflux_cli.model.sizes import parse_size

    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


def _tile_size(ctx, param, value) -> int | str:
    """``auto`` (chosen by the device's memory) or a tile side in px."""
    if value is None or str(value).strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"expected 'auto' or a number of px, got {value!r}") from None


def _key_values(ctx, param, values) -> dict[str, str]:
    """Repeated KEY=VALUE options (or a config file's list of them) -> dict."""
    pairs: dict[str, str] = {}
    for item in values or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", ctx=ctx, param=param)
        pairs[key.strip()] = value.strip()
    return pairs


def _weight_options(function):
    for name, help_text in reversed(WEIGHT_OPTIONS.items()):
        flag = "--" + name.replace("_", "-")
        option = click.option(flag, name, type=click.Path(exists=True, path_type=Path), help=help_text,
                              envvar=f"LUCIDFLUX_{name.upper()}")
        function = option(function)
    return function


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lucidflux")
def main() -> None:
    """Restore degraded photos with LucidFlux."""


main.add_command(weights_group)
main.add_command(plugins_group)
main.add_command(config_group)
main.add_command(doctor_command)


@main.command(context_settings={"auto_envvar_prefix": "LUCIDFLUX"})
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder; the input tree is mirrored under it.")
@click.option("--size", callback=_size, help="Exact output size WxH (one side 0 keeps the aspect ratio). Default: input size.")
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="Output size = SCALE x input size (aspect kept); not with --size.")
@click.option("--min-side", type=click.IntRange(0), default=1024, show_default=True,
              help="Restore at a short side of at least this many px, then resize to the output size (0: off).")
@click.option("--tile-size", default="auto", show_default=True, callback=_tile_size, metavar="auto|PX",
              help="Above this processing size (px, multiple of 16) the image is restored in overlapping tiles. "
                   "auto: per image 1024 or 1536, whichever is less work; 1536 only where the GPU holds it (CPU: 1024).")
@click.option("--tile-overlap", type=int,
              help="Minimum overlap of neighbouring tiles in px (multiple of 16, at most half a tile). "
                   "Default: a quarter of the tile size.")
@click.option("--tile-batch", type=int, default=1, show_default=True, help="Tiles per model call.")
@click.option("--batch-size", type=click.IntRange(1), default=1, show_default=True,
              help="Consecutive images of one processing size restored together in one model call "
                   "(single-process runs; not with --devices or torchrun).")
@click.option("--steps", type=click.IntRange(1, 1000), default=20, show_default=True, help="Denoising steps.")
@click.option("--guidance", type=float, default=4.0, show_default=True, help="FLUX guidance embedding value.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=123456789, show_default=True, help="Noise seed.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--devices", metavar="LIST",
              help="Data parallel: one worker (one model copy) per device, e.g. cuda:0,cuda:1, all, or cpu,cpu. "
                   "See docs/cluster.md (also for torchrun).")
@click.option("--shard-model", is_flag=True,
              help="Spread one copy of the model over the --devices GPUs (GPUs too small for the 12B backbone).")
@click.option("--dtype", type=click.Choice(["auto", "bf16", "fp16", "fp32"]), default="auto", show_default=True,
              help="auto: bf16 on CUDA, fp32 on CPU.")
@click.option("--compile", "compile", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="torch.compile the transformer blocks (cached under the cache folder); auto: on for CUDA.")
@click.option("--precision", type=click.Choice(["bf16", "fp8"]), default="bf16", show_default=True,
              help="fp8: float8 backbone matmuls via torchao (Ada/Hopper GPUs; pip install 'lucidflux-cli[fp8]').")
@click.option("--offload", type=click.Choice(["none", "model", "sequential"]), default="none", show_default=True,
              help="Keep models on the host: model = each moved to the GPU for its stage; sequential = per layer.")
@click.option("--format", "fmt", default="same", show_default=True,
              help="same (the input's format where writable, else png), png, jpeg, webp, tiff, heif, "
                   "or an installed format plugin (`lucidflux plugins list`).")
@click.option("--format-option", "format_options", multiple=True, metavar="KEY=VALUE", callback=_key_values,
              help="Option for the --format plugin (repeatable), e.g. bits=16 for png/tiff.")
@click.option("--remover", default="swinir", show_default=True,
              help="Degradation remover run before LucidFlux: swinir (the paper's), none, or an installed plugin.")
@click.option("--remover-option", "remover_options", multiple=True, metavar="KEY=VALUE", callback=_key_values,
              help="Option for the --remover plugin (repeatable), e.g. model=PATH.")
@click.option("--quality", type=click.IntRange(1, 100), help="JPEG/WebP/HEIF quality (default 95).")
@click.option("--suffix", default="", help="Appended to output file names (photo.jpg -> photo<SUFFIX>.jpg).")
@click.option("--color-fix", type=click.Choice(["wavelet", "none"]), default="wavelet", show_default=True)
@click.option("--prompt", help="Encode this prompt with FLUX.1-dev's T5/CLIP instead of the shipped embedding.")
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist (default: skip them, so reruns resume).")
@click.option("--no-recursive", is_flag=True, help="Do not descend into sub-folders.")
@click.option("--include", multiple=True, help="Only files matching this pattern (repeatable), e.g. '*.tif'.")
@click.option("--exclude", multiple=True, help="Skip files or folders matching this pattern (repeatable).")
@click.option("-0", "--null", "null_separated", is_flag=True, help="Paths read from stdin ('-') are NUL-separated.")
@click.option("--dry-run", is_flag=True, help="List what would be restored or skipped; load no model.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first file that fails.")
@click.option("--json", "json_events", is_flag=True, help="Print one JSON event per file (and a summary) on stdout.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Write a JSON run report here.")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), help="Also append the log to this file.")
@click.option("--offline", is_flag=True, help="Use only cached weights; never download.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), envvar="LUCIDFLUX_CACHE",
              help="Weights cache (default: the Hugging Face cache). Env: LUCIDFLUX_CACHE.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress bars.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@config_option(weight_names=WEIGHT_OPTIONS)
@_weight_options
def restore(inputs, out_dir, log_file, verbose, **options) -> None:
    """Restore INPUTS (files, folders, globs, or - for paths on stdin) into OUTPUT."""
    from lucidflux_cli.engine import run as job

    _setup_logging(options["quiet"], verbose, log_file)
    weights = {name: options.pop(name) for name in WEIGHT_OPTIONS}
    request = job.RestoreRequest(inputs=list(inputs), out_dir=out_dir, weights=weights,
                                 include=tuple(options.pop("include")), exclude=tuple(options.pop("exclude")),
                                 recursive=not options.pop("no_recursive"), **options)
    try:
        job.validate(request)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    sys.exit(job.run(request))


def _envvars_from_long_names(command: click.Command) -> None:
    """``LUCIDFLUX_<LONG NAME>`` for every option: ``--format`` -> LUCIDFLUX_FORMAT, ``-o/--output`` ->
    LUCIDFLUX_OUTPUT (the same names the config file uses), not the internal parameter names."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar is None:
            long_names = [opt for opt in param.opts if opt.startswith("--")]
            if long_names:
                param.envvar = "LUCIDFLUX_" + long_names[0][2:].replace("-", "_").upper()


_envvars_from_long_names(restore)


def _setup_logging(quiet: bool, verbose: bool, log_file: Path | None = None) -> None:
    # -q quiets the terminal only: a --log-file keeps the full record (what cron jobs want).
    level = logging.DEBUG if verbose else logging.INFO
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.ERROR if quiet else level)
    terminal.setFormatter(logging.Formatter("lucidflux: %(message)s"))
    handlers: list[logging.Handler] = [terminal]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handlers.append(file_handler)
    logging.basicConfig(level=level, handlers=handlers, force=True)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose else logging.ERROR)
    # diffusers and transformers set their loggers' levels from these when first imported (after
    # this), which would undo the line above (torchao, if installed, makes both talk at import).
    for library in ("DIFFUSERS_VERBOSITY", "TRANSFORMERS_VERBOSITY"):
        os.environ.setdefault(library, "warning" if verbose else "error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    if not verbose:  # the libraries' advice to their own callers (torch.meshgrid's indexing, ...): not the user's
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
