"""Frozen inputs computed once per pair and stored: what the frozen models would recompute every epoch.

Per pair one safetensors file holds the HQ latents (VAE, float32), the LQ image at processing
size (8-bit, converted at load with the pipeline's own arithmetic), the remover's output as the
LDR branch sees it, the SigLIP features (before the trainable connector) and the HQ pixels
(8-bit, for the pixel loss). At 1024 px that is about 15 MB a pair in bf16.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from lucidflux_cli.model.images import LowQualityImage, siglip_pixels
from lucidflux_cli.model.pipeline import LucidFluxPipeline
from lucidflux_cli.training.objective import encode_for_training
from lucidflux_cli.training.pairs import (
    Source,
    TrainingPair,
    check_sizes,
    find_pairs,
    open_image,
    source_stamp,
)

CACHE_VERSION = "1"


def _rgb(source: Source) -> Image.Image:
    with open_image(source) as image:  # a file, or a member of a tar shard read in place
        return image.convert("RGB")


@torch.no_grad()
def encode_pair(pipeline: LucidFluxPipeline, pair: TrainingPair) -> dict[str, torch.Tensor]:
    """The frozen models' outputs for one pair, on the host."""
    size = check_sizes(pair)
    hq = np.array(_rgb(pair.hq), dtype=np.uint8)  # writable: torch shares it
    lq = LowQualityImage.prepare([_rgb(pair.lq_up or pair.lq)], size, pipeline.device, pipeline.dtype)
    cleaned = pipeline.remove(torch.clamp((lq.crop().float() + 1.0) / 2.0, 0.0, 1.0))
    pixels = siglip_pixels(cleaned, pipeline.c.siglip.config.image_size)
    features = pipeline.c.siglip(pixel_values=pixels.to(pipeline.device, pipeline.c.siglip.dtype)).last_hidden_state
    hq_pixels = torch.from_numpy(hq).permute(2, 0, 1)[None].to(pipeline.device, torch.float32) / 255.0
    return {
        "latents": encode_for_training(pipeline.c.vae, hq_pixels)[0].cpu(),
        "lq": torch.from_numpy(lq.pixels[0]).contiguous(),  # (H, W, 3) uint8, as LowQualityImage keeps it
        "ldr": ((cleaned.float() * 2.0 - 1.0).to(pipeline.dtype))[0].cpu(),  # what the pipeline feeds the branch
        "features": features[0].cpu(),
        "hq": torch.from_numpy(hq).contiguous(),
    }


def build_cache(pipeline: LucidFluxPipeline, pairs: Sequence[TrainingPair], folder: Path,
                on_pair: Callable[[int, int], None] | None = None) -> list[Path]:
    """One file per pair under ``folder``; files already there for the same sources are kept."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, pair in enumerate(pairs):
        path = folder / f"{index:07d}.safetensors"
        meta = _metadata(pair)
        if not (path.is_file() and _read_metadata(path) == meta):
            temporary = path.with_suffix(".partial")
            save_file(encode_pair(pipeline, pair), str(temporary), metadata=meta)
            temporary.replace(path)  # a killed run never leaves a half-written entry under the final name
        paths.append(path)
        if on_pair is not None:
            on_pair(index + 1, len(pairs))
    return paths


def _metadata(pair: TrainingPair) -> dict[str, str]:
    sources = [pair.hq, pair.lq, pair.lq_up] if pair.lq_up else [pair.hq, pair.lq]
    return {"version": CACHE_VERSION, "name": pair.name,
            "sources": "|".join(source_stamp(p) for p in sources)}


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
        return {"latents": tensors["latents"], "lq": lq, "ldr": tensors["ldr"], "features": tensors["features"],
                "hq": tensors["hq"].permute(2, 0, 1).float() / 255.0}


def cached_pairs(pipeline: LucidFluxPipeline, source: Path, folder: Path,
                 on_pair: Callable[[int, int], None] | None = None) -> CachedPairs:
    """``source`` (manifest or folders, see pairs.find_pairs) -> cached under ``folder`` -> samples."""
    return CachedPairs(build_cache(pipeline, find_pairs(source), folder, on_pair), pipeline.dtype)
