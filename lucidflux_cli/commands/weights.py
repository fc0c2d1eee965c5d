"""``lucidflux weights list|download|verify|path``: inspect and fill the weights cache.

Exit codes as ``restore``: 0 ok, 1 verification failed, 2 usage, 3 setup (missing/unavailable).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from lucidflux_cli import weights
from lucidflux_cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_SETUP


def _cache_option(function):
    return click.option(
        "--cache-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="LUCIDFLUX_CACHE",
        help="Weights cache (default: the Hugging Face cache).",
    )(function)


def _names(ctx, param, values: tuple[str, ...]) -> list[weights.WeightFile]:
    try:
        return weights.entries(values)
    except KeyError as error:
        raise click.BadParameter(error.args[0], ctx=ctx, param=param) from error


def _fail(message: str, code: int) -> None:
    click.echo(f"lucidflux: {message}", err=True)
    sys.exit(code)


@click.group("weights", context_settings={"help_option_names": ["-h", "--help"]})
def weights_group() -> None:
    """Inspect, download and verify the model weights."""


@weights_group.command("list")
@_cache_option
def list_command(cache_dir: Path | None) -> None:
    """Each registry entry: source, whether it is cached, where, how big."""
    root = weights.cache_root(cache_dir)
    click.echo(f"cache: {root}")
    rows = [("NAME", "SOURCE", "CACHED", "SIZE", "PATH")]
    for entry in weights.REGISTRY.values():
        path = weights.cached_path(entry, root)
        size = (
            weights.format_size(_disk_size(entry, path), approx=False)
            if path
            else weights.format_size(entry.size)
        )
        rows.append((entry.name, entry.source, "yes" if path else "no", size, str(path) if path else "-"))
    rows += _metric_rows(root)
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4])


def _metric_rows(root: Path) -> list[tuple[str, ...]]:
    """The quality metrics' files (lucidflux eval, restore --score), under ``<cache>/metrics``."""
    from lucidflux_cli.metrics import cache as metric_cache

    rows = []
    for row in metric_cache.status(cache_dir=root):
        if not row["files"]:
            continue  # a formula (psnr-y, ssim): nothing to download
        name = f"metric:{row['name']}" + (" (opt-in)" if row["opt_in"] else "")
        cached = "no" if row["missing"] else "yes"
        rows.append(
            (
                name,
                "pyiqa",
                cached,
                weights.format_size(row["size"]),
                str(metric_cache.metrics_dir(root)) if cached == "yes" else "-",
            )
        )
    return rows


def _disk_size(entry: weights.WeightFile, path: Path) -> int:
    # A folder entry's path is a repository snapshot that may hold other entries' files too
    # (text_encoders shares FLUX.1-dev's with flux and ae): count only the entry's own.
    files = [path] if entry.filename is not None else [path / name for name in entry.files]
    return sum(p.stat().st_size for p in files)


def _remover_weights(remover: str, options: tuple[str, ...]) -> list[weights.WeightFile]:
    """What a run with the chosen remover plugin needs (its declared weights included)."""
    from lucidflux_cli import plugins
    from lucidflux_cli.model import removers
    from lucidflux_cli.runner.settings import parse_key_values

    try:
        return removers.run_weights(removers.create(remover, parse_key_values(options)))
    except plugins.PluginError as error:
        raise click.UsageError(f"{error.kind} plugin {error.name!r} cannot be used: {error.cause}") from error
    except ValueError as error:  # a malformed --remover-option
        raise click.UsageError(f"--remover-option: {error}") from error


