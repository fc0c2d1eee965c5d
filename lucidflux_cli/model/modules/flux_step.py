"""One denoising step of a diffusers Flux model, with everything that is fixed per image done once.

diffusers' ``FluxTransformer2DModel.forward`` (and ``FluxControlNetModel.forward``) recompute on
every call the text embedding (``context_embedder``, BFL ``txt_in``), the guidance and pooled
embeddings, and the RoPE tables, although LucidFlux feeds them the same text, guidance and
positions at every step. Here those are computed once (:func:`embed_text`, :func:`rope`) and a
step runs only the timestep embedding, the blocks and the heads. The modules' own submodules do
the work, in the same order, so the result is the per-step forward's, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

Rope = tuple[torch.Tensor, torch.Tensor]  # (cos, sin) per token, as FluxPosEmbed returns them


@dataclass
class EmbeddedText:
    """One model's step-invariant inputs for a batch: embedded text, guidance and pooled vector."""

    tokens: torch.Tensor  # (B, L, D) context_embedder(text tokens)
    guidance: torch.Tensor  # (B, D) guidance_embedder(guidance)
    pooled: torch.Tensor  # (B, D) text_embedder(pooled vector)


def embed_text(
    model: nn.Module, tokens: torch.Tensor, vec: torch.Tensor, guidance: torch.Tensor
) -> EmbeddedText:
    """``tokens`` (B, L, C), ``vec`` (B, P), ``guidance`` (B,) in the model's dtype."""
    embedder = model.time_text_embed
    guidance_proj = embedder.time_proj(guidance * 1000)
    return EmbeddedText(
        tokens=model.context_embedder(tokens),
        guidance=embedder.guidance_embedder(guidance_proj.to(vec.dtype)),
        pooled=embedder.text_embedder(vec),
    )


def time_embedding(model: nn.Module, timestep: torch.Tensor, text: EmbeddedText) -> torch.Tensor:
    """The per-step ``temb``: the only embedding that changes from step to step."""
    embedder = model.time_text_embed
    time_emb = embedder.timestep_embedder(embedder.time_proj(timestep * 1000).to(text.pooled.dtype))
    return (time_emb + text.guidance) + text.pooled  # diffusers' summation order


def rope(model: nn.Module, text_length: int, img_ids: torch.Tensor) -> Rope:
    """RoPE tables of ``text_length`` text tokens (all at position zero) followed by the image tokens."""
    txt_ids = torch.zeros(text_length, 3, device=img_ids.device)
    return model.pos_embed(torch.cat((txt_ids, img_ids), dim=0))


class BackboneStep:
    """The FLUX backbone's velocity from per-image pieces (see the module docstring)."""

    def __init__(self, transformer: nn.Module):
        self.model = transformer

    def embed_text(self, context: torch.Tensor, vec: torch.Tensor, guidance: torch.Tensor) -> EmbeddedText:
        return embed_text(self.model, context, vec, guidance)

    def rope(self, context_length: int, img_ids: torch.Tensor) -> Rope:
        return rope(self.model, context_length, img_ids)

    def __call__(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        text: EmbeddedText,
        rotary: Rope,
        residuals: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """Velocity (B, N, 64) of packed ``latents``; one residual per double-stream block."""
        model = self.model
        if len(residuals) != len(model.transformer_blocks):
            raise ValueError(
                f"{len(residuals)} residuals for {len(model.transformer_blocks)} backbone blocks"
            )
        temb = time_embedding(model, timestep, text)
        hidden = model.x_embedder(latents)
        context = text.tokens
        for block, residual in zip(model.transformer_blocks, residuals, strict=True):
            context, hidden = block(
                hidden_states=hidden, encoder_hidden_states=context, temb=temb, image_rotary_emb=rotary
            )
            hidden = hidden + residual
        for block in model.single_transformer_blocks:
            context, hidden = block(
                hidden_states=hidden, encoder_hidden_states=context, temb=temb, image_rotary_emb=rotary
            )
        # .to: with --shard-model the last blocks sit on another GPU than the latents (a no-op otherwise).
        return model.proj_out(model.norm_out(hidden, temb)).to(latents.device)
