"""Output formats: how a restored image and its metadata become a file. Contract and built-ins.

A format plugin is a subclass of :class:`OutputFormat` registered under the ``lucidflux.formats``
entry-point group; the entry-point name is what ``--format`` takes. It declares what it can
keep (:class:`FormatCapabilities`) and writes one :class:`OutputImage` to a binary file object.
The tool does everything around that: reading, resizing, EXIF/XMP stamping (orientation reset,
provenance), the atomic rename, and turning any exception into a failure of that file only.

Options come from ``--format-option key=value`` (strings; validate them in ``__init__``,
a ``ValueError`` is a usage error), ``--quality`` arrives as :attr:`OutputImage.quality`.

The built-ins (png, jpeg, webp, tiff, heif, and avif/bmp/ppm/tga/jpeg2000 where Pillow can)
delegate to the encoders in :mod:`lucidflux_cli.imageio.media`.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np

from lucidflux_cli import plugins
from lucidflux_cli.imageio import media


@dataclass(frozen=True)
class FormatCapabilities:
    """What a format can hold. ``extensions[0]`` (with the dot) names the output files."""

    extensions: tuple[str, ...]
    bit_depths: tuple[int, ...] = (8,)  # integer sample depths it writes
    alpha: bool = False
    exif: bool = False
    icc: bool = False
    xmp: bool = False
    quality: bool = False  # honours --quality


@dataclass(frozen=True)
class OutputImage:
    """One restored image, ready to encode. Arrays are upright, at the output size."""

    path: Path  # the final destination, for messages only: write to the file object given
    rgb: np.ndarray  # float32 (H, W, 3) in [0, 1]
    alpha: np.ndarray | None  # float32 (H, W) in [0, 1], when the source had alpha
    bit_depth: int  # the source's sample depth (8 or 16)
    exif: bytes  # APP1 form (b"Exif\0\0" + TIFF), Orientation 1, provenance in UserComment
    icc_profile: bytes | None  # the source's RGB profile, unchanged
    xmp: bytes  # an XMP packet naming lucidflux-cli (merged into the source's own)
    summary: str  # one-line provenance, e.g. "Restored by lucidflux-cli 0.1.0 (Steps: 20, ...)"
    quality: int | None = None  # --quality (1-100) or None for the format's default
    exif_tags: dict[str, Any] = field(default_factory=dict, repr=False)  # the same EXIF, piexif layout

    def pixels(self, bits: int = 8, alpha: bool = False) -> np.ndarray:
        """uint8 (bits=8) or uint16 samples, (H, W, 3), or (H, W, 4) if ``alpha`` and there is one.

        Rounds as the reference implementation does (x * max + 0.5, truncated).
        """
        rgb = media._quantize(self.rgb, bits)  # one rounding rule for every format
        if not alpha or self.alpha is None:
            return rgb
        return np.dstack([rgb, media._quantize(self.alpha, bits)])


class OutputFormat(plugins.Configurable, ABC):
    """Base class of every output format plugin (see the module docstring)."""

    plugin_group: ClassVar[str] = plugins.FORMATS
    #: What the format keeps; ``extensions`` is required.
    capabilities: ClassVar[FormatCapabilities]

    @classmethod
    def contract_problem(cls) -> str | None:
        return capabilities_problem(cls)

    def bits_for(self, image: OutputImage) -> int:
        """The source depth when the format has it, else the deepest it has below (or its least)."""
        depths = self.capabilities.bit_depths
        if image.bit_depth in depths:
            return image.bit_depth
        return max((d for d in depths if d <= image.bit_depth), default=min(depths))

    @abstractmethod
    def write(self, fp: BinaryIO, image: OutputImage) -> None:
        """Encode ``image`` into ``fp`` (a temporary file renamed into place on success)."""


# ------------------------------------------------------------------------------------- built-ins


class _MediaFormat(OutputFormat):
    """A format written by lucidflux_cli.imageio.media's encoders."""

    media_name: ClassVar[str]
    pillow_feature: ClassVar[str | None] = None  # Pillow build feature it needs, if any

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        self.bits: int | None = None
        if "bits" in self.options:
            depths = self.capabilities.bit_depths
            if self.options["bits"] not in {str(d) for d in depths}:
                raise ValueError(f"bits must be one of {', '.join(map(str, depths))}, got {self.options['bits']!r}")
            self.bits = int(self.options["bits"])

    @classmethod
    def unavailable(cls) -> str | None:
        from PIL import features

        if cls.pillow_feature and not features.check(cls.pillow_feature):
            return f"this Pillow build has no {cls.pillow_feature} support"
        return None

    def bits_for(self, image: OutputImage) -> int:
        return self.bits or super().bits_for(image)

    def write(self, fp: BinaryIO, image: OutputImage) -> None:
        media.encode_builtin(fp, image, self.media_name, self.bits_for(image))


_ALL_METADATA = {"exif": True, "icc": True, "xmp": True}
_BITS_HELP = {"bits": "8 or 16: sample depth (default: the source's)"}


class PNG(_MediaFormat):
    summary = "PNG, 8 or 16 bit, lossless"
    media_name = "png"
    capabilities = FormatCapabilities((".png",), (8, 16), alpha=True, **_ALL_METADATA)
    option_help = _BITS_HELP


class JPEG(_MediaFormat):
    summary = "JPEG (4:4:4 at quality >= 90)"
    media_name = "jpeg"
    capabilities = FormatCapabilities((".jpg", ".jpeg"), quality=True, **_ALL_METADATA)


