"""Everything a ``restore`` run is told: :class:`RestoreRequest`, every option declared once
(its default and help in its field's :class:`~lucidflux_cli.runner.settings.OptionSpec`).

The Click command builds its options from the fields, the TOML/env config reads those Click
options, and the pipeline's sampling settings come from :meth:`RestoreRequest.sampling`. This
module stays light (no torch): the CLI imports it to print ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lucidflux_cli.model import config as model_config
from lucidflux_cli.model.sizes import DEFAULT_MIN_SIDE, parse_size
from lucidflux_cli.runner.settings import WEIGHT_OPTIONS, ModelSettings, parse_key_values, setting

SAMPLING = model_config.SAMPLING


def parse_tile_size(text: str) -> int | str:
    """``auto`` (chosen per image and device) or a tile side in px."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected 'auto' or a number of px, got {text!r}") from None


def parse_score(text: str) -> str:
    """``--score``: ``default`` (the cheap set) or a list of no-reference metrics, normalised."""
    from lucidflux_cli.metrics import registry

    names = registry.DEFAULT_SCORE if text == "default" else registry.parse_metrics(text)
    needing = [name for name in names if registry.get(name).full_reference or registry.get(name).folder_level]
    if needing:
        raise ValueError(f"{', '.join(needing)} need(s) a reference; --score takes no-reference metrics")
    return ",".join(names)


