"""The one settings type of a restore run: every option, its default and its help, declared once.

:class:`RestoreRequest` is the source of truth. The Click command (``commands/restore.py``)
builds its options from the fields' :class:`OptionSpec`, the TOML/env config reads those Click
options, and the pipeline's sampling settings come from :meth:`RestoreRequest.sampling`.
This module stays light (no torch): the CLI imports it to print ``--help``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lucidflux_cli.model import config as model_config
from lucidflux_cli.model.sizes import DEFAULT_MIN_SIDE, parse_size

SAMPLING = model_config.SAMPLING


@dataclass(frozen=True)
class OptionSpec:
    """How a setting appears on the command line (and so in config files and ``LUCIDFLUX_*``)."""

    help: str = ""
    flags: tuple[str, ...] = ()  # default: ("--" + the field name with dashes,)
    choices: tuple[str, ...] | None = None
    minimum: int | None = None  # integer range, inclusive
    maximum: int | None = None
    flag: bool = False  # a switch without a value
    multiple: bool = False  # repeatable
    path: str | None = None  # "file", "dir" or "any": a filesystem path
    parse: Callable[[str], Any] | None = None  # text -> value; ValueError with a one-line reason
    metavar: str | None = None
    envvar: str | None = None  # default: LUCIDFLUX_<FIRST LONG NAME>
    required: bool = False
    argument: bool = False  # a positional argument (nargs=-1)
    bare: Any = None  # the value of the option given without one (``--score`` alone), if it may be

    def long_names(self, name: str) -> tuple[str, ...]:
        return self.flags or ("--" + name.replace("_", "-"),)


def setting(default: Any = None, *, factory: Callable[[], Any] | None = None, **spec: Any) -> Any:
    """A dataclass field carrying its :class:`OptionSpec`."""
    metadata = {"option": OptionSpec(**spec)}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


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


def parse_key_values(values: Iterable[str]) -> dict[str, str]:
    """Repeated ``KEY=VALUE`` -> dict (ValueError for an item without ``=``)."""
    pairs: dict[str, str] = {}
    for item in values or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


# Weight files a user may point at instead of the cached downloads (``--flux PATH`` ...); each also
# has a ``[weights]`` key in config files and a LUCIDFLUX_<NAME> variable.
WEIGHT_OPTIONS = {
    "flux": "FLUX.1-dev transformer: flux1-dev.safetensors (bf16 or fp8) or a diffusers FLUX.1-dev folder",
    "ae": "FLUX autoencoder: ae.safetensors or a diffusers vae/ folder",
    "lucidflux": "lucidflux.pth (condition branches, modulations, connector)",
    "swinir": "DiffBIR SwinIR checkpoint (general_swinir_v1.ckpt)",
    "siglip": "SigLIP folder (google/siglip2-so400m-patch16-512)",
    "prompt_embeddings": "prompt_embeddings.pt (precomputed T5/CLIP prompt)",
    "text_encoders": "for --prompt: a FLUX.1-dev folder with text_encoder/, tokenizer/, text_encoder_2/, tokenizer_2/",
}


@dataclass
class LogSettings:
    """How a command on the engine reports: ``--json`` events, the report, the log, progress."""

    json_events: bool = setting(False, flags=("--json",), flag=True,
                                help="Print one JSON event per file (per step for train) and a summary on stdout.")
    report: Path | None = setting(None, path="file", help="Write a JSON run report here.")
    report_every: float = setting(
        30.0, help="Seconds between rewrites of the --report file during a run (0: after every file), so a "
                   "killed run still leaves a report of what it finished.")
    log_file: Path | None = setting(None, path="file", help="Also append the log to this file.")
    quiet: bool = setting(False, flags=("-q", "--quiet"), flag=True, help="Only errors; no progress bars.")
    verbose: bool = setting(False, flags=("-v", "--verbose"), flag=True,
                            help="Debug logging, and the traceback of a failure caused by a bug.")
    progress: bool = True  # not an option: whether to draw progress bars (off in workers)

    def provenance(self) -> dict[str, str]:
        """What outputs and the report record about how they were made."""
        return {}


@dataclass
class RunSettings(LogSettings):
    """The options every command that works file by file has (inputs, resume, discovery).

    A command's settings dataclass inherits these and adds its own; ``--help`` lists its own
    first. ``out_dir`` is each command's own (a folder for restore, a manifest for filter).
    """

    inputs: list[str] = setting(factory=list, argument=True, required=True)
    overwrite: bool = setting(False, flag=True, help="Redo outputs that already exist (default: skip them, so reruns resume).")
    no_recursive: bool = setting(False, flag=True, help="Do not descend into sub-folders.")
    include: tuple[str, ...] = setting((), multiple=True, help="Only files matching this pattern (repeatable), e.g. '*.tif'.")
    exclude: tuple[str, ...] = setting((), multiple=True, help="Skip files or folders matching this pattern (repeatable).")
    null_separated: bool = setting(False, flags=("-0", "--null"), flag=True,
                                   help="Paths read from stdin ('-') are NUL-separated.")
    dry_run: bool = setting(False, flag=True, help="List what would be done or skipped; load no model.")
    fail_fast: bool = setting(False, flag=True, help="Stop at the first file that fails.")

    @property
    def recursive(self) -> bool:
        return not self.no_recursive


@dataclass
class DeviceSettings:
    """Options of the commands that load models: device and the weights cache."""

    device: str = setting("auto", help="auto, cpu, cuda or cuda:N.")
    offline: bool = setting(False, flag=True, help="Use only cached weights; never download.")
    cache_dir: Path | None = setting(None, path="dir", envvar="LUCIDFLUX_CACHE",
                                     help="Weights cache (default: the Hugging Face cache). Env: LUCIDFLUX_CACHE.")


@dataclass
class ModelSettings(DeviceSettings, RunSettings):
    """A file-by-file command that loads models (restore, eval, data filter)."""


@dataclass
class RestoreRequest(ModelSettings):
    """Everything a ``restore`` run is told; field order is the order of ``--help`` (then the
    inherited run and model options)."""

    out_dir: Path = setting(None, flags=("-o", "--output"), path="dir", required=True,
                            help="Output folder; the input tree is mirrored under it.")
    size: tuple[int, int] | None = setting(
        None, parse=parse_size, help="Exact output size WxH (one side 0 keeps the aspect ratio). Default: input size.")
    scale: float = setting(1.0, help="Output size = SCALE x input size (aspect kept); not with --size.")
    min_side: int = setting(
        DEFAULT_MIN_SIDE, minimum=0,
        help="Restore at a short side of at least this many px, then resize to the output size (0: off).")
    tile_size: int | str = setting(
        "auto", parse=parse_tile_size, metavar="auto|PX",
        help="Above this processing size (px, multiple of 16) the image is restored in overlapping tiles. "
             "auto: per image 1024 or 1536, whichever is less work; 1536 only where the GPU holds it (CPU: 1024).")
    tile_overlap: int | None = setting(
        None, help="Minimum overlap of neighbouring tiles in px (multiple of 16, at most half a tile). "
                   "Default: a quarter of the tile size.")
    tile_batch: int = setting(model_config.TILE_BATCH, help="Tiles per model call.")
    batch_size: int = setting(
        1, minimum=1, help="Consecutive images of one processing size restored together in one model call "
                           "(single-process runs; not with --devices or torchrun).")
    steps: int = setting(SAMPLING.steps, minimum=1, maximum=1000, help="Denoising steps.")
    guidance: float = setting(SAMPLING.guidance, help="FLUX guidance embedding value.")
    seed: int = setting(SAMPLING.seed, minimum=0, maximum=2**63 - 1, help="Noise seed.")
    devices: str | None = setting(
        None, metavar="LIST",
        help="Data parallel: one worker (one model copy) per device, e.g. cuda:0,cuda:1, all, or cpu,cpu. "
             "See docs/cluster.md (also for torchrun).")
    shard_model: bool = setting(
        False, flag=True, help="Spread one copy of the model over the --devices GPUs (GPUs too small for the 12B backbone).")
    dtype: str = setting("auto", choices=("auto", "bf16", "fp16", "fp32"), help="auto: bf16 on CUDA, fp32 on CPU.")
    compile: str = setting(
        "auto", choices=model_config.COMPILE_MODES,
        help="torch.compile the transformer blocks (cached under the cache folder); auto: on for CUDA.")
    precision: str = setting(
        "bf16", choices=model_config.PRECISIONS,
        help="fp8: float8 backbone matmuls via torchao (Ada/Hopper GPUs; pip install 'lucidflux-cli[fp8]').")
    offload: str = setting(
        "none", choices=model_config.OFFLOAD_MODES,
        help="Keep models on the host: model = each moved to the GPU for its stage; sequential = per layer.")
    fmt: str = setting(
        "same", flags=("--format",),
        help="same (the input's format where writable, else png), png, jpeg, webp, tiff, heif, "
             "or an installed format plugin (`lucidflux plugins list`).")
    format_options: dict[str, str] = setting(
        factory=dict, flags=("--format-option",), multiple=True, parse=parse_key_values, metavar="KEY=VALUE",
        help="Option for the --format plugin (repeatable), e.g. bits=16 for png/tiff.")
    remover: str = setting(
        model_config.DEFAULT_REMOVER,
        help="Degradation remover run before LucidFlux: swinir (the paper's), none, or an installed plugin.")
    remover_options: dict[str, str] = setting(
        factory=dict, flags=("--remover-option",), multiple=True, parse=parse_key_values, metavar="KEY=VALUE",
        help="Option for the --remover plugin (repeatable), e.g. model=PATH.")
    quality: int | None = setting(None, minimum=1, maximum=100, help="JPEG/WebP/HEIF quality (default 95).")
    suffix: str = setting("", help="Appended to output file names (photo.jpg -> photo<SUFFIX>.jpg).")
    color_fix: str = setting(SAMPLING.color_fix, choices=model_config.COLOR_FIXES,
                             help="Wavelet colour fix against the cleaned image (as the reference), or none.")
    prompt: str | None = setting(None, help="Encode this prompt with FLUX.1-dev's T5/CLIP instead of the shipped embedding.")
    keep_color: bool = setting(
        False, flag=True, help="Write a grayscale photo in the model's colour (default: gray in, gray out, "
                               "from the restored luminance at the input's bit depth).")
    score: str | None = setting(
        None, bare="default", parse=parse_score, metavar="METRICS",
        help="Score each input and output with these no-reference metrics (`lucidflux eval`'s; alone: "
             "niqe,musiq); the scores go into --json events and the report, whose got_worse list names "
             "the files whose score dropped. Needs the eval extra.")
    review: bool = setting(
        False, flag=True,
        help="Write OUTPUT/review/index.html, a static page to look at the run (before/after, failures and "
             "drops in --score first), rewritten with the report (kept in OUTPUT/review/report.json "
             "without --report). See docs/review.md.")
    frames: str = setting(
        "all", choices=("all", "first"),
        help="all: every page of a multi-page TIFF, animations (GIF, APNG, WebP) refused; "
             "first: only the first page or frame, said in one line.")
    # Not an option: paths given with --flux, --ae, ... (WEIGHT_OPTIONS).
    weights: dict[str, Path | None] = field(default_factory=dict)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> RestoreRequest:
        """Build from parsed option values (by field name); weight paths by WEIGHT_OPTIONS name."""
        weights = {name: values.pop(name, None) for name in WEIGHT_OPTIONS}
        values = {key: (tuple(value) if key in ("include", "exclude") else value) for key, value in values.items()}
        return cls(weights=weights, **{**values, "inputs": list(values.get("inputs", ()))})

    def sampling(self, size: tuple[int, int] | None = None):
        """The pipeline's settings for an image of processing ``size`` (tiles depend on it)."""
        from lucidflux_cli.model.pipeline import RestoreSettings

        return RestoreSettings(steps=self.steps, guidance=self.guidance, seed=self.seed, color_fix=self.color_fix,
                               tiles=self.tiles(size))

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


