"""The one registry of default weight files, and resolving them to local paths.

Local overrides win; otherwise files come from the Hugging Face cache (the HF cache by default,
``--cache-dir`` / ``LUCIDFLUX_CACHE`` to move it). What is cached is used without touching the
network; what is missing is planned first (one HEAD per file: sizes, access, gating), checked
against free disk space, then downloaded. Plain-HTTP transfers keep their partial data in
``blobs/<etag>.incomplete`` and resume it on the next run (huggingface_hub 2.x deletes its own
partial files on failure); Xet-backed files go through huggingface_hub's Xet client.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from lucidflux_cli.errors import LucidFluxError

log = logging.getLogger("lucidflux")


@dataclass(frozen=True)
class WeightPaths:
    """Local paths of every weight file the pipeline needs."""

    flux: Path  # flux1-dev.safetensors (BFL, bf16 or fp8) or a FLUX.1-dev diffusers folder
    ae: Path  # ae.safetensors or a diffusers vae/ folder (or the FLUX.1-dev folder)
    lucidflux: Path  # lucidflux.pth
    swinir: Path | None  # general_swinir_v1.ckpt (None when another remover is chosen)
    siglip: Path  # SigLIP folder
    prompt_embeddings: Path  # prompt_embeddings.pt
    text_encoders: Path | None = None  # FLUX.1-dev folder with text_encoder*/ and tokenizer*/ (--prompt only)


GB = 1_000_000_000
# Headroom on top of the bytes still to fetch: the filesystem, logs and the prompt cache need some too.
DISK_MARGIN = 0.05
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class WeightFile:
    """One default weight: a file, or a folder of ``files``, from a Hugging Face repository.

    ``size`` is the approximate size in bytes of everything the entry downloads (``None``:
    unknown); it is shown by ``weights list`` and used only as a fallback for the disk-space
    check when the hub does not report a size. ``sha256`` pins a single-file entry's content;
    without it ``weights verify`` checks against the hub's own hash recorded in the cache.
    """

    name: str  # the WeightPaths field it fills
    repo: str
    filename: str | None  # None: a folder made of ``files``
    revision: str = "main"
    files: tuple[str, ...] = ()
    size: int | None = None
    sha256: str | None = None
    gated: bool = False
    about: str = ""
    optional: bool = False  # not part of a default run (nor of a bare ``weights download``)

    @property
    def filenames(self) -> tuple[str, ...]:
        return (self.filename,) if self.filename is not None else self.files

    @property
    def source(self) -> str:
        what = self.filename if self.filename is not None else "{" + ",".join(self.files) + "}"
        return f"{self.repo}:{what}@{self.revision}"

    @property
    def flag(self) -> str:
        """The ``restore`` option that replaces it with a local path."""
        return "--" + self.name.replace("_", "-")


REGISTRY: dict[str, WeightFile] = {
    w.name: w
    for w in (
        # sha256 as published by Black Forest Labs (github.com/black-forest-labs/flux README) and
        # in widely used model manifests; the other files' hashes are not published: the hub's own
        # LFS hash is checked instead (weights verify).
        WeightFile("flux", "black-forest-labs/FLUX.1-dev", "flux1-dev.safetensors", size=23_802_932_552,
                   sha256="4610115bb0c89560703c892c59ac2742fa821e60ef5871b33493ba544683abd7",
                   gated=True, about="FLUX.1-dev transformer (12B)"),
        WeightFile("ae", "black-forest-labs/FLUX.1-dev", "ae.safetensors", size=335_304_388,
                   sha256="afc8e28272cd15db3919bacdb6918ce9c1ed22e96cb12c4d5ed0fba823529e38",
                   gated=True, about="FLUX.1 autoencoder"),
        WeightFile("lucidflux", "W2GenAI/LucidFlux", "lucidflux.pth",
                   about="condition branches, modulation, connector"),
        WeightFile("prompt_embeddings", "W2GenAI/LucidFlux", "prompt_embeddings.pt",
                   about="precomputed prompt (T5/CLIP)"),
        WeightFile("swinir", "lxq007/DiffBIR", "general_swinir_v1.ckpt", size=68_000_000,
                   about="SwinIR degradation remover (DiffBIR)"),
        WeightFile(
            "text_encoders",
            "black-forest-labs/FLUX.1-dev",
            None,
            files=(
                "text_encoder/config.json", "text_encoder/model.safetensors",
                "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
                "tokenizer/vocab.json",
                "text_encoder_2/config.json", "text_encoder_2/model-00001-of-00002.safetensors",
                "text_encoder_2/model-00002-of-00002.safetensors", "text_encoder_2/model.safetensors.index.json",
                "tokenizer_2/special_tokens_map.json", "tokenizer_2/spiece.model", "tokenizer_2/tokenizer.json",
                "tokenizer_2/tokenizer_config.json",
            ),
            size=9_800_000_000,
            gated=True,
            about="CLIP-L and T5-XXL text encoders (only for --prompt)",
            optional=True,
        ),
        WeightFile(
            "siglip",
            "google/siglip2-so400m-patch16-512",
            None,
            files=("config.json", "model.safetensors", "preprocessor_config.json"),
            size=4_500_000_000,
            about="SigLIP vision tower",
        ),
    )
}


class WeightsUnavailable(LucidFluxError):
    """Weight files are neither given locally nor obtainable (offline, gated, no network, no space).

    ``problems`` holds one line per file or cause; ``str()`` is a heading plus those lines.
    """

    def __init__(self, heading: str, problems: Sequence[str] = ()):
        self.problems = list(problems)
        super().__init__("\n  ".join([heading, *self.problems]))


# --------------------------------------------------------------------------------------------- public


def is_offline(offline: bool = False) -> bool:
    """``--offline`` or ``HF_HUB_OFFLINE=1`` (read now, not at import)."""
    return offline or os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE


def cache_root(cache_dir: Path | str | None = None) -> Path:
    """The hub cache in use: ``cache_dir``, else huggingface_hub's (``HF_HUB_CACHE`` / ``HF_HOME``)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def entries(names: Iterable[str] | None = None) -> list[WeightFile]:
    """Registry entries by name (all when ``names`` is empty); KeyError names the unknown ones."""
    if not names:
        return [entry for entry in REGISTRY.values() if not entry.optional]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise KeyError(f"unknown weight(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    return [REGISTRY[n] for n in dict.fromkeys(names)]


def cached_path(entry: WeightFile, cache_dir: Path | str | None = None) -> Path | None:
    """Local path of a fully cached entry (a file, or the snapshot folder of a folder entry)."""
    paths = _cached_files(entry, cache_root(cache_dir))
    if paths is None:
        return None
    return paths[0] if entry.filename is not None else _snapshot_folder(entry, paths[0])


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
    resolved = {name: Path(p) for name, p in overrides.items() if p is not None and name in REGISTRY}
    needed = [e for e in REGISTRY.values() if e.name not in resolved and not e.optional]
    resolved.update(ensure(needed, cache_dir=cache_dir, offline=offline, quiet=quiet))
    return WeightPaths(**resolved)


def fetch(entry: WeightFile, *, cache_dir: Path | None, offline: bool, quiet: bool | None = None) -> Path:
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
            [_offline_hint(e) for e in missing],
        )
    plans = _plan(missing, root)
    _check_disk_space(missing, plans, root)
    bar = _bar_class(quiet)
    for entry in missing:
        found[entry.name] = _download_entry(entry, plans[entry.name], root, bar, force)
    return found


