"""Writing one restored image: stamp the metadata, let the chosen format encode, rename atomically."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lucidflux_cli import plugins
from lucidflux_cli.atomic import atomic_write
from lucidflux_cli.errors import ImageWriteError, one_line
from lucidflux_cli.imageio import metadata as meta
from lucidflux_cli.imageio import sample_forms
from lucidflux_cli.imageio.formats import lookup
from lucidflux_cli.imageio.formats.base import OutputFormat, OutputImage
from lucidflux_cli.imageio.samples import luminance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Page:
    """One restored page (most files have one) with the metadata of the source page it replaces."""

    rgb: np.ndarray  # float32 (H, W, 3) in [0, 1], at the output size
    alpha: np.ndarray | None = None  # float32 (H, W), when the source had alpha
    metadata: meta.ImageMetadata | None = None
    bit_depth: int = 8  # the source's: 8, 16, or 32 (float)
    gray: bool = False  # give it back gray: the luminance of ``rgb``, one channel where the format has it


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
    gray: bool = False,
) -> None:
    """Atomically write float RGB in [0, 1] (HxWx3) as ``fmt``, carrying ``metadata`` over.

    ``fmt`` names a format of the registry (built-ins and installed plugins); ``options`` are its
    options (None: the run's ``--format-option``). ``alpha`` (HxW, at the output size) is kept
    where the format can hold it and dropped, not composited, elsewhere; ``bit_depth`` is the
    source's depth (the format writes the nearest it has, or its ``bits`` option); ``quality``
    None is the format's default; ``gray`` writes the luminance (one channel where the format
    has gray). EXIF keeps dates, camera and GPS with Orientation = 1 and the
    thumbnail dropped; Software becomes "lucidflux-cli <version>", the provenance summary goes to
    UserComment (and to ImageDescription unless the photo already has one), and XMP gets
    xmp:CreatorTool and dc:description. On failure nothing is left behind, any previous file is
    untouched, and ImageWriteError is raised.
    """
    page = Page(rgb, alpha, metadata, bit_depth, gray)
    write_pages(path, [page], fmt=fmt, quality=quality, provenance=provenance, options=options)


def write_pages(
    path: Path,
    pages: Sequence[Page],
    *,
    fmt: str,
    quality: int | None = None,
    provenance: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
) -> None:
    """Like :func:`write_image`, for one file of several pages (in order, each with its own
    metadata); a format without ``capabilities.pages`` refuses more than one (ImageWriteError)."""
    path = Path(path)
    writer = _format_writer(path, fmt, options)
    if len(pages) > 1 and not writer.capabilities.pages:
        raise ImageWriteError(
            path,
            f"{len(pages)} pages, but format {writer.name!r} holds one per file; "
            "use --format tiff (or same), or --frames first",
        )
    images = [
        _in_written_form(_output_image(path, page, writer, quality, provenance), page, writer)[0]
        for page in pages
    ]
    try:
        atomic_write(
            path,
            lambda fp: writer.write(fp, images[0]) if len(images) == 1 else writer.write_pages(fp, images),
        )
    except Exception as exc:
        cause = _describe_write_error(exc)
        if not isinstance(exc, (OSError, ImageWriteError)):  # plugin code: say whose and what
            cause = f"format {writer.name!r}: {type(exc).__name__}: {cause}"
        raise ImageWriteError(path, cause) from exc


def _output_image(
    path: Path, page: Page, writer: OutputFormat, quality: int | None, provenance: dict[str, str] | None
) -> OutputImage:
    if page.bit_depth not in (8, 16, 32):
        raise ImageWriteError(path, f"unsupported bit depth {page.bit_depth} (use 8, 16 or 32)")
    try:
        rgb_f, alpha_f = _checked_arrays(page.rgb, page.alpha)
    except ValueError as exc:
        raise ImageWriteError(path, str(exc)) from None
    if page.gray:  # every format gets the gray picture; those with gray write one channel
        rgb_f = np.repeat(luminance(rgb_f)[..., None], 3, axis=2)
    stamped = meta.for_output(path, page.metadata, provenance, (rgb_f.shape[1], rgb_f.shape[0]))
    return OutputImage(
        path=path,
        rgb=rgb_f,
        alpha=alpha_f,
        bit_depth=page.bit_depth,
        exif=stamped.exif_bytes,
        icc_profile=_fitting_icc(path, stamped.icc_profile, page.gray and writer.capabilities.gray),
        xmp=stamped.xmp,
        summary=stamped.summary,
        quality=quality,
        exif_tags=stamped.exif,
        gray=page.gray,
        iptc=page.metadata.iptc if page.metadata else None,
    )


def conversion_notes(
    path: Path, pages: Sequence[Page], fmt: str, options: dict[str, str] | None = None
) -> list[str]:
    """What writing ``pages`` as ``fmt`` changes of the source (mode, depth, range, alpha), one line
    each, said once: what a run records in the file's notes, and what --keep-mode strict refuses."""
    writer = _format_writer(Path(path), fmt, options)
    notes: list[str] = []
    for page in pages:
        probe = OutputImage(
            path=Path(path),
            rgb=page.rgb,
            alpha=page.alpha,
            bit_depth=page.bit_depth,
            exif=b"",
            icc_profile=None,
            xmp=b"",
            summary="",
            gray=page.gray,
        )
        for note in _in_written_form(probe, page, writer)[1]:
            if note not in notes:
                notes.append(note)
    return notes


def _in_written_form(image: OutputImage, page: Page, writer: OutputFormat) -> tuple[OutputImage, list[str]]:
    """``image`` set to be written in the source's stored form as far as ``writer`` holds it, and
    a line per change (sample_forms.fit), including what reading changed for good."""
    metadata = page.metadata
    if metadata is None:
        return image, []
    caps = writer.capabilities
    chosen_bits = getattr(writer, "bits", None)  # an explicit --format-option bits: the user's choice
    form = (
        dataclasses.replace(metadata.sample_form(), colour="rgb")
        if not page.gray and metadata.sample_form().colour == "gray"
        else metadata.sample_form()
    )
    wide = caps.wide_samples and chosen_bits is None
    written, notes = sample_forms.fit(
        form,
        colours=caps.colours,
        wide=wide,
        bits=writer.bits_for(image),
        fmt=writer.name,
        depth_asked=chosen_bits is not None,
    )
    notes = [*metadata.changes, *notes]
    if image.alpha is not None and not caps.alpha:
        notes.append(f"alpha channel not written ({writer.name} has none)")
    special = written.colour in ("cmyk", "lab") or written.wide
    if not special:
        return image, notes
    icc = written.icc if written.colour == "cmyk" else None if written.colour == "lab" else image.icc_profile
    return dataclasses.replace(image, form=written, icc_profile=icc), notes


def _fitting_icc(path: Path, icc: bytes | None, gray_output: bool) -> bytes | None:
    """The source's profile when it describes the output's channels; else dropped, in one line."""
    space = meta.icc_space(icc)
    if icc is None or space == ("GRAY" if gray_output else "RGB"):
        return icc
    log.warning(
        "%s: the source's %s ICC profile is not written: the output is %s",
        path,
        space,
        "gray" if gray_output else "RGB",
    )
    return None


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
