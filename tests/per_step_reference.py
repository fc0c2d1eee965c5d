"""The denoising step as it was before the prepared path: diffusers' own forwards every step.

Kept only here, as the yardstick the production path (lucidflux_cli.model.modules.flux_step and
DualConditionBranch) must match: every step recomputes the hint encoders, ``pos_embed_input``,
``txt_in``, the guidance/pooled embeddings and the RoPE tables in both branches and the backbone.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import torch

from lucidflux_cli.model.modules.dual_branch import DualConditionBranch
from lucidflux_cli.model.pipeline import LucidFluxPipeline


def text_positions(length: int, device: torch.device | None = None) -> torch.Tensor:
    """RoPE ids of text tokens: the reference puts every one (T5 and SigLIP alike) at zero."""
    return torch.zeros(length, 3, device=device)


def reference_residuals(
    dual: DualConditionBranch, latents, timestep, lq_image, ldr_image, txt, vec, img_ids, guidance
):
    """DualConditionBranch's residuals through FluxControlNetModel.forward and the modulations' forward."""

    def branch(model, hint):
        return model(
            hidden_states=latents,
            controlnet_cond=hint,
            encoder_hidden_states=txt,
            pooled_projections=vec,
            timestep=timestep,
            img_ids=img_ids,
            txt_ids=text_positions(txt.shape[1], latents.device),
            guidance=guidance,
            return_dict=False,
        )[0]

    lq_out, ldr_out = branch(dual.lq, lq_image), branch(dual.ldr, ldr_image)
    depth = len(lq_out)
    return [
        dual.modulation_lq(lq_out[k % depth], timestep, k)
        + dual.modulation_ldr(ldr_out[k % depth], timestep, k)
        for k in range(dual.num_backbone_blocks)
    ]


class _RawImages(DualConditionBranch):
    """Keeps the condition images themselves as the 'hints': the reference re-encodes them every step."""

    def hints(self, lq_image, ldr_image):
        return lq_image, ldr_image


class PerStepPipeline(LucidFluxPipeline):
    """The pipeline with the per-step reference velocity; every other stage is the production one."""

    def __init__(self, pipeline: LucidFluxPipeline):
        dual = pipeline.c.dual_branch
        raw = _RawImages(dual.lq, dual.ldr, dual.modulation_lq, dual.modulation_ldr, dual.num_backbone_blocks)
        super().__init__(dataclasses.replace(pipeline.c, dual_branch=raw), pipeline.device, pipeline.dtype)
        self.residuals: list[list[torch.Tensor]] = []

    def step_inputs(self, context, guidance, img_ids, hints, shared=None):
        return SimpleNamespace(context=context, guidance=guidance, img_ids=img_ids, images=hints)

    def velocity(self, latents, t_curr, fixed):
        count = latents.shape[0]
        txt = self.c.txt.to(self.device, self.dtype).expand(count, -1, -1)
        vec = self.c.vec.to(self.device, self.dtype).expand(count, -1)
        guidance = torch.full((count,), fixed.guidance, device=self.device, dtype=self.dtype)
        t = torch.full((count,), t_curr, device=self.device, dtype=self.dtype)
        residuals = reference_residuals(
            self.c.dual_branch, latents, t, *fixed.images, txt, vec, fixed.img_ids, guidance
        )
        self.residuals.append(residuals)
        context = fixed.context.to(self.device)
        return self.c.transformer(
            hidden_states=latents,
            encoder_hidden_states=context if context.shape[0] == count else context.expand(count, -1, -1),
            pooled_projections=vec,
            timestep=t,
            img_ids=fixed.img_ids,
            txt_ids=text_positions(context.shape[1], self.device),
            guidance=guidance,
            controlnet_block_samples=residuals,
            return_dict=False,
        )[0]