@dataclass(frozen=True)
class FileCheck:
    """``weights verify`` result for one file: ok, mismatch, missing or unverified."""

    name: str
    filename: str
    status: str
    path: Path | None = None
    detail: str = ""


def verify(entry: WeightFile, cache_dir: Path | str | None = None) -> list[FileCheck]:
    """Rehash each cached file of ``entry`` against the registry's sha256 or the hub's hash.

    The hub's hash is the cache blob's name: sha256 for LFS files, the git blob sha1 otherwise.
    """
    root = cache_root(cache_dir)
    checks = []
    for filename in entry.filenames:
        pointer = _pointer(entry, filename, root)
        if pointer is None:
            hint = f"run `lucidflux weights download {entry.name}`"
            checks.append(FileCheck(entry.name, filename, "missing", detail=hint))
            continue
        expected = entry.sha256 if entry.filename is not None and entry.sha256 else _blob_name(pointer)
        checks.append(_check(entry.name, filename, pointer, expected))
    return checks


def registry_markdown() -> str:
    """The registry as a Markdown table (docs/weights.md embeds it)."""
    rows = ["| name | what | repository | file(s) | revision | approx. size | pinned sha256 | option |",
            "|---|---|---|---|---|---|---|---|"]
    for e in REGISTRY.values():
        shown = dict.fromkeys(f.split("/")[0] + "/" if "/" in f else f for f in e.filenames)
        files = ", ".join(f"`{f}`" for f in shown) + ("" if e.filename else " (folder)")
        gated = " (gated)" if e.gated else ""
        size = format_size(e.size)
        pinned = f"`{e.sha256[:12]}…`" if e.sha256 else "hub's hash"
        rows.append(f"| {e.name} | {e.about} | `{e.repo}`{gated} | {files} | `{e.revision}` | {size} | {pinned} "
                    f"| `{e.flag}` |")
    return "\n".join(rows)


