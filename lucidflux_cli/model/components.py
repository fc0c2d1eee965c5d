"""Build the pipeline's components from weight files, on a device, in a dtype."""

from __future__ import annotations

import logging

import torch

from lucidflux_cli.model import removers
from lucidflux_cli.model.loading import models
from lucidflux_cli.model.pipeline import LucidFluxComponents
from lucidflux_cli.weights import WeightPaths

log = logging.getLogger(__name__)


def load_components(
    paths: WeightPaths,
    device: torch.device,
    dtype: torch.dtype,
    prompt: tuple[torch.Tensor, torch.Tensor] | None = None,
    remover: removers.RemoverModel | None = None,
) -> LucidFluxComponents:
    """Load every component strictly. ``prompt`` = (txt, vec) overrides the shipped embeddings.

    ``remover``: a loaded degradation remover (lucidflux_cli.model.removers); default: the ``swinir``
    plugin on ``paths.swinir``, found through the registry like any other.
    """
    from lucidflux_cli.model.prompt import load_prompt_embeddings

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
