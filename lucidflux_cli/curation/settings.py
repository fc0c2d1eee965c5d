"""Settings of ``lucidflux data degrade`` and ``data filter``: every option declared once, here.

Defaults come from the library's own config (:class:`~lucidflux_cli.data.curation.FilterConfig`,
the degradation presets), so the command line and the library cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lucidflux_cli.data.config import PRESETS
from lucidflux_cli.data.curation import FilterConfig
from lucidflux_cli.runner.settings import ModelSettings, RunSettings, setting

_DEFAULTS = FilterConfig()

SHARD_HELP = (
    "Do shard K of N (counting from 0) of the discovered files, e.g. 3/16, or auto (torchrun's "
    "RANK/WORLD_SIZE or a SLURM array); join the shards with `lucidflux data merge`."
)
WORKERS_HELP = "Worker processes (each one CPU core by default)."


def _metric_or_none(text: str) -> str:
    """A `lucidflux eval` metric name in any case (ValueError names the known ones), or none."""
    from lucidflux_cli.metrics import registry

    if text.strip().lower() in ("", "none"):
        return "none"
    names = registry.parse_metrics(text)
    if len(names) != 1:
        raise ValueError(f"--iqa-metric {text!r}: one metric (or none), not a list")
    return names[0]


def _background(text: str) -> str:
    """White, black or #rrggbb, normalised to #rrggbb (ValueError: a usage error)."""
    from lucidflux_cli.data.sources import parse_background

    red, green, blue = parse_background(text)
    return f"#{red:02x}{green:02x}{blue:02x}"


