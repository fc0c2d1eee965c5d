"""The LucidFlux restoration pipeline, in the order of the paper's figure:

clean (SwinIR) -> encode (SigLIP tokens, text context) -> denoise with the dual condition
-> decode (VAE) -> colour fix. Components are passed in; :mod:`lucidflux_cli.model.components`
builds them from weight files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lucidflux_cli.model import sampling, tiling
from lucidflux_cli.model.acceleration import Placement
from lucidflux_cli.model.colorfix import wavelet_color_fix, wavelet_split
from lucidflux_cli.model.modules.dual_branch import BranchText, DualConditionBranch, Hints
from lucidflux_cli.model.modules.flux_step import BackboneStep, EmbeddedText, Rope
from lucidflux_cli.model.sizes import LATENT_MULTIPLE, crop_to_aspect, round_up
from lucidflux_cli.model.tiling import TOKEN, Box, TileOptions

log = logging.getLogger(__name__)

SWINIR_MULTIPLE = 64  # pixel-unshuffle by 8, then 8x8 attention windows


@dataclass(frozen=True)
class RestoreSettings:
    """Sampling parameters; the defaults are the reference script's. ``tiles`` only matters above one tile."""

    steps: int = 20
    guidance: float = 4.0
    seed: int = 123456789
    color_fix: str = "wavelet"  # or "none"
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
    """Everything a denoising step reuses for one batch of same-size images or tiles."""

    branch_text: BranchText
    backbone_text: EmbeddedText
    branch_rope: Rope
    backbone_rope: Rope
    hints: Hints


class LowQualityImage:
    """The LQ image at processing size, padded to whole tokens, kept compact on the host.

    Pixels stay 8-bit (float planes for deeper inputs) until a region is asked for; each crop
    is converted with the reference's arithmetic, so it equals that region of the full tensor.
    """

    def __init__(self, pixels: np.ndarray, device: torch.device, dtype: torch.dtype):
        self.pixels = pixels  # (H, W, 3): uint8, or float32 in [0, 1] (not yet clipped)
        self.device, self.dtype = device, dtype

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    def crop(self, box: Box | None = None) -> torch.Tensor:
        """(1, 3, h, w) in [-1, 1] on the device; the whole image when ``box`` is None."""
        pixels = self.pixels if box is None else self.pixels[box.slices]
        if pixels.dtype == np.uint8:
            values = pixels.astype(np.float64)
        else:
            values = np.clip(pixels.astype(np.float64), 0.0, 1.0) * 255.0
        # Same arithmetic as the reference: float64 x / 127.5 - 1, then cast.
        return torch.from_numpy(values / 127.5 - 1).permute(2, 0, 1)[None].to(self.device, self.dtype)


