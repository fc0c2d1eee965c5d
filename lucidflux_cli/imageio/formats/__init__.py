"""Output formats: how a restored image and its metadata become a file.

The contract (:class:`OutputFormat`, :class:`FormatCapabilities`, :class:`OutputImage`) is in
:mod:`.base`; each built-in family is one class that owns its names, extensions, capabilities
and encoder (:mod:`.png_format`, :mod:`.tiff_format`, :mod:`.pillow_formats`), registered through
the ``lucidflux.formats`` entry points exactly like a plugin (docs/plugins.md). :mod:`.lookup`
finds formats by name; :func:`write_image` writes one image atomically (:func:`write_pages` several
pages into one file).
"""

from lucidflux_cli.imageio.formats.base import (
    FormatCapabilities,
    OutputFormat,
    OutputImage,
    capabilities_problem,
)
from lucidflux_cli.imageio.formats.lookup import (
    EXTENSIONS,
    canonical,
    create,
    extension,
    format_from_extension,
    get,
    names,
    output_format_for,
    readable_extensions,
    select,
    using_options,
)
from lucidflux_cli.imageio.formats.writing import Page, conversion_notes, write_image, write_pages

__all__ = [
    "EXTENSIONS",
    "FormatCapabilities",
    "OutputFormat",
    "OutputImage",
    "Page",
    "canonical",
    "conversion_notes",
    "capabilities_problem",
    "create",
    "extension",
    "format_from_extension",
    "get",
    "names",
    "output_format_for",
    "readable_extensions",
    "select",
    "using_options",
    "write_image",
    "write_pages",
]
