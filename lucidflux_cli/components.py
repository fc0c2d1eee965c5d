"""Build the pipeline's components from weight files, on a device, in a dtype."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from lucidflux_cli import removers
from lucidflux_cli.loading import models
from lucidflux_cli.pipeline import LucidFluxComponents

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightPaths:
    """Local paths of every weight file the pipeline needs."""

    flux: Path  # flux1-dev.safetensors (BFL, bf16 or fp8) or a FLUX.1-dev diffusers folder
    ae: Path  # ae.safetensors or a diffusers vae/ folder (or the FLUX.1-dev folder)
    lucidflux: Path  # lucidflux.pth
    swinir: Path | None  # general_swinir_v1.ckpt (None when another remover is chosen)
    siglip: Path  # SigLIP folder
    prompt_embeddings: Path  # prompt_embeddings.pt
    text_encoders: Path | None = None  # FLUX.1-dev folder with text_encoder*/ and tokenizer*/ (--prompt only)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name} requested but CUDA is not available")
    return device


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on CUDA (as the reference), float32 on CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return _DTYPES[name]


def load_components(
    paths: WeightPaths,
    device: torch.device,
    dtype: torch.dtype,
    prompt: tuple[torch.Tensor, torch.Tensor] | None = None,
    remover: removers.RemoverModel | None = None,
) -> LucidFluxComponents:
    """Load every component strictly. ``prompt`` = (txt, vec) overrides the shipped embeddings.

    ``remover``: a loaded degradation remover (lucidflux_cli.removers); default: the ``swinir``
    plugin on ``paths.swinir``, found through the registry like any other.
    """
    from lucidflux_cli.prompt import load_prompt_embeddings

    log.info("loading FLUX transformer from %s", paths.flux)
    transformer = models.load_flux_transformer(paths.flux, dtype, device)
    log.info("loading LucidFlux condition branches from %s", paths.lucidflux)
    dual, connector = models.load_dual_branch(paths.lucidflux, len(transformer.transformer_blocks), dtype)
    # The reference decodes and cleans in float32 whatever the diffusion dtype.
    vae = models.load_flux_vae(paths.ae, torch.float32).to(device)
    if remover is None:
        remover = removers.load(removers.create(removers.DEFAULT), {"swinir": paths.swinir}, device)
    siglip = models.load_siglip(paths.siglip, dtype).to(device)
    if prompt is None:
        embedding = load_prompt_embeddings(paths.prompt_embeddings)
        prompt = (embedding.txt, embedding.vec)
    return LucidFluxComponents(
        transformer=transformer,
        vae=vae,
        dual_branch=dual.to(device),
        connector=connector.to(device),
        siglip=siglip,
        remover=remover,
        remover_multiple=remover.multiple_of,
        txt=prompt[0],
        vec=prompt[1],
    )
