"""Writing one restored image: stamp the metadata, let the chosen format encode, rename atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lucidflux_cli import plugins
from lucidflux_cli.errors import ImageWriteError, one_line
from lucidflux_cli.imageio import metadata as meta
from lucidflux_cli.imageio.atomic import atomic_write
from lucidflux_cli.imageio.formats import lookup
from lucidflux_cli.imageio.formats.base import OutputFormat, OutputImage


def write_image(
    path: Path,
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None,
    metadata: meta.ImageMetadata | None,
    fmt: str,
    quality: int | None = None,
    bit_depth: int = 8,
    provenance: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
) -> None:
    """Atomically write float RGB in [0, 1] (HxWx3) as ``fmt``, carrying ``metadata`` over.

    ``fmt`` names a format of the registry (built-ins and installed plugins); ``options`` are its
    options (None: the run's ``--format-option``). ``alpha`` (HxW, at the output size) is kept
    where the format can hold it and dropped, not composited, elsewhere; ``bit_depth`` is the
    source's depth (the format writes the nearest it has, or its ``bits`` option); ``quality``
    None is the format's default. EXIF keeps dates, camera and GPS with Orientation = 1 and the
    thumbnail dropped; Software becomes "lucidflux-cli <version>", the provenance summary goes to
    UserComment (and to ImageDescription unless the photo already has one), and XMP gets
    xmp:CreatorTool and dc:description. On failure nothing is left behind, any previous file is
    untouched, and ImageWriteError is raised.
    """
    path = Path(path)
    writer = _format_writer(path, fmt, options)
    if bit_depth not in (8, 16):
        raise ImageWriteError(path, f"unsupported bit depth {bit_depth} (use 8 or 16)")
    try:
        rgb_f, alpha_f = _checked_arrays(rgb, alpha)
    except ValueError as exc:
        raise ImageWriteError(path, str(exc)) from None
    stamped = meta.for_output(path, metadata, provenance, (rgb_f.shape[1], rgb_f.shape[0]))
    image = OutputImage(
        path=path, rgb=rgb_f, alpha=alpha_f, bit_depth=bit_depth, exif=stamped.exif_bytes,
        icc_profile=stamped.icc_profile, xmp=stamped.xmp, summary=stamped.summary, quality=quality,
        exif_tags=stamped.exif,
    )
    try:
        atomic_write(path, lambda fp: writer.write(fp, image))
    except Exception as exc:
        cause = _describe_write_error(exc)
        if not isinstance(exc, (OSError, ImageWriteError)):  # plugin code: say whose and what
            cause = f"format {writer.name!r}: {type(exc).__name__}: {cause}"
        raise ImageWriteError(path, cause) from exc


def _format_writer(path: Path, fmt: str, options: dict[str, str] | None) -> OutputFormat:
    key = lookup.canonical(fmt)
    try:
        return lookup.get(key, options)
    except plugins.PluginError as exc:
        if key not in plugins.registry(plugins.FORMATS).names():
            raise ImageWriteError(path, f"unsupported output format {key!r}") from None
        raise ImageWriteError(path, str(exc)) from None


def _describe_write_error(exc: Exception) -> str:
    # OSError's str() names the hidden temp file; its strerror ("No space left on device") does not.
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return one_line(exc).partition(": ")[2] or type(exc).__name__


def _checked_arrays(rgb: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    rgb = np.ascontiguousarray(rgb)  # encoders view the buffer as bytes
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if alpha is None:
        return rgb, None
    alpha = np.ascontiguousarray(alpha)
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
    return rgb, alpha
