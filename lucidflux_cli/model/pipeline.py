"""The LucidFlux restoration pipeline, in the order of the paper's figure:

clean (degradation remover) -> encode (SigLIP tokens, text context) -> denoise with the dual
condition -> decode (VAE) -> colour fix. Components are passed in;
:mod:`lucidflux_cli.model.components` builds them from weight files.

Every stage has one code path: it works over the windows of a :class:`tiling.Plan` for a
batch of same-size images. An image that fits in one tile is one window per stage (the
reference's computation, and what ``restore_batch`` batches); a larger one is covered by
overlapping tiles whose outputs are blended, with whole-image buffers on the host, so device
memory is bounded by the tile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from lucidflux_cli.model import sampling, tiling
from lucidflux_cli.model.acceleration import Placement
from lucidflux_cli.model.colorfix import color_fix_windows
from lucidflux_cli.model.config import SAMPLING
from lucidflux_cli.model.images import LowQualityImage, reflect_pad_to, siglip_pixels, size_of, stack
from lucidflux_cli.model.modules.dual_branch import BranchText, DualConditionBranch, Hints
from lucidflux_cli.model.modules.flux_step import BackboneStep, EmbeddedText, Rope
from lucidflux_cli.model.tiling import TOKEN, Box, Plan, TileOptions

log = logging.getLogger(__name__)

OnStep = Callable[[int, int], None]


@dataclass(frozen=True)
class RestoreSettings:
    """Sampling parameters; the defaults are the reference script's. ``tiles`` only matters above one tile."""

    steps: int = SAMPLING.steps
    guidance: float = SAMPLING.guidance
    seed: int = SAMPLING.seed
    color_fix: str = SAMPLING.color_fix  # one of COLOR_FIXES
    tiles: TileOptions = TileOptions()


@dataclass
class LucidFluxComponents:
    transformer: torch.nn.Module  # diffusers FluxTransformer2DModel (backbone)
    vae: torch.nn.Module  # diffusers AutoencoderKL (float32)
    dual_branch: DualConditionBranch
    connector: torch.nn.Module  # diffusers ReduxImageEncoder
    siglip: torch.nn.Module  # transformers SiglipVisionModel
    remover: object  # degradation remover: callable on (B, 3, H, W) in [0, 1] (float32)
    remover_multiple: int  # input sides must be multiples of this
    txt: torch.Tensor  # (1, L, C) prompt tokens
    vec: torch.Tensor  # (1, P) pooled prompt vector


@dataclass
class StepInputs:
    """Everything a denoising step reuses for one model call (same-size images or tiles)."""

    branch_text: BranchText
    backbone_text: EmbeddedText
    branch_rope: Rope
    backbone_rope: Rope
    hints: Hints


