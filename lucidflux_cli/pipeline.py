"""The LucidFlux restoration pipeline, in the order of the paper's figure:

clean (SwinIR) -> encode (SigLIP tokens, text context) -> denoise with the dual condition
-> decode (VAE) -> colour fix. Components are passed in; :mod:`lucidflux_cli.components`
builds them from weight files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lucidflux_cli import sampling
from lucidflux_cli.colorfix import wavelet_color_fix
from lucidflux_cli.models.dual_branch import BranchInputs, DualConditionBranch
from lucidflux_cli.sizes import LATENT_MULTIPLE, crop_to_aspect, round_up

SWINIR_MULTIPLE = 64  # pixel-unshuffle by 8, then 8x8 attention windows


@dataclass(frozen=True)
class RestoreSettings:
    """Sampling parameters; the defaults are the reference script's."""

    steps: int = 20
    guidance: float = 4.0
    seed: int = 123456789
    color_fix: str = "wavelet"  # or "none"


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


class LucidFluxPipeline:
    def __init__(self, components: LucidFluxComponents, device: torch.device, dtype: torch.dtype):
        self.c = components
        self.device = torch.device(device)
        self.dtype = dtype

    @torch.no_grad()
    def __call__(
        self,
        image: Image.Image | np.ndarray,
        size: tuple[int, int] | None = None,
        settings: RestoreSettings | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Restore one RGB image; returns float32 (H, W, 3) in [0, 1] at ``size`` (default: input size).

        ``on_step(done, total)`` is called after each denoising step (progress display).
        """
        settings = settings or RestoreSettings()
        width, height = size or _size_of(image)
        lq = self.prepare_lq(image, (width, height))
        cleaned = self.clean(lq)
        context = self.encode_context(cleaned[..., :height, :width])
        latents = self.denoise(lq, cleaned, context, settings, on_step)
        decoded = self.decode(latents, lq.shape[-2], lq.shape[-1])
        restored = decoded[..., :height, :width]
        if settings.color_fix == "wavelet":
            restored = wavelet_color_fix(restored, cleaned[..., :height, :width])
        return np.ascontiguousarray(restored[0].permute(1, 2, 0).float().cpu().numpy())

    # --- stages -------------------------------------------------------------------------

    def prepare_lq(self, image: Image.Image | np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """Resize (bicubic, aspect kept by cropping), pad to a multiple of 16 -> (1, 3, H', W') in [-1, 1]."""
        pixels = _resize(image, size)  # float64 in [0, 255], (H, W, 3)
        height, width = pixels.shape[:2]
        pad = ((0, round_up(height, LATENT_MULTIPLE) - height), (0, round_up(width, LATENT_MULTIPLE) - width), (0, 0))
        pixels = np.pad(pixels, pad, mode="reflect" if min(height, width) > 1 else "edge")
        # Same arithmetic as the reference: float64 x / 127.5 - 1, then cast.
        lq = torch.from_numpy(pixels / 127.5 - 1).permute(2, 0, 1)[None]
        return lq.to(self.device, self.dtype)

    def clean(self, lq: torch.Tensor) -> torch.Tensor:
        """Degradation removal in float32 on a reflect-padded multiple of 64, cropped back; [0, 1]."""
        x = torch.clamp((lq.float() + 1.0) / 2.0, 0.0, 1.0)
        height, width = x.shape[-2:]
        padded = _reflect_pad_to(x, self.c.remover_multiple)
        return self.c.remover(padded)[..., :height, :width].float().clamp(0.0, 1.0)

    def encode_context(self, cleaned: torch.Tensor) -> torch.Tensor:
        """Backbone text context: T5 tokens followed by the connector's SigLIP tokens."""
        pixels = siglip_pixels(cleaned, self.c.siglip.config.image_size)
        features = self.c.siglip(pixel_values=pixels.to(self.device, self.c.siglip.dtype)).last_hidden_state
        tokens = self.c.connector(features.to(self.dtype)).image_embeds
        return torch.cat([self.c.txt.to(self.device, self.dtype), tokens.to(self.dtype)], dim=1)

    def denoise(
        self,
        lq: torch.Tensor,
        cleaned: torch.Tensor,
        context: torch.Tensor,
        settings: RestoreSettings,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Euler steps of the backbone, steered by the dual condition branch's residuals."""
        height, width = lq.shape[-2:]
        latents = sampling.pack_latents(sampling.make_noise(height, width, settings.seed, self.device, self.dtype))
        ldr = (cleaned * 2.0 - 1.0).to(self.dtype)
        txt = self.c.txt.to(self.device, self.dtype)
        vec = self.c.vec.to(self.device, self.dtype)
        img_ids = sampling.image_positions(height, width, self.device)
        guidance = torch.full((1,), settings.guidance, device=self.device, dtype=self.dtype)
        times = sampling.timesteps(settings.steps, height, width)
        for step, (t_curr, t_next) in enumerate(zip(times[:-1], times[1:], strict=True), start=1):
            t = torch.full((1,), t_curr, device=self.device, dtype=self.dtype)
            inputs = BranchInputs(latents, txt, sampling.text_positions(txt.shape[1], self.device), img_ids, vec, t, guidance)
            residuals = self.c.dual_branch(inputs, lq, ldr)
            velocity = self.c.transformer(
                hidden_states=latents,
                encoder_hidden_states=context,
                pooled_projections=vec,
                timestep=t,
                img_ids=img_ids,
                txt_ids=sampling.text_positions(context.shape[1], self.device),
                guidance=guidance,
                controlnet_block_samples=residuals,
                return_dict=False,
            )[0]
            latents = latents + (t_next - t_curr) * velocity
            if on_step is not None:
                on_step(step, settings.steps)
        return latents

    def decode(self, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Unpack, undo the latent scaling, decode in float32 -> [-1, 1]."""
        z = sampling.unpack_latents(latents.float(), height, width)
        config = self.c.vae.config
        z = z / config.scaling_factor + config.shift_factor
        return self.c.vae.decode(z.to(self.c.vae.dtype), return_dict=False)[0].float().clamp(-1, 1).add(1).div(2)


def siglip_pixels(cleaned: torch.Tensor, image_size: int) -> torch.Tensor:
    """SigLIP input from the cleaned image, exactly as the reference prepares it.

    Reference quirks kept: 8-bit conversion truncates (no rounding), the resize is PIL
    bilinear to a square, and the normalised pixels pass through bfloat16.
    """
    batch = []
    for item in cleaned.float().cpu():
        pixels = (item.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        picture = Image.fromarray(pixels, mode="RGB")
        if picture.size != (image_size, image_size):
            picture = picture.resize((image_size, image_size), resample=Image.BILINEAR)
        array = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0).permute(2, 0, 1)
        batch.append((array - 0.5) / 0.5)
    return torch.stack(batch).to(torch.bfloat16)


def _size_of(image: Image.Image | np.ndarray) -> tuple[int, int]:
    return image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])


def _resize(image: Image.Image | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop to the target aspect, then bicubic-resize; float64 (H, W, 3) in [0, 255].

    8-bit images are resized as 8-bit RGB like the reference (PIL rounds to integers);
    deeper images (float arrays in [0, 1]) per channel in float, keeping their precision.
    """
    box = crop_to_aspect(_size_of(image), size)
    if isinstance(image, Image.Image):
        picture = image.convert("RGB").crop(box)
        if picture.size != size:
            picture = picture.resize(size, resample=Image.BICUBIC)
        return np.asarray(picture, dtype=np.float64)
    left, top, right, bottom = box
    array = np.asarray(image, dtype=np.float32)[top:bottom, left:right]
    channels = []
    for channel in range(3):
        plane = Image.fromarray(np.ascontiguousarray(array[..., channel]), mode="F")
        if plane.size != size:
            plane = plane.resize(size, resample=Image.BICUBIC)
        channels.append(np.asarray(plane, dtype=np.float64))
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0) * 255.0


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
