"""A lucidflux-cli degradation remover running any single-image model file spandrel can load.

``lucidflux restore IN -o OUT --remover spandrel --remover-option model=scunet_color_real_psnr.pth``

Restoration models (SCUNet, NAFNet, 1x Real-ESRGAN/Compact, ...) are used as they are; super-
resolution models (4x Real-ESRGAN, ...) run at the input size and their output is scaled back
down with an antialiased bicubic filter, because LucidFlux wants the cleaned image at the size
of the degraded one.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import torch

from lucidflux_cli.model.removers import Remover, RemoverModel

__version__ = "0.1.0"

_PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_TILE_CHOICES = ("auto", "yes", "no")


class SpandrelRemover(Remover):
    """Any single-image model spandrel can load, as LucidFlux's pre-cleaner."""

    summary = "any single-image model file spandrel can load (Real-ESRGAN, SCUNet, NAFNet, ...)"
    option_help = {
        "model": "path of the model file (.pth, .pt, .ckpt, .safetensors); required",
        "precision": "fp32 (default), fp16 or bf16 (where the architecture supports it)",
        "tile": "auto (default: as spandrel says the architecture allows), yes or no",
    }

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        model = self.options.get("model", "").strip()
        if not model:
            raise ValueError("model=PATH is required: a model file spandrel can load")
        self.model_path = Path(model).expanduser()
        if not self.model_path.is_file():
            raise ValueError(f"model file not found: {self.model_path}")
        self.precision = self.options.get("precision", "fp32").lower()
        if self.precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(_PRECISIONS)}, got {self.precision!r}")
        self.tile = self.options.get("tile", "auto").lower()
        if self.tile not in _TILE_CHOICES:
            raise ValueError(f"tile must be one of {', '.join(_TILE_CHOICES)}, got {self.tile!r}")

    def load(self, weights: Mapping[str, Path], device: torch.device) -> RemoverModel:
        from spandrel import ImageModelDescriptor, ModelLoader, ModelTiling

        descriptor = ModelLoader().load_from_file(self.model_path)
        arch = descriptor.architecture.name
        if not isinstance(descriptor, ImageModelDescriptor):
            raise ValueError(
                f"{self.model_path.name} is a {arch} {descriptor.purpose} model; "
                "a remover needs a single-image model (no mask)"
            )
        if descriptor.input_channels != 3 or descriptor.output_channels != 3:
            raise ValueError(
                f"{self.model_path.name} ({arch}) maps {descriptor.input_channels} to "
                f"{descriptor.output_channels} channels; a remover needs RGB to RGB"
            )
        dtype = _PRECISIONS[self.precision]
        if (dtype is torch.float16 and not descriptor.supports_half) or (
            dtype is torch.bfloat16 and not descriptor.supports_bfloat16
        ):
            raise ValueError(f"{arch} does not support precision {self.precision}; use fp32")
        descriptor.to(device).to(dtype).eval()
        tileable = descriptor.tiling == ModelTiling.SUPPORTED if self.tile == "auto" else self.tile == "yes"
        return RemoverModel(
            run=functools.partial(_run, descriptor, dtype),
            multiple_of=descriptor.size_requirements.multiple_of,
            tileable=tileable,
        )


@torch.inference_mode()
def _run(descriptor, dtype: torch.dtype, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float32 in [0, 1] -> the same size; spandrel pads to its size needs itself."""
    out = torch.cat([descriptor(image.unsqueeze(0).to(dtype)) for image in x]).float()
    if out.shape[-2:] != x.shape[-2:]:  # a super-resolution model: back to the input's size
        out = torch.nn.functional.interpolate(
            out, size=x.shape[-2:], mode="bicubic", antialias=True, align_corners=False
        )
    return out.clamp(0.0, 1.0)