class LucidFluxPipeline:
    def __init__(
        self,
        components: LucidFluxComponents,
        device: torch.device,
        dtype: torch.dtype,
        placement: Placement | None = None,
    ):
        self.c = components
        self.backbone = BackboneStep(components.transformer)
        self.device = torch.device(device)
        self.dtype = dtype
        self.placement = placement or Placement("none", self.device)  # --offload
        self._fitted_tiles: dict[
            TileOptions, TileOptions
        ] = {}  # asked -> what fitted after running out of memory

    @torch.no_grad()
    def __call__(
        self,
        image: Image.Image | np.ndarray,
        size: tuple[int, int] | None = None,
        settings: RestoreSettings | None = None,
        on_step: OnStep | None = None,
    ) -> np.ndarray:
        """Restore one RGB image; returns float32 (H, W, 3) in [0, 1] at ``size`` (default: input size).

        ``on_step(done, total)`` is called after each denoising step (progress display). When the
        device runs out of memory the image is retried with smaller tiles (down to a floor).
        """
        settings = settings or RestoreSettings()
        size = size or size_of(image)
        asked = settings.tiles
        # Tiles that ran out of memory once are not tried again: the next images start at what fitted.
        settings = replace(settings, tiles=self._fitted_tiles.get(asked, asked))
        while True:
            try:
                restored = self._restore([image], size, settings, on_step)[0]
                break
            except torch.cuda.OutOfMemoryError:
                smaller = settings.tiles.smaller()
                if smaller is None:
                    raise
                log.warning(
                    "out of device memory with %s; retrying this image with %s",
                    settings.tiles.describe(),
                    smaller.describe(),
                )
            # Outside the except block, so the failed attempt's tensors are freed before retrying.
            settings = replace(settings, tiles=smaller)
            self._free_cache()
        if settings.tiles != self._fitted_tiles.get(asked, asked):
            self._fitted_tiles[asked] = settings.tiles
            log.warning("using %s for the rest of this run", settings.tiles.describe())
        return restored

    @torch.no_grad()
    def restore_batch(
        self,
        images: Sequence[Image.Image | np.ndarray],
        size: tuple[int, int],
        settings: RestoreSettings | None = None,
        on_step: OnStep | None = None,
    ) -> list[np.ndarray]:
        """Restore several images at one processing ``size`` in one batch; one array per image.

        Each image gets its own noise (its single run's draw) and its own SigLIP context, so the
        results equal one-at-a-time :meth:`__call__` up to float rounding of batched matmuls.
        A size above one tile (already batched by tiles), or a batch that runs out of device
        memory, goes one image at a time through :meth:`__call__` and its smaller-tile retry.
        """
        settings = settings or RestoreSettings()
        settings = replace(settings, tiles=self._fitted_tiles.get(settings.tiles, settings.tiles))
        if len(images) > 1 and tiling.denoise_grid(*size, settings.tiles).count == 1:
            try:
                return self._restore(images, size, settings, on_step)
            except torch.cuda.OutOfMemoryError:
                log.warning(
                    "out of device memory restoring %d images in one batch; restoring them one at a time",
                    len(images),
                )
            # Only reached after the OOM, outside the except block so the batch's tensors are freed.
            self._free_cache()
        return [self(image, size, settings, on_step) for image in images]

    def _restore(
        self,
        images: Sequence[Image.Image | np.ndarray],
        size: tuple[int, int],
        settings: RestoreSettings,
        on_step: OnStep | None,
    ) -> list[np.ndarray]:
        """The paper's figure, stage by stage, for same-size images (one, if it is above one tile)."""
        width, height = size
        lq = self.lq_image(images, size)
        plan = self.plan(lq, settings.tiles)
        cleaned = self.clean(lq, plan)
        context = self.encode_context(cleaned[..., :height, :width])
        latents = self.denoise(lq, cleaned, context, settings, plan, on_step)
        del lq
        restored = self.decode(latents, size, plan)
        if settings.color_fix == "wavelet":
            restored = self.color_fix(restored, cleaned, plan)
        return list(restored)

    def _free_cache(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # --- stages -------------------------------------------------------------------------

    def lq_image(self, images: Sequence[Image.Image | np.ndarray], size: tuple[int, int]) -> LowQualityImage:
        """Resize (bicubic, aspect kept by cropping), pad to a multiple of 16, keep compact on the host."""
        return LowQualityImage.prepare(images, size, self.device, self.dtype)

    def plan(self, lq: LowQualityImage, options: TileOptions) -> Plan:
        """Every stage's windows for ``lq``'s size; a remover that declares itself not tileable
        (its output depends on the whole image) sees the whole image."""
        return tiling.plan(lq.width, lq.height, options, getattr(self.c.remover, "tileable", True))

    def clean(self, lq: LowQualityImage, plan: Plan) -> torch.Tensor:
        """Degradation removal over ``plan.clean``'s windows blended in pixel space -> host (B, 3, H', W')."""
        grid = plan.clean
        cleaned = torch.zeros(lq.count, 3, lq.height, lq.width)
        for box, weight in zip(grid.boxes(), grid.weights(plan.blend), strict=True):
            window = self.remove(torch.clamp((lq.crop(box).float() + 1.0) / 2.0, 0.0, 1.0))
            cleaned[(..., *box.slices)] += (window * torch.from_numpy(weight).to(window)).cpu()
        return cleaned

    def remove(self, x: torch.Tensor) -> torch.Tensor:
        """The remover on (B, 3, h, w) in [0, 1], in float32 on a reflect-padded multiple, cropped back."""
        height, width = x.shape[-2:]
        padded = reflect_pad_to(x, self.c.remover_multiple)
        return self.c.remover(padded)[..., :height, :width].float().clamp(0.0, 1.0)

    def encode_context(self, cleaned: torch.Tensor) -> torch.Tensor:
        """Backbone text context: T5 tokens followed by the connector's SigLIP tokens."""
        pixels = siglip_pixels(cleaned, self.c.siglip.config.image_size)
        with self.placement.stage(self.c.siglip, self.c.connector):
            features = self.c.siglip(
                pixel_values=pixels.to(self.device, self.c.siglip.dtype)
            ).last_hidden_state
            tokens = self.c.connector(features.to(self.dtype)).image_embeds
        txt = _batched(self.c.txt.to(self.device, self.dtype), tokens.shape[0])  # one context per image
        return torch.cat([txt, tokens.to(self.dtype)], dim=1)

    def denoise(
        self,
        lq: LowQualityImage,
        cleaned: torch.Tensor,
        context: torch.Tensor,
        settings: RestoreSettings,
        plan: Plan,
        on_step: OnStep | None = None,
    ) -> torch.Tensor:
        """Euler steps of the backbone steered by the dual condition branch -> (B, 16, H'/8, W'/8).

        Each image's noise is its single run's draw (same seed, full-size); the schedule is the
        whole image's. At each step every tile predicts a velocity from its own latent, LQ and
        cleaned crops (MultiDiffusion); the predictions are blended with weights summing to one
        and the Euler update is applied once to the whole latent. One tile has weight one: its
        prediction is used as it is.
        """
        with self.placement.stage(self.c.transformer, self.c.dual_branch):
            grid = plan.denoise
            boxes = grid.boxes()
            weights = [
                torch.from_numpy(w).to(self.device, torch.float32) for w in grid.scaled(2).weights(plan.blend)
            ]
            calls = _calls(lq.count, len(boxes), plan, settings.tiles)
            fixed = self._step_inputs_per_call(calls, boxes, lq, cleaned, context, settings, plan)
            noise = [
                sampling.make_noise(lq.height, lq.width, settings.seed, self.device, self.dtype)
                for _ in range(lq.count)
            ]
            latents = stack(noise)
            times = sampling.timesteps(settings.steps, lq.height, lq.width)
            for step, (t_curr, t_next) in enumerate(zip(times[:-1], times[1:], strict=True), start=1):
                velocity = self._blended_velocity(latents, t_curr, calls, fixed, boxes, weights)
                latents = latents + (t_next - t_curr) * velocity.to(self.dtype)
                if on_step is not None:
                    on_step(step, settings.steps)
            return latents

    def _blended_velocity(
        self,
        latents: torch.Tensor,
        t_curr: float,
        calls: Sequence[Sequence[tuple[int, int]]],
        fixed: Sequence[StepInputs],
        boxes: Sequence[Box],
        weights: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """Every (image, tile)'s velocity, blended into one float32 velocity of the whole latents."""
        velocity = torch.zeros(latents.shape, device=self.device, dtype=torch.float32)
        for call, call_fixed in zip(calls, fixed, strict=True):
            tokens = stack([sampling.pack_latents(latents[_region(i, boxes[b].scaled(2))]) for i, b in call])
            tile = boxes[call[0][1]]
            predicted = sampling.unpack_latents(
                self.velocity(tokens, t_curr, call_fixed), tile.height * TOKEN, tile.width * TOKEN
            )
            for (i, b), item in zip(call, predicted, strict=True):
                velocity[_region(i, boxes[b].scaled(2))] += weights[b] * item.float()
        return velocity

    def _step_inputs_per_call(
        self,
        calls: Sequence[Sequence[tuple[int, int]]],
        boxes: Sequence[Box],
        lq: LowQualityImage,
        cleaned: torch.Tensor,
        context: torch.Tensor,
        settings: RestoreSettings,
        plan: Plan,
    ) -> list[StepInputs]:
        """Per-call step inputs, computed once per image and kept on the device for every step.

        Per tile only the hint-encoder output is stored (64 channels per token: 0.5 MiB per branch
        for a 1024 px tile in bf16); text embeddings and RoPE tables are shared by every call
        with the same images, text and positions. Per-tile SigLIP tokens (``semantic="tile"``)
        and global positions add one embedded context or RoPE table per call.
        """
        options = settings.tiles
        per_tile = plan.semantic == "tile"
        tile_contexts = (
            [self.encode_context(cleaned[(..., *box.scaled(TOKEN).slices)]).cpu() for box in boxes]
            if per_tile
            else None
        )
        shared: dict[tuple[int, ...], StepInputs] = {}  # by images, when text and positions are the same
        fixed = []
        for call in calls:
            pixel_boxes = [(i, boxes[b].scaled(TOKEN)) for i, b in call]
            ldr = [
                (cleaned[_region(i, box)].to(self.device) * 2.0 - 1.0).to(self.dtype)
                for i, box in pixel_boxes
            ]
            hints = self.c.dual_branch.hints(
                stack([lq.crop(box, image=i) for i, box in pixel_boxes]), stack(ldr)
            )
            images = tuple(i for i, _ in call)
            if per_tile:
                call_context = stack([tile_contexts[b] for _, b in call])
            else:  # one image's context is expanded over its tiles, not copied
                call_context = stack([context[i : i + 1] for i in dict.fromkeys(images)])
            reusable = not per_tile and options.positions == "local"
            inputs = self.step_inputs(
                call_context,
                settings.guidance,
                self._positions(boxes[call[0][1]], options),
                hints,
                shared.get(images) if reusable else None,
            )
            if reusable:
                shared.setdefault(images, inputs)
            fixed.append(inputs)
        return fixed

    def step_inputs(
        self,
        context: torch.Tensor,
        guidance: float,
        img_ids: torch.Tensor,
        hints: Hints,
        shared: StepInputs | None = None,
    ) -> StepInputs:
        """What every step of one model call over ``len(hints[0])`` same-size images or tiles reuses.

        ``shared``: inputs of another call of the same size whose text and positions are
        the same (tiles): those parts are reused rather than recomputed and stored again.
        """
        count = hints[0].shape[0]
        if shared is None:
            txt = _batched(self.c.txt.to(self.device, self.dtype), count)
            vec = _batched(self.c.vec.to(self.device, self.dtype), count)
            scale = torch.full((count,), guidance, device=self.device, dtype=self.dtype)
            shared = StepInputs(
                branch_text=self.c.dual_branch.embed_text(txt, vec, scale),
                backbone_text=self.backbone.embed_text(_batched(context.to(self.device), count), vec, scale),
                branch_rope=self.c.dual_branch.rope(txt.shape[1], img_ids),
                backbone_rope=self.backbone.rope(context.shape[1], img_ids),
                hints=hints,
            )
        return replace(shared, hints=hints)

    def velocity(self, latents: torch.Tensor, t_curr: float, fixed: StepInputs) -> torch.Tensor:
        """The backbone's velocity (B, N, 64) for packed ``latents`` at time ``t_curr``."""
        t = torch.full((latents.shape[0],), t_curr, device=self.device, dtype=self.dtype)
        residuals = self.c.dual_branch(latents, t, fixed.branch_text, fixed.branch_rope, fixed.hints)
        return self.backbone(latents, t, fixed.backbone_text, fixed.backbone_rope, residuals)

    def _positions(self, box: Box, options: TileOptions) -> torch.Tensor:
        """RoPE ids: ``local`` counts from 0 in every tile (each tile looks like a whole image of
        the size FLUX was trained at); ``global`` uses the tile's place in the whole image."""
        ids = sampling.image_positions(box.height * TOKEN, box.width * TOKEN, self.device)
        if options.positions == "global":
            ids[:, 1] += box.top
            ids[:, 2] += box.left
        return ids

    def decode(self, latents: torch.Tensor, size: tuple[int, int], plan: Plan) -> np.ndarray:
        """Decode (B, 16, H'/8, W'/8) latents over ``plan.decode``'s windows blended in pixel space.

        Returns host float32 (B, height, width, 3) in [0, 1]. Tiled, the decoder's group norms and
        mid-block attention see only the window, so windows differ slightly in tone where they
        overlap; wide smooth ramps hide that, and the wavelet colour fix replaces the low band.
        """
        width, height = size
        restored = np.zeros((latents.shape[0], height, width, 3), dtype=np.float32)
        pixel_grid = plan.decode.scaled(tiling.LATENT)
        with self.placement.stage(self.c.vae):
            for box, pixel_box, weight in zip(
                plan.decode.boxes(), pixel_grid.boxes(), pixel_grid.weights(plan.blend), strict=True
            ):
                pixels = self.decode_latents(latents[(..., *box.slices)])
                pixels = (pixels * torch.from_numpy(weight).to(pixels)).cpu()
                rows = min(pixel_box.height, height - pixel_box.top)
                cols = min(pixel_box.width, width - pixel_box.left)
                if rows > 0 and cols > 0:
                    target = restored[
                        :, pixel_box.top : pixel_box.top + rows, pixel_box.left : pixel_box.left + cols
                    ]
                    target += pixels[:, :, :rows, :cols].permute(0, 2, 3, 1).numpy()
        return restored

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Undo the latent scaling, VAE-decode (B, 16, h, w) in float32 -> (B, 3, 8h, 8w) in [0, 1]."""
        config = self.c.vae.config
        z = z.float() / config.scaling_factor + config.shift_factor
        return (
            self.c.vae.decode(z.to(self.c.vae.dtype), return_dict=False)[0].float().clamp(-1, 1).add(1).div(2)
        )

    def color_fix(self, restored: np.ndarray, cleaned: torch.Tensor, plan: Plan) -> np.ndarray:
        """Wavelet colour fix: the detail of ``restored``, the lowest band of ``cleaned``."""
        return color_fix_windows(restored, cleaned, plan.color_window, self.device)


def _calls(images: int, tiles: int, plan: Plan, options: TileOptions) -> list[list[tuple[int, int]]]:
    """The model calls of one step: lists of (image, tile index). One tile: every image in one call
    (same-size images batch); tiles: ``options.batch`` tiles per call."""
    items = [(image, tile) for image in range(images) for tile in range(tiles)]
    # diffusers shares img_ids across a batch: global positions differ per tile, so one at a time.
    per_call = options.batch if options.positions == "local" else 1
    if not plan.tiled:
        per_call = images
    return [items[first : first + per_call] for first in range(0, len(items), per_call)]


def _region(image: int, box: Box) -> tuple[slice, ...]:
    """Index of ``box`` of one image in a (B, C, H, W) tensor."""
    return (slice(image, image + 1), slice(None), *box.slices)


def _batched(tensor: torch.Tensor, count: int) -> torch.Tensor:
    return tensor if tensor.shape[0] == count else tensor.expand(count, *tensor.shape[1:])
