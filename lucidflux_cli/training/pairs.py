"""Training pairs on disk: a ``lucidflux data degrade`` output (manifest.jsonl) or hq/ + lq/ folders.

Accepted sources:

* a ``manifest.jsonl`` of ``lucidflux data degrade`` (or its folder): the ``lucidflux-pairs``
  kind of the one manifest schema (``hq``, ``lq``, ``lq_up`` relative to the manifest's folder,
  or a ``tar`` and a ``key`` for ``--format webdataset``);
* a folder with ``hq/`` and ``lq/`` sub-folders holding the same relative names (the LQ image at
  any size; it is resized to the HQ size as the pipeline resizes its input);
* WebDataset tar shards (``data degrade --format webdataset``): their manifest (records naming a
  ``tar`` and a ``key``), or a folder of ``*.tar`` with ``KEY.hq.png`` + ``KEY.lq.png`` samples.
  Images are read from the tars in place (by offset, never extracted); the LQ is resized to the
  HQ size as for hq/ + lq/ folders. The order is the manifest's (or the tars' sorted, samples in
  tar order), so a resumed run sees the same pairs in the same order.

The ``webdataset`` package's reader is a stream for shuffled, endless training; training here
first encodes every pair once into an indexed cache (training/cache.py), which wants a list of
pairs it can revisit, so the tars are indexed with :mod:`tarfile` (headers only) instead.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from lucidflux_cli import manifests
from lucidflux_cli.errors import LucidFluxError
from lucidflux_cli.imageio import media
from lucidflux_cli.imageio.shards import TarMember, index_tar, samples

MANIFEST = "manifest.jsonl"
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}


class PairError(LucidFluxError):
    """Bad training input; the message is one line naming the file."""


Source = Path | TarMember  # an image file, or an image inside a tar shard


@dataclass(frozen=True)
class TrainingPair:
    name: str
    hq: Source
    lq: Source
    lq_up: Source | None = None  # LQ already at the HQ size (``data degrade``); None: resize ``lq``


def open_image(source: Source) -> Image.Image:
    """The image of a file or of a tar member (read in place)."""
    if isinstance(source, TarMember):
        return Image.open(io.BytesIO(source.read_bytes()))
    return Image.open(source)


def read_source(source: Source) -> media.LoadedImage:
    """The image of a file or of a tar member, read by ``imageio`` exactly as ``restore`` reads an
    input (orientation, profile, bit depth): the one way training reads its pictures."""
    with _local_path(source) as path:
        return media.read_image(path)


@contextlib.contextmanager
def _local_path(source: Source) -> Iterator[Path]:
    """A file path for ``source``: the file itself, or a tar member's bytes in a temporary file
    (the image readers take paths; one member at a time, removed after reading)."""
    if not isinstance(source, TarMember):
        yield Path(source)
        return
    with tempfile.TemporaryDirectory(prefix="lucidflux-member-") as folder:
        path = Path(folder) / Path(source.name).name
        path.write_bytes(source.read_bytes())
        yield path


def source_stamp(source: Source) -> str:
    """Where an image is, its size and when it was last written: a cache entry is redone when any
    changes (the size too: ``cp -p`` or a coarse-time file system can keep the time)."""
    if isinstance(source, TarMember):
        tar = source.tar.stat()
        member = f"{source.tar.resolve()}:{source.name}@{source.offset}+{source.size}"
        return f"{member}@{tar.st_size}@{tar.st_mtime_ns}"
    stat = source.stat()
    return f"{source.resolve()}@{stat.st_size}@{stat.st_mtime_ns}"


def find_pairs(source: Path) -> list[TrainingPair]:
    """Every pair of ``source`` (a manifest, a folder with one, a folder with hq/ and lq/, or of tars)."""
    source = Path(source)
    if source.is_file():
        return read_manifest(source)
    if (source / MANIFEST).is_file():
        return read_manifest(source / MANIFEST)
    if (source / "hq").is_dir() and (source / "lq").is_dir():
        return _folder_pairs(source)
    if any(source.glob("*.tar")):
        return _tar_folder_pairs(source)
    raise PairError(f"{source}: no {MANIFEST}, no hq/ + lq/ folders and no tar shards: nothing to train on")


class _TarIndex:
    """Tar shards' samples (key -> part -> member), each tar indexed once; one-line errors."""

    def __init__(self) -> None:
        self.tars: dict[Path, dict[str, dict[str, TarMember]]] = {}

    def keys(self, tar: Path, where: str) -> list[str]:
        if tar not in self.tars:
            try:
                self.tars[tar] = samples(index_tar(tar))
            except (OSError, tarfile.TarError) as error:
                raise PairError(f"{where}: {tar} cannot be read as a tar ({error})") from error
        return list(self.tars[tar])

    def sample(self, tar: Path, key: str, where: str) -> tuple[TarMember, TarMember]:
        self.keys(tar, where)
        parts = self.tars[tar].get(key, {})
        if "hq.png" not in parts or "lq.png" not in parts:
            raise PairError(f"{where}: {tar} has no {key}.hq.png and {key}.lq.png")
        return parts["hq.png"], parts["lq.png"]


