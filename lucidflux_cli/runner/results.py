"""What a run records of each file, whichever command runs it: :class:`FileResult` and the
whole run's :class:`BatchReport`, and the one rule that turns an exception into a failed file."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lucidflux_cli.errors import LucidFluxError, one_line

# (step, steps) of the file in work: progress bars per denoising or training step
StepCallback = Callable[[int, int], None]


@dataclass
class FileResult:
    source: Path
    output: Path | None
    status: str  # "done" | "skipped" | "failed" | "planned"
    error: str | None = None
    seconds: float = 0.0
    worker: str | None = None  # parallel runs: who did it ("cpu#1", "rank 3")
    retried: bool = False  # parallel runs: its first worker died, another one redid it
    bug: bool = False  # failed through an unexpected exception (ours or a plugin's), not bad input
    traceback: str | None = None  # of that exception: logged with -v / --log-file, kept in the report
    note: str | None = None  # what of the file is not in the output (MPO views, --frames first), one line
    details: dict | None = None  # what other commands record per file (measurements, pairs made)
    notes: list[str] = field(default_factory=list)  # what the output changed of the source (mode, depth, ...)

    def to_event(self) -> dict:
        """The ``--json`` line: optional keys only where they say something."""
        event = asdict(self)
        event.update(source=str(self.source), output=str(self.output) if self.output else None)
        event["seconds"] = round(self.seconds, 3)
        del event["traceback"]
        optional = (
            ("worker", None),
            ("retried", False),
            ("bug", False),
            ("note", None),
            ("details", None),
            ("notes", []),
        )
        for key, default in optional:
            if event[key] == default:
                del event[key]
        return {"event": "file", **event}

    def to_record(self) -> dict:
        """The ``--report`` entry: the event, plus the traceback of a bug."""
        return {**self.to_event(), **({"traceback": self.traceback} if self.traceback else {})}


@dataclass
class BatchReport:
    results: list[FileResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def bugs(self) -> int:
        return sum(r.bug for r in self.results)


def failure(path: Path, error: Exception, seconds: float = 0.0) -> FileResult:
    """A failed file: one line naming it and the cause; an unexpected exception is marked a bug
    and keeps its traceback, so it can be diagnosed (``-v``, ``--log-file``, the report)."""
    bug = not is_expected(error)
    return FileResult(
        path,
        None,
        "failed",
        error=describe_error(path, error),
        seconds=seconds,
        bug=bug,
        traceback="".join(traceback.format_exception(error)) if bug else None,
    )


def is_expected(error: BaseException) -> bool:
    """Failures that bad input or the machine cause (unreadable files, full disks, out of memory)."""
    return (
        isinstance(error, (LucidFluxError, OSError, MemoryError))
        or type(error).__name__ == "OutOfMemoryError"
    )


def describe_error(path: Path, error: Exception) -> str:
    """One line naming the file and the cause."""
    if isinstance(error, LucidFluxError):
        return str(error)
    return f"{path}: {one_line(error) if str(error).strip() else type(error).__name__ + ': no details'}"
