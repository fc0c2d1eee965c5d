"""Weights: the registry of default weight files, and resolving them to local paths.

Local overrides win; otherwise files come from the Hugging Face cache (``--cache-dir`` /
``LUCIDFLUX_CACHE`` to move it), downloaded on first use through huggingface_hub's public API.

* :mod:`.registry`: ``WeightFile``, ``REGISTRY``, ``WeightPaths``, ``entries``, ``registry_markdown``;
* :mod:`.cache`: where the cache is, what it holds (no network);
* :mod:`.download`: ``ensure`` / ``fetch`` / ``resolve_weights`` (plan, disk check, download);
* :mod:`.resume`: the resumable transfer huggingface_hub does not offer (see docs/architecture.md);
* :mod:`.verify`: ``weights verify``; :mod:`.messages`: what the user reads when a file cannot be had.

Code that swaps the registry (tests) must patch ``lucidflux_cli.weights.registry.REGISTRY``; the
name here is the same dict object.
"""

from lucidflux_cli.weights.cache import cache_root, cached_path, is_offline
from lucidflux_cli.weights.download import ensure, fetch, resolve_weights
from lucidflux_cli.weights.registry import (
    DISK_MARGIN,
    GB,
    REGISTRY,
    WeightFile,
    WeightPaths,
    WeightsUnavailable,
    entries,
    format_size,
    registry_markdown,
)
from lucidflux_cli.weights.verify import FileCheck, verify

__all__ = [
    "DISK_MARGIN",
    "GB",
    "REGISTRY",
    "FileCheck",
    "WeightFile",
    "WeightPaths",
    "WeightsUnavailable",
    "cache_root",
    "cached_path",
    "ensure",
    "entries",
    "fetch",
    "format_size",
    "is_offline",
    "registry_markdown",
    "resolve_weights",
    "verify",
]
