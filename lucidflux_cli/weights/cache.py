"""Where the weights cache is and what it holds; reads only, never the network.

The cache is huggingface_hub's (``--cache-dir`` / ``LUCIDFLUX_CACHE`` move it); every lookup goes
through its public API (``try_to_load_from_cache``, ``scan_cache_dir``), not through paths built here.
"""

from __future__ import annotations

import os
from pathlib import Path

from lucidflux_cli.weights.registry import WeightFile

_TRUE = {"1", "ON", "YES", "TRUE"}


def is_offline(offline: bool = False) -> bool:
    """``--offline`` or ``HF_HUB_OFFLINE=1`` (read now, not at import)."""
    return offline or os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE


def cache_root(cache_dir: Path | str | None = None) -> Path:
    """The hub cache in use: ``cache_dir``, else huggingface_hub's (``HF_HUB_CACHE`` / ``HF_HOME``)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_file(entry: WeightFile, filename: str, cache_dir: Path | str | None = None) -> Path | None:
    """The snapshot path of one cached file of ``entry`` (None: not cached at its revision)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        entry.repo, filename, cache_dir=cache_root(cache_dir), revision=entry.revision
    )
    return Path(found) if isinstance(found, str) else None


def cached_path(entry: WeightFile, cache_dir: Path | str | None = None) -> Path | None:
    """Local path of a fully cached entry (a file, or the snapshot folder of a folder entry)."""
    paths = [cached_file(entry, f, cache_dir) for f in entry.filenames]
    if not paths or any(p is None for p in paths):
        return None
    return entry_path(entry, paths[0])  # type: ignore[arg-type]


def entry_path(entry: WeightFile, first: Path) -> Path:
    """What an entry resolves to, given the path of its first file: the file, or the folder that
    a folder entry's files are relative to (they may sit in subfolders)."""
    if entry.filename is not None:
        return first
    return first.parents[len(Path(entry.files[0]).parts) - 1]


def hub_hashes(entry: WeightFile, cache_dir: Path | str | None = None) -> dict[Path, str | None]:
    """Snapshot path -> the hash the hub gave that file, for ``entry``'s cached files.

    huggingface_hub names each blob after the hub's ETag (the sha256 for LFS files, the git blob
    sha1 otherwise); ``scan_cache_dir`` reports the blob behind each snapshot file. A cache made
    without symlinks holds copies named like the file, which carry no hash (None).
    """
    from huggingface_hub import scan_cache_dir

    root = cache_root(cache_dir)
    if not root.is_dir():
        return {}
    found: dict[Path, str | None] = {}
    for repo in scan_cache_dir(root).repos:
        if repo.repo_id != entry.repo or repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            for file in revision.files:
                is_blob = file.blob_path.parent.name == "blobs"
                found[file.file_path] = file.blob_path.name if is_blob else None
    return found
