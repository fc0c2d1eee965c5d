"""The fast paths at tiny size on CPU: same output as the plain per-step path."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from per_step_reference import PerStepPipeline
from test_pipeline import photo

from lucidflux_cli import sampling, tiling
from lucidflux_cli.pipeline import LucidFluxPipeline, RestoreSettings
from lucidflux_cli.tiling import TileOptions

STEPS = 3


class Recording(LucidFluxPipeline):
    """The production pipeline, keeping every velocity it predicts."""

    def __init__(self, pipeline: LucidFluxPipeline):
        super().__init__(pipeline.c, pipeline.device, pipeline.dtype)
        self.velocities: list[torch.Tensor] = []

    def velocity(self, latents, t_curr, fixed):
        out = super().velocity(latents, t_curr, fixed)
        self.velocities.append(out)
        return out


class RecordingReference(PerStepPipeline):
    def __init__(self, pipeline: LucidFluxPipeline):
        super().__init__(pipeline)
        self.velocities: list[torch.Tensor] = []

    def velocity(self, latents, t_curr, fixed):
        out = super().velocity(latents, t_curr, fixed)
        self.velocities.append(out)
        return out


def _max_diff(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> float:
    assert len(ours) == len(theirs) and ours
    return max(float((a - b).abs().max()) for a, b in zip(ours, theirs, strict=True))


def _stages(pipeline, width: int, height: int):
    lq = pipeline.prepare_lq(photo(width, height, seed=3), (width, height))
    cleaned = pipeline.clean(lq)
    return lq, cleaned, pipeline.encode_context(cleaned[..., :height, :width])


def test_prepared_step_equals_per_step_diffusers_path_untiled(tiny_pipeline):
    ours, theirs = Recording(tiny_pipeline), RecordingReference(tiny_pipeline)
    lq, cleaned, context = _stages(tiny_pipeline, 80, 48)
    settings = RestoreSettings(steps=STEPS, seed=5)
    fast = ours.denoise(lq, cleaned, context, settings)
    slow = theirs.denoise(lq, cleaned, context, settings)
    assert len(ours.velocities) == STEPS
    # Same modules, same operations in the same order: equal to the last bit.
    assert _max_diff(ours.velocities, theirs.velocities) == 0.0
    assert torch.equal(fast, slow)


def test_prepared_residuals_equal_per_step_residuals(tiny_pipeline):
    pipe, theirs = tiny_pipeline, RecordingReference(tiny_pipeline)
    lq, cleaned, context = _stages(pipe, 64, 64)
    ldr = (cleaned * 2.0 - 1.0).to(pipe.dtype)
    settings = RestoreSettings(steps=STEPS, seed=5)
    theirs.denoise(lq, cleaned, context, settings)
    img_ids = sampling.image_positions(64, 64)
    fixed = pipe.step_inputs(context, settings.guidance, img_ids, pipe.c.dual_branch.hints(lq, ldr))
    latents = sampling.pack_latents(sampling.make_noise(64, 64, 5, pipe.device, pipe.dtype))
    t = torch.full((1,), sampling.timesteps(STEPS, 64, 64)[0])
    ours = pipe.c.dual_branch(latents, t, fixed.branch_text, fixed.branch_rope, fixed.hints)
    assert len(ours) == len(theirs.residuals[0]) == pipe.c.dual_branch.num_backbone_blocks
    assert _max_diff(ours, theirs.residuals[0]) == 0.0


TILED = {
    "local positions, 2 tiles per call": TileOptions(size=64, overlap=16, batch=2),
    "global positions": TileOptions(size=64, overlap=16, positions="global"),
    "per-tile SigLIP tokens, 3 per call": TileOptions(size=64, overlap=16, batch=3, semantic="tile"),
}


@pytest.mark.parametrize("options", TILED.values(), ids=TILED.keys())
def test_prepared_step_equals_per_step_diffusers_path_tiled(tiny_pipeline, options):
    ours, theirs = Recording(tiny_pipeline), RecordingReference(tiny_pipeline)
    width, height = 112, 96  # 2 x 2 tiles of 64 px: with 3 per call, a full and a partial batch
    lq_image = tiny_pipeline.lq_image(photo(width, height, seed=4), (width, height))
    cleaned = tiny_pipeline.clean_tiled(lq_image, options)
    context = tiny_pipeline.encode_context(cleaned[..., :height, :width])
    settings = RestoreSettings(steps=2, seed=6, tiles=options)
    fast = ours.denoise_tiled(lq_image, cleaned, context, settings)
    slow = theirs.denoise_tiled(lq_image, cleaned, context, settings)
    assert len(ours.velocities) == len(theirs.velocities) > 2  # several calls per step
    assert _max_diff(ours.velocities, theirs.velocities) <= 1e-6
    assert float((fast - slow).abs().max()) <= 1e-6


def test_tiles_share_text_and_positions_and_keep_only_small_hints(tiny_pipeline):
    options = TileOptions(size=64, overlap=16)
    width, height = 112, 96
    lq_image = tiny_pipeline.lq_image(photo(width, height), (width, height))
    cleaned = tiny_pipeline.clean_tiled(lq_image, options)
    context = tiny_pipeline.encode_context(cleaned[..., :height, :width])
    boxes = tiling.denoise_grid(width, height, options).boxes()
    chunks = [range(i, i + 1) for i in range(len(boxes))]
    fixed = tiny_pipeline._tile_step_inputs(chunks, boxes, lq_image, cleaned, context,
                                            dataclasses.replace(RestoreSettings(), tiles=options))
    assert len(fixed) == 4
    assert all(f.backbone_text is fixed[0].backbone_text and f.branch_rope is fixed[0].branch_rope for f in fixed)
    assert fixed[0].hints[0].shape[-1] == 64  # 16 hint channels x 2 x 2, not the model width
