"""Exceptions that carry a one-line, user-facing cause."""

from __future__ import annotations

from pathlib import Path


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
