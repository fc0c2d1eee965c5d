"""Logging for commands: lucidflux's own lines on stderr, libraries quiet unless ``-v``."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

QUIET_LOGGERS = (
    "diffusers",
    "transformers",
    "huggingface_hub",
    "urllib3",
    "PIL",
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "filelock",
    "torch.utils._pytree",
    "pyiqa",
    "bitsandbytes",
)


def setup_logging(quiet: bool, verbose: bool, log_file: Path | None = None) -> None:
    """-q quiets the terminal only: a --log-file keeps the full record (what cron jobs want),
    debug lines included, so a failure caused by a bug keeps its traceback there."""
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO)
    terminal.setFormatter(logging.Formatter("lucidflux: %(message)s"))
    handlers: list[logging.Handler] = [terminal]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handlers.append(file_handler)
    level = logging.DEBUG if verbose or log_file is not None else logging.INFO
    logging.basicConfig(level=level, handlers=handlers, force=True)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose else logging.ERROR)
    # diffusers and transformers set their loggers' levels from these when first imported (after
    # this), which would undo the line above (torchao, if installed, makes both talk at import).
    for library in ("DIFFUSERS_VERBOSITY", "TRANSFORMERS_VERBOSITY"):
        os.environ.setdefault(library, "warning" if verbose else "error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    if (
        not verbose
    ):  # the libraries' advice to their own callers (torch.meshgrid's indexing, ...): not the user's
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
