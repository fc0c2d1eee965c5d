"""Pairing restored files with reference files by relative path (pure path logic, no file access).

``photos/a.png`` pairs with ``photos/a.png`` in the reference folder; when no file has the same
path, the same path with another extension pairs (``photos/a.jpg``), so a JPEG reference set pairs
with PNG outputs. Two references with the same stem for one file: PairingError.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from lucidflux_cli.errors import LucidFluxError


class PairingError(LucidFluxError):
    """A relative path is invalid or a file could pair with more than one reference."""


@dataclass
class Pairing:
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (restored, reference), sorted
    unpaired: list[str] = field(default_factory=list)  # restored files without a reference
    unused: list[str] = field(default_factory=list)  # references no restored file pairs with

    def describe(self) -> str:
        """One line: ``3 paired; 1 without a reference (b.png); 2 references unused (c.png, d.png)``."""
        parts = [f"{len(self.pairs)} paired"]
        if self.unpaired:
            parts.append(f"{len(self.unpaired)} without a reference ({_some(self.unpaired)})")
        if self.unused:
            parts.append(f"{len(self.unused)} references unused ({_some(self.unused)})")
        return "; ".join(parts)


def _some(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … {len(names) - limit} more" if len(names) > limit else "")


def normalise(path: str) -> str:
    """POSIX form of a relative path; PairingError for absolute paths or ``..``."""
    pure = PurePosixPath(str(path).replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or str(pure) == ".":
        raise PairingError(f"{path}: not a relative path inside its folder")
    return str(pure)


def _stem(path: str) -> str:
    return str(PurePosixPath(path).with_suffix(""))


def pair(restored: Iterable[str], references: Iterable[str]) -> Pairing:
    """Pair relative paths: the same path first, else the same path without its extension."""
    outputs = sorted(dict.fromkeys(normalise(p) for p in restored))
    refs = sorted(dict.fromkeys(normalise(p) for p in references))
    exact = set(refs)
    by_stem: dict[str, list[str]] = defaultdict(list)
    for ref in refs:
        by_stem[_stem(ref)].append(ref)

    matches: dict[str, str] = {out: out for out in outputs if out in exact}  # exact paths first
    used = set(matches.values())
    for out in outputs:
        if out in matches:
            continue
        candidates = by_stem.get(_stem(out), [])
        if len(candidates) > 1:
            raise PairingError(
                f"{out}: more than one reference could pair with it ({', '.join(candidates)}); keep one"
            )
        if candidates and candidates[0] not in used:
            matches[out] = candidates[0]
            used.add(candidates[0])
    result = Pairing(
        pairs=[(out, matches[out]) for out in outputs if out in matches],
        unpaired=[out for out in outputs if out not in matches],
    )
    result.unused = [r for r in refs if r not in used]
    return result