@dataclass
class RestoreRequest(ModelSettings):
    """Everything a ``restore`` run is told; field order is the order of ``--help`` (then the
    inherited run and model options)."""

    out_dir: Path = setting(
        None,
        flags=("-o", "--output"),
        path="dir",
        required=True,
        help="Output folder; the input tree is mirrored under it.",
    )
    size: tuple[int, int] | None = setting(
        None,
        parse=parse_size,
        help="Exact output size WxH (one side 0 keeps the aspect ratio). Default: input size.",
    )
    scale: float = setting(1.0, help="Output size = SCALE x input size (aspect kept); not with --size.")
    min_side: int = setting(
        DEFAULT_MIN_SIDE,
        minimum=0,
        help="Restore at a short side of at least this many px, then resize to the output size (0: off).",
    )
    tile_size: int | str = setting(
        "auto",
        parse=parse_tile_size,
        metavar="auto|PX",
        help="Above this processing size (px, multiple of 16) the image is restored in overlapping tiles. "
        "auto: per image 1024 or 1536, whichever is less work; 1536 only where the GPU holds it (CPU: 1024).",
    )
    tile_overlap: int | None = setting(
        None,
        help="Minimum overlap of neighbouring tiles in px (multiple of 16, at most half a tile). "
        "Default: a quarter of the tile size.",
    )
    tile_batch: int = setting(model_config.TILE_BATCH, help="Tiles per model call.")
    batch_size: int = setting(
        1,
        minimum=1,
        help="Consecutive images of one processing size restored together in one model call "
        "(single-process runs; not with --devices or torchrun).",
    )
    steps: int = setting(SAMPLING.steps, minimum=1, maximum=1000, help="Denoising steps.")
    guidance: float = setting(SAMPLING.guidance, help="FLUX guidance embedding value.")
    seed: int = setting(SAMPLING.seed, minimum=0, maximum=2**63 - 1, help="Noise seed.")
    devices: str | None = setting(
        None,
        metavar="LIST",
        help="Data parallel: one worker (one model copy) per device, e.g. cuda:0,cuda:1, all, or cpu,cpu. "
        "See docs/cluster.md (also for torchrun).",
    )
    shard_model: bool = setting(
        False,
        flag=True,
        help="Spread one copy of the model over the --devices GPUs (GPUs too small for the 12B backbone).",
    )
    dtype: str = setting(
        "auto", choices=("auto", "bf16", "fp16", "fp32"), help="auto: bf16 on CUDA, fp32 on CPU."
    )
    compile: str = setting(
        "auto",
        choices=model_config.COMPILE_MODES,
        help="torch.compile the transformer blocks (cached under the cache folder); auto: on for CUDA.",
    )
    precision: str = setting(
        "bf16",
        choices=model_config.PRECISIONS,
        help="fp8: float8 backbone matmuls via torchao (Ada/Hopper GPUs; pip install 'lucidflux-cli[fp8]').",
    )
    offload: str = setting(
        "none",
        choices=model_config.OFFLOAD_MODES,
        help="Keep models on the host: model = each moved to the GPU for its stage; sequential = per layer.",
    )
    fmt: str = setting(
        "same",
        flags=("--format",),
        help="same (the input's format where writable, else png), png, jpeg, webp, tiff, heif, "
        "or an installed format plugin (`lucidflux plugins list`).",
    )
    format_options: dict[str, str] = setting(
        factory=dict,
        flags=("--format-option",),
        multiple=True,
        parse=parse_key_values,
        metavar="KEY=VALUE",
        help="Option for the --format plugin (repeatable), e.g. bits=16 for png/tiff.",
    )
    remover: str = setting(
        model_config.DEFAULT_REMOVER,
        help="Degradation remover run before LucidFlux: swinir (the paper's), none, or an installed plugin.",
    )
    remover_options: dict[str, str] = setting(
        factory=dict,
        flags=("--remover-option",),
        multiple=True,
        parse=parse_key_values,
        metavar="KEY=VALUE",
        help="Option for the --remover plugin (repeatable), e.g. model=PATH.",
    )
    quality: int | None = setting(None, minimum=1, maximum=100, help="JPEG/WebP/HEIF quality (default 95).")
    suffix: str = setting("", help="Appended to output file names (photo.jpg -> photo<SUFFIX>.jpg).")
    color_fix: str = setting(
        SAMPLING.color_fix,
        choices=model_config.COLOR_FIXES,
        help="Wavelet colour fix against the cleaned image (as the reference), or none.",
    )
    prompt: str | None = setting(
        None, help="Encode this prompt with FLUX.1-dev's T5/CLIP instead of the shipped embedding."
    )
    keep_color: bool = setting(
        False,
        flag=True,
        help="Write a grayscale photo in the model's colour (default: gray in, gray out, "
        "from the restored luminance at the input's bit depth).",
    )
    score: str | None = setting(
        None,
        bare="default",
        parse=parse_score,
        metavar="METRICS",
        help="Score each input and output with these no-reference metrics (`lucidflux eval`'s; alone: "
        "niqe,musiq); the scores go into --json events and the report, whose got_worse list names "
        "the files whose score dropped. Needs the eval extra.",
    )
    review: bool = setting(
        False,
        flag=True,
        help="Write OUTPUT/review/index.html, a static page to look at the run (before/after, failures and "
        "drops in --score first), rewritten with the report (kept in OUTPUT/review/report.json "
        "without --report). See docs/review.md.",
    )
    frames: str = setting(
        "all",
        choices=("all", "first"),
        help="all: every page of a multi-page TIFF, animations (GIF, APNG, WebP) refused; "
        "first: only the first page or frame, said in one line.",
    )
    keep_mode: str = setting(
        "convert",
        choices=("convert", "strict"),
        help="A source mode, depth or range the output cannot keep (CMYK to PNG, 32-bit integers to 16 "
        "bits, palette to RGB): convert writes it changed and names the change in the log, --json and "
        "the report; strict refuses the file in one line (the batch goes on, exit code 1). "
        "A --dry-run decodes nothing, so it does not foresee these refusals. See docs/archive-workflow.md.",
    )
    # Not an option: paths given with --flux, --ae, ... (WEIGHT_OPTIONS).
    weights: dict[str, Path | None] = field(default_factory=dict)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> RestoreRequest:
        """Build from parsed option values (by field name); weight paths by WEIGHT_OPTIONS name."""
        weights = {name: values.pop(name, None) for name in WEIGHT_OPTIONS}
        values = {
            key: (tuple(value) if key in ("include", "exclude") else value) for key, value in values.items()
        }
        return cls(weights=weights, **{**values, "inputs": list(values.get("inputs", ()))})

    def sampling(self, size: tuple[int, int] | None = None):
        """The pipeline's settings for an image of processing ``size`` (tiles depend on it)."""
        from lucidflux_cli.model.pipeline import RestoreSettings

        return RestoreSettings(
            steps=self.steps,
            guidance=self.guidance,
            seed=self.seed,
            color_fix=self.color_fix,
            tiles=self.tiles(size),
        )

    def tiles(self, size: tuple[int, int] | None = None):
        """Tiles for an image of processing ``size``: with ``--tile-size auto`` the cheapest the
        device holds (tiling.cheapest_tiles); without a size, the largest allowed."""
        from lucidflux_cli.model import tiling

        largest = self.largest_tile()
        if self.tile_size != "auto" or size is None:
            return tiling.TileOptions(size=largest, overlap=self.tile_overlap, batch=self.tile_batch)
        return tiling.auto_tiles(*size, largest, self.tile_overlap, self.tile_batch)

    def largest_tile(self) -> int:
        """``--tile-size``, or for ``auto`` the largest tile the device's memory holds in one piece."""
        from lucidflux_cli.model import tiling

        if self.tile_size != "auto":
            return int(self.tile_size)
        if self.shard_model:  # each GPU holds a part of the model: keep FLUX's native tile
            return tiling.AUTO_TILE_SIDES[-1]
        from lucidflux_cli.devices import device_memory_gib

        return tiling.auto_tile_size(device_memory_gib(self.device), self.precision, self.offload)

    def provenance(self) -> dict[str, str]:
        """What the output's metadata and the report record about how it was made."""
        return {
            "Model": "LucidFlux (FLUX.1-dev)",
            "Steps": str(self.steps),
            "Guidance": str(self.guidance),
            "Seed": str(self.seed),
            "ColorFix": self.color_fix,
            "Remover": self.remover,
            "Prompt": self.prompt or "(LucidFlux default embedding)",
        }
