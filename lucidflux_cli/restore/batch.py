"""Restore a list of files: plan outputs, run the pipeline per file (or per group of same-size
files), report per file.

Knows files and pixels as numpy arrays; the pipeline is an opaque callable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lucidflux_cli import __version__
from lucidflux_cli.errors import LucidFluxError, one_line
from lucidflux_cli.imageio import formats, media
from lucidflux_cli.imageio.discovery import InputFile
from lucidflux_cli.model.sizes import DEFAULT_MIN_SIDE, crop_to_aspect, output_size, processing_size
from lucidflux_cli.pixels import resize_float
from lucidflux_cli.runner.control import uninterrupted
from lucidflux_cli.runner.results import BatchReport, FileResult, StepCallback, failure

log = logging.getLogger(__name__)

# (image, size, on_step) -> float32 (H, W, 3) in [0, 1]
Restorer = Callable[[Image.Image | np.ndarray, tuple[int, int], StepCallback | None], np.ndarray]
# (images, size, on_step) -> one float32 (H, W, 3) in [0, 1] per image, all restored at ``size``;
# a Restorer may offer this as its ``batch`` attribute (--batch-size)
BatchRestorer = Callable[
    [Sequence[Image.Image | np.ndarray], tuple[int, int], StepCallback | None], list[np.ndarray]
]


@dataclass(frozen=True)
class OutputOptions:
    out_dir: Path
    fmt: str = "same"
    quality: int | None = None
    suffix: str = ""
    size: tuple[int, int] | None = None
    overwrite: bool = False
    scale: float = 1.0  # output = scale x input when no exact size is asked for
    min_side: int = DEFAULT_MIN_SIDE  # restore at least this short side, then resize to the output size
    keep_color: bool = False  # gray sources written in the model's colour, not gray
    frames: str = "all"  # multi-page/multi-frame files: "all" pages (animations refused) or the "first"
    keep_mode: str = "convert"  # a mode the output cannot keep: "convert" (and say so) or "strict" (refuse)

    @classmethod
    def from_request(cls, request) -> OutputOptions:
        """The output side of a :class:`~lucidflux_cli.restore.settings.RestoreRequest`."""
        return cls(
            out_dir=request.out_dir,
            fmt=request.fmt,
            quality=request.quality,
            suffix=request.suffix,
            size=request.size,
            overwrite=request.overwrite,
            scale=request.scale,
            min_side=request.min_side,
            keep_color=request.keep_color,
            frames=request.frames,
            keep_mode=request.keep_mode,
        )


def output_path(item: InputFile, input_format: str, options: OutputOptions) -> Path:
    """Mirror the input's place under the output folder. The input's own extension is kept, as
    spelled (``.tiff``, ``.JPEG``, ``.j2k``), when the output has that format; another format
    gets that format's extension."""
    fmt = formats.output_format_for(input_format, options.fmt)
    own = item.relative.suffix
    ext = own if own and formats.format_from_extension(own) == fmt else formats.extension(fmt)
    relative = item.relative.with_name(item.relative.stem + options.suffix + ext)
    return options.out_dir / relative


def expected_output(item: InputFile, options: OutputOptions) -> Path:
    """Output path judged from the file name alone, to skip finished files without decoding them."""
    return output_path(item, formats.format_from_extension(item.path.name), options)


def settled_result(
    item: InputFile, target: Path, options: OutputOptions, claimed: dict[Path, Path]
) -> FileResult | None:
    """The one resume and conflict rule of restore (the dry run, the parent of a parallel run and
    each file's own check all call it): a conflict fails the file, an existing output skips it
    unless ``--overwrite``; None: the file is to be restored. ``claimed`` collects the outputs taken."""
    try:
        check_target(item, target, claimed)
    except OutputConflict as error:
        return FileResult(item.path, None, "failed", error=str(error))
    if target.exists() and not options.overwrite:
        return FileResult(item.path, target, "skipped")
    return None


def settle(items: Iterable[InputFile], options: OutputOptions) -> dict[int, FileResult]:
    """:func:`settled_result` of each file by its name-judged output, over the whole list in order
    (parallel runs give each worker part of the list; conflicts are judged as one run meets them)."""
    claimed: dict[Path, Path] = {}
    settled = {}
    for index, item in enumerate(items):
        result = settled_result(item, expected_output(item, options), options, claimed)
        if result is not None:
            settled[index] = result
    return settled


