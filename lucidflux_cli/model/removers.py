"""Degradation removers: the pre-cleaner whose output conditions LucidFlux. Contract and built-ins.

A remover plugin is a subclass of :class:`Remover` registered under the ``lucidflux.removers``
entry-point group. The tool, per run:

1. ``Remover(options)`` with the ``--remover-option key=value`` pairs (strings). Validate them
   here, cheaply: a ``ValueError`` becomes a usage error (exit 2) before any model loads.
2. ``weights()``: the files it needs, as names of :data:`lucidflux_cli.weights.REGISTRY` entries
   or :class:`~lucidflux_cli.weights.WeightFile` specs of its own. They are fetched (or refused
   with ``--offline``) together with the other weights, before anything is loaded.
3. ``load(weights, device)`` -> :class:`RemoverModel`: ``run`` takes a float32 RGB batch
   ``(B, 3, H, W)`` in [0, 1] on ``device`` and returns the same shape, in [0, 1].

Built-ins: ``swinir`` (DiffBIR's SwinIR, as in the LucidFlux paper; the default) and ``none``.
"""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from lucidflux_cli import plugins
from lucidflux_cli.errors import LucidFluxError, one_line
from lucidflux_cli.model.config import DEFAULT_REMOVER

if TYPE_CHECKING:
    import torch

    from lucidflux_cli.weights import WeightFile, WeightPaths

log = logging.getLogger("lucidflux")

DEFAULT = DEFAULT_REMOVER
# Weights LucidFlux needs whatever the remover; a remover adds its own (swinir: "swinir").
CORE_WEIGHTS = ("flux", "ae", "lucidflux", "siglip", "prompt_embeddings")


@dataclass(frozen=True)
class RemoverModel:
    """A loaded remover, as the pipeline uses it.

    ``run``: (B, 3, H, W) float32 in [0, 1] on the device -> the same shape, in [0, 1].
    ``multiple_of``: the pipeline reflect-pads inputs so both sides are multiples of this.
    ``tileable``: whether the image may be cleaned in overlapping windows (large images);
    False asks for one call on the whole image.
    """

    run: Callable[[torch.Tensor], torch.Tensor]
    multiple_of: int = 1
    tileable: bool = True
    name: str = ""  # the plugin's name, filled in by the tool

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        try:
            out = self.run(x)
        except (torch.cuda.OutOfMemoryError, MemoryError):
            raise  # the pipeline retries smaller tiles on out-of-memory
        except Exception as error:
            raise RemoverFailed(f"remover {self.name!r} failed: {one_line(error)}") from error
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise RemoverFailed(f"remover {self.name!r} returned {got} for an input of {tuple(x.shape)}")
        return out


class RemoverFailed(RuntimeError):
    """A remover raised or broke its contract while processing an image (that file fails)."""


class Remover(plugins.Configurable, ABC):
    """Base class of every degradation remover plugin (see the module docstring)."""

    plugin_group: ClassVar[str] = plugins.REMOVERS

    def weights(self) -> Sequence[str | WeightFile]:
        """Weight files to fetch: REGISTRY names (``"swinir"``) or WeightFile specs of its own."""
        return ()

    @abstractmethod
    def load(self, weights: Mapping[str, Path], device: torch.device) -> RemoverModel:
        """Build the model on ``device`` from the local paths of :meth:`weights` (keyed by name)."""


# ------------------------------------------------------------------------------------- built-ins


class SwinIR(Remover):
    """DiffBIR's SwinIR, the remover LucidFlux was trained and evaluated with."""

    summary = "DiffBIR's SwinIR (general_swinir_v1.ckpt), as in the LucidFlux paper (default)"

    def weights(self) -> Sequence[str | WeightFile]:
        return ("swinir",)

    def load(self, weights: Mapping[str, Path], device: torch.device) -> RemoverModel:
        from lucidflux_cli.model.loading import models

        descriptor = models.load_swinir(weights["swinir"]).to(device)  # float32, as the reference
        return RemoverModel(
            run=descriptor, multiple_of=descriptor.size_requirements.multiple_of, tileable=True
        )


class Identity(Remover):
    """No pre-cleaning. Outside the paper's setup: LucidFlux was trained on SwinIR outputs."""

    summary = "no pre-cleaning: LucidFlux is conditioned on the degraded image itself (not the paper's setup)"

    def load(self, weights: Mapping[str, Path], device: torch.device) -> RemoverModel:
        return RemoverModel(run=_identity)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


