"""Scoring images with pyiqa metrics: arrays in, numbers out (the engine reads the files).

An image is a float32 ``H x W x 3`` numpy array in [0, 1] or a ``3 x H x W`` torch tensor; values
are clipped to [0, 1] (a restored image may overshoot by a rounding step, pyiqa asserts the range).
Metrics are built on first use, inside :func:`cache.redirected`, so their weights come from and go
to ``<cache root>/metrics``.
"""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lucidflux_cli.errors import LucidFluxError, one_line
from lucidflux_cli.metrics import fid as fidlib
from lucidflux_cli.metrics.arrays import Image, height_width, to_tensor
from lucidflux_cli.metrics.cache import MetricUnavailable, redirected, require
from lucidflux_cli.metrics.registry import folder_level, full_reference, get, no_reference, parse_metrics

SEED = 123  # pyiqa's own default seed; some metrics (MANIQA) take random crops


class ScoreError(LucidFluxError):
    """A metric failed on an image (too small or blank for it, say); the message names the file,
    ``label`` and ``metric`` hold them."""

    label = ""
    metric = ""


class SizeMismatch(LucidFluxError):
    """An image and its reference differ in size (full-reference metrics compare pixel by pixel)."""

    def __init__(self, label: str, size: tuple[int, int], reference: tuple[int, int]):
        self.label = label
        self.size = size
        self.reference = reference
        super().__init__(
            f"{label or 'image'}: {size[1]}x{size[0]} but its reference is "
            f"{reference[1]}x{reference[0]}; full-reference metrics need the same size"
        )


def check_pair(image: Image, reference: Image, label: str = "") -> None:
    """SizeMismatch (one line, naming ``label``) when the two sizes differ."""
    if height_width(image) != height_width(reference):
        raise SizeMismatch(label, height_width(image), height_width(reference))


def untrained_options(name: str, workdir: Path) -> dict[str, Any]:
    """``create_metric`` options that build ``name`` with random (or synthetic) weights, for tests and
    the benchmark. Backbones pyiqa always loads (CLIP, timm, torchvision, Inception) still need their
    files: ``cache.metric_files(name, pretrained=False)`` lists them."""
    if name == "niqe":  # NIQE has no switch: write pristine-model statistics of the right shapes
        import scipy.io

        path = workdir / "niqe_random_params.mat"
        if not path.exists():
            rng = np.random.default_rng(0)
            a = rng.normal(size=(36, 36))
            scipy.io.savemat(
                path, {"mu_prisparam": rng.normal(size=(1, 36)), "cov_prisparam": a @ a.T + 36 * np.eye(36)}
            )
        return {"pretrained_model_path": str(path)}
    if name in ("clipiqa+", "musiq", "maniqa", "nima", "lpips", "dists"):
        return {"pretrained": False}
    return {}  # psnr-y, psnr-y-full, ssim (no weights); clipiqa, fid, qalign (backbone only)


