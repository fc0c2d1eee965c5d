"""The output-format contract: what a format declares and the one image it is asked to write.

A format is a subclass of :class:`OutputFormat` registered under the ``lucidflux.formats``
entry-point group; the entry-point name is what ``--format`` takes. Built-ins and plugins are
the same kind of class: each owns its names (:attr:`OutputFormat.aliases`), file extensions,
capabilities and encoder, and nothing else in the tool knows about a particular format.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np

from lucidflux_cli import plugins
from lucidflux_cli.imageio import sample_forms
from lucidflux_cli.imageio.sample_forms import SampleForm
from lucidflux_cli.imageio.samples import float_samples, quantize


@dataclass(frozen=True)
class FormatCapabilities:
    """What a format can hold. ``extensions[0]`` (with the dot) names the output files."""

    extensions: tuple[str, ...]
    bit_depths: tuple[int, ...] = (8,)  # sample depths it writes: 8, 16 (integer), 32 (float32)
    alpha: bool = False
    exif: bool = False
    icc: bool = False
    xmp: bool = False
    quality: bool = False  # honours --quality
    gray: bool = False  # writes one-channel gray (else a gray image is written as equal R, G, B)
    pages: bool = False  # holds several pages in one file (OutputFormat.write_pages)
    colours: tuple[str, ...] = ()  # colour models it writes back besides RGB and gray: "cmyk", "lab"
    wide_samples: bool = False  # writes any sample type (int32, float16, ...) and range back as stored


@dataclass(frozen=True)
class OutputImage:
    """One restored image, ready to encode. Arrays are upright, at the output size."""

    path: Path  # the final destination, for messages only: write to the file object given
    rgb: np.ndarray  # float32 (H, W, 3) in [0, 1]
    alpha: np.ndarray | None  # float32 (H, W) in [0, 1], when the source had alpha
    bit_depth: int  # the source's sample depth (8, 16; 32: float)
    exif: bytes  # APP1 form (b"Exif\0\0" + TIFF), Orientation 1, provenance in UserComment
    icc_profile: bytes | None  # the source's RGB profile, unchanged
    xmp: bytes  # an XMP packet naming lucidflux-cli (merged into the source's own)
    summary: str  # one-line provenance, e.g. "Restored by lucidflux-cli 0.1.0 (Steps: 20, ...)"
    quality: int | None = None  # --quality (1-100) or None for the format's default
    exif_tags: dict[str, Any] = field(default_factory=dict, repr=False)  # the same EXIF, piexif layout
    gray: bool = False  # a gray source given back gray: ``rgb`` holds its luminance in all three planes
    form: SampleForm | None = None  # write back in this stored form (CMYK, LAB, wide samples); None: plain
    iptc: bytes | None = None  # the source's IPTC-NAA record (TIFF tag 33723), as stored

    def stored_samples(self, alpha: bool = False) -> np.ndarray:
        """The pixels in :attr:`form` (which must be set): CMYK or LAB uint8 (H, W, 4|3), or gray/RGB
        samples of the form's type and range, (H, W) or (H, W, 2|3|4) as :meth:`pixels`."""
        form = self.form
        if form is None:
            raise ValueError("stored_samples needs a form")
        if form.colour == "cmyk":
            return sample_forms.rgb_to_cmyk(quantize(self.rgb, 8), form.icc)
        if form.colour == "lab":
            return sample_forms.rgb_to_lab(quantize(self.rgb, 8))
        values = sample_forms.from_unit(self.rgb[..., :1] if self.gray else self.rgb, form)
        if alpha and self.alpha is not None:
            values = np.dstack([values, sample_forms.alpha_from_unit(self.alpha, form.dtype)[..., None]])
        return values[..., 0] if values.shape[2] == 1 else values

    def pixels(self, bits: int = 8, alpha: bool = False, gray: bool = False) -> np.ndarray:
        """uint8 (bits=8), uint16 (16) or float32 (32) samples: (H, W, 3), or (H, W, 4) if ``alpha``
        and there is one; with ``gray`` (for a gray image) one channel: (H, W), or (H, W, 2).

        Rounds as the reference implementation does (x * max + 0.5, truncated).
        """
        planes = self.rgb[..., :1] if gray and self.gray else self.rgb
        if alpha and self.alpha is not None:
            planes = np.dstack([planes, self.alpha])
        samples = float_samples(planes) if bits == 32 else quantize(planes, bits)  # one rounding rule
        return samples[..., 0] if samples.shape[2] == 1 else samples


class OutputFormat(plugins.Configurable, ABC):
    """Base class of every output format, built-in or plugin (docs/plugins.md).

    Options come from ``--format-option key=value`` (strings; validate them in ``__init__``, a
    ``ValueError`` is a usage error); ``--quality`` arrives as :attr:`OutputImage.quality`. The
    tool does everything around :meth:`write`: reading, resizing, EXIF/XMP stamping, the atomic
    rename, and turning any exception into a failure of that file only.
    """

    plugin_group: ClassVar[str] = plugins.FORMATS
    #: What the format keeps; ``extensions`` is required.
    capabilities: ClassVar[FormatCapabilities]
    #: Other names of the format, lower case, no dot: spellings ``--format`` accepts ('jpg'),
    #: the decoder's name for such files where it differs ('mpo'), other suffixes ('jpe').
    aliases: ClassVar[tuple[str, ...]] = ()
    #: Further extensions (with the dot) of files of this format that folder walks pick up when
    #: Pillow can open them; ``capabilities.extensions`` are always considered.
    read_extensions: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def contract_problem(cls) -> str | None:
        return capabilities_problem(cls)

    def write_pages(self, fp: BinaryIO, images: list[OutputImage]) -> None:
        """Encode several pages into one file; only formats with ``capabilities.pages`` are asked."""
        if len(images) != 1:
            raise NotImplementedError(f"{type(self).__name__} holds one page per file")
        self.write(fp, images[0])

    def bits_for(self, image: OutputImage) -> int:
        """The source depth when the format has it, else the deepest it has below (or its least)."""
        depths = self.capabilities.bit_depths
        if image.bit_depth in depths:
            return image.bit_depth
        return max((d for d in depths if d <= image.bit_depth), default=min(depths))

    @abstractmethod
    def write(self, fp: BinaryIO, image: OutputImage) -> None:
        """Encode ``image`` into ``fp`` (a temporary file renamed into place on success)."""


def capabilities_problem(cls: type) -> str | None:
    """What is wrong with a format class's declared capabilities (None: nothing)."""
    caps = getattr(cls, "capabilities", None)
    if not isinstance(caps, FormatCapabilities):
        return "capabilities must be a lucidflux_cli.imageio.formats.FormatCapabilities"
    if not caps.extensions or not all(isinstance(e, str) and e.startswith(".") for e in caps.extensions):
        return f"capabilities.extensions must be like ('.jxl',), got {caps.extensions!r}"
    if not set(caps.colours) <= {"cmyk", "lab"}:
        return f"capabilities.colours must be drawn from ('cmyk', 'lab'), got {caps.colours!r}"
    if not caps.bit_depths or not set(caps.bit_depths) <= {8, 16, 32}:
        return f"capabilities.bit_depths must be drawn from (8, 16, 32), got {caps.bit_depths!r}"
    aliases = getattr(cls, "aliases", ())
    if not isinstance(aliases, tuple) or not all(
        isinstance(a, str) and a == a.lower().lstrip(".") for a in aliases
    ):
        return f"aliases must be lower-case names without a dot, got {aliases!r}"
    return None
