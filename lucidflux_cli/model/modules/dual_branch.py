"""The dual condition branch: LQ and cleaned (LDR) branches -> one residual per backbone block."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.controlnets.controlnet_flux import FluxControlNetModel
from torch import nn

from lucidflux_cli.model.modules.flux_step import EmbeddedText, Rope, embed_text, rope, time_embedding
from lucidflux_cli.model.modules.modulation import LayerAdaptiveModulation

Hints = tuple[torch.Tensor, torch.Tensor]  # packed hint-encoder outputs (B, N, 64) of the LQ and LDR images


@dataclass
class BranchText:
    """Both branches' step-invariant inputs for a batch of B: embedded text and layer embeddings."""

    lq: EmbeddedText
    ldr: EmbeddedText
    layers_lq: list[torch.Tensor]  # modulation layer embedding (B, D) per backbone block
    layers_ldr: list[torch.Tensor]


class DualConditionBranch(nn.Module):
    """Runs both single condition branches and mixes their residuals per backbone layer.

    Each branch is a small Flux ControlNet (two double-stream blocks, pixel-space hint
    encoder). For backbone layer k the residual is
    ``M_lq(lq[k % n], t, k) + M_ldr(ldr[k % n], t, k)`` with n the branch depth.

    Per image, :meth:`embed_text`, :meth:`rope` and :meth:`hints` compute what does not change
    across steps; :meth:`forward` is one step.
    """

    def __init__(
        self,
        lq: FluxControlNetModel,
        ldr: FluxControlNetModel,
        modulation_lq: LayerAdaptiveModulation,
        modulation_ldr: LayerAdaptiveModulation,
        num_backbone_blocks: int,
    ):
        super().__init__()
        for branch in (lq, ldr):
            if len(branch.single_transformer_blocks) or branch.input_hint_block is None:
                raise ValueError(
                    "a LucidFlux condition branch has only double blocks and a pixel hint encoder"
                )
        self.lq = lq
        self.ldr = ldr
        self.modulation_lq = modulation_lq
        self.modulation_ldr = modulation_ldr
        self.num_backbone_blocks = num_backbone_blocks

    # --- once per image ---------------------------------------------------------------

    def embed_text(self, txt: torch.Tensor, vec: torch.Tensor, guidance: torch.Tensor) -> BranchText:
        """``txt`` (B, L, C) T5 tokens (without the SigLIP tokens), ``vec`` (B, P), ``guidance`` (B,)."""
        batch, dtype, device = txt.shape[0], txt.dtype, txt.device
        return BranchText(
            lq=embed_text(self.lq, txt, vec, guidance),
            ldr=embed_text(self.ldr, txt, vec, guidance),
            layers_lq=[
                self.modulation_lq.layer_embedding(batch, k, dtype, device)
                for k in range(self.num_backbone_blocks)
            ],
            layers_ldr=[
                self.modulation_ldr.layer_embedding(batch, k, dtype, device)
                for k in range(self.num_backbone_blocks)
            ],
        )

    def rope(self, text_length: int, img_ids: torch.Tensor) -> Rope:
        # Both branches have the backbone's RoPE configuration: one table serves both.
        return rope(self.lq, text_length, img_ids)

    def hints(self, lq_image: torch.Tensor, ldr_image: torch.Tensor) -> Hints:
        """Hint-encoder outputs of the (B, 3, H, W) images in [-1, 1], packed 2x2 like the latent."""
        return _hint_tokens(self.lq, lq_image), _hint_tokens(self.ldr, ldr_image)

    # --- every step ---------------------------------------------------------------------

    def forward(
        self, latents: torch.Tensor, timestep: torch.Tensor, text: BranchText, rotary: Rope, hints: Hints
    ) -> list[torch.Tensor]:
        """One residual (B, N, D) per backbone block for packed ``latents`` at ``timestep`` (B,)."""
        lq_out = _branch_samples(self.lq, latents, timestep, text.lq, rotary, hints[0])
        ldr_out = _branch_samples(self.ldr, latents, timestep, text.ldr, rotary, hints[1])
        return self.mix(lq_out, ldr_out, timestep, text)

    def mix(
        self,
        lq_out: list[torch.Tensor],
        ldr_out: list[torch.Tensor],
        timestep: torch.Tensor,
        text: BranchText,
    ) -> list[torch.Tensor]:
        lq = _modulated(self.modulation_lq, lq_out, timestep, text.layers_lq)
        ldr = _modulated(self.modulation_ldr, ldr_out, timestep, text.layers_ldr)
        return [a + b for a, b in zip(lq, ldr, strict=True)]


def _hint_tokens(branch: FluxControlNetModel, image: torch.Tensor) -> torch.Tensor:
    features = branch.input_hint_block(image)
    batch, channels, height, width = features.shape
    patch = branch.config.patch_size
    features = features.reshape(batch, channels, height // patch, patch, width // patch, patch)
    return features.permute(0, 2, 4, 1, 3, 5).reshape(batch, (height // patch) * (width // patch), -1)


def _branch_samples(
    branch: FluxControlNetModel,
    latents: torch.Tensor,
    timestep: torch.Tensor,
    text: EmbeddedText,
    rotary: Rope,
    hint: torch.Tensor,
) -> list[torch.Tensor]:
    """The branch's per-block outputs after its controlnet heads (diffusers' conditioning scale 1)."""
    temb = time_embedding(branch, timestep, text)
    # pos_embed_input runs per step on the cached 64-channel hint tokens: caching its 3072-channel
    # output instead would cost 48x the memory per tile for a GEMM that is < 0.01% of a step.
    hidden = branch.x_embedder(latents) + branch.controlnet_x_embedder(hint)
    context, samples = text.tokens, []
    for block, head in zip(branch.transformer_blocks, branch.controlnet_blocks, strict=True):
        context, hidden = block(
            hidden_states=hidden, encoder_hidden_states=context, temb=temb, image_rotary_emb=rotary
        )
        samples.append(head(hidden))
    return samples


def _modulated(
    modulation: LayerAdaptiveModulation,
    outputs: list[torch.Tensor],
    timestep: torch.Tensor,
    layers: list[torch.Tensor],
) -> list[torch.Tensor]:
    """``M(outputs[k % n], t, k)`` for every backbone layer k; norm and time embedding computed once."""
    dtype = outputs[0].dtype
    time_emb = modulation.time_embedding(timestep, dtype)
    normed = [modulation.norm(x) for x in outputs]
    return [
        modulation.modulate(normed[k % len(normed)], modulation.shift_scale_from(time_emb, layer_emb))
        for k, layer_emb in enumerate(layers)
    ]