class LucidFluxPipeline:
    def __init__(self, components: LucidFluxComponents, device: torch.device, dtype: torch.dtype,
                 placement: Placement | None = None):
        self.c = components
        self.backbone = BackboneStep(components.transformer)
        self.device = torch.device(device)
        self.dtype = dtype
        self.placement = placement or Placement("none", self.device)  # --offload
        self._fitted_tiles: dict[TileOptions, TileOptions] = {}  # asked -> what fitted after running out of memory

    @torch.no_grad()
    def __call__(
        self,
        image: Image.Image | np.ndarray,
        size: tuple[int, int] | None = None,
        settings: RestoreSettings | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Restore one RGB image; returns float32 (H, W, 3) in [0, 1] at ``size`` (default: input size).

        ``on_step(done, total)`` is called after each denoising step (progress display). When the
        device runs out of memory the image is retried with smaller tiles (down to a floor).
        """
        settings = settings or RestoreSettings()
        size = size or _size_of(image)
        asked = settings.tiles
        # Tiles that ran out of memory once are not tried again: the next images start at what fitted.
        settings = replace(settings, tiles=self._fitted_tiles.get(asked, asked))
        while True:
            try:
                restored = self._restore(image, size, settings, on_step)
                break
            except torch.cuda.OutOfMemoryError:
                smaller = settings.tiles.smaller()
                if smaller is None:
                    raise
                log.warning("out of device memory with %s; retrying this image with %s",
                            settings.tiles.describe(), smaller.describe())
            # Outside the except block, so the failed attempt's tensors are freed before retrying.
            settings = replace(settings, tiles=smaller)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
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
        on_step: Callable[[int, int], None] | None = None,
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
                return self._restore_untiled(images, size, settings, on_step)
            except torch.cuda.OutOfMemoryError:
                log.warning("out of device memory restoring %d images in one batch; restoring them one at a time",
                            len(images))
            # Only reached after the OOM, outside the except block so the batch's tensors are freed.
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        return [self(image, size, settings, on_step) for image in images]

    def _restore(self, image: Image.Image | np.ndarray, size: tuple[int, int], settings: RestoreSettings,
                 on_step: Callable[[int, int], None] | None) -> np.ndarray:
        width, height = size
        if tiling.denoise_grid(width, height, settings.tiles).count > 1:
            return self._restore_tiled(image, size, settings, on_step)
        return self._restore_untiled([image], size, settings, on_step)[0]

    def _restore_untiled(self, images: Sequence[Image.Image | np.ndarray], size: tuple[int, int],
                         settings: RestoreSettings, on_step: Callable[[int, int], None] | None) -> list[np.ndarray]:
        """Every stage on a batch of same-size images; one image is the reference's computation exactly."""
        width, height = size
        lq = _stack([self.prepare_lq(image, size) for image in images])
        cleaned = self.clean(lq)
        context = self.encode_context(cleaned[..., :height, :width])
        latents = self.denoise(lq, cleaned, context, settings, on_step)
        decoded = self.decode(latents, lq.shape[-2], lq.shape[-1])
        restored = decoded[..., :height, :width]
        if settings.color_fix == "wavelet":
            restored = wavelet_color_fix(restored, cleaned[..., :height, :width])
        return [np.ascontiguousarray(item.permute(1, 2, 0).float().cpu().numpy()) for item in restored]

    def _restore_tiled(self, image: Image.Image | np.ndarray, size: tuple[int, int], settings: RestoreSettings,
                       on_step: Callable[[int, int], None] | None) -> np.ndarray:
        """The same stages over overlapping tiles; whole-image buffers stay on the host.

        Device memory is bounded by the tile: only tile crops, the latent (1/64 of the pixels)
        and the model are on the device.
        """
        width, height = size
        lq = self.lq_image(image, size)
        cleaned = self.clean_tiled(lq, settings.tiles)
        context = self.encode_context(cleaned[..., :height, :width])
        latents = self.denoise_tiled(lq, cleaned, context, settings, on_step)
        del lq
        restored = self.decode_tiled(latents, width, height, settings.tiles)
        if settings.color_fix == "wavelet":
            color_fix_tiled(restored, cleaned, settings.tiles.size)
        return restored

    # --- stages -------------------------------------------------------------------------

    def lq_image(self, image: Image.Image | np.ndarray, size: tuple[int, int]) -> LowQualityImage:
        """Resize (bicubic, aspect kept by cropping), pad to a multiple of 16, keep compact on the host."""
        pixels = _resize(image, size)
        height, width = pixels.shape[:2]
        pad = ((0, round_up(height, LATENT_MULTIPLE) - height), (0, round_up(width, LATENT_MULTIPLE) - width), (0, 0))
        pixels = np.pad(pixels, pad, mode="reflect" if min(height, width) > 1 else "edge")
        return LowQualityImage(pixels, self.device, self.dtype)

    def prepare_lq(self, image: Image.Image | np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """Resize (bicubic, aspect kept by cropping), pad to a multiple of 16 -> (1, 3, H', W') in [-1, 1]."""
        return self.lq_image(image, size).crop()

    def clean(self, lq: torch.Tensor) -> torch.Tensor:
        """Degradation removal in float32 on a reflect-padded multiple of 64, cropped back; [0, 1]."""
        return self._remove(_remover_input(lq))

    def clean_tiled(self, lq: LowQualityImage, options: TileOptions) -> torch.Tensor:
        """:meth:`clean` over overlapping windows blended in pixel space -> host (1, 3, H', W').

        A remover that declares itself not tileable (its output depends on the whole image)
        sees the whole image in one piece instead, at the cost of memory.
        """
        if not getattr(self.c.remover, "tileable", True):
            return self.clean(lq.crop()).cpu()
        grid = tiling.swinir_grid(lq.height, lq.width, options)
        cleaned = torch.zeros(1, 3, lq.height, lq.width)
        for box, weight in zip(grid.boxes(), grid.weights(options.blend), strict=True):
            _accumulate(cleaned, box, self._remove(_remover_input(lq.crop(box))), weight)
        return cleaned

    def _remove(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        padded = _reflect_pad_to(x, self.c.remover_multiple)
        return self.c.remover(padded)[..., :height, :width].float().clamp(0.0, 1.0)

    def encode_context(self, cleaned: torch.Tensor) -> torch.Tensor:
        """Backbone text context: T5 tokens followed by the connector's SigLIP tokens."""
        pixels = siglip_pixels(cleaned, self.c.siglip.config.image_size)
        with self.placement.stage(self.c.siglip, self.c.connector):
            features = self.c.siglip(pixel_values=pixels.to(self.device, self.c.siglip.dtype)).last_hidden_state
            tokens = self.c.connector(features.to(self.dtype)).image_embeds
        txt = _batched(self.c.txt.to(self.device, self.dtype), tokens.shape[0])  # one context per image
        return torch.cat([txt, tokens.to(self.dtype)], dim=1)

    def denoise(
        self,
        lq: torch.Tensor,
        cleaned: torch.Tensor,
        context: torch.Tensor,
        settings: RestoreSettings,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Euler steps of the backbone, steered by the dual condition branch's residuals."""
        with self.placement.stage(self.c.transformer, self.c.dual_branch):
            return self._denoise(lq, cleaned, context, settings, on_step)

    def _denoise(self, lq: torch.Tensor, cleaned: torch.Tensor, context: torch.Tensor, settings: RestoreSettings,
                 on_step: Callable[[int, int], None] | None) -> torch.Tensor:
        height, width = lq.shape[-2:]
        # Each image's noise is its single run's draw (same seed, same shape), stacked.
        noise = [sampling.make_noise(height, width, settings.seed, self.device, self.dtype) for _ in range(lq.shape[0])]
        latents = sampling.pack_latents(_stack(noise))
        ldr = (cleaned * 2.0 - 1.0).to(self.dtype)
        fixed = self.step_inputs(context, settings.guidance, sampling.image_positions(height, width, self.device),
                                 self.c.dual_branch.hints(lq, ldr))
        times = sampling.timesteps(settings.steps, height, width)
        for step, (t_curr, t_next) in enumerate(zip(times[:-1], times[1:], strict=True), start=1):
            latents = latents + (t_next - t_curr) * self.velocity(latents, t_curr, fixed)
            if on_step is not None:
                on_step(step, settings.steps)
        return latents

    def step_inputs(self, context: torch.Tensor, guidance: float, img_ids: torch.Tensor, hints: Hints,
                    shared: StepInputs | None = None) -> StepInputs:
        """What every step of a batch of ``len(hints[0])`` same-size images or tiles reuses.

        ``shared``: inputs of another batch of the same size whose text and positions are
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

    def denoise_tiled(
        self,
        lq: LowQualityImage,
        cleaned: torch.Tensor,
        context: torch.Tensor,
        settings: RestoreSettings,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """:meth:`denoise` over overlapping latent tiles (MultiDiffusion): -> (1, 16, H'/8, W'/8).

        The noise is the untiled run's (same seed, same full-size draw), cropped per tile; the
        schedule is the whole image's. At each step every tile predicts a velocity from its own
        latent, LQ and cleaned crops; the predictions are blended with weights summing to one and
        the Euler update is applied once to the whole latent. With a single tile this is
        :meth:`denoise` exactly.
        """
        with self.placement.stage(self.c.transformer, self.c.dual_branch):
            return self._denoise_tiled(lq, cleaned, context, settings, on_step)

    def _denoise_tiled(self, lq: LowQualityImage, cleaned: torch.Tensor, context: torch.Tensor,
                       settings: RestoreSettings, on_step: Callable[[int, int], None] | None) -> torch.Tensor:
        options = settings.tiles
        grid = tiling.denoise_grid(lq.width, lq.height, options)
        boxes = grid.boxes()
        weights = [torch.from_numpy(w).to(self.device, torch.float32) for w in grid.scaled(2).weights(options.blend)]
        # diffusers shares img_ids across a batch: global positions differ per tile, so one at a time.
        batch = options.batch if options.positions == "local" else 1
        chunks = [range(first, min(first + batch, len(boxes))) for first in range(0, len(boxes), batch)]
        fixed = self._tile_step_inputs(chunks, boxes, lq, cleaned, context, settings)
        latents = sampling.make_noise(lq.height, lq.width, settings.seed, self.device, self.dtype)
        times = sampling.timesteps(settings.steps, lq.height, lq.width)
        for step, (t_curr, t_next) in enumerate(zip(times[:-1], times[1:], strict=True), start=1):
            velocity = torch.zeros(latents.shape, device=self.device, dtype=torch.float32)
            for chunk, chunk_fixed in zip(chunks, fixed, strict=True):
                predicted = self._tile_velocity(latents, [boxes[i] for i in chunk], chunk_fixed, t_curr)
                for i, tile_velocity in zip(chunk, predicted, strict=True):
                    velocity[(..., *boxes[i].scaled(2).slices)] += weights[i] * tile_velocity.float()
            latents = latents + (t_next - t_curr) * velocity.to(self.dtype)
            if on_step is not None:
                on_step(step, settings.steps)
        return latents

    def _tile_step_inputs(self, chunks: Sequence[range], boxes: Sequence[Box], lq: LowQualityImage,
                          cleaned: torch.Tensor, context: torch.Tensor, settings: RestoreSettings) -> list[StepInputs]:
        """Per-chunk step inputs, computed once per image and kept on the device for every step.

        Per tile only the hint-encoder output is stored (64 channels per token: 0.5 MiB per branch
        for a 1024 px tile in bf16); text embeddings and RoPE tables are shared by every chunk
        with the same text, positions and size. Per-tile SigLIP tokens (``semantic="tile"``)
        and global positions add one embedded context or RoPE table per chunk.
        """
        options = settings.tiles
        tile_contexts = self._tile_contexts(boxes, cleaned) if options.semantic == "tile" else None
        shared: dict[int, StepInputs] = {}  # by batch size, when text and positions are the same for all
        fixed = []
        for chunk in chunks:
            pixel_boxes = [boxes[i].scaled(TOKEN) for i in chunk]
            hints = self.c.dual_branch.hints(
                _stack([lq.crop(box) for box in pixel_boxes]),
                _stack([(cleaned[(..., *box.slices)].to(self.device) * 2.0 - 1.0).to(self.dtype) for box in pixel_boxes]),
            )
            same_everywhere = tile_contexts is None and options.positions == "local"
            chunk_context = context if tile_contexts is None else _stack([tile_contexts[i] for i in chunk])
            inputs = self.step_inputs(chunk_context, settings.guidance, self._tile_positions(boxes[chunk[0]], options),
                                      hints, shared.get(len(chunk)) if same_everywhere else None)
            if same_everywhere:
                shared.setdefault(len(chunk), inputs)
            fixed.append(inputs)
        return fixed

    def _tile_velocity(self, latents: torch.Tensor, boxes: Sequence[Box], fixed: StepInputs,
                       t_curr: float) -> torch.Tensor:
        """The backbone's velocity for a batch of same-size tiles -> (B, 16, 2h, 2w)."""
        tokens = _stack([sampling.pack_latents(latents[(..., *box.scaled(2).slices)]) for box in boxes])
        velocity = self.velocity(tokens, t_curr, fixed)
        return sampling.unpack_latents(velocity, boxes[0].height * TOKEN, boxes[0].width * TOKEN)

    def _tile_positions(self, box: Box, options: TileOptions) -> torch.Tensor:
        """RoPE ids: ``local`` counts from 0 in every tile (each tile looks like a whole image of
        the size FLUX was trained at); ``global`` uses the tile's place in the whole image."""
        ids = sampling.image_positions(box.height * TOKEN, box.width * TOKEN, self.device)
        if options.positions == "global":
            ids[:, 1] += box.top
            ids[:, 2] += box.left
        return ids

    def _tile_contexts(self, boxes: Sequence[Box], cleaned: torch.Tensor) -> list[torch.Tensor]:
        """Per-tile text contexts (SigLIP tokens of each tile's cleaned crop), kept on the host."""
        return [self.encode_context(cleaned[(..., *box.scaled(TOKEN).slices)]).cpu() for box in boxes]

    def decode(self, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Unpack, undo the latent scaling, decode in float32 -> [-1, 1]."""
        with self.placement.stage(self.c.vae):
            return self._decode_spatial(sampling.unpack_latents(latents.float(), height, width))

    def _decode_spatial(self, z: torch.Tensor) -> torch.Tensor:
        config = self.c.vae.config
        z = z.float() / config.scaling_factor + config.shift_factor
        return self.c.vae.decode(z.to(self.c.vae.dtype), return_dict=False)[0].float().clamp(-1, 1).add(1).div(2)

    def decode_tiled(self, latents: torch.Tensor, width: int, height: int, options: TileOptions) -> np.ndarray:
        """Decode (1, 16, H'/8, W'/8) latents in overlapping tiles blended in pixel space.

        Returns host float32 (height, width, 3) in [0, 1]. The decoder's group norms and
        mid-block attention see only the tile, so tiles differ slightly in tone where they
        overlap; wide smooth ramps hide that, and the wavelet colour fix replaces the low band.
        """
        with self.placement.stage(self.c.vae):
            return self._decode_tiled(latents, width, height, options)

    def _decode_tiled(self, latents: torch.Tensor, width: int, height: int, options: TileOptions) -> np.ndarray:
        grid = tiling.decode_grid(latents.shape[-2], latents.shape[-1], options)
        restored = np.zeros((height, width, 3), dtype=np.float32)
        pixel_grid = grid.scaled(tiling.LATENT)
        for box, pixel_box, weight in zip(grid.boxes(), pixel_grid.boxes(), pixel_grid.weights(options.blend), strict=True):
            pixels = self._decode_spatial(latents[(..., *box.slices)])
            pixels = (pixels * torch.from_numpy(weight).to(pixels)).cpu()
            rows = min(pixel_box.height, height - pixel_box.top)
            cols = min(pixel_box.width, width - pixel_box.left)
            if rows > 0 and cols > 0:
                target = restored[pixel_box.top:pixel_box.top + rows, pixel_box.left:pixel_box.left + cols]
                target += pixels[0, :, :rows, :cols].permute(1, 2, 0).numpy()
        return restored


def color_fix_tiled(restored: np.ndarray, cleaned: torch.Tensor, window: int) -> None:
    """Wavelet colour fix of ``restored`` (H, W, 3) in place, window by window; overwrites ``cleaned``.

    The fix is ``content + low(cleaned - content)`` (the blur is linear, so this equals the
    whole-image :func:`wavelet_color_fix` up to rounding) and the blur reaches 31 px, so cores
    with 64 px margins are exact: no tile borders can show. ``cleaned`` (host, >= H x W) holds
    the difference afterwards, which saves a whole-image buffer.
    """
    height, width = restored.shape[:2]
    content = torch.from_numpy(restored).permute(2, 0, 1)[None]
    difference = cleaned[..., :height, :width].sub_(content)
    margin = tiling.COLOR_FIX_MARGIN
    for core, window_box in tiling.core_boxes(height, width, max(window, 4 * margin), margin):
        _, low = wavelet_split(difference[(..., *window_box.slices)])
        top, left = core.top - window_box.top, core.left - window_box.left
        part = content[(..., *core.slices)]
        part.add_(low[..., top:top + core.height, left:left + core.width]).clamp_(0.0, 1.0)


def siglip_pixels(cleaned: torch.Tensor, image_size: int) -> torch.Tensor:
    """SigLIP input from the cleaned image, exactly as the reference prepares it.

    Reference quirks kept: 8-bit conversion truncates (no rounding), the resize is PIL
    bilinear to a square, and the normalised pixels pass through bfloat16.
    """
    batch = []
    for item in cleaned.float().cpu():
        picture = Image.fromarray(_truncated_uint8(item), mode="RGB")
        if picture.size != (image_size, image_size):
            picture = picture.resize((image_size, image_size), resample=Image.BILINEAR)
        array = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0).permute(2, 0, 1)
        batch.append((array - 0.5) / 0.5)
    return torch.stack(batch).to(torch.bfloat16)


def _size_of(image: Image.Image | np.ndarray) -> tuple[int, int]:
    return image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])


def _truncated_uint8(item: torch.Tensor, rows: int = 256) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8 by truncation, a band of rows at a time (no float copy)."""
    values = item.permute(1, 2, 0).numpy()
    pixels = np.empty(values.shape, dtype=np.uint8)
    for top in range(0, values.shape[0], rows):
        pixels[top:top + rows] = (values[top:top + rows] * 255).astype(np.uint8)
    return pixels


def _resize(image: Image.Image | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop to the target aspect, then bicubic-resize -> (H, W, 3): uint8, or float32 in [0, 1].

    8-bit images are resized as 8-bit RGB like the reference (PIL rounds to integers);
    deeper images (float arrays in [0, 1]) per channel in float, keeping their precision.
    Values stay compact here; :meth:`LowQualityImage.crop` converts them.
    """
    box = crop_to_aspect(_size_of(image), size)
    if isinstance(image, Image.Image):
        picture = image.convert("RGB").crop(box)
        if picture.size != size:
            picture = picture.resize(size, resample=Image.BICUBIC)
        return np.asarray(picture, dtype=np.uint8)
    left, top, right, bottom = box
    array = np.asarray(image, dtype=np.float32)[top:bottom, left:right]
    channels = []
    for channel in range(3):
        plane = Image.fromarray(np.ascontiguousarray(array[..., channel]), mode="F")
        if plane.size != size:
            plane = plane.resize(size, resample=Image.BICUBIC)
        channels.append(np.asarray(plane, dtype=np.float32))
    return np.stack(channels, axis=-1)


def _remover_input(lq: torch.Tensor) -> torch.Tensor:
    return torch.clamp((lq.float() + 1.0) / 2.0, 0.0, 1.0)


def _stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Batch of tiles; a single tile passes through untouched (same memory layout as untiled)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(list(tensors))


def _batched(tensor: torch.Tensor, count: int) -> torch.Tensor:
    return tensor if tensor.shape[0] == count else tensor.expand(count, *tensor.shape[1:])


def _accumulate(target: torch.Tensor, box: Box, tile: torch.Tensor, weight: np.ndarray) -> None:
    """``target[box] += weight * tile`` with the target on the host."""
    target[(..., *box.slices)] += (tile * torch.from_numpy(weight).to(tile)).cpu()


def _reflect_pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad bottom/right to a multiple; repeats the reflection for pads wider than the image."""
    height, width = x.shape[-2:]
    target_h, target_w = round_up(height, multiple), round_up(width, multiple)
    while x.shape[-2] < target_h or x.shape[-1] < target_w:
        pad_h = min(target_h - x.shape[-2], x.shape[-2] - 1)
        pad_w = min(target_w - x.shape[-1], x.shape[-1] - 1)
        mode = "reflect" if pad_h >= 0 and pad_w >= 0 and min(x.shape[-2:]) > 1 else "replicate"
        if mode == "replicate":
            pad_h, pad_w = target_h - x.shape[-2], target_w - x.shape[-1]
        x = F.pad(x, (0, max(pad_w, 0), 0, max(pad_h, 0)), mode=mode)
    return x
