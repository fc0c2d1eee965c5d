"""What a photo carries besides pixels (EXIF, ICC, XMP): reading it, and stamping it for output.

Read side: EXIF is normalised to JPEG APP1 form with Orientation 1 (the pixels handed out are
upright), XMP's tiff:Orientation likewise. Write side: :func:`for_output` adds the provenance
(Software, UserComment, ImageDescription, xmp:CreatorTool, dc:description) that every output
format receives through :class:`lucidflux_cli.imageio.formats.OutputImage`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape as xml_escape

import piexif
import piexif.helper
from PIL import Image

from lucidflux_cli import __version__
from lucidflux_cli.errors import one_line
from lucidflux_cli.imageio import exif as exif_ifds
from lucidflux_cli.imageio.sample_forms import SampleForm, default_range

log = logging.getLogger(__name__)

SOFTWARE = f"lucidflux-cli {__version__}"


@dataclass
class ImageMetadata:
    """What a source file carries besides pixels.

    ``format`` is the decoder's name in lower case (Pillow's: 'jpeg', 'mpo', 'png', 'heif', ...);
    :func:`lucidflux_cli.imageio.formats.canonical` folds it onto an output format name.
    ``exif`` is normalised to JPEG APP1 form (``b"Exif\\0\\0"`` + TIFF structure) with
    Orientation = 1, because the pixels handed out are already upright.
    """

    format: str
    exif: bytes | None
    icc_profile: bytes | None
    xmp: bytes | None
    bit_depth: int  # 8 or 16: integer samples; 32: float32 samples (TIFF mode F)
    mode: str
    gray: bool = False  # one channel (gray, black-and-white): given back gray unless --keep-color
    form: SampleForm | None = None  # how the samples are stored, where not 8/16-bit or float [0, 1] RGB/gray
    changes: tuple[str, ...] = ()  # what reading changed that no output gives back (palette -> RGB, ...)
    iptc: bytes | None = None  # TIFF's IPTC-NAA record (tag 33723), carried to TIFF outputs as stored

    def sample_form(self) -> SampleForm:
        """The stored form: :attr:`form`, or the plain one its depth and gray say."""
        if self.form is not None:
            return self.form
        dtype = {8: "uint8", 16: "uint16"}.get(self.bit_depth, "float32")
        return SampleForm("gray" if self.gray else "rgb", dtype, *default_range(dtype))


# -- reading ---------------------------------------------------------------------------------


def read_exif(path: Path, img: Image.Image | None, fmt: str, page: int = 0) -> bytes | None:
    """The source's EXIF (APP1 form, Orientation 1), or None when there is nothing worth keeping.

    Page ``page`` of a multi-page TIFF: its own IFD's tags, as Pillow reads them after seek().
    """
    raw: Any = path if fmt == "tiff" else img.info.get("exif") if img else None
    if fmt == "tiff" and page:
        raw = _page_exif(img) if img else None
    return normalised_exif(raw, path)


def normalised_exif(raw: bytes | Path | None, path: Path) -> bytes | None:
    """EXIF (APP1 or TIFF bytes, or a TIFF file) in APP1 form with Orientation 1; None when there
    is nothing worth keeping."""
    if not raw:
        return None
    exif = exif_ifds.load(str(raw) if isinstance(raw, Path) else raw, path)
    if exif is None:
        return None
    if not any(exif[name] for name in ("Exif", "GPS", "Interop")) and not set(exif["0th"]) - {274}:
        return None  # only a stale Orientation: nothing worth carrying
    exif["0th"][piexif.ImageIFD.Orientation] = 1
    return exif_ifds.encode(exif, path)


def _page_exif(img: Image.Image) -> bytes | None:
    exif = img.getexif()
    for pointer in (exif_ifds.EXIF_POINTER, exif_ifds.GPS_POINTER):
        exif.get_ifd(pointer)  # loaded sub-IFDs are serialised with the rest
    data = exif.tobytes()
    return data if data.startswith(b"Exif") else b"Exif\0\0" + data


_XMP_ORIENTATION = (
    re.compile(rb"(tiff:Orientation\s*=\s*[\"'])\s*\d\s*([\"'])"),
    re.compile(rb"(<tiff:Orientation>)\s*\d\s*(</tiff:Orientation>)"),
)


def read_xmp(img: Image.Image) -> bytes | None:
    """The source's XMP packet with tiff:Orientation reset to 1, or None."""
    xmp: Any = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if not xmp and hasattr(img, "tag_v2"):
        xmp = img.tag_v2.get(700)  # TIFF keeps XMP in a tag
    return clean_xmp(xmp)


