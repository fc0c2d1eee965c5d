"""What ``data degrade`` accepts as a source photo: big enough, and no colours hidden under alpha.

Pure functions of arrays; the command reads the file (imageio) and names it in the error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

import numpy as np

from lucidflux_cli.data.config import DegradationConfig
from lucidflux_cli.errors import LucidFluxError

BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}


class SourceRefused(LucidFluxError):
    """A photo ``data degrade`` does not take as it is (bad input, not a bug)."""


def parse_background(text: str | None) -> tuple[int, int, int] | None:
    """``white``, ``black`` or ``#rrggbb`` -> an 8-bit RGB triple; None stays None. ValueError otherwise."""
    if text is None or text == "":
        return None
    named = BACKGROUNDS.get(text.strip().lower())
    if named is not None:
        return named
    match = re.fullmatch(r"#?([0-9a-fA-F]{6})", text.strip())
    if not match:
        raise ValueError(f"--background {text!r}: expected white, black or #rrggbb")
    value = int(match[1], 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def flatten_alpha(
    rgb: np.ndarray, alpha: np.ndarray | None, background: tuple[int, int, int] | None
) -> np.ndarray:
    """Float RGB in [0, 1] with no transparency left: ``rgb`` where the photo is opaque, else
    composited over ``background``. SourceRefused when pixels are transparent and no background
    is given: the colours under them (often garbage, or a cut-out's old background) would be
    trained on as if they were seen."""
    if alpha is None or bool((alpha >= 1.0).all()):
        return rgb
    if background is None:
        share = float((alpha < 1.0).mean())
        raise SourceRefused(
            f"{share:.1%} of its pixels are transparent; give --background white|black|#rrggbb "
            "to composite it, or leave it out"
        )
    colour = np.asarray(background, dtype=np.float32) / 255.0
    a = alpha[..., None].astype(np.float32)
    return rgb * a + colour * (1.0 - a)


def check_size(width: int, height: int, min_side: int) -> None:
    """SourceRefused for a photo whose short side is under ``min_side`` (0 takes any size)."""
    if min(width, height) < min_side:
        raise SourceRefused(
            f"{width}x{height} px is under --min-side {min_side} (the filter's minimum): it would "
            "be mirror-padded into a pattern; --min-side 0 takes it anyway"
        )


def file_identity(data: bytes) -> dict[str, Any]:
    """What a manifest record keeps of its source, to redo the record when the file changes."""
    return {"source_bytes": len(data), "source_sha256": hashlib.sha256(data).hexdigest()}


def preset_table(config: DegradationConfig) -> dict[str, Any]:
    """Every probability and range of ``config``, JSON-ready (tuples as lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        return value

    return plain(dataclasses.asdict(config))


def stack_versions() -> dict[str, str]:
    """The libraries a pair's bytes depend on: numpy's Generator, torch's float32 convolution and
    resize, Pillow with its libjpeg (the JPEG round trips) and zlib (the PNGs written)."""
    import PIL
    import torch
    from PIL import features

    turbo = features.version("libjpeg_turbo") if features.check_feature("libjpeg_turbo") else None
    libjpeg = f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {features.version('jpg')}"
    return {
        "numpy": np.__version__,
        "torch": torch.__version__,
        "Pillow": PIL.__version__,
        "libjpeg": libjpeg,
        "zlib": str(features.version("zlib")),
    }