def _snapshot_folder(entry: WeightFile, first: Path) -> Path:
    """The folder a folder entry's files are relative to (its files may sit in subfolders)."""
    return first.parents[len(Path(entry.files[0]).parts) - 1]


def format_size(size: int | None, approx: bool = True) -> str:
    if size is None:
        return "?"
    prefix = "~" if approx else ""
    for unit, scale in (("GB", GB), ("MB", 1_000_000), ("KB", 1000)):
        if size >= scale:
            return f"{prefix}{size / scale:.{1 if unit == 'GB' else 0}f} {unit}"
    return f"{size} B"


# ----------------------------------------------------------------------------------------- cache reads


def _cached_files(entry: WeightFile, root: Path) -> list[Path] | None:
    paths = [_pointer(entry, f, root) for f in entry.filenames]
    if any(p is None for p in paths):
        return None
    return paths  # type: ignore[return-value]


def _pointer(entry: WeightFile, filename: str, root: Path) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(entry.repo, filename, cache_dir=root, revision=entry.revision)
    return Path(found) if isinstance(found, str) else None


def _blob_name(pointer: Path) -> str | None:
    """The hub hash a cached file was stored under, read from its snapshot symlink."""
    if not pointer.is_symlink():
        return None  # copies (no symlink support) keep no record of the hash
    return Path(os.readlink(pointer)).name


