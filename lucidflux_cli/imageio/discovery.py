"""Turn command-line inputs (files, folders, globs, "-" for stdin) into an ordered file list.

Problems (missing paths, unreadable folders, symlink loops, globs without matches) are
collected as one-line messages instead of raised, so one bad input never stops a batch.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lucidflux_cli.imageio import formats

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class InputFile:
    path: Path
    relative: Path  # place under its root, mirrored under the output folder
    named: bool = False  # named explicitly (argument or stdin line), not found by a walk or glob


@dataclass
class DiscoveryResult:
    files: list[InputFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Image files a walk or glob found but leaves out: no installed format restores their kind
    # (GIF: mostly animations). Reported, never silently dropped; naming one explicitly takes it.
    left_out: list[Path] = field(default_factory=list)

    def left_out_line(self) -> str | None:
        """One line about :attr:`left_out`, grouped by extension; None when there are none."""
        if not self.left_out:
            return None
        counts: dict[str, int] = {}
        for path in self.left_out:
            counts[path.suffix.lower()] = counts.get(path.suffix.lower(), 0) + 1
        kinds = ", ".join(f"{count} {ext}" for ext, count in sorted(counts.items()))
        return (
            f"left out {len(self.left_out)} image file(s) that folder walks do not restore ({kinds}), "
            f"e.g. {self.left_out[0]}; name a file explicitly to restore it (animations need --frames first)"
        )


def is_image_name(name: str, extensions: frozenset[str]) -> bool:
    """Whether a walk or glob takes ``name``: its extension, lower-cased, is one of ``extensions``."""
    return os.path.splitext(name)[1].lower() in extensions


def split_stdin(text: str, nul: bool) -> list[str]:
    """Paths from stdin: NUL-separated (``-0``) or one per line; empty entries are dropped."""
    parts = text.split("\0") if nul else text.splitlines()
    return [part for part in parts if part]


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _any_match(candidates: list[str], patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(text, pattern) for pattern in patterns for text in candidates)


def discover(
    inputs: Sequence[str],
    *,
    recursive: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    output_dir: Path | None = None,
    stdin_lines: Iterable[str] | None = None,
    extensions: frozenset[str] | None = None,
) -> DiscoveryResult:
    """Expand ``inputs`` in order; within each root, files are sorted by relative path.

    The same file reached twice (another argument, a symlink, ...) is listed once, where it first
    appears. When the output folder lies inside an input folder (or glob base), it is skipped.
    Walks and globs take files with ``extensions`` (default: what the installed formats can read,
    :func:`lucidflux_cli.imageio.formats.readable_extensions`); named files are mirrored from their common
    folder, so ``a/x.jpg b/x.jpg`` become ``OUT/a/x.jpg OUT/b/x.jpg``.
    """
    walker = _Discovery(
        recursive=recursive,
        include=tuple(p.lower() for p in include),
        exclude=tuple(p.lower() for p in exclude),
        output_dir=os.path.realpath(output_dir) if output_dir is not None else None,
        extensions=formats.readable_extensions() if extensions is None else extensions,
    )
    result = DiscoveryResult(problems=walker.problems, left_out=walker.left_out)
    seen: set[str] = set()
    for found in walker.expand(inputs, stdin_lines):
        real = os.path.realpath(found.path)
        if real not in seen:
            seen.add(real)
            result.files.append(found)
    result.files = _mirror_named_files(result.files)
    return result


def _mirror_named_files(files: list[InputFile]) -> list[InputFile]:
    """Named files keep their folders below the deepest folder they all share."""
    folders = {os.path.dirname(os.path.abspath(item.path)) for item in files if item.named}
    if len(folders) < 2:
        return files
    common = os.path.commonpath(sorted(folders))
    return [
        InputFile(item.path, Path(os.path.relpath(os.path.abspath(item.path), common)), named=True)
        if item.named
        else item
        for item in files
    ]


@dataclass
class _Discovery:
    recursive: bool
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    output_dir: str | None
    extensions: frozenset[str]
    problems: list[str] = field(default_factory=list)
    left_out: list[Path] = field(default_factory=list)

    def wants(self, relative: Path) -> bool:
        """fnmatch, case-insensitive, on the relative path and the name; exclude also on folders."""
        candidates = [relative.as_posix().lower(), relative.name.lower()]
        if self.include and not _any_match(candidates, self.include):
            return False
        folders = [part.lower() for part in relative.parts[:-1]]
        return not _any_match(candidates + folders, self.exclude)

    def is_output(self, real: str, root_real: str) -> bool:
        """Inside the output folder, where that folder is part of the tree being expanded."""
        out = self.output_dir
        return out is not None and _within(out, root_real) and _within(real, out)

    def expand(self, inputs: Sequence[str], stdin_lines: Iterable[str] | None) -> Iterator[InputFile]:
        for argument in inputs:
            if argument == "-":
                for line in stdin_lines or ():
                    if line.strip():  # blank lines are common in piped lists; "" would mean "."
                        yield from self.expand_path(line.rstrip("\r\n"))
            elif os.path.lexists(argument) or not _GLOB_CHARS & set(argument):
                yield from self.expand_path(argument)
            else:
                yield from self.expand_glob(argument)

    def expand_path(self, argument: str) -> Iterator[InputFile]:
        if not argument:
            self.problems.append("empty path given")
            return
        path = Path(argument)
        if path.is_dir():
            yield from self.walk_root(path)
        elif path.is_file():
            # Named explicitly: taken whatever its extension or place (decoding decides).
            if self.wants(Path(path.name)):
                yield InputFile(path, Path(path.name), named=True)
        elif os.path.lexists(argument):
            self.problems.append(f"{argument}: broken symlink or not a regular file")
        else:
            self.problems.append(f"{argument}: not found")

    def walk_root(self, root: Path) -> Iterator[InputFile]:
        root_real = os.path.realpath(root)
        if self.is_output(root_real, root_real):
            self.problems.append(f"{root}: skipped, it is the output folder")
            return
        files = list(self.walk(root, Path(), root_real, ancestors=frozenset()))
        yield from sorted(files, key=lambda item: item.relative.parts)

    def walk(
        self, directory: Path, relative: Path, root_real: str, ancestors: frozenset[str]
    ) -> Iterator[InputFile]:
        real = os.path.realpath(directory)
        if real in ancestors:
            self.problems.append(f"{directory}: symlink loop, not followed")
            return
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            reason = "permission denied" if isinstance(exc, PermissionError) else exc.strerror or exc
            self.problems.append(f"{directory}: cannot read folder ({reason})")
            return
        for entry in entries:
            if not entry.name.startswith("."):  # hidden files and folders (our temp files too)
                yield from self.walk_entry(entry, relative / entry.name, root_real, ancestors | {real})

    def walk_entry(
        self, entry: os.DirEntry[str], relative: Path, root_real: str, ancestors: frozenset[str]
    ) -> Iterator[InputFile]:
        try:
            is_dir = entry.is_dir()
            is_file = not is_dir and entry.is_file()
        except OSError:
            is_dir = is_file = False
        if is_dir:
            pruned = self.is_output(os.path.realpath(entry.path), root_real)
            if self.recursive and not pruned and not _any_match([entry.name.lower()], self.exclude):
                yield from self.walk(Path(entry.path), relative, root_real, ancestors)
        elif is_file:
            if is_image_name(entry.name, self.extensions) and self.wants(relative):
                yield InputFile(Path(entry.path), relative)
            elif self.wants(relative) and _other_image_kind(entry.name):
                self.left_out.append(Path(entry.path))
        elif entry.is_symlink() and is_image_name(entry.name, self.extensions):
            self.problems.append(f"{entry.path}: broken symlink")

    def expand_glob(self, pattern: str) -> Iterator[InputFile]:
        base = _glob_base(pattern)
        base_real = os.path.realpath(base)
        found: list[InputFile] = []
        for match in sorted(glob.glob(pattern, recursive=True)):
            path = Path(match)
            relative = path.relative_to(base) if base.parts else path
            if self.is_output(os.path.realpath(path), base_real):
                continue
            if path.is_dir():
                found.extend(InputFile(f.path, relative / f.relative) for f in self.walk_root(path))
            elif path.is_file() and is_image_name(path.name, self.extensions) and self.wants(relative):
                found.append(InputFile(path, relative))
            elif path.is_file() and self.wants(relative) and _other_image_kind(path.name):
                self.left_out.append(path)
        if not found:
            self.problems.append(f"{pattern}: no image files match")
        yield from sorted(found, key=lambda item: item.relative.parts)


def _other_image_kind(name: str) -> bool:
    """An extension Pillow opens as an image (checked only for files a walk does not take)."""
    from PIL import Image

    Image.init()
    return Image.registered_extensions().get(os.path.splitext(name)[1].lower()) in Image.OPEN


def _glob_base(pattern: str) -> Path:
    """The leading part of ``pattern`` without wildcards; relative paths are taken from here."""
    parts: list[str] = []
    for part in Path(pattern).parts:
        if _GLOB_CHARS & set(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path()
