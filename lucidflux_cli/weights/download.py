"""Resolving weights to local paths: overrides, else the cache, else a download.

What is cached is used without touching the network. What is missing is planned first (one
``get_hf_file_metadata`` HEAD per file: size, hash, access), every problem reported at once,
checked against free disk space, then fetched: Xet-backed files by ``hf_hub_download`` itself,
plain-HTTP files by :mod:`.resume` (so that an interrupted transfer continues on the next run)
and then linked into the snapshot by ``hf_hub_download``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from lucidflux_cli.weights import registry, resume
from lucidflux_cli.weights.cache import cache_root, cached_path, entry_path, is_offline
from lucidflux_cli.weights.messages import NotAHub, describe, expected, offline_hint
from lucidflux_cli.weights.registry import DISK_MARGIN, GB, WeightFile, WeightPaths, WeightsUnavailable
from lucidflux_cli.weights.resume import Transfer

log = logging.getLogger("lucidflux")


def resolve_weights(
    overrides: dict[str, Path | None],
    *,
    cache_dir: Path | None = None,
    offline: bool = False,
    quiet: bool | None = None,
) -> WeightPaths:
    """Local overrides, else the cache, downloading what is missing unless offline.

    ``quiet=None`` hides progress bars when the ``lucidflux`` logger is above INFO (``-q``).
    """
    known = registry.REGISTRY
    resolved = {name: Path(p) for name, p in overrides.items() if p is not None and name in known}
    needed = [e for e in known.values() if e.name not in resolved and not e.optional]
    resolved.update(ensure(needed, cache_dir=cache_dir, offline=offline, quiet=quiet))
    return WeightPaths(**resolved)


def fetch(
    entry: WeightFile, *, cache_dir: Path | str | None, offline: bool, quiet: bool | None = None
) -> Path:
    """One entry's local path, downloading it if needed."""
    return ensure([entry], cache_dir=cache_dir, offline=offline, quiet=quiet)[entry.name]


def ensure(
    wanted: Sequence[WeightFile],
    *,
    cache_dir: Path | str | None = None,
    offline: bool = False,
    quiet: bool | None = None,
    force: bool = False,
) -> dict[str, Path]:
    """Local paths of ``wanted``; downloads what is missing (all of it with ``force``).

    Raises WeightsUnavailable listing every file that cannot be had, before downloading anything.
    """
    root = cache_root(cache_dir)
    found: dict[str, Path] = {}
    missing: list[WeightFile] = []
    for entry in wanted:
        path = None if force else cached_path(entry, root)
        if path is None:
            missing.append(entry)
        else:
            found[entry.name] = path
    if not missing:
        return found
    if is_offline(offline):
        raise WeightsUnavailable(
            f"{len(missing)} weight(s) not in the cache {root} and offline mode is on:",
            [offline_hint(e) for e in missing],
        )
    plans = _plan(missing, root)
    _check_disk_space(missing, plans, root)
    bar = _bar_class(quiet)
    for entry in missing:
        found[entry.name] = _download_entry(entry, plans[entry.name], root, bar, force)
    return found


# ------------------------------------------------------------------------------------------- planning


def _plan(missing: Sequence[WeightFile], root: Path) -> dict[str, list[Transfer]]:
    """Ask the hub about every missing file; raise one WeightsUnavailable naming all that cannot be had."""
    plans: dict[str, list[Transfer]] = {}
    problems: list[str] = []
    for entry in missing:
        plans[entry.name] = []
        for filename in entry.filenames:
            try:
                plans[entry.name].append(_plan_file(entry, filename, root))
            except Exception as error:
                if not expected(error):
                    raise
                problems.append(describe(entry, filename, error))
                break  # one line per entry is enough (a gated repo fails all its files alike)
    if problems:
        raise WeightsUnavailable(f"cannot download {len(problems)} weight(s):", problems)
    return plans


