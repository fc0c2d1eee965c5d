"""Training pairs on disk: a ``lucidflux data degrade`` output (manifest.jsonl) or hq/ + lq/ folders.

Accepted sources:

* a ``manifest.jsonl`` of ``lucidflux data degrade`` (or its folder): the ``lucidflux-pairs``
  kind of the one manifest schema (``hq``, ``lq``, ``lq_up`` relative to the manifest's folder);
* a folder with ``hq/`` and ``lq/`` sub-folders holding the same relative names (the LQ image at
  any size; it is resized to the HQ size as the pipeline resizes its input).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from lucidflux_cli import manifests
from lucidflux_cli.errors import LucidFluxError
from lucidflux_cli.imageio import media

MANIFEST = "manifest.jsonl"
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}


class PairError(LucidFluxError):
    """Bad training input; the message is one line naming the file."""


@dataclass(frozen=True)
class TrainingPair:
    name: str
    hq: Path
    lq: Path
    lq_up: Path | None = None  # LQ already at the HQ size (``data degrade``); None: resize ``lq``


def find_pairs(source: Path) -> list[TrainingPair]:
    """Every pair of ``source`` (a manifest, a folder with one, or a folder with hq/ and lq/)."""
    source = Path(source)
    if source.is_file():
        return read_manifest(source)
    if (source / MANIFEST).is_file():
        return read_manifest(source / MANIFEST)
    if (source / "hq").is_dir() and (source / "lq").is_dir():
        return _folder_pairs(source)
    raise PairError(f"{source}: no {MANIFEST} and no hq/ + lq/ folders: nothing to train on")


def read_manifest(path: Path) -> list[TrainingPair]:
    """The pairs of a ``lucidflux data degrade`` manifest (the one schema, :mod:`lucidflux_cli.manifests`)."""
    try:
        header, records = manifests.read(path, "lucidflux-pairs")
    except manifests.ManifestError as error:
        raise PairError(str(error)) from error
    if "shard" in header:
        raise PairError(f"{path}:1: shard {header['shard']} of a degrade run: join the shards first "
                        "(`lucidflux data merge`)")
    root, pairs = path.parent, []
    for record in records:
        hq, lq, lq_up = (root / record[key] for key in ("hq", "lq", "lq_up"))
        for file in (hq, lq, lq_up):
            if not file.is_file():
                raise PairError(f"{path}: {file} (pair {record['name']}, pass {record['pass']}) does not exist")
        pairs.append(TrainingPair(f"{record['name']}#{record['pass']}", hq, lq, lq_up))
    if not pairs:
        raise PairError(f"{path}: the manifest lists no pairs")
    return pairs


def _images(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file()}


def _folder_pairs(source: Path) -> list[TrainingPair]:
    hq, lq = _images(source / "hq"), _images(source / "lq")
    for side, lonely in (("hq", sorted(hq - lq)), ("lq", sorted(lq - hq))):
        if lonely:
            other = "lq" if side == "hq" else "hq"
            more = f" (and {len(lonely) - 1} more)" if len(lonely) > 1 else ""
            raise PairError(f"{source / side / lonely[0]} has no partner {source / other / lonely[0]}{more}")
    if not hq:
        raise PairError(f"{source}: hq/ and lq/ hold no images")
    return [TrainingPair(str(name), source / "hq" / name, source / "lq" / name) for name in sorted(hq)]


def check_sizes(pair: TrainingPair, multiple: int = 16) -> tuple[int, int]:
    """The pair's processing size (width, height); one-line errors for what cannot train."""
    size = media.probe_size(pair.hq)  # upright, as the pixels are read (EXIF orientation applied)
    if size is None:
        raise PairError(f"{pair.hq}: not a readable image")
    if pair.lq_up is not None:
        with Image.open(pair.lq_up) as image:
            if image.size != size:
                raise PairError(f"{pair.lq_up}: {image.size[0]}x{image.size[1]} but its HQ image {pair.hq} is "
                                f"{size[0]}x{size[1]}")
    if size[0] % multiple or size[1] % multiple:
        raise PairError(f"{pair.hq}: {size[0]}x{size[1]} is not a multiple of {multiple} on both sides (latent packing)")
    return size
