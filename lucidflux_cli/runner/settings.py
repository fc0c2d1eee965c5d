"""The settings every command shares, and how a setting becomes a command-line option.

Each command's settings dataclass (``RestoreRequest``, ``EvalRequest``, ...) lives in its own
package and inherits the families here (:class:`LogSettings`, :class:`RunSettings`,
:class:`DeviceSettings`, :class:`ModelSettings`); every field carries an :class:`OptionSpec`
from which ``commands/options.py`` builds the Click option. Light (no torch): ``--help`` imports it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
    "text_encoders": "for --prompt: a FLUX.1-dev folder with text_encoder/, tokenizer/, text_encoder_2/, "
    "tokenizer_2/",
}


@dataclass
class LogSettings:
    """How a command on the engine reports: ``--json`` events, the report, the log, progress."""

    json_events: bool = setting(
        False,
        flags=("--json",),
        flag=True,
        help="Print one JSON event per file (per step for train) and a summary on stdout.",
    )
    report: Path | None = setting(None, path="file", help="Write a JSON run report here.")
    report_every: float = setting(
        30.0,
        help="Seconds between rewrites of the --report file during a run (0: after every file), so a "
        "killed run still leaves a report of what it finished.",
    )
    log_file: Path | None = setting(None, path="file", help="Also append the log to this file.")
    quiet: bool = setting(False, flags=("-q", "--quiet"), flag=True, help="Only errors; no progress bars.")
    verbose: bool = setting(
        False,
        flags=("-v", "--verbose"),
        flag=True,
        help="Debug logging, and the traceback of a failure caused by a bug.",
    )
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
    overwrite: bool = setting(
        False, flag=True, help="Redo outputs that already exist (default: skip them, so reruns resume)."
    )
    no_recursive: bool = setting(False, flag=True, help="Do not descend into sub-folders.")
    include: tuple[str, ...] = setting(
        (), multiple=True, help="Only files matching this pattern (repeatable), e.g. '*.tif'."
    )
    exclude: tuple[str, ...] = setting(
        (), multiple=True, help="Skip files or folders matching this pattern (repeatable)."
    )
    null_separated: bool = setting(
        False, flags=("-0", "--null"), flag=True, help="Paths read from stdin ('-') are NUL-separated."
    )
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
    cache_dir: Path | None = setting(
        None,
        path="dir",
        envvar="LUCIDFLUX_CACHE",
        help="Weights cache (default: the Hugging Face cache). Env: LUCIDFLUX_CACHE.",
    )


@dataclass
class ModelSettings(DeviceSettings, RunSettings):
    """A file-by-file command that loads models (restore, eval, data filter)."""


def options(cls: type) -> Iterator[tuple[dataclasses.Field, OptionSpec]]:
    """The fields of the settings dataclass ``cls`` that are command-line options or arguments:
    the class's own first, then those it inherits, each in declared order."""
    owners = [klass for klass in cls.__mro__ if dataclasses.is_dataclass(klass)]

    def depth(item: dataclasses.Field) -> int:  # the class that declares the field: 0 = cls itself
        return max(
            index
            for index, klass in enumerate(owners)
            if item.name in {f.name for f in dataclasses.fields(klass)}
        )

    for item in sorted(dataclasses.fields(cls), key=depth):
        spec = item.metadata.get("option")
        if spec is not None:
            yield item, spec


def default_of(item: dataclasses.Field) -> Any:
    return item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
