"""Frozen inputs computed once per pair and stored: what the frozen models would recompute every epoch.

Per pair one safetensors file holds the HQ latents (VAE, float32), the LQ image at processing
size (as ``restore`` prepares it: 8-bit, or float for deeper sources; converted at load with the
pipeline's own arithmetic), the remover's output as the LDR branch sees it, the SigLIP features
(before the trainable connector) and the HQ pixels (8-bit, for the pixel loss). At 1024 px that
is about 15 MB a pair in bf16.

An entry is never stale: its metadata is the key of everything it depends on (:func:`cache_key`
and the pair's files), and an entry whose key differs is recomputed, with a log line saying why.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from lucidflux_cli import atomic
from lucidflux_cli.model.images import PREPARATION_VERSION, LowQualityImage, siglip_pixels
from lucidflux_cli.model.pipeline import LucidFluxPipeline
from lucidflux_cli.training.objective import encode_for_training
from lucidflux_cli.training.pairs import TrainingPair, check_sizes, find_pairs, read_source, source_stamp

log = logging.getLogger("lucidflux")  # the CLI shows this logger
CACHE_VERSION = "2"  # 2: the LQ from ``lq`` by restore's reading and resize (not ``lq_up``)


@torch.no_grad()
def encode_pair(pipeline: LucidFluxPipeline, pair: TrainingPair) -> dict[str, torch.Tensor]:
    """The frozen models' outputs for one pair, on the host.

    The LQ condition is ``pair.lq`` read and resized exactly as ``restore`` reads and resizes an
    input (:attr:`LoadedImage.model_input`, :meth:`LucidFluxPipeline.lq_image`), never the
    manifest's ``lq_up`` (torch bicubic: up to 3 grey levels away from that): the model learns the
    condition it will be given.
    """
    size = check_sizes(pair)
    hq = np.array(read_source(pair.hq).to_pil_rgb8(), dtype=np.uint8)  # writable: torch shares it
    lq = pipeline.lq_image([read_source(pair.lq).model_input], size)
    cleaned = pipeline.remove(torch.clamp((lq.crop().float() + 1.0) / 2.0, 0.0, 1.0))
    pixels = siglip_pixels(cleaned, pipeline.c.siglip.config.image_size)
    features = pipeline.c.siglip(
        pixel_values=pixels.to(pipeline.device, pipeline.c.siglip.dtype)
    ).last_hidden_state
    hq_pixels = torch.from_numpy(hq).permute(2, 0, 1)[None].to(pipeline.device, torch.float32) / 255.0
    return {
        "latents": encode_for_training(pipeline.c.vae, hq_pixels)[0].cpu(),
        "lq": torch.from_numpy(lq.pixels[0]).contiguous(),  # (H, W, 3) as LowQualityImage keeps it
        "ldr": ((cleaned.float() * 2.0 - 1.0).to(pipeline.dtype))[
            0
        ].cpu(),  # what the pipeline feeds the branch
        "features": features[0].cpu(),
        "hq": torch.from_numpy(hq).contiguous(),
    }


def build_cache(
    pipeline: LucidFluxPipeline,
    pairs: Sequence[TrainingPair],
    folder: Path,
    on_pair: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """One file per pair under ``folder``; entries whose key still matches are kept, the others
    (re)computed, with one log line naming what changed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = cache_key(pipeline)
    changed: Counter[str] = Counter()  # key field -> entries recomputed for it
    recomputed = 0
    paths = []
    for index, pair in enumerate(pairs):
        path = folder / f"{index:07d}.safetensors"
        meta = {**key, **pair_key(pair)}
        found = _read_metadata(path) if path.is_file() else {}
        if found != meta:
            if path.is_file():
                changed.update(stale_fields(found, meta))
                recomputed += 1
            with atomic.atomic_path(path) as temporary:  # never a half-written entry under the final name
                save_file(encode_pair(pipeline, pair), str(temporary), metadata=meta)
        paths.append(path)
        if on_pair is not None:
            on_pair(index + 1, len(pairs))
    if recomputed:
        log.info(
            "input cache %s: %d of %d entries recomputed, their inputs changed: %s",
            folder,
            recomputed,
            len(pairs),
            ", ".join(f"{field} ({count})" for field, count in sorted(changed.items())),
        )
    return paths