def clean_xmp(xmp: Any) -> bytes | None:
    """An XMP packet (bytes, str or tag tuple) with tiff:Orientation reset to 1, or None if empty."""
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, tuple):
        xmp = bytes(xmp)
    if not isinstance(xmp, bytes) or not xmp.strip(b"\0 \t\r\n"):
        return None
    for pattern in _XMP_ORIENTATION:  # pixels are upright now
        xmp = pattern.sub(rb"\g<1>1\g<2>", xmp)
    return xmp


def rgb_icc(icc: bytes | None) -> bytes | None:
    """``icc`` when it is an RGB profile: a gray or CMYK one would misdescribe RGB pixels."""
    return icc if icc_space(icc) == "RGB" else None


def icc_space(icc: bytes | None) -> str | None:
    """The profile's colour space ('RGB', 'GRAY', 'CMYK', ...), from its header; None without one."""
    if not isinstance(icc, bytes) or len(icc) < 20:
        return None
    return icc[16:20].decode("latin-1").strip()


# -- stamping for output ---------------------------------------------------------------------


@dataclass
class OutputMetadata:
    """The metadata every output format receives, provenance already stamped in."""

    exif: dict[str, Any]  # piexif layout
    exif_bytes: bytes  # the same, encoded once (APP1 form)
    icc_profile: bytes | None
    xmp: bytes
    summary: str


def _squash(text: object) -> str:
    return " ".join(str(text).split())


def provenance_summary(provenance: dict[str, str] | None) -> str:
    """One readable line, e.g. 'Restored by lucidflux-cli 0.1.0 (model: x, steps: 28, seed: 7)'."""
    text = f"Restored by {SOFTWARE}"
    # A "Software" entry naming ourselves would only repeat the opening words.
    details = ", ".join(
        f"{key}: {_squash(value)}" for key, value in (provenance or {}).items() if _squash(value) != SOFTWARE
    )
    if details:
        text += f" ({details})"
    return text


def for_output(
    path: Path, metadata: ImageMetadata | None, provenance: dict[str, str] | None, size: tuple[int, int]
) -> OutputMetadata:
    """The source's metadata (or none) stamped with our provenance, for an output of ``size`` (w, h)."""
    summary = provenance_summary(provenance)
    source_exif = metadata.exif if metadata else None
    exif = exif_ifds.load(source_exif, path) if source_exif else None
    exif = _stamp_exif(exif or exif_ifds.empty(), summary, size)
    xmp = _stamp_xmp(metadata.xmp if metadata else None, summary, path)
    icc = metadata.icc_profile if metadata else None
    return OutputMetadata(
        exif=exif, exif_bytes=exif_ifds.encode(exif, path), icc_profile=icc, xmp=xmp, summary=summary
    )


def _stamp_exif(exif: dict[str, Any], summary: str, size: tuple[int, int]) -> dict[str, Any]:
    zeroth, sub = exif["0th"], exif["Exif"]
    zeroth[piexif.ImageIFD.Orientation] = 1
    zeroth[piexif.ImageIFD.Software] = SOFTWARE.encode("ascii")
    description = zeroth.get(piexif.ImageIFD.ImageDescription, b"")
    if not _text(description).strip():
        zeroth[piexif.ImageIFD.ImageDescription] = summary.encode("ascii", "replace")
    encoding = "ascii" if summary.isascii() else "unicode"
    sub[piexif.ExifIFD.UserComment] = piexif.helper.UserComment.dump(summary, encoding=encoding)
    if piexif.ExifIFD.PixelXDimension in sub or piexif.ExifIFD.PixelYDimension in sub:
        sub[piexif.ExifIFD.PixelXDimension], sub[piexif.ExifIFD.PixelYDimension] = size
    # Fields the EXIF standard requires; filled in only when the source lacks them.
    for tag, value in ((282, (72, 1)), (283, (72, 1)), (296, 2)):
        zeroth.setdefault(tag, value)
    sub.setdefault(piexif.ExifIFD.ExifVersion, b"0232")
    return exif


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


