"""Host-side image preparation: the LQ image at processing size, SigLIP's input, padding.

Whole images stay here, compact on the host; the stages take crops of them to the device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lucidflux_cli.model.sizes import LATENT_MULTIPLE, crop_to_aspect, round_up
from lucidflux_cli.model.tiling import Box
from lucidflux_cli.pixels import resize_float

# Bump when what resize / LowQualityImage / siglip_pixels produce changes: training's input cache
# is keyed on it, so entries made by the old preparation are recomputed.
PREPARATION_VERSION = "pil-bicubic-1"


class LowQualityImage:
    """One or more same-size LQ images at processing size, padded to whole tokens, kept compact.

    Pixels stay 8-bit (float planes for deeper inputs) until a region is asked for; each crop
    is converted with the reference's arithmetic, so it equals that region of the full tensor.
    """

    def __init__(self, pixels: Sequence[np.ndarray], device: torch.device, dtype: torch.dtype):
        self.pixels = list(pixels)  # each (H, W, 3): uint8, or float32 in [0, 1] (not yet clipped)
        self.device, self.dtype = device, dtype

    @classmethod
    def prepare(
        cls,
        images: Sequence[Image.Image | np.ndarray],
        size: tuple[int, int],
        device: torch.device,
        dtype: torch.dtype,
    ) -> LowQualityImage:
        """Resize (bicubic, aspect kept by cropping), pad to a multiple of 16 (reflect)."""
        padded = []
        for image in images:
            pixels = resize(image, size)
            height, width = pixels.shape[:2]
            pad = (
                (0, round_up(height, LATENT_MULTIPLE) - height),
                (0, round_up(width, LATENT_MULTIPLE) - width),
                (0, 0),
            )
            padded.append(np.pad(pixels, pad, mode="reflect" if min(height, width) > 1 else "edge"))
        return cls(padded, device, dtype)

    @property
    def count(self) -> int:
        return len(self.pixels)

    @property
    def height(self) -> int:
        return self.pixels[0].shape[0]

    @property
    def width(self) -> int:
        return self.pixels[0].shape[1]

    def crop(self, box: Box | None = None, image: int | None = None) -> torch.Tensor:
        """(B, 3, h, w) in [-1, 1] on the device: ``box`` (None: everything) of ``image`` (None: all)."""
        chosen = self.pixels if image is None else [self.pixels[image]]
        return stack([self._convert(p if box is None else p[box.slices]) for p in chosen])

    def _convert(self, pixels: np.ndarray) -> torch.Tensor:
        if pixels.dtype == np.uint8:
            values = pixels.astype(np.float64)
        else:
            values = np.clip(pixels.astype(np.float64), 0.0, 1.0) * 255.0
        # Same arithmetic as the reference: float64 x / 127.5 - 1, then cast.
        return torch.from_numpy(values / 127.5 - 1).permute(2, 0, 1)[None].to(self.device, self.dtype)


def stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Batch of images or tiles; a single one passes through untouched (same memory layout)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(list(tensors))


def size_of(image: Image.Image | np.ndarray) -> tuple[int, int]:
    return image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])


def resize(image: Image.Image | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop to the target aspect, then bicubic-resize -> (H, W, 3): uint8, or float32 in [0, 1].

    8-bit images are resized as 8-bit RGB like the reference (PIL rounds to integers);
    deeper images (float arrays in [0, 1]) per channel in float, keeping their precision.
    Values stay compact here; :meth:`LowQualityImage.crop` converts them.
    """
    box = crop_to_aspect(size_of(image), size)
    if isinstance(image, Image.Image):
        picture = image.convert("RGB").crop(box)
        if picture.size != size:
            picture = picture.resize(size, resample=Image.BICUBIC)
        return np.asarray(picture, dtype=np.uint8)
    left, top, right, bottom = box
    return resize_float(np.asarray(image, dtype=np.float32)[top:bottom, left:right, :3], size)


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


def _truncated_uint8(item: torch.Tensor, rows: int = 256) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8 by truncation, a band of rows at a time (no float copy)."""
    values = item.permute(1, 2, 0).numpy()
    pixels = np.empty(values.shape, dtype=np.uint8)
    for top in range(0, values.shape[0], rows):
        pixels[top : top + rows] = (values[top : top + rows] * 255).astype(np.uint8)
    return pixels


def reflect_pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
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