def _tar_folder_pairs(source: Path) -> list[TrainingPair]:
    index, pairs = _TarIndex(), []
    for tar in sorted(source.glob("*.tar")):
        pairs.extend(
            TrainingPair(key, *index.sample(tar, key, str(tar))) for key in index.keys(tar, str(tar))
        )
    if not pairs:
        raise PairError(f"{source}: its tar shards hold no samples")
    return pairs


def read_manifest(path: Path) -> list[TrainingPair]:
    """The pairs of a ``lucidflux data degrade`` manifest (the one schema, :mod:`lucidflux_cli.manifests`):
    PNG files beside it, or samples of its tar shards."""
    try:
        header, records = manifests.read(path, "lucidflux-pairs")
    except manifests.ManifestError as error:
        raise PairError(str(error)) from error
    if "shard" in header:
        raise PairError(
            f"{path}:1: shard {header['shard']} of a degrade run: join the shards first "
            "(`lucidflux data merge`)"
        )
    root, pairs, tars = path.parent, [], _TarIndex()
    for record in records:
        where, name = (
            f"{path}: pair {record['name']}, pass {record['pass']}",
            f"{record['name']}#{record['pass']}",
        )
        if "tar" in record:  # ``--format webdataset``
            pairs.append(TrainingPair(name, *tars.sample(root / record["tar"], record["key"], where)))
            continue
        missing = [key for key in ("hq", "lq", "lq_up") if key not in record]
        if missing:
            raise PairError(f"{where}: neither a tar sample nor files ({', '.join(missing)} missing)")
        hq, lq, lq_up = (root / record[key] for key in ("hq", "lq", "lq_up"))
        for file in (hq, lq, lq_up):
            if not file.is_file():
                raise PairError(f"{where}: {file} does not exist")
        pairs.append(TrainingPair(name, hq, lq, lq_up))
    if not pairs:
        raise PairError(f"{path}: the manifest lists no pairs")
    return pairs


def _images(folder: Path) -> set[Path]:
    return {
        p.relative_to(folder)
        for p in folder.rglob("*")
        if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file()
    }


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
    if isinstance(pair.hq, TarMember):
        with open_image(pair.hq) as image:
            size = image.size
    else:
        size = media.probe_size(pair.hq)  # upright, as the pixels are read (EXIF orientation applied)
        if size is None:
            raise PairError(f"{pair.hq}: not a readable image")
    if pair.lq_up is not None:
        with open_image(pair.lq_up) as image:
            if image.size != size:
                raise PairError(
                    f"{pair.lq_up}: {image.size[0]}x{image.size[1]} but its HQ image {pair.hq} is "
                    f"{size[0]}x{size[1]}"
                )
    if size[0] % multiple or size[1] % multiple:
        raise PairError(
            f"{pair.hq}: {size[0]}x{size[1]} is not a multiple of {multiple} on both sides (latent packing)"
        )
    return size
