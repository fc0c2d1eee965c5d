"""What the built-in formats share: the ``bits`` option, Pillow feature checks, Pillow's metadata
arguments."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import piexif

from lucidflux_cli.imageio import exif as exif_ifds
from lucidflux_cli.imageio.formats.base import OutputFormat, OutputImage

log = logging.getLogger(__name__)

DEFAULT_QUALITY = 95  # for lossy formats when --quality is not given
ALL_METADATA = {"exif": True, "icc": True, "xmp": True}
BITS_HELP = {"bits": "8 or 16: sample depth (default: the source's)"}
GRAY = {"gray": True}  # formats that write one-channel gray


class BuiltinFormat(OutputFormat):
    """A format shipped with lucidflux-cli (registered through the same entry points as plugins)."""

    pillow_feature: ClassVar[str | None] = None  # Pillow build feature it needs, if any

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        self.bits: int | None = None
        if "bits" in self.options:  # only accepted where option_help lists it
            depths = self.capabilities.bit_depths
            if self.options["bits"] not in {str(d) for d in depths}:
                raise ValueError(
                    f"bits must be one of {', '.join(map(str, depths))}, got {self.options['bits']!r}"
                )
            self.bits = int(self.options["bits"])

    @classmethod
    def unavailable(cls) -> str | None:
        from PIL import features

        if cls.pillow_feature and not features.check(cls.pillow_feature):
            return f"this Pillow build has no {cls.pillow_feature} support"
        return None

    def bits_for(self, image: OutputImage) -> int:
        return self.bits or super().bits_for(image)

    def samples(self, image: OutputImage) -> np.ndarray:
        """The pixels to encode: the chosen depth, alpha only where the format keeps it; in the
        source's stored form (CMYK, LAB, wide samples) where the format writes it back."""
        if image.form is not None:
            return image.stored_samples(alpha=self.capabilities.alpha)
        return image.pixels(self.bits_for(image), alpha=self.capabilities.alpha, gray=self.capabilities.gray)


def quality(image: OutputImage) -> int:
    return DEFAULT_QUALITY if image.quality is None else int(image.quality)


def pillow_metadata(image: OutputImage, *, segment_limit: int | None = None) -> dict[str, Any]:
    """Pillow's exif/icc_profile/xmp arguments; ``segment_limit`` caps EXIF and XMP (JPEG)."""
    kwargs: dict[str, Any] = {}
    exif: bytes | None = image.exif
    if segment_limit and len(image.exif) > segment_limit:
        exif = _shrink_exif(image, segment_limit)
    if exif:
        kwargs["exif"] = exif
    if image.icc_profile:
        kwargs["icc_profile"] = image.icc_profile
    if segment_limit is None or len(image.xmp) <= segment_limit:
        kwargs["xmp"] = image.xmp
    else:
        log.warning("%s: XMP too large for this format; not written", image.path)
    return kwargs


def _shrink_exif(image: OutputImage, limit: int) -> bytes | None:
    # JPEG holds EXIF in one 64 KiB segment; maker notes are the usual reason it overflows.
    tags = image.exif_tags
    smaller = {**tags, "Exif": {k: v for k, v in tags["Exif"].items() if k != piexif.ExifIFD.MakerNote}}
    data = exif_ifds.encode(smaller, image.path)
    if len(data) <= limit:
        return data
    log.warning("%s: EXIF too large for this format; not written", image.path)
    return None