class Scorer:
    """Scores lists of images with ``names`` (a list or ``"musiq,niqe"``).

    ``score`` gives per-image no-reference scores, plus full-reference ones when references are
    given; ``fid`` compares two sets. ``pretrained=False`` builds metrics with random weights (tests,
    benchmark): numbers are then meaningless but finite. ``options`` adds ``create_metric`` keyword
    arguments per metric name. ``crop_border`` takes that many pixels off every side of both images
    before the pixel-fidelity metrics (PSNR-Y, SSIM: ``Metric.crops_border``), as BasicSR does.
    """

    def __init__(
        self,
        names: str | Sequence[str],
        device: str = "cpu",
        batch_size: int = 4,
        cache_dir: Path | str | None = None,
        offline: bool = False,
        pretrained: bool = True,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        crop_border: int = 0,
    ):
        self.names = parse_metrics(names)
        if crop_border < 0:
            raise ValueError(f"crop_border must be >= 0, got {crop_border}")
        self.crop_border = crop_border  # pixels off each side before PSNR/SSIM, as BasicSR's crop_border
        if device == "auto":
            from lucidflux_cli.devices import resolve_device  # torch: not at import (data filter has none)

            device = str(resolve_device(device))
        self.device = device
        self.batch_size = max(1, batch_size)
        self.cache_dir = cache_dir
        self.offline = offline
        self.pretrained = pretrained
        self.options = {k: dict(v) for k, v in (options or {}).items()}
        self._built: dict[str, Any] = {}
        self.failures: list[ScoreError] = []  # score(errors="skip") appends here; the caller drains it
        self._last_error = ""
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def no_reference(self) -> tuple[str, ...]:
        return no_reference(self.names)

    @property
    def full_reference(self) -> tuple[str, ...]:
        return full_reference(self.names)

    @property
    def folder_level(self) -> tuple[str, ...]:
        return folder_level(self.names)

    def check(self) -> None:
        """MetricUnavailable now (not mid-run) when offline and a metric's files are missing."""
        require(self.names, self.cache_dir, self.pretrained, self.offline)

    def metric(self, name: str) -> Any:
        """The pyiqa metric (an ``InferenceModel``), built on first use."""
        if name not in self._built:
            require([name], self.cache_dir, self.pretrained, self.offline)
            self._built[name] = self._build(name)
        return self._built[name]

    def _build(self, name: str) -> Any:
        metric = get(name)
        options: dict[str, Any] = dict(metric.pyiqa_options)
        if metric.crops_border and self.crop_border:
            options["crop_border"] = self.crop_border
        if not self.pretrained:
            if self._workdir is None:
                self._workdir = tempfile.TemporaryDirectory(prefix="lucidflux-metrics-")
            options.update(untrained_options(name, Path(self._workdir.name)))
        options.update(self.options.get(name, {}))
        try:
            import pyiqa
        except ImportError as error:
            raise LucidFluxError(
                f"metrics need the eval extra: pip install 'lucidflux-cli[eval]' ({one_line(error)})"
            ) from error
        # pyiqa prints 'Downloading: ...' to stdout; stdout may carry --json events: send it to stderr.
        with redirected(self.cache_dir, self.offline), contextlib.redirect_stdout(sys.stderr):
            try:
                return pyiqa.create_metric(metric.pyiqa_name, device=self.device, as_loss=False, **options)
            except ModuleNotFoundError as error:
                if error.name == "pkg_resources":  # openai-clip (CLIP-IQA) imports it
                    raise LucidFluxError(
                        f"metric {name} needs pkg_resources for openai-clip: pip install 'setuptools<81'"
                    ) from error
                raise
            except OSError as error:  # no network, a hub error, an unreadable file
                raise MetricUnavailable(name, f"could not load its weights ({error})") from error

    def score(
        self,
        images: Sequence[Image],
        references: Sequence[Image] | None = None,
        labels: Sequence[str] | None = None,
        errors: str = "raise",
    ) -> list[dict[str, float]]:
        """One ``{metric: value}`` per image: the no-reference metrics, plus the full-reference ones
        when ``references`` (same order) are given. Sizes are checked for every pair first:
        SizeMismatch names the first bad one (``labels``) and nothing is scored.

        A metric that fails on a batch is retried image by image, so a failure names its file
        (NIQE on a blank or tiny image, say): ``errors="raise"`` raises that ScoreError;
        ``errors="skip"`` leaves the metric out of that image's row, appends the ScoreError to
        ``self.failures`` and goes on with the others."""
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")
        labels = list(labels) if labels is not None else [str(i) for i in range(len(images))]
        if references is not None:
            if len(references) != len(images):
                raise ValueError(f"{len(images)} images but {len(references)} references")
            for image, reference, label in zip(images, references, labels, strict=True):
                check_pair(image, reference, label)
        rows: list[dict[str, float]] = [{} for _ in images]
        jobs = [(name, None) for name in self.no_reference]
        if references is not None:
            jobs += [(name, references) for name in self.full_reference]
        for name, refs in jobs:
            for indices in batches([height_width(i) for i in images], self.batch_size):
                try:
                    values = self._call(name, images, refs, indices)
                except ScoreError:
                    if len(indices) == 1:
                        values = [self._failed(name, images, labels, indices[0], errors)]
                    else:  # find the image(s) at fault, score the rest
                        values = [self._single(name, images, refs, labels, i, errors) for i in indices]
                for i, value in zip(indices, values, strict=True):
                    if value is not None:
                        rows[i][name] = value
        return rows

    def _single(
        self,
        name: str,
        images: Sequence[Image],
        refs: Sequence[Image] | None,
        labels: Sequence[str],
        index: int,
        errors: str,
    ) -> float | None:
        try:
            return self._call(name, images, refs, [index])[0]
        except ScoreError:
            return self._failed(name, images, labels, index, errors)

    def _failed(
        self, name: str, images: Sequence[Image], labels: Sequence[str], index: int, errors: str
    ) -> None:
        cause = self._last_error
        height, width = height_width(images[index])
        error = ScoreError(f"{name} failed on {labels[index]} ({width}x{height}): {cause}")
        error.label, error.metric = labels[index], name
        if errors == "raise":
            raise error
        self.failures.append(error)
        return None

    def _call(
        self, name: str, images: Sequence[Image], refs: Sequence[Image] | None, indices: Sequence[int]
    ) -> list[float]:
        import torch

        if get(name).crops_border and self.crop_border:
            height, width = height_width(images[indices[0]])
            if min(height, width) <= 2 * self.crop_border:
                self._last_error = f"a crop border of {self.crop_border} px leaves nothing of it"
                raise ScoreError(self._last_error)
        metric = self.metric(name)
        target = torch.stack([to_tensor(images[i]) for i in indices]).to(self.device)
        ref = None if refs is None else torch.stack([to_tensor(refs[i]) for i in indices]).to(self.device)
        try:
            with seeded(), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # pyiqa/torch chatter, once per image
                out = metric(target, ref) if ref is not None else metric(target)
        except (RuntimeError, ValueError, AssertionError) as error:  # NIQE on a tiny or blank image
            self._last_error = one_line(error)
            raise ScoreError(self._last_error) from error
        values = out.detach().float().cpu().reshape(len(indices), -1)[:, 0].tolist()
        if not all(math.isfinite(v) for v in values):
            self._last_error = "not a finite number"
            raise ScoreError(self._last_error)
        return [float(v) for v in values]

    def fid_features(self, images: Sequence[Image]) -> np.ndarray:
        """Inception features (N x 2048) of ``images`` as pyiqa's folder FID computes them."""
        return fidlib.features(self.metric("fid").net.model, images, self.device, self.batch_size)

    def fid(self, first: Sequence[Image], second: Sequence[Image]) -> float:
        """FID between two sets of images (each set needs at least 2 images)."""
        return fidlib.distance(self.fid_features(first), self.fid_features(second))

    def close(self) -> None:
        """Drop the built metrics (frees their memory) and the scratch folder."""
        self._built.clear()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None