class WebP(_MediaFormat):
    summary = "WebP (quality 100 is lossless)"
    media_name = "webp"
    pillow_feature = "webp"
    capabilities = FormatCapabilities((".webp",), alpha=True, quality=True, **_ALL_METADATA)


class TIFF(_MediaFormat):
    summary = "TIFF, 8 or 16 bit, deflate"
    media_name = "tiff"
    capabilities = FormatCapabilities((".tif", ".tiff"), (8, 16), alpha=True, **_ALL_METADATA)
    option_help = _BITS_HELP


class HEIF(_MediaFormat):
    summary = "HEIF/HEIC (pillow-heif)"
    media_name = "heif"
    capabilities = FormatCapabilities((".heic", ".heif"), alpha=True, quality=True, **_ALL_METADATA)


class AVIF(_MediaFormat):
    summary = "AVIF"
    media_name = "avif"
    pillow_feature = "avif"
    capabilities = FormatCapabilities((".avif",), alpha=True, quality=True, **_ALL_METADATA)


class BMP(_MediaFormat):
    summary = "BMP, pixels only"
    media_name = "bmp"
    capabilities = FormatCapabilities((".bmp",))


class PPM(_MediaFormat):
    summary = "PPM, pixels only"
    media_name = "ppm"
    capabilities = FormatCapabilities((".ppm",))


class TGA(_MediaFormat):
    summary = "TGA, pixels only"
    media_name = "tga"
    capabilities = FormatCapabilities((".tga",))


class JPEG2000(_MediaFormat):
    summary = "JPEG 2000, pixels only"
    media_name = "jpeg2000"
    pillow_feature = "jpg_2000"
    capabilities = FormatCapabilities((".jp2",))


def capabilities_problem(cls: type) -> str | None:
    """What is wrong with a format class's declared capabilities (None: nothing)."""
    caps = getattr(cls, "capabilities", None)
    if not isinstance(caps, FormatCapabilities):
        return "capabilities must be a lucidflux_cli.imageio.formats.FormatCapabilities"
    if not caps.extensions or not all(isinstance(e, str) and e.startswith(".") for e in caps.extensions):
        return f"capabilities.extensions must be like ('.jxl',), got {caps.extensions!r}"
    if not caps.bit_depths or not set(caps.bit_depths) <= {8, 16}:
        return f"capabilities.bit_depths must be drawn from (8, 16), got {caps.bit_depths!r}"
    return None


# ------------------------------------------------------------------------------------- selection

# --format-option values of the current run, by format name (set around a batch by ``using_options``).
_RUN_OPTIONS: ContextVar[Mapping[str, Mapping[str, str]] | None] = ContextVar("lucidflux_format_options", default=None)


def canonical(name: str) -> str:
    """'JPG' -> 'jpeg', 'tif' -> 'tiff', 'heic' -> 'heif'; other names lower-cased."""
    return media.normalize_format(name)


def create(name: str, options: Mapping[str, str] | None = None) -> OutputFormat:
    """The configured format ``name`` (cached); PluginError (a usage error) naming it and the cause."""
    key = canonical(name)
    options = dict(options or {})
    registry = plugins.registry(plugins.FORMATS)
    cache_key = (key, tuple(sorted(options.items())))
    if cache_key not in registry.instances:
        cls = registry.load(key)
        try:
            writer = cls(options)
        except Exception as error:
            cause = str(error) if isinstance(error, ValueError) else f"cannot be configured ({type(error).__name__}: {error})"
            raise plugins.PluginError("format", key, cause) from error
        writer.name = key
        registry.instances[cache_key] = writer
    return registry.instances[cache_key]


def get(name: str, options: Mapping[str, str] | None = None) -> OutputFormat:
    """Like :func:`create`; ``options`` None means the run's ``--format-option`` values for ``name``."""
    if options is None:
        options = (_RUN_OPTIONS.get() or {}).get(canonical(name), {})
    return create(name, options)


def select(requested: str, options: Mapping[str, str] | None = None) -> None:
    """Check ``--format`` / ``--format-option`` before any work; PluginError or ValueError if unusable."""
    if canonical(requested) == "same":
        if options:
            raise ValueError("--format-option needs an explicit --format NAME (not 'same')")
        return
    create(requested, options)


@contextlib.contextmanager
def using_options(requested: str, options: Mapping[str, str] | None) -> Iterator[None]:
    """Within the block, :func:`get` configures format ``requested`` with ``options``."""
    token = _RUN_OPTIONS.set({canonical(requested): dict(options)} if options else {})
    try:
        yield
    finally:
        _RUN_OPTIONS.reset(token)


def names() -> list[str]:
    """Formats that can be written here (imports each plugin the first time)."""
    return sorted(plugin.name for plugin in plugins.registry(plugins.FORMATS).usable())


def readable_extensions() -> frozenset[str]:
    """Extensions of installed format plugins that Pillow can also open (a plugin such as the
    JPEG XL one registers a Pillow decoder on import), so folder walks pick those files up."""
    from PIL import Image

    found = set()
    for plugin in plugins.registry(plugins.FORMATS).usable():  # imports each plugin once
        Image.init()
        openers = Image.registered_extensions()
        found.update(ext.lower() for ext in plugin.load().capabilities.extensions if openers.get(ext) in Image.OPEN)
    return frozenset(found)


def extension(name: str) -> str:
    """The file extension of format ``name`` ('.jpg'); KeyError if no usable format has that name."""
    key = canonical(name)
    try:
        cls = plugins.registry(plugins.FORMATS).load(key)
    except plugins.PluginError:
        raise KeyError(key) from None
    return cls.capabilities.extensions[0]