def options(cls: type = None) -> Iterator[tuple[dataclasses.Field, OptionSpec]]:
    """The fields of a settings dataclass (default :class:`RestoreRequest`) that are command-line
    options or arguments: the class's own first, then those it inherits, each in declared order."""
    cls = cls or RestoreRequest
    owners = [klass for klass in cls.__mro__ if dataclasses.is_dataclass(klass)]

    def depth(item: dataclasses.Field) -> int:  # the class that declares the field: 0 = cls itself
        return max(index for index, klass in enumerate(owners) if item.name in {f.name for f in dataclasses.fields(klass)})

    for item in sorted(dataclasses.fields(cls), key=depth):
        spec = item.metadata.get("option")
        if spec is not None:
            yield item, spec


def default_of(item: dataclasses.Field) -> Any:
    return item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default


def parse_devices(spec: str, cuda_count: int | None = None) -> list[str]:
    """``all`` | ``cuda:0,cuda:1`` | ``cpu,cpu`` -> canonical device names (repeats allowed).

    Raises ValueError with a one-line message. ``cuda_count`` defaults to the visible GPUs.
    """
    import torch

    count = torch.cuda.device_count() if cuda_count is None else cuda_count
    text = spec.strip()
    if text == "all":
        if count == 0:
            raise ValueError("--devices all: no CUDA device is visible; list devices instead, e.g. --devices cpu,cpu")
        return [f"cuda:{index}" for index in range(count)]
    names = [part.strip() for part in text.split(",")]
    if not text or not all(names):
        raise ValueError(f"--devices {spec!r}: expected 'all' or a comma-separated list such as cuda:0,cuda:1 or cpu,cpu")
    return [_device_name(name, count) for name in names]


def _device_name(name: str, cuda_count: int) -> str:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--devices: {name!r} is not a device (use cpu or cuda:N)") from None
    if device.type == "cpu":
        return "cpu"
    if device.type != "cuda":
        raise ValueError(f"--devices: {name!r}: only cpu and cuda:N are supported")
    if device.index is None:
        raise ValueError(f"--devices: {name!r}: name the GPU (cuda:0) or use --devices all")
    if device.index >= cuda_count:
        raise ValueError(f"--devices: {name} does not exist ({cuda_count} CUDA device(s) visible)")
    return f"cuda:{device.index}"


@functools.cache
def device_memory_gib(name: str) -> float | None:
    """Total memory of the CUDA device ``name`` (``auto``: the first GPU) in GiB; None for a CPU."""
    import torch

    from lucidflux_cli.model.devices import resolve_device

    try:
        device = resolve_device(name)
    except (ValueError, RuntimeError):
        return None  # validation reports a bad --device
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(device).total_memory / 2**30
