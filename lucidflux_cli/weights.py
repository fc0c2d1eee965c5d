"""The one registry of default weight files, and resolving them to local paths.

Local overrides win; otherwise files come from the Hugging Face cache, downloaded on first
use unless offline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lucidflux_cli.components import WeightPaths
from lucidflux_cli.errors import LucidFluxError


@dataclass(frozen=True)
class WeightFile:
    name: str  # the WeightPaths field it fills
    repo: str
    filename: str | None  # None: a folder (snapshot of ``patterns``)
    revision: str = "main"
    patterns: tuple[str, ...] = ()
    gated: bool = False
    about: str = ""


REGISTRY: dict[str, WeightFile] = {
    w.name: w
    for w in (
        WeightFile("flux", "black-forest-labs/FLUX.1-dev", "flux1-dev.safetensors", gated=True, about="FLUX.1-dev transformer (12B)"),
        WeightFile("ae", "black-forest-labs/FLUX.1-dev", "ae.safetensors", gated=True, about="FLUX.1 autoencoder"),
        WeightFile("lucidflux", "W2GenAI/LucidFlux", "lucidflux.pth", about="condition branches, modulation, connector"),
        WeightFile("prompt_embeddings", "W2GenAI/LucidFlux", "prompt_embeddings.pt", about="precomputed prompt (T5/CLIP)"),
        WeightFile("swinir", "lxq007/DiffBIR", "general_swinir_v1.ckpt", about="SwinIR degradation remover (DiffBIR)"),
        WeightFile(
            "siglip",
            "google/siglip2-so400m-patch16-512",
            None,
            patterns=("config.json", "model.safetensors", "preprocessor_config.json"),
            about="SigLIP vision tower",
        ),
    )
}


class WeightsUnavailable(LucidFluxError):
    """A weight file is neither given locally nor obtainable (offline, gated, no network)."""


def resolve_weights(overrides: dict[str, Path | None], *, cache_dir: Path | None = None, offline: bool = False) -> WeightPaths:
    """Local overrides, else the HF cache (downloading what is missing unless ``offline``)."""
    offline = offline or os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
    resolved = {}
    missing = []
    for name, entry in REGISTRY.items():
        local = overrides.get(name)
        if local is not None:
            resolved[name] = Path(local)
            continue
        try:
            resolved[name] = fetch(entry, cache_dir=cache_dir, offline=offline)
        except WeightsUnavailable as error:
            missing.append(str(error))
    if missing:
        raise WeightsUnavailable("missing weights: " + "; ".join(missing))
    return WeightPaths(**resolved)


def fetch(entry: WeightFile, *, cache_dir: Path | None, offline: bool) -> Path:
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    where = f"{entry.repo}:{entry.filename or '/'.join(entry.patterns)}"
    try:
        if entry.filename is None:
            return Path(
                snapshot_download(
                    entry.repo, revision=entry.revision, allow_patterns=list(entry.patterns),
                    cache_dir=cache_dir, local_files_only=offline,
                )
            )
        return Path(
            hf_hub_download(
                entry.repo, entry.filename, revision=entry.revision, cache_dir=cache_dir, local_files_only=offline
            )
        )
    except GatedRepoError as error:
        raise WeightsUnavailable(
            f"{where} is gated: accept its licence at https://huggingface.co/{entry.repo}, then `hf auth login` or set HF_TOKEN"
        ) from error
    except (LocalEntryNotFoundError, RepositoryNotFoundError, OSError) as error:
        hint = f"pass --{entry.name.replace('_', '-')} PATH" + ("" if offline else " or check the network")
        state = "not in the cache (offline)" if offline else "could not be downloaded"
        raise WeightsUnavailable(f"{where} {state}; {hint}") from error
