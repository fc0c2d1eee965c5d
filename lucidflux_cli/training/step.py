"""One training forward: frozen inputs in, flow-matching loss out.

Everything the frozen models compute from a pair (HQ latents, the remover's output, SigLIP
features) comes precomputed (:mod:`lucidflux_cli.training.cache`); what runs per step is the
part that learns (connector, hint encoders, both branches, modulations) and the frozen FLUX
backbone the gradients must pass through to reach them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from lucidflux_cli.model.pipeline import LucidFluxPipeline
from lucidflux_cli.model.sampling import image_positions, pack_latents, unpack_latents
from lucidflux_cli.training import objective


@dataclass
class Batch:
    """A micro-batch on the device. Pixels are at the latents' size x 8."""

    latents: torch.Tensor  # (B, 16, h, w) HQ latents, scaled as the sampler's output
    lq: torch.Tensor  # (B, 3, 8h, 8w) LQ image at processing size in [-1, 1]
    ldr: torch.Tensor  # (B, 3, 8h, 8w) remover output in [-1, 1]
    features: torch.Tensor  # (B, T, C) SigLIP last hidden state of the remover output
    hq: torch.Tensor | None = None  # (B, 3, 8h, 8w) HQ pixels in [0, 1] (pixel loss only)


@dataclass
class Draws:
    """A micro-batch's random draws (made per sample, so batching cannot change them)."""

    s: torch.Tensor  # (B,) times in [0, 1]
    noise: torch.Tensor  # like Batch.latents
    pixel_windows: list[tuple[int, int, int]] | None = None  # per sample (top, left, side) in latent pixels


class ConditionTrainer(nn.Module):
    """The module an optimiser (and DDP/FSDP through accelerate) sees: only the trainable parts are
    submodules; the frozen side is reached through the pipeline, so it is neither synchronised
    nor sharded nor saved with the model."""

    def __init__(self, pipeline: LucidFluxPipeline, guidance: float = 4.0, pixel_weight: float = 0.0):
        super().__init__()
        self.dual_branch = pipeline.c.dual_branch
        self.connector = pipeline.c.connector
        self.pipeline = pipeline
        self.guidance = guidance
        self.pixel_weight = pixel_weight

    def forward(self, batch: Batch, draws: Draws) -> dict[str, torch.Tensor]:
        """Losses of one micro-batch: ``loss`` (what is minimised), ``velocity``, ``pixel``."""
        x_s = objective.noisy_latents(batch.latents, draws.noise, draws.s)
        target = objective.velocity_target(batch.latents, draws.noise)
        height, width = batch.latents.shape[-2] * 8, batch.latents.shape[-1] * 8
        predicted = unpack_latents(
            self.velocity(pack_latents(x_s), draws.s, batch, height, width), height, width
        )
        losses = {"velocity": objective.velocity_loss(predicted, target)}
        losses["loss"] = losses["velocity"]
        if self.pixel_weight > 0 and batch.hq is not None and draws.pixel_windows:
            clean = objective.predicted_clean(x_s, draws.s, predicted.float())
            # One window per sample (its own draw), so batching does not change what is decoded.
            per_sample = [
                objective.pixel_loss(self.pipeline.c.vae, clean[i : i + 1], batch.hq[i : i + 1], window)
                for i, window in enumerate(draws.pixel_windows)
            ]
            losses["pixel"] = torch.stack(per_sample).mean()
            losses["loss"] = losses["loss"] + self.pixel_weight * losses["pixel"]
        return losses

    def velocity(
        self, tokens: torch.Tensor, s: torch.Tensor, batch: Batch, height: int, width: int
    ) -> torch.Tensor:
        """The pipeline's velocity (same step inputs, same modules) with one time per sample."""
        pipeline = self.pipeline
        dtype = pipeline.dtype
        semantic = self.connector(batch.features.to(dtype)).image_embeds
        txt = pipeline.c.txt.to(pipeline.device, dtype).expand(semantic.shape[0], -1, -1)
        context = torch.cat([txt, semantic.to(dtype)], dim=1)
        hints = self.dual_branch.hints(batch.lq.to(dtype), batch.ldr.to(dtype))
        fixed = pipeline.step_inputs(
            context, self.guidance, image_positions(height, width, pipeline.device), hints
        )
        t = s.to(pipeline.device, dtype)
        tokens = tokens.to(dtype)
        residuals = self.dual_branch(tokens, t, fixed.branch_text, fixed.branch_rope, fixed.hints)
        return pipeline.backbone(tokens, t, fixed.backbone_text, fixed.backbone_rope, residuals)


def enable_gradient_checkpointing(pipeline: LucidFluxPipeline) -> int:
    """Recompute every transformer block's activations in the backward pass; returns the block count.

    The pipeline calls blocks directly (not diffusers' ``forward``, which has its own switch), so
    each block's ``forward`` is wrapped in place: module names, and therefore state-dict keys,
    stay those of the release.
    """
    dual = pipeline.c.dual_branch
    blocks = [
        *pipeline.c.transformer.transformer_blocks,
        *pipeline.c.transformer.single_transformer_blocks,
        *dual.lq.transformer_blocks,
        *dual.ldr.transformer_blocks,
    ]
    for block in blocks:
        if not getattr(block, "_lucidflux_checkpointed", False):
            block.forward = _checkpointed(block.forward)
            block._lucidflux_checkpointed = True
    return len(blocks)


def _checkpointed(forward):
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        # Non-reentrant: supports keyword arguments and inputs that do not require grad (frozen backbone).
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run