# -- XMP -------------------------------------------------------------------------------------

_NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
}
_XPACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_XPACKET_END = '\n<?xpacket end="w"?>'


def _q(prefix: str, name: str) -> str:
    return f"{{{_NS[prefix]}}}{name}"


def _stamp_xmp(source: bytes | None, summary: str, where: Path) -> bytes:
    """XMP naming our tool; merged into the photo's own packet when that parses."""
    if source:
        try:
            return _merge_xmp(source, summary)
        except Exception as exc:  # unparseable XMP: keep it verbatim rather than lose it
            log.warning("%s: keeping XMP unchanged, cannot parse it (%s)", where, one_line(exc))
            return source
    return _fresh_xmp(summary)


def _fresh_xmp(summary: str) -> bytes:
    body = (
        f'<x:xmpmeta xmlns:x="{_NS["x"]}">\n'
        f' <rdf:RDF xmlns:rdf="{_NS["rdf"]}">\n'
        f'  <rdf:Description rdf:about="" xmlns:xmp="{_NS["xmp"]}" xmlns:dc="{_NS["dc"]}">\n'
        f"   <xmp:CreatorTool>{xml_escape(SOFTWARE)}</xmp:CreatorTool>\n"
        '   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">'
        f"{xml_escape(summary)}</rdf:li></rdf:Alt></dc:description>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>"
    )
    return (_XPACKET_BEGIN + body + _XPACKET_END).encode("utf-8")


def _register_prefixes(source: bytes) -> None:
    # ElementTree would otherwise rename every prefix to ns0, ns1, ... (legal but ugly).
    # The registry is process-wide, which is harmless for XMP's stable prefixes.
    for _event, (prefix, uri) in ET.iterparse(io.BytesIO(source), events=("start-ns",)):
        if prefix and not re.fullmatch(r"ns\d+", prefix):
            with contextlib.suppress(ValueError):
                ET.register_namespace(prefix, uri)


def _merge_xmp(source: bytes, summary: str) -> bytes:
    clean = source.rstrip(b"\0 \t\r\n")
    root = ET.fromstring(clean)
    _register_prefixes(clean)
    rdf = root if root.tag == _q("rdf", "RDF") else root.find(f".//{_q('rdf', 'RDF')}")
    if rdf is None:
        raise ValueError("no rdf:RDF element")
    descriptions = rdf.findall(_q("rdf", "Description"))
    has_description = False
    for desc in descriptions:
        desc.attrib.pop(_q("xmp", "CreatorTool"), None)
        for child in desc.findall(_q("xmp", "CreatorTool")):
            desc.remove(child)
        has_description |= _q("dc", "description") in desc.attrib
        has_description |= desc.find(_q("dc", "description")) is not None
    about = descriptions[0].get(_q("rdf", "about"), "") if descriptions else ""
    ours = ET.SubElement(rdf, _q("rdf", "Description"), {_q("rdf", "about"): about})
    ET.SubElement(ours, _q("xmp", "CreatorTool")).text = SOFTWARE
    if not has_description:
        alt = ET.SubElement(ET.SubElement(ours, _q("dc", "description")), _q("rdf", "Alt"))
        li = ET.SubElement(alt, _q("rdf", "li"), {"{http://www.w3.org/XML/1998/namespace}lang": "x-default"})
        li.text = summary
    return (_XPACKET_BEGIN + ET.tostring(root, encoding="unicode") + _XPACKET_END).encode("utf-8")
