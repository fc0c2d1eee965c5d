"""The dual condition branch: LQ and cleaned (LDR) branches -> one residual per backbone block."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.controlnets.controlnet_flux import FluxControlNetModel
from torch import nn

from lucidflux_cli.models.modulation import LayerAdaptiveModulation


@dataclass
class BranchInputs:
    """What both condition branches see at one denoising step (they differ only in the image)."""

    latents: torch.Tensor  # (B, N, 64) packed noisy latent
    txt: torch.Tensor  # (B, L, C) T5 tokens, without the SigLIP tokens
    txt_ids: torch.Tensor  # (L, 3)
    img_ids: torch.Tensor  # (N, 3)
    vec: torch.Tensor  # (B, P) pooled CLIP vector
    timestep: torch.Tensor  # (B,) in [0, 1]
    guidance: torch.Tensor  # (B,)


class DualConditionBranch(nn.Module):
    """Runs both single condition branches and mixes their residuals per backbone layer.

    Each branch is a small Flux ControlNet (two double-stream blocks, pixel-space hint
    encoder). For backbone layer k the residual is
    ``M_lq(lq[k % n], t, k) + M_ldr(ldr[k % n], t, k)`` with n the branch depth.
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
        self.lq = lq
        self.ldr = ldr
        self.modulation_lq = modulation_lq
        self.modulation_ldr = modulation_ldr
        self.num_backbone_blocks = num_backbone_blocks

    @staticmethod
    def _branch(branch: FluxControlNetModel, hint: torch.Tensor, inputs: BranchInputs) -> list[torch.Tensor]:
        return branch(
            hidden_states=inputs.latents,
            controlnet_cond=hint,
            encoder_hidden_states=inputs.txt,
            pooled_projections=inputs.vec,
            timestep=inputs.timestep,
            img_ids=inputs.img_ids,
            txt_ids=inputs.txt_ids,
            guidance=inputs.guidance,
            return_dict=False,
        )[0]

    def forward(self, inputs: BranchInputs, lq_image: torch.Tensor, ldr_image: torch.Tensor) -> list[torch.Tensor]:
        lq_out = self._branch(self.lq, lq_image, inputs)
        ldr_out = self._branch(self.ldr, ldr_image, inputs)
        depth = len(lq_out)
        return [
            self.modulation_lq(lq_out[k % depth], inputs.timestep, k)
            + self.modulation_ldr(ldr_out[k % depth], inputs.timestep, k)
            for k in range(self.num_backbone_blocks)
        ]
