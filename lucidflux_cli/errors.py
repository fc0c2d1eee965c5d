"""Exceptions that carry a one-line, user-facing cause, and the exit codes every command returns."""

from __future__ import annotations

from pathlib import Path

# 0: all done or skipped; 1: some files failed; 2: usage error; 3: setup error (weights, device,
# output locked); 130: interrupted (SIGINT or SIGTERM).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SETUP, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class LucidFluxError(Exception):
    """Base class: ``str(error)`` is a complete one-line message for the user."""


class CheckpointError(LucidFluxError):
    """A weight file is missing, unreadable, or does not match the expected layout."""

    def __init__(self, path: str | Path, cause: str):
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{path}: {cause}")


class ImageReadError(LucidFluxError):
    """An input file could not be decoded as an image."""

    def __init__(self, path: str | Path, cause: str):
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{path}: {cause}")


class ImageWriteError(LucidFluxError):
    """An output file could not be written."""

    def __init__(self, path: str | Path, cause: str):
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{path}: {cause}")


def one_line(error: BaseException) -> str:
    """``Type: first line of the message`` (ANSI styling removed): how a cause is shown in one line."""
    text = str(error).replace("\x1b[1m", "").replace("\x1b[0m", "").strip()
    first = " ".join(text.splitlines()[0].split()) if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