def restore_files(
    items: Iterable[InputFile],
    restorer_factory: Callable[[], Restorer],
    options: OutputOptions,
    provenance: dict[str, str],
    on_result: Callable[[FileResult], None] = lambda result: None,
    on_step: StepCallback | None = None,
    stops_after: Callable[[FileResult], bool] = lambda result: False,
    batch_size: int = 1,
) -> BatchReport:
    """Restore each file; a bad file fails alone.

    Consecutive files (in the given order) with the same processing size are restored up to
    ``batch_size`` at a time in one model call (:func:`restore_group`); skipped and undecodable
    files never hold a group up. Results are reported in the given order, so a file's event
    may wait for the rest of its group.

    The model is built on the first file that needs it; an error building it (weights,
    device) propagates and ends the batch, since no later file could succeed either.
    """
    report = BatchReport()
    restorers: list[Restorer] = []  # built on the first file that needs it
    claimed: dict[Path, Path] = {}  # output -> the input that writes it
    waiting: list[FileResult | DecodedFile] = []  # in order, until their group is restored

    def restorer() -> Restorer:
        if not restorers:
            restorers.append(restorer_factory())
        return restorers[0]

    def group() -> list[DecodedFile]:
        return [entry for entry in waiting if isinstance(entry, DecodedFile)]

    def publish(entry: FileResult | DecodedFile, outcome: Restored | FileResult) -> FileResult:
        with uninterrupted():  # a file put in place is reported too, whatever signal comes
            result = finish(entry, outcome, options, provenance)
            report.results.append(result)
            on_result(result)
        return result

    def flush() -> bool:
        """Restore the waiting group, write and report everything waiting; False: stop (--fail-fast)."""
        try:
            outcomes = iter(restore_pixels(group(), restorer(), on_step) if group() else [])
        except BaseException:  # the model cannot be built: the skips and failures waiting are still reported
            for entry in waiting:
                if isinstance(entry, FileResult):
                    publish(entry, entry)
            waiting.clear()
            raise
        results = [
            publish(entry, entry if isinstance(entry, FileResult) else next(outcomes)) for entry in waiting
        ]
        waiting.clear()
        return not any(stops_after(result) for result in results)

    for item in items:
        entry = prepare_file(item, options, claimed)
        other_size = (
            isinstance(entry, DecodedFile) and bool(group()) and group()[0].batch_key != entry.batch_key
        )
        if other_size and not flush():  # another processing size completes the waiting group
            return report
        waiting.append(entry)
        # nothing to wait for, a full group, or a multi-page file (restored page by page, alone)
        complete = not group() or len(group()) >= batch_size or group()[0].batch_key is None
        stop = isinstance(entry, FileResult) and stops_after(entry)
        if (complete or stop) and not flush():
            return report
    if waiting:
        flush()
    return report


@dataclass
class DecodedPage:
    """One image of a file (most files have one; a multi-page TIFF one per page) and its sizes."""

    loaded: media.LoadedImage
    size: tuple[int, int]  # output size
    work: tuple[int, int]  # processing size (--min-side)

    @classmethod
    def of(cls, loaded: media.LoadedImage, options: OutputOptions) -> DecodedPage:
        size = output_size(loaded.size, options.size, options.scale)
        return cls(loaded, size, processing_size(size, options.min_side))

    @property
    def image(self) -> Image.Image | np.ndarray:
        """What the restorer gets: 8-bit RGB as PIL, deeper images as float arrays."""
        return self.loaded.model_input


@dataclass
class DecodedFile:
    """A file decoded and due for restoring: its pages in order, its output, what is left out."""

    item: InputFile
    pages: list[DecodedPage]
    target: Path
    seconds: float  # spent checking and decoding
    note: str | None = None
    notes: list[str] = field(default_factory=list)  # what writing it changes (formats.conversion_notes)

    @property
    def loaded(self) -> media.LoadedImage:
        return self.pages[0].loaded

    @property
    def work(self) -> tuple[int, int]:
        return self.pages[0].work

    @property
    def image(self) -> Image.Image | np.ndarray:
        return self.pages[0].image

    @property
    def batch_key(self) -> tuple[int, int] | None:
        """Files of one key may share a model call (--batch-size); None: never (several pages)."""
        return self.work if len(self.pages) == 1 else None

    def failed(self, error: Exception, seconds: float) -> FileResult:
        return failure(self.item.path, error, self.seconds + seconds)