@weights_group.command("download")
@click.argument("names", nargs=-1)
@_cache_option
@click.option(
    "--remover", help="Instead of NAMES: what a restore with this remover plugin needs (its own weights too)."
)
@click.option(
    "--remover-option",
    "remover_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Options of --remover, as for restore.",
)
@click.option(
    "--metrics",
    metavar="LIST",
    help="Instead of NAMES: the weights of these quality metrics (`lucidflux eval`), e.g. niqe,musiq.",
)
@click.option(
    "--force", is_flag=True, help="Download again even if cached (e.g. after `weights verify` failed)."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars; only errors.")
@click.pass_context
def download_command(
    ctx: click.Context,
    names: tuple[str, ...],
    cache_dir: Path | None,
    remover: str | None,
    remover_options: tuple[str, ...],
    metrics: str | None,
    force: bool,
    quiet: bool,
) -> None:
    """Fetch NAMES (default: all) into the cache; honours HF_TOKEN / `hf auth login` and HF_HUB_OFFLINE."""
    if sum(bool(x) for x in (names, remover is not None, metrics)) > 1:
        raise click.UsageError("give weight NAMES, --remover or --metrics, not two of them")
    if metrics:
        _download_metrics(metrics, cache_dir, quiet)
        return
    entries = _remover_weights(remover, remover_options) if remover is not None else _names(ctx, None, names)
    _setup_logging(quiet)
    try:
        paths = weights.ensure(entries, cache_dir=cache_dir, quiet=quiet, force=force)
    except weights.WeightsUnavailable as error:
        _fail(str(error), EXIT_SETUP)
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume", EXIT_INTERRUPTED)
    for name, path in paths.items():
        click.echo(f"{name}\t{path}")


def _download_metrics(text: str, cache_dir: Path | None, quiet: bool) -> None:
    from lucidflux_cli.metrics import cache as metric_cache
    from lucidflux_cli.metrics import registry

    try:
        names = registry.parse_metrics(text)
    except ValueError as error:
        raise click.UsageError(f"--metrics: {error}") from error
    _setup_logging(quiet)
    try:
        paths = metric_cache.download(names, cache_dir=weights.cache_root(cache_dir), progress=not quiet)
    except metric_cache.MetricUnavailable as error:
        _fail(str(error), EXIT_SETUP)
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume", EXIT_INTERRUPTED)
    for path in paths:
        click.echo(str(path))


@weights_group.command("verify")
@click.argument("names", nargs=-1, callback=_names)
@_cache_option
def verify_command(names: list[weights.WeightFile], cache_dir: Path | None) -> None:
    """Rehash cached files against the registry checksum or the hub's own hash (never downloads)."""
    counts = {"ok": 0, "mismatch": 0, "missing": 0, "unverified": 0}
    for entry in names:
        for check in weights.verify(entry, cache_dir):
            counts[check.status] += 1
            line = f"{check.status:<10}  {check.name:<17}  {check.filename}"
            click.echo(line + (f"  ({check.detail})" if check.detail else ""))
    click.echo(", ".join(f"{n} {status}" for status, n in counts.items() if n))
    if counts["mismatch"]:
        sys.exit(EXIT_FAILED)
    if counts["missing"]:
        sys.exit(EXIT_SETUP)


@weights_group.command("path")
@click.argument("name")
@_cache_option
def path_command(name: str, cache_dir: Path | None) -> None:
    """Print the local path of NAME (exit 3 if it is not cached). Never downloads."""
    try:
        (entry,) = weights.entries([name])
    except KeyError as error:
        raise click.BadParameter(error.args[0], param_hint="NAME") from error
    path = weights.cached_path(entry, cache_dir)
    if path is None:
        _fail(
            f"{entry.name} ({entry.source}) is not in the cache {weights.cache_root(cache_dir)}; "
            f"run `lucidflux weights download {entry.name}`",
            EXIT_SETUP,
        )
    click.echo(str(path))


def _setup_logging(quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.INFO
    logging.basicConfig(level=level, format="lucidflux: %(message)s", stream=sys.stderr, force=True)
    # huggingface_hub warns about every retry and its HTTP client logs every request at INFO;
    # our own messages say what matters.
    for noisy in ("huggingface_hub", "httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