def _plan_file(entry: WeightFile, filename: str, root: Path) -> Transfer:
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(entry.repo, filename, revision=entry.revision)
    meta = get_hf_file_metadata(url)
    if meta.commit_hash is None or meta.etag is None:
        raise NotAHub(f"{constants.ENDPOINT} did not answer like a Hugging Face hub (no commit/etag headers)")
    pinned = entry.sha256 if entry.filename == filename else None
    if pinned and len(meta.etag) == 64 and meta.etag != pinned:  # an LFS file's ETag is its sha256
        raise ValueError(
            f"the hub serves another file (sha256 {meta.etag[:12]}...) than the one this version of "
            f"lucidflux-cli was verified with (sha256 {pinned[:12]}...); not downloaded"
        )
    if pinned and entry.size and meta.size is not None and meta.size != entry.size:
        raise ValueError(
            f"the hub serves another file ({meta.size} bytes) than the one this version of "
            f"lucidflux-cli was verified with ({entry.size} bytes); not downloaded"
        )
    location = meta.location or url
    return Transfer(
        repo=entry.repo,
        filename=filename,
        url=location,
        etag=meta.etag,
        size=meta.size,
        same_host=urlsplit(location).netloc == urlsplit(url).netloc,
        xet=meta.xet_file_data is not None,
        blob=resume.blob_path(root, entry.repo, meta.etag),
    )


def _check_disk_space(missing: Sequence[WeightFile], plans: dict[str, list[Transfer]], root: Path) -> None:
    """Refuse to start when the cache's filesystem cannot hold what is left to fetch (+ margin)."""
    needed = sum(_needed(entry, plans[entry.name]) for entry in missing)
    if needed == 0:
        return
    free = shutil.disk_usage(_existing_parent(root)).free
    if free < needed * (1 + DISK_MARGIN):
        raise WeightsUnavailable(
            f"not enough disk space in {root}: the missing weights need {needed / GB:.1f} GB "
            f"(+{DISK_MARGIN:.0%} margin), {free / GB:.1f} GB free",
            ["free some space, or move the cache with --cache-dir / LUCIDFLUX_CACHE"],
        )


def _needed(entry: WeightFile, plans: list[Transfer]) -> int:
    """Bytes still to fetch; the registry's approximate size when the hub did not say."""
    remaining = [p.remaining() for p in plans]
    if None in remaining and entry.size is not None:
        return entry.size
    return sum(r or 0 for r in remaining)


def _existing_parent(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


# ---------------------------------------------------------------------------------------- downloading


def _download_entry(entry: WeightFile, plans: list[Transfer], root: Path, bar, force: bool) -> Path:
    paths = []
    for plan in plans:
        try:
            paths.append(_download_file(entry, plan, root, bar, force))
        except Exception as error:
            if isinstance(error, WeightsUnavailable) or not expected(error):
                raise
            line = describe(entry, plan.filename, error, resumable=plan.partial.exists())
            raise WeightsUnavailable("download failed:", [line]) from error
    return entry_path(entry, paths[0])


def _download_file(entry: WeightFile, plan: Transfer, root: Path, bar, force: bool) -> Path:
    from huggingface_hub import hf_hub_download

    by_xet = plan.xet and _xet_client_available()
    if not by_xet:
        resume.download(plan, bar, restart=force)
    log.debug("fetching %s:%s into the cache", entry.repo, plan.filename)
    # With the blob in place this only records the ref and the snapshot link (one HEAD);
    # for Xet files it performs the transfer itself.
    path = hf_hub_download(
        entry.repo,
        plan.filename,
        revision=entry.revision,
        cache_dir=root,
        tqdm_class=bar,
        force_download=force and by_xet,
    )
    return Path(path)


def _xet_client_available() -> bool:
    """What huggingface_hub checks before using its Xet client (HF_HUB_DISABLE_XET read now)."""
    disabled = os.environ.get("HF_HUB_DISABLE_XET", "").upper() in {"1", "ON", "YES", "TRUE"}
    return not disabled and importlib.util.find_spec("hf_xet") is not None


def _bar_class(quiet: bool | None):
    """None (huggingface_hub's own tqdm bars) or a silenced subclass for ``-q``."""
    if quiet is None:
        quiet = not log.isEnabledFor(logging.INFO)
    return _silent_bar() if quiet else None


@functools.cache
def _silent_bar():
    from huggingface_hub.utils import tqdm as hf_tqdm

    class SilentBar(hf_tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return SilentBar