def restore_file(
    item: InputFile,
    restorer: Callable[[], Restorer],
    options: OutputOptions,
    provenance: dict[str, str],
    claimed: dict[Path, Path],
    publish: Callable[[FileResult], None],
    on_step: StepCallback | None = None,
) -> FileResult:
    """Skip, restore or fail one file, and ``publish`` its result in the same uninterrupted step
    as its output is put in place. ``restorer()`` is only called when the model is needed; an
    error building the model (weights, device) propagates: no later file could succeed either.
    """
    entry = prepare_file(item, options, claimed)
    outcome = entry if isinstance(entry, FileResult) else restore_pixels([entry], restorer(), on_step)[0]
    with uninterrupted():
        result = finish(entry, outcome, options, provenance)
        publish(result)
    return result


def prepare_file(
    item: InputFile, options: OutputOptions, claimed: dict[Path, Path]
) -> FileResult | DecodedFile:
    """Skip or fail a file without the model, or decode it for restoring."""
    started = time.monotonic()
    try:  # an output that exists by the name-judged path: resume without decoding the input
        result = settled_result(item, expected_output(item, options), options, claimed)
        if result is None:
            pages = media.read_pages(item.path, options.frames)
            result = settled_result(
                item, output_path(item, pages.images[0].metadata.format, options), options, claimed
            )
            if result is None:
                if pages.note:
                    log.warning("%s", pages.note)
                decoded = [DecodedPage.of(loaded, options) for loaded in pages.images]
                target = output_path(item, pages.images[0].metadata.format, options)
                notes = formats.conversion_notes(
                    target, _as_written(pages.images, options), output_format(pages, options)
                )
                if notes and options.keep_mode == "strict":
                    raise ModeNotKept(f"{item.path}: not restored (--keep-mode strict): {'; '.join(notes)}")
                return DecodedFile(item, decoded, target, time.monotonic() - started, pages.note, notes)
    except Exception as error:  # any decoding problem fails this file only
        return failure(item.path, error, time.monotonic() - started)
    result.seconds = time.monotonic() - started
    return result


def batch_call(restorer: Restorer) -> BatchRestorer:
    """The restorer's batched form (its ``batch`` attribute), else one call per image."""
    batched = getattr(restorer, "batch", None)
    if batched is not None:
        return batched
    return lambda images, size, on_step: [restorer(image, size, on_step) for image in images]


Restored = tuple[list[np.ndarray], float]  # a file's restored pages and the model's seconds for it


def restore_pixels(
    group: list[DecodedFile], restorer: Restorer, on_step: StepCallback | None = None
) -> list[Restored | FileResult]:
    """Restore files of one processing size in one model call; per file its pages, or its failure.

    If the batched call fails, the files are redone one at a time, so a bad image fails only
    itself. Each file's seconds: an equal share of the call. Nothing is written here.
    """
    if len(group) > 1:
        started = time.monotonic()
        try:
            restored = batch_call(restorer)([decoded.image for decoded in group], group[0].work, on_step)
        except Exception as error:  # e.g. one image a plugin remover rejects: find it
            log.warning(
                "restoring %d images in one batch failed (%s); restoring them one at a time",
                len(group),
                one_line(error),
            )
        else:
            share = (time.monotonic() - started) / len(group)
            return [([pixels], share) for pixels in restored]
    return [_restore_pages(decoded, restorer, on_step) for decoded in group]


def _restore_pages(
    decoded: DecodedFile, restorer: Restorer, on_step: StepCallback | None
) -> Restored | FileResult:
    started = time.monotonic()
    try:  # every page of a multi-page file through the same restorer, in order
        return [
            restorer(page.image, page.work, on_step) for page in decoded.pages
        ], time.monotonic() - started
    except Exception as error:  # e.g. out of memory on a huge photo: the batch goes on
        return decoded.failed(error, time.monotonic() - started)