# ------------------------------------------------------------------------------------- selection


def create(name: str = DEFAULT, options: Mapping[str, str] | None = None) -> Remover:
    """The configured remover ``name``; PluginError (a usage error) naming it and the cause."""
    cls = plugins.registry(plugins.REMOVERS).load(name)
    try:
        remover = cls(dict(options or {}))
    except Exception as error:  # options refused, or a broken constructor: both stop before any work
        raise plugins.PluginError("remover", name, _option_cause(error)) from error
    remover.name = name.strip().lower()
    return remover


def weight_needs(remover: Remover) -> tuple[list[str], list[WeightFile]]:
    """(REGISTRY names, WeightFile specs of its own) that ``remover`` declares; checked."""
    from lucidflux_cli.weights import REGISTRY, WeightFile

    try:
        declared = list(remover.weights())
    except Exception as error:
        raise plugins.PluginError("remover", remover.name, f"weights() failed ({one_line(error)})") from error
    names = [w for w in declared if isinstance(w, str)]
    own = [w for w in declared if isinstance(w, WeightFile)]
    wrong = [w for w in declared if not isinstance(w, (str, WeightFile))]
    unknown = [n for n in names if n not in REGISTRY]
    clashing = [w.name for w in own if w.name in REGISTRY]
    if wrong or unknown or clashing:
        cause = (
            f"weights() must list REGISTRY names or WeightFile specs with new names; got "
            f"{', '.join(map(repr, wrong + unknown + clashing))}"
        )
        raise plugins.PluginError("remover", remover.name, cause)
    return names, own


def run_weights(remover: Remover) -> list[WeightFile]:
    """Every weight file a run with ``remover`` needs, as entries to fetch (``weights download``)."""
    from lucidflux_cli.weights import REGISTRY

    names, own = weight_needs(remover)
    return [REGISTRY[n] for n in dict.fromkeys([*CORE_WEIGHTS, *names])] + own


def resolve_weights(
    remover: Remover,
    overrides: Mapping[str, Path | None],
    *,
    cache_dir: Path | None = None,
    offline: bool = False,
    quiet: bool | None = None,
) -> tuple[WeightPaths, dict[str, Path]]:
    """Local paths of what a run needs: (LucidFlux's WeightPaths, the remover's weights by name).

    Like :func:`lucidflux_cli.weights.resolve_weights`, but only the chosen remover's files are
    fetched (``--remover none`` needs no SwinIR, even offline). Overrides (``--swinir PATH``)
    win; unneeded WeightPaths fields are None.
    """
    from dataclasses import fields

    from lucidflux_cli.weights import REGISTRY, WeightPaths, ensure

    names, own = weight_needs(remover)
    wanted = list(dict.fromkeys([*CORE_WEIGHTS, *names]))
    resolved = {n: Path(p) for n, p in overrides.items() if p is not None and n in wanted}
    missing = [REGISTRY[n] for n in wanted if n not in resolved] + own
    resolved.update(ensure(missing, cache_dir=cache_dir, offline=offline, quiet=quiet))
    paths = WeightPaths(**{f.name: resolved.get(f.name) for f in fields(WeightPaths)})
    return paths, {n: resolved[n] for n in [*names, *(w.name for w in own)]}


def load(remover: Remover, weights: Mapping[str, Path], device: torch.device) -> RemoverModel:
    """``remover.load`` with its result checked; any failure is a LucidFluxError naming the remover."""
    try:
        model = remover.load(weights, device)
    except LucidFluxError as error:  # already one line with its cause (a bad checkpoint, ...)
        raise plugins.PluginError("remover", remover.name, str(error)) from error
    except Exception as error:
        raise plugins.PluginError("remover", remover.name, f"loading failed ({one_line(error)})") from error
    if not isinstance(model, RemoverModel) or not callable(model.run):
        cause = f"load() returned {type(model).__name__}, expected lucidflux_cli.model.removers.RemoverModel"
        raise plugins.PluginError("remover", remover.name, cause)
    if not isinstance(model.multiple_of, int) or model.multiple_of < 1:
        raise plugins.PluginError(
            "remover", remover.name, f"multiple_of must be an int >= 1, got {model.multiple_of!r}"
        )
    log.info("degradation remover: %s", remover.name)
    return dataclasses.replace(model, name=remover.name)


def _option_cause(error: Exception) -> str:
    if isinstance(error, ValueError):
        return str(error) or "invalid options"
    return f"cannot be configured ({one_line(error)})"