def _check(name: str, filename: str, path: Path, expected: str | None) -> FileCheck:
    if expected is None or len(expected) not in (40, 64):
        return FileCheck(name, filename, "unverified", path, "no checksum known for this file")
    actual = _git_blob_sha1(path) if len(expected) == 40 else _sha256(path)
    if actual == expected.lower():
        return FileCheck(name, filename, "ok", path)
    return FileCheck(
        name, filename, "mismatch", path,
        f"expected {expected}, got {actual}; re-download with `lucidflux weights download --force {name}`",
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def _git_blob_sha1(path: Path) -> str:
    """Git's object id of a (non-LFS) file: sha1 of ``blob <size>\\0`` + content."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _FilePlan:
    filename: str
    url: str
    etag: str
    size: int | None
    xet: bool
    blob: Path
    lock: Path  # the lock huggingface_hub takes for this blob
    same_host: bool  # the download URL is on the hub itself: authorization may be sent

    @property
    def partial(self) -> Path:
        return self.blob.with_name(self.blob.name + ".incomplete")

    def remaining(self) -> int | None:
        if self.blob.exists():
            return 0
        if self.size is None:
            return None
        done = self.partial.stat().st_size if self.partial.exists() else 0
        return max(self.size - done, 0)


def _plan(missing: Sequence[WeightFile], root: Path) -> dict[str, list[_FilePlan]]:
    """HEAD every missing file; raise one WeightsUnavailable naming all that cannot be had."""
    plans: dict[str, list[_FilePlan]] = {}
    problems: list[str] = []
    for entry in missing:
        plans[entry.name] = []
        for filename in entry.filenames:
            try:
                plans[entry.name].append(_plan_file(entry, filename, root))
            except Exception as error:
                if not _expected(error):
                    raise
                problems.append(_describe(entry, filename, error))
                break  # one line per entry is enough (a gated repo fails all its files alike)
    if problems:
        raise WeightsUnavailable(f"cannot download {len(problems)} weight(s):", problems)
    return plans


def _plan_file(entry: WeightFile, filename: str, root: Path) -> _FilePlan:
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import repo_folder_name

    url = hf_hub_url(entry.repo, filename, revision=entry.revision)
    meta = get_hf_file_metadata(url)
    if meta.commit_hash is None or meta.etag is None:
        raise _NotAHub(f"{constants.ENDPOINT} did not answer like a Hugging Face hub (no commit/etag headers)")
    pinned = entry.sha256 if entry.filename == filename else None
    if pinned and len(meta.etag) == 64 and meta.etag != pinned:  # LFS etags are the content's sha256
        raise ValueError(f"the hub serves another file (sha256 {meta.etag[:12]}...) than the one this version of "
                         f"lucidflux-cli was verified with (sha256 {pinned[:12]}...); not downloaded")
    folder = repo_folder_name(repo_id=entry.repo, repo_type="model")
    location = meta.location or url
    return _FilePlan(
        filename=filename, url=location, etag=meta.etag, size=meta.size,
        xet=meta.xet_file_data is not None, blob=root / folder / "blobs" / meta.etag,
        lock=root / ".locks" / folder / f"{meta.etag}.lock",
        same_host=urlsplit(location).netloc == urlsplit(url).netloc,
    )


class _NotAHub(OSError):
    """The endpoint answered, but not like a Hugging Face hub."""


def _check_disk_space(missing: Sequence[WeightFile], plans: dict[str, list[_FilePlan]], root: Path) -> None:
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


def _needed(entry: WeightFile, plans: list[_FilePlan]) -> int:
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


def _download_entry(entry: WeightFile, plans: list[_FilePlan], root: Path, bar, force: bool) -> Path:
    paths = []
    for plan in plans:
        try:
            paths.append(_download_file(entry, plan, root, bar, force))
        except Exception as error:
            if isinstance(error, WeightsUnavailable) or not _expected(error):
                raise
            line = _describe(entry, plan.filename, error, resumable=plan.partial.exists())
            raise WeightsUnavailable("download failed:", [line]) from error
    return paths[0] if entry.filename is not None else _snapshot_folder(entry, paths[0])


def _download_file(entry: WeightFile, plan: _FilePlan, root: Path, bar, force: bool) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import WeakFileLock

    if force:
        _forget(entry, plan, root)
    if not plan.blob.exists() and not (plan.xet and _xet_client_available()):
        plan.lock.parent.mkdir(parents=True, exist_ok=True)
        with WeakFileLock(plan.lock):  # one writer per blob, across processes
            _resumable_get(plan, bar)
    log.debug("linking %s:%s into the cache", entry.repo, plan.filename)
    # With the blob in place this only records the ref and the snapshot link (one HEAD);
    # for Xet files it performs the transfer itself.
    return Path(hf_hub_download(entry.repo, plan.filename, revision=entry.revision, cache_dir=root, tqdm_class=bar))


def _xet_client_available() -> bool:
    """What huggingface_hub checks before using its Xet client (HF_HUB_DISABLE_XET read now)."""
    import importlib.util

    disabled = os.environ.get("HF_HUB_DISABLE_XET", "").upper() in _TRUE
    return not disabled and importlib.util.find_spec("hf_xet") is not None


def _resumable_get(plan: _FilePlan, bar) -> None:
    """Append to ``<blob>.incomplete`` from where a previous run stopped, check, then publish."""
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    if plan.blob.exists():
        return
    plan.blob.parent.mkdir(parents=True, exist_ok=True)
    partial = plan.partial
    done = partial.stat().st_size if partial.exists() else 0
    if plan.size is not None and done > plan.size:
        partial.unlink()  # not a prefix of this blob: start over
        done = 0
    if done:
        log.info("resuming %s at %s", plan.filename, format_size(done, approx=False))
    headers = build_hf_headers()
    if not plan.same_host:
        headers.pop("authorization", None)  # signed CDN URLs must not receive the hub token
    with partial.open("ab") as out:
        http_get(plan.url, out, resume_size=done, headers=headers, expected_size=plan.size,
                 displayed_filename=plan.filename, tqdm_class=bar)
    if len(plan.etag) == 64:  # LFS: the etag is the content's sha256; a resumed file must match it
        if (plan.size or 0) >= GB:
            log.info("checking %s (sha256)", plan.filename)
        actual = _sha256(partial)
        if actual != plan.etag:
            partial.unlink()
            raise OSError(f"sha256 mismatch after download ({actual}); the partial file was removed, run again")
    os.replace(partial, plan.blob)


def _forget(entry: WeightFile, plan: _FilePlan, root: Path) -> None:
    """Drop a cached copy (``--force``): its snapshot link, the blob it names, partial data."""
    pointer = _pointer(entry, plan.filename, root)
    if pointer is not None:
        if pointer.is_symlink():  # unlink the blob, never what a shared-store blob links to
            (pointer.parent / os.readlink(pointer)).unlink(missing_ok=True)
        pointer.unlink()
    for stale in (plan.blob, plan.partial):
        stale.unlink(missing_ok=True)


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


# ------------------------------------------------------------------------------------------- messages


def _offline_hint(entry: WeightFile) -> str:
    hint = f"{entry.name}: {entry.source} is not cached; run `lucidflux weights download {entry.name}` online"
    if entry.gated:
        hint += f" (gated: accept the licence at https://huggingface.co/{entry.repo} first)"
    return hint + f", or pass {entry.flag} PATH"


def _gated_hint(entry: WeightFile) -> str:
    from huggingface_hub import get_token

    url = f"https://huggingface.co/{entry.repo}"
    if _safe(get_token) is None:
        how = f"log in at {url} and accept its licence, then run `hf auth login` or set HF_TOKEN"
    else:
        how = f"the token in use has no access yet: accept the licence at {url} with the same account"
    return f"{entry.name}: {entry.repo} is gated; {how} (or pass {entry.flag} PATH)"


def _describe(entry: WeightFile, filename: str, error: BaseException, resumable: bool = False) -> str:
    """One line naming repo/file and the cause; never the token."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{entry.name}: {entry.repo}:{filename}@{entry.revision}"
    if isinstance(error, GatedRepoError):
        return _gated_hint(entry)
    if isinstance(error, RevisionNotFoundError):
        cause = f"revision {entry.revision!r} not found"
    elif isinstance(error, RemoteEntryNotFoundError):
        cause = "file not found in the repository"
    elif isinstance(error, RepositoryNotFoundError):
        cause = "repository not found (or private: `hf auth login` / HF_TOKEN)"
    elif isinstance(error, OfflineModeIsEnabled):
        return _offline_hint(entry)
    elif isinstance(error, HfHubHTTPError) and error.response is not None:
        cause = f"HTTP {error.response.status_code} from {error.response.url.host}"
    elif isinstance(error, _NotAHub) or _is_network_error(error):
        cause = f"cannot reach the hub ({_first_line(error) or type(error).__name__}); check the network"
    else:
        cause = _first_line(error) or type(error).__name__
    resume = "; the partial download is kept, run again to resume" if resumable else ""
    return _redact(f"{where}: {cause}{resume}; or pass {entry.flag} PATH")


def _expected(error: BaseException) -> bool:
    """Failures of the hub, network or disk (one line for the user), not bugs (a traceback)."""
    return isinstance(error, (OSError, ValueError)) or _is_network_error(error)


def _is_network_error(error: BaseException) -> bool:
    # By name: the HTTP client behind huggingface_hub changed across its major versions.
    return any(c.__name__ in ("TransportError", "ConnectionError", "Timeout") for c in type(error).__mro__)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def _redact(text: str) -> str:
    """Belt and braces: no message built from a foreign exception may carry the token."""
    from huggingface_hub import get_token

    token = _safe(get_token)
    return text.replace(token, "***") if token else text


def _safe(function):
    try:
        return function()
    except Exception:  # noqa: BLE001 - a broken token store must not hide the real error
        return None