def finish(
    entry: FileResult | DecodedFile,
    outcome: Restored | FileResult,
    options: OutputOptions,
    provenance: dict[str, str],
) -> FileResult:
    """A file's result: written from its restored pages, or the skip/failure it already is."""
    if isinstance(outcome, FileResult):
        return outcome
    pages, model_seconds = outcome
    return _write(entry, pages, model_seconds, options, provenance)


def _write(
    decoded: DecodedFile,
    restored: list[np.ndarray],
    model_seconds: float,
    options: OutputOptions,
    provenance: dict[str, str],
) -> FileResult:
    started = time.monotonic()
    try:
        write_restored(decoded.pages, decoded.target, restored, options, provenance)
    except Exception as error:
        return decoded.failed(error, model_seconds + time.monotonic() - started)
    seconds = decoded.seconds + model_seconds + time.monotonic() - started
    first = decoded.pages[0]  # what a review of the run shows of the file
    details = {
        "input_size": list(first.loaded.size),
        "output_size": list(first.size),
        "processing_size": list(first.work),
        "pages": len(decoded.pages),
    }
    return FileResult(
        decoded.item.path,
        decoded.target,
        "done",
        seconds=seconds,
        note=decoded.note,
        notes=decoded.notes,
        details=details,
    )


def output_format(pages: media.Pages, options: OutputOptions) -> str:
    return formats.output_format_for(pages.images[0].metadata.format, options.fmt)


def _as_written(images: Sequence[media.LoadedImage], options: OutputOptions) -> list[formats.Page]:
    return [
        formats.Page(
            loaded.rgb,
            loaded.alpha,
            loaded.metadata,
            loaded.metadata.bit_depth,
            gray=loaded.metadata.gray and not options.keep_color,
        )
        for loaded in images
    ]


class ModeNotKept(LucidFluxError):
    """--keep-mode strict: the output cannot keep the source's mode, depth or range."""


class OutputConflict(LucidFluxError):
    """The output would overwrite an input or another input's output."""


def check_target(item: InputFile, target: Path, claimed: dict[Path, Path]) -> None:
    """Inputs are never overwritten, and two inputs never write the same output."""
    resolved = target.resolve()
    if resolved == item.path.resolve():
        raise OutputConflict(f"{item.path}: output would overwrite the input; use another -o or --suffix")
    owner = claimed.setdefault(resolved, item.path)
    if owner != item.path:
        raise OutputConflict(
            f"{item.path}: output {target} is already written by {owner}; use --suffix or separate runs"
        )


def write_restored(
    pages: Sequence[DecodedPage],
    target: Path,
    restored: Sequence[np.ndarray],
    options: OutputOptions,
    provenance: dict[str, str],
) -> None:
    """Bring each page's pixels restored at its ``work`` size to its output ``size`` and write them,
    in order, into one file with each page's metadata; a gray page is given back gray unless
    ``options.keep_color``."""
    written = []
    for page, pixels in zip(pages, restored, strict=True):
        loaded, work, size = page.loaded, page.work, page.size
        if work != size:  # restored larger than asked (--min-side): bring it to the output size
            pixels = np.stack([resize_plane(pixels[..., c], work, size) for c in range(3)], axis=-1)
        alpha = None if loaded.alpha is None else resize_plane(loaded.alpha, loaded.size, size)
        written.append(
            formats.Page(
                pixels,
                alpha,
                loaded.metadata,
                loaded.metadata.bit_depth,
                gray=loaded.metadata.gray and not options.keep_color,
            )
        )
    fmt = formats.output_format_for(pages[0].loaded.metadata.format, options.fmt)
    target.parent.mkdir(parents=True, exist_ok=True)
    formats.write_pages(
        target,
        written,
        fmt=fmt,
        quality=options.quality,
        provenance={"Software": f"lucidflux-cli {__version__}", **provenance},
    )


def resize_plane(plane: np.ndarray, source_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Crop/resize a single float plane (alpha) the same way the image was."""
    left, top, right, bottom = crop_to_aspect(source_size, size)
    return np.clip(resize_float(plane[top:bottom, left:right], size), 0.0, 1.0)
