"""EXIF as piexif dicts, and their serialisation into TIFF structures (EXIF blobs, TIFF files).

piexif parses EXIF well, but its dump() leaves no next-IFD field in the sub-IFDs, does not
word-align values (ExifTool flags both) and raises on one odd value instead of dropping it, so the
IFDs are serialised here (docs/architecture.md).
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Any

import piexif

from lucidflux_cli.errors import one_line

log = logging.getLogger(__name__)

# Tags of IFD0 that describe the old pixel layout; copying them to another file would lie.
STRUCTURE_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 277, 278, 279, 280, 281, 284, 290, 291}
    | {292, 293, 317, 320, 322, 323, 324, 325, 330, 332, 338, 339, 340, 341, 347, 512, 513, 514, 515}
    | {517, 518, 519, 520, 521, 529, 530, 532, 700, 34675}
)
IFD_NAMES = ("0th", "Exif", "GPS", "Interop")
EXIF_POINTER, GPS_POINTER, INTEROP_POINTER = 34665, 34853, 40965
_POINTER_TAGS = frozenset({EXIF_POINTER, GPS_POINTER, INTEROP_POINTER})

Entries = dict[int, tuple[int, int, bytes]]  # tag -> (TIFF type, count, big-endian payload)

_TIFF_CODES = {1: "B", 3: "H", 4: "I", 6: "b", 7: "B", 8: "h", 9: "i", 11: "f", 12: "d"}


def empty() -> dict[str, Any]:
    return {"0th": {}, "Exif": {}, "GPS": {}, "Interop": {}, "1st": {}, "thumbnail": None}


def load(raw: bytes | str, where: Path) -> dict[str, Any] | None:
    """piexif dict without structure tags and thumbnail, or None (with a warning) if unreadable."""
    try:
        exif = piexif.load(raw)
    except Exception as exc:
        log.warning("%s: ignoring unreadable EXIF (%s)", where, one_line(exc))
        return None
    for name in IFD_NAMES:
        exif.setdefault(name, {})
    for tag in STRUCTURE_TAGS:
        exif["0th"].pop(tag, None)
    exif["1st"] = {}
    exif["thumbnail"] = None  # a thumbnail would show the unrestored picture
    return exif


def encode(exif: dict[str, Any], where: Path) -> bytes:
    """A piexif-style dict as JPEG APP1 EXIF bytes (``b"Exif\\0\\0"`` + big-endian TIFF)."""
    ifd0, sub, gps, interop = ifds(exif, where)
    data, _pointers = layout(ifd0, sub, gps, interop, 8)
    return b"Exif\0\0MM\0*" + struct.pack(">I", 8) + data


def ifds(exif: dict[str, Any], where: Path) -> tuple[Entries, Entries, Entries, Entries]:
    """IFD0 (structure tags left out), Exif, GPS and Interop entries of a piexif dict."""
    zeroth = {t: v for t, v in exif["0th"].items() if t not in STRUCTURE_TAGS}
    return (
        _entries(zeroth, "Image", where),
        _entries(exif["Exif"], "Exif", where),
        _entries(exif["GPS"], "GPS", where),
        _entries(exif["Interop"], "Interop", where),
    )


def field(kind: int, value: Any) -> tuple[int, int, bytes]:
    """(type, count, big-endian bytes) of one value as piexif represents it."""
    if kind == 2:  # ASCII, NUL-terminated
        data = value if isinstance(value, bytes) else str(value).encode("latin-1", "replace")
        data = data if data.endswith(b"\0") else data + b"\0"
        return kind, len(data), data
    if kind in (1, 7) and isinstance(value, (bytes, bytearray)):
        return kind, len(value), bytes(value)
    if kind in (5, 10):  # (num, den) or a sequence of them
        pairs = [value] if isinstance(value[0], int) else list(value)
        code = "I" if kind == 5 else "i"
        return kind, len(pairs), struct.pack(f">{2 * len(pairs)}{code}", *(n for pair in pairs for n in pair))
    values = (value,) if isinstance(value, (int, float)) else tuple(value)
    return kind, len(values), struct.pack(f">{len(values)}{_TIFF_CODES[kind]}", *values)


def _entries(tags: dict[int, Any], table: str, where: Path) -> Entries:
    """Encode one piexif IFD dict (types from piexif's tables); values that do not fit are dropped."""
    types = piexif.TAGS[table]
    entries: Entries = {}
    for tag, value in tags.items():
        kind = types.get(tag, {}).get("type")
        if kind is None or tag in _POINTER_TAGS:
            continue
        try:
            entries[tag] = field(kind, value)
        except (struct.error, TypeError, ValueError, IndexError, KeyError):
            log.warning("%s: dropping EXIF tag %s/%d that cannot be encoded", where, table, tag)
    return entries


def _ifd(entries: Entries, at: int) -> bytes:
    """Serialise one IFD placed at offset ``at``; values over 4 bytes follow its table."""
    table_size = 2 + 12 * len(entries) + 4
    table = bytearray(struct.pack(">H", len(entries)))
    extra = bytearray()
    for tag in sorted(entries):
        kind, count, data = entries[tag]
        if len(data) <= 4:
            value = data.ljust(4, b"\0")
        else:
            value = struct.pack(">I", at + table_size + len(extra))
            extra += data + (b"\0" if len(data) % 2 else b"")  # keep offsets word-aligned
        table += struct.pack(">HHI", tag, kind, count) + value
    table += struct.pack(">I", 0)  # no next IFD
    return bytes(table + extra)


def layout(
    ifd0: Entries | None, exif: Entries, gps: Entries, interop: Entries, at: int
) -> tuple[bytes, dict[int, int]]:
    """IFD0 (unless None: it is written elsewhere) then the Exif, GPS and Interop IFDs it points to,
    placed from offset ``at`` (even); also the offsets IFD0's pointer tags must hold."""
    pointers: Entries = ifd0 if ifd0 is not None else {}
    chain: list[tuple[Entries, Entries | None, int]] = [(ifd0, None, 0)] if ifd0 is not None else []
    if exif or interop:  # Interop hangs off the Exif IFD, so that one must exist
        chain.append((exif, pointers, EXIF_POINTER))
    if gps:
        chain.append((gps, pointers, GPS_POINTER))
    if interop:
        chain.append((interop, exif, INTEROP_POINTER))
    # Pointer values do not change sizes: place placeholders, measure, then fill in offsets.
    for _ifd_entries, owner, tag in chain:
        if owner is not None:
            owner[tag] = field(4, 0)
    positions, where = [], at
    for entries, _owner, _tag in chain:
        positions.append(where)
        where += len(_ifd(entries, where))
    for (_ifd_entries, owner, tag), offset in zip(chain, positions, strict=True):
        if owner is not None:
            owner[tag] = field(4, offset)
    data = b"".join(_ifd(entries, offset) for (entries, _o, _t), offset in zip(chain, positions, strict=True))
    offsets = {
        tag: offset for (_e, owner, tag), offset in zip(chain, positions, strict=True) if owner is pointers
    }
    return data, offsets