def _positive(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(f"expected a number >= 0, got {text}")
    return value


@dataclass
class DegradeRequest(RunSettings):
    """``lucidflux data degrade SRC... -o pairs/``."""

    out_dir: Path = setting(
        None,
        flags=("-o", "--output"),
        path="dir",
        required=True,
        help="Pairs folder: hq/, lq/, lq_up/ (mirroring the sources) and manifest.jsonl.",
    )
    passes: int = setting(
        4, minimum=1, maximum=1000, help="Pairs made from each photo (the paper: 4 passes)."
    )
    seed: int = setting(
        0,
        minimum=0,
        maximum=2**63 - 1,
        help="Every draw comes from (seed, file name, pass): same seed, same pairs anywhere.",
    )
    preset: str = setting("realesrgan", choices=tuple(PRESETS), help="Degradation parameter table.")
    workers: int = setting(1, minimum=1, help=WORKERS_HELP)
    threads: int = setting(
        1, minimum=1, help="Torch threads per worker (1 is fastest with one worker per core)."
    )
    device: str = setting("cpu", help="Where the torch ops run: cpu, cuda or cuda:N.")
    shard: str | None = setting(None, metavar="K/N|auto", help=SHARD_HELP)
    min_side: int = setting(
        _DEFAULTS.min_side,
        minimum=0,
        help="Refuse photos whose short side is under this (px; the filter's minimum): they "
        "would be mirror-padded into a pattern. 0 takes any size.",
    )
    background: str | None = setting(
        None,
        parse=_background,
        metavar="white|black|#rrggbb",
        help="Composite photos with transparent pixels over this colour (without it they are refused).",
    )
    format: str = setting(
        "folders",
        choices=("folders", "webdataset"),
        help="folders: hq/, lq/, lq_up/ PNGs; webdataset: tar shards of NAME.hq.png, "
        "NAME.lq.png, NAME.json (lq_up is derived when training).",
    )
    pairs_per_tar: int = setting(
        1000,
        minimum=1,
        help="--format webdataset: pairs per tar (whole photos: rounded down to a "
        "multiple of --passes, at least one photo).",
    )

    png_level: int = setting(
        1,
        minimum=0,
        maximum=9,
        help="zlib level of the PNGs written: 1 writes ~5x faster than 6 for ~15% larger files "
        "(the same pixels).",
    )

    def provenance(self) -> dict[str, str]:
        settings = {
            "preset": self.preset,
            "seed": str(self.seed),
            "passes": str(self.passes),
            "background": str(self.background),
            "format": self.format,
            "png_level": str(self.png_level),
        }
        if self.format == "webdataset":
            settings["pairs_per_tar"] = str(self.pairs_per_tar)
        return settings


@dataclass
class FilterRequest(ModelSettings):
    """``lucidflux data filter SRC... -o manifest.jsonl``."""

    out_dir: Path = setting(
        None,
        flags=("-o", "--output"),
        path="file",
        required=True,
        help="Manifest (JSON lines): every image's measurements, and why it was dropped.",
    )
    blur_min: float = setting(
        _DEFAULTS.blur_min,
        parse=_positive,
        help="Drop images whose variance of the Laplacian (8-bit gray) is below this.",
    )
    blur_max: float = setting(
        _DEFAULTS.blur_max, parse=_positive, help="... or above this (noise, over-sharpening)."
    )
    patch: int = setting(
        _DEFAULTS.patch, minimum=3, help="Flat-region rule: side of the square patches in px."
    )
    flat_gradient_var: float = setting(
        _DEFAULTS.flat_gradient_var,
        parse=_positive,
        help="A patch is flat when the variance of its Sobel gradient magnitude is below this.",
    )
    flat_max_fraction: float = setting(
        _DEFAULTS.flat_max_fraction,
        parse=_positive,
        help="Drop images with more than this fraction of flat patches.",
    )
    min_side: int = setting(
        _DEFAULTS.min_side, minimum=0, help="Drop images whose short side is under this (px)."
    )
    min_bytes: int = setting(_DEFAULTS.min_bytes, minimum=0, help="Drop files smaller than this (bytes).")
    near_duplicate_bits: int = setting(
        _DEFAULTS.near_duplicate_bits,
        minimum=0,
        maximum=15,
        help="Photos whose perceptual hashes differ in at most this many bits are one photo "
        "(the largest is kept).",
    )
    iqa_metric: str = setting(
        _DEFAULTS.quality_metric,
        parse=_metric_or_none,
        metavar="METRIC|none",
        help="Quality stage metric (a `lucidflux eval` metric), or none to skip the stage.",
    )
    batch_size: int = setting(
        8, minimum=1, help="Images per quality-metric call (same-size images share a call)."
    )
    threads: int = setting(
        0,
        minimum=0,
        help="Photos measured at once in this process (0: one per CPU core; with --workers, one per worker).",
    )
    top: float = setting(
        _DEFAULTS.quality_top,
        parse=_positive,
        help="Keep the images scoring at least the (1 - TOP) quantile of the whole set.",
    )
    min_score: float | None = setting(None, parse=float, help="A fixed quality cut instead of --top.")
    workers: int = setting(1, minimum=1, help=WORKERS_HELP)
    shard: str | None = setting(None, metavar="K/N|auto", help=SHARD_HELP)

    def config(self) -> FilterConfig:
        """The library's config (ValueError for impossible values)."""
        metric: str | None = _metric_or_none(self.iqa_metric or "none")  # also when built from Python
        metric = None if metric == "none" else metric
        higher_better = True
        if metric is not None:
            from lucidflux_cli.metrics import registry

            if not registry.no_reference([metric]):
                raise ValueError(
                    f"--iqa-metric {metric}: needs a reference; the filter takes a no-reference metric "
                    f"({', '.join(registry.no_reference(registry.METRICS))})"
                )
            higher_better = registry.get(metric).higher_better
        return FilterConfig(
            blur_min=self.blur_min,
            blur_max=self.blur_max,
            patch=self.patch,
            flat_gradient_var=self.flat_gradient_var,
            flat_max_fraction=self.flat_max_fraction,
            min_side=self.min_side,
            min_bytes=self.min_bytes,
            near_duplicate_bits=self.near_duplicate_bits,
            quality_metric=metric,
            quality_top=self.top,
            quality_min=self.min_score,
            higher_better=higher_better,
        )
