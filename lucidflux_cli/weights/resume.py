"""Resumable plain-HTTP transfer of one file into the cache: the one job huggingface_hub cannot do.

``hf_hub_download`` (2.x) writes to a process-unique temporary file and deletes it when the
transfer fails or is interrupted, so a 24 GB download cut at 90 % starts over. Here the bytes
received are kept in ``blobs/<etag>.incomplete``; the next run continues with a Range request,
checks the whole file against the hub's hash and moves it to ``blobs/<etag>``, where
``hf_hub_download`` finds it and only links it into the snapshot. The blob path is the one
piece of cache layout written here (documented in huggingface_hub's cache guide).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from lucidflux_cli.weights.messages import is_network_error
from lucidflux_cli.weights.registry import GB, format_size
from lucidflux_cli.weights.verify import git_blob_sha1, sha256

log = logging.getLogger("lucidflux")

RETRIES = 5  # connection drops in a row (without new bytes) before giving up, as huggingface_hub does


@dataclass(frozen=True)
class Transfer:
    """One file to fetch: where from, what it must hash to, where its blob goes."""

    repo: str
    filename: str
    url: str  # the hub's resolve URL, or the CDN location it redirects to
    etag: str  # the hub's hash of the content: sha256 (LFS) or git blob sha1
    size: int | None
    same_host: bool  # the URL is on the hub itself: the token may be sent
    xet: bool  # stored on the hub's Xet backend
    blob: Path

    @property
    def partial(self) -> Path:
        return self.blob.with_name(self.blob.name + ".incomplete")

    def remaining(self) -> int | None:
        """Bytes still to fetch (None: unknown)."""
        if self.blob.exists():
            return 0
        if self.size is None:
            return None
        done = self.partial.stat().st_size if self.partial.exists() else 0
        return max(self.size - done, 0)


def blob_path(root: Path, repo: str, etag: str) -> Path:
    """``<cache>/models--ORG--NAME/blobs/<etag>``: huggingface_hub's documented cache layout."""
    return root / ("models--" + repo.replace("/", "--")) / "blobs" / etag


def download(transfer: Transfer, bar_class, *, restart: bool = False) -> None:
    """Fetch ``transfer`` into its blob, resuming a partial file left by an earlier run.

    ``restart`` (``--force``) discards partial data and replaces an existing blob.
    """
    from filelock import FileLock

    partial = transfer.partial
    partial.parent.mkdir(parents=True, exist_ok=True)
    lock = transfer.blob.parents[2] / ".locks" / "lucidflux" / f"{transfer.etag}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock):  # one writer per partial file, across processes
        if restart:
            partial.unlink(missing_ok=True)
        elif transfer.blob.exists():
            return  # another process finished it meanwhile
        done = partial.stat().st_size if partial.exists() else 0
        if transfer.size is not None and done > transfer.size:
            partial.unlink()  # not a prefix of this file: start over
            done = 0
        if done:
            log.info("resuming %s at %s", transfer.filename, format_size(done, approx=False))
        with partial.open("ab") as out, _bar(bar_class, transfer, done) as progress:
            done = _transfer(transfer, out, done, progress)
        _check(transfer, done)
        os.replace(partial, transfer.blob)  # atomic: a blob is whole or absent


def _transfer(transfer: Transfer, out, done: int, progress) -> int:
    """Append from ``done`` on; a dropped connection is resumed within the run, a few times."""
    failures = 0
    while True:
        if transfer.size is not None and done == transfer.size:
            return done  # all there (a run that stopped while checking it): a Range from the end is a 416
        before = done
        try:
            return _get(transfer, out, done, progress)
        except Exception as error:
            if not is_network_error(error):
                raise
            out.flush()
            done = os.fstat(out.fileno()).st_size  # what reached the file before the drop
            failures = 0 if done > before else failures + 1
            if failures >= RETRIES:
                raise
            log.warning(
                "connection lost while downloading %s; resuming at %s",
                transfer.filename,
                format_size(done, approx=False),
            )
            time.sleep(1)


def _get(transfer: Transfer, out, done: int, progress) -> int:
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_stream_backoff

    headers = build_hf_headers()
    if not transfer.same_host:
        headers.pop("authorization", None)  # signed CDN URLs must not receive the hub token
    if done:
        headers["Range"] = f"bytes={done}-"
    # Busy/failing servers (408, 429, 5xx) are retried with backoff there; dropped connections here.
    with http_stream_backoff(
        "GET",
        transfer.url,
        headers=headers,
        timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
        retry_on_exceptions=(),
    ) as response:
        hf_raise_for_status(response)
        if done and response.status_code == 200:  # the server ignored the Range: start over
            out.truncate(0)
            progress.reset(total=transfer.size)
            done = 0
        for chunk in response.iter_bytes(constants.DOWNLOAD_CHUNK_SIZE):
            out.write(chunk)
            out.flush()  # what was received survives a crash or Ctrl-C
            done += len(chunk)
            progress.update(len(chunk))
    return done


def _check(transfer: Transfer, done: int) -> None:
    """The size and the hub's hash of the whole file; a bad partial is removed, never published."""
    partial = transfer.partial
    if transfer.size is not None and done != transfer.size:
        raise OSError(f"got {done} bytes of {transfer.size}; run again to resume")
    if len(transfer.etag) not in (40, 64):
        return  # not a content hash (some CDNs): the size check is all there is
    if (transfer.size or 0) >= GB:
        log.info("checking %s (sha256)", transfer.filename)
    actual = sha256(partial) if len(transfer.etag) == 64 else git_blob_sha1(partial)
    if actual != transfer.etag:
        partial.unlink()
        kind = "sha256" if len(transfer.etag) == 64 else "git sha1"
        raise OSError(f"{kind} mismatch after download ({actual}); the partial file was removed, run again")


def _bar(bar_class, transfer: Transfer, done: int):
    """A byte progress bar like huggingface_hub's own (its class: quiet or not)."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    # huggingface_hub's documented switch: TQDM_POSITION=-1 shows bars without a terminal.
    disable = False if os.getenv("TQDM_POSITION") == "-1" else None
    return (bar_class or hf_tqdm)(
        total=transfer.size,
        initial=done,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=transfer.filename,
        disable=disable,
    )