def score_each(
    scorer: Scorer, images: Sequence[np.ndarray], labels: Sequence[str]
) -> list[float | ScoreError]:
    """The first no-reference metric of ``scorer`` on 8-bit RGB ``images``: each one's value, or
    the ScoreError naming it (it alone failed). Images of one size share metric calls (up to
    ``batch_size`` each) in whatever order they come; MetricUnavailable is raised."""
    name = scorer.no_reference[0]
    order = sorted(range(len(images)), key=lambda i: images[i].shape)
    rows = scorer.score(
        [images[i].astype(np.float32) / np.float32(255.0) for i in order],
        labels=[labels[i] for i in order],
        errors="skip",
    )
    failed = {error.label: error for error in scorer.failures}
    scorer.failures.clear()
    values: list[float | ScoreError] = [0.0] * len(images)
    for index, row in zip(order, rows, strict=True):
        values[index] = row[name] if name in row else failed[labels[index]]
    return values


def batches(sizes: Sequence[tuple[int, int]], batch_size: int) -> Iterator[list[int]]:
    """Indices in runs of at most ``batch_size`` consecutive images of the same size."""
    run: list[int] = []
    for i, size in enumerate(sizes):
        if run and (len(run) == batch_size or sizes[run[0]] != size):
            yield run
            run = []
        run.append(i)
    if run:
        yield run


@contextlib.contextmanager
def seeded(seed: int = SEED) -> Iterator[None]:
    """Fixed torch and numpy seeds for one batch, the callers' random state restored after."""
    import torch

    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)