def cache_key(pipeline: LucidFluxPipeline) -> dict[str, str]:
    """What every entry depends on besides its own files: the cache format, the preparation code,
    the device type and dtypes, and the frozen models that make it (VAE, SigLIP, remover; the
    prompt embeddings and the backbone are not in the cache). The device's type only: the ranks
    of a multi-GPU run (cuda:0, cuda:1) compute the same entries."""
    c = pipeline.c
    return {
        "version": CACHE_VERSION,
        "preparation": PREPARATION_VERSION,
        "device": pipeline.device.type,
        "dtype": str(pipeline.dtype).removeprefix("torch."),
        "vae": state_fingerprint(c.vae),
        "siglip": state_fingerprint(c.siglip),
        "remover": state_fingerprint(*_remover_modules(c.remover), name=_remover_name(c.remover)),
    }


def pair_key(pair: TrainingPair) -> dict[str, str]:
    """The pair's name and its sources' identity (where each is and when it was written)."""
    sources = (pair.hq, pair.lq)  # lq_up is not an input (see encode_pair)
    return {"name": pair.name, "sources": "|".join(source_stamp(p) for p in sources)}


def stale_fields(found: dict[str, str] | None, expected: dict[str, str]) -> list[str]:
    """Which key fields differ between an entry's metadata and what it should be."""
    if found is None:
        return ["unreadable entry"]
    return [k for k in sorted(set(found) | set(expected)) if found.get(k) != expected.get(k)] or ["key"]


def state_fingerprint(*modules: object, name: str = "") -> str:
    """SHA-256 of the modules' states: each tensor's name, shape, dtype and bytes. About a second
    for the released VAE + SigLIP, once per run; exact, unlike file times."""
    digest = hashlib.sha256(name.encode())
    for module in modules:
        if not isinstance(module, torch.nn.Module):
            digest.update(type(module).__qualname__.encode())
            continue
        for key, tensor in module.state_dict().items():
            digest.update(f"{key}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
            digest.update(tensor.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy())
    return digest.hexdigest()


def _remover_modules(remover: object) -> Iterator[object]:
    """The torch modules of a remover: itself, its ``run``, or the model a spandrel descriptor holds."""
    run = getattr(remover, "run", remover)
    for candidate in (remover, run, getattr(run, "model", None)):
        if isinstance(candidate, torch.nn.Module):
            yield candidate
            return
    yield run  # a remover without torch weights: its callable's type


def _remover_name(remover: object) -> str:
    return f"{getattr(remover, 'name', '')}/multiple={getattr(remover, 'multiple_of', '')}"


def _read_metadata(path: Path) -> dict[str, str] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata()
    except Exception:  # an unreadable cache entry is recomputed, not fatal
        return None


class CachedPairs:
    """Cached pairs as training samples: ``sample(i)`` -> host tensors, LQ converted like the pipeline."""

    def __init__(self, entries: Sequence[Path | dict[str, torch.Tensor]], dtype: torch.dtype = torch.float32):
        self.entries = list(entries)
        self.dtype = dtype

    def __len__(self) -> int:
        return len(self.entries)

    def sample(self, index: int) -> dict[str, torch.Tensor]:
        entry = self.entries[index]
        tensors = load_file(str(entry)) if isinstance(entry, Path) else entry
        lq = LowQualityImage([tensors["lq"].numpy()], torch.device("cpu"), self.dtype).crop()[0]
        return {
            "latents": tensors["latents"],
            "lq": lq,
            "ldr": tensors["ldr"],
            "features": tensors["features"],
            "hq": tensors["hq"].permute(2, 0, 1).float() / 255.0,
        }


def cached_pairs(
    pipeline: LucidFluxPipeline, source: Path, folder: Path, on_pair: Callable[[int, int], None] | None = None
) -> CachedPairs:
    """``source`` (manifest or folders, see pairs.find_pairs) -> cached under ``folder`` -> samples."""
    return CachedPairs(build_cache(pipeline, find_pairs(source), folder, on_pair), pipeline.dtype)
