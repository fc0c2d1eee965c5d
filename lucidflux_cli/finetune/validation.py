"""Validation during ``lucidflux train``: held-out LQ images restored by the model being trained,
scored with no-reference metrics, and one Markdown page with before/after pictures and an SVG
plot of the loss and the scores (``run/validation/index.md``; no plotting library needed)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from lucidflux_cli import atomic, review
from lucidflux_cli.errors import LucidFluxError, one_line
from lucidflux_cli.imageio import discovery, media
from lucidflux_cli.imageio.media import read_rgb

log = logging.getLogger("lucidflux")
MAX_IMAGES = 8  # a page, not an evaluation: `lucidflux eval` scores whole folders


class Validation:
    """``precision``: the context the training steps run in (the accelerator's autocast), so the
    held-out images go through the model in the same dtypes as training: bf16 frozen side and
    float32 trainable parts would otherwise meet in one matmul and fail."""

    def __init__(
        self, request: Any, pipeline, precision: Callable[[], AbstractContextManager] = contextlib.nullcontext
    ):
        self.request, self.pipeline, self.precision = request, pipeline, precision
        found = discovery.discover([str(request.validation)], recursive=True)
        self.images = list(found.files)[:MAX_IMAGES]
        if not self.images:
            raise ValueError(f"--validation {request.validation}: no images there")
        self.folder = request.out_dir / "validation"
        self.history_path = self.folder / "history.json"
        self.history: list[dict[str, Any]] = (
            json.loads(self.history_path.read_text()) if self.history_path.exists() else []
        )
        self.scorer = self._scorer()
        self.review = review.PageWriter(request.out_dir)  # previews made once per run

    def _scorer(self):
        names = self.request.validation_metrics
        if not names or names == "none":
            return None
        from lucidflux_cli.metrics.scoring import Scorer

        try:
            scorer = Scorer(
                names,
                device=str(self.pipeline.device),
                batch_size=1,
                cache_dir=self.request.cache_dir,
                offline=self.request.offline,
            )
            scorer.check()
        except (LucidFluxError, ValueError) as error:
            log.warning("validation pages without scores: %s", one_line(error))
            return None
        return scorer

    def run(self, step: int, losses: list[tuple[int, float]]) -> str | None:
        """Restore, score and write the page for ``step``. A failure is logged as an error and
        returned (one line, for the run report); it never ends the training run."""
        try:
            entry = self._restore_and_score(step)
            self.history = [e for e in self.history if e["step"] != step] + [entry]
            self._write(losses)
        except Exception as error:  # the training run goes on; the caller reports the failure
            message = f"validation at step {step} failed: {one_line(error) or type(error).__name__}"
            log.error("%s", message)
            log.debug("validation failure", exc_info=True)
            return message
        log.info(
            "validation at step %d: %s",
            step,
            ", ".join(f"{k} {v:.4g}" for k, v in entry.items() if k != "step") or "restored",
        )
        return None

    def _restore_and_score(self, step: int) -> dict[str, Any]:
        import torch

        from lucidflux_cli.model.pipeline import RestoreSettings

        folder = self.folder / f"step-{step}"
        folder.mkdir(parents=True, exist_ok=True)
        scores: dict[str, list[float]] = {}
        for item in self.images:
            with torch.no_grad(), self.precision():
                image = media.read_pages(item.path, "first").images[0].model_input  # as restore gives it
                restored = self.pipeline(image, settings=RestoreSettings(steps=self.request.validation_steps))
            _save_png(folder / page_name(item), restored)
            if self.scorer is not None:
                for name, value in self.scorer.score([restored])[0].items():
                    scores.setdefault(name, []).append(float(value))
        return {"step": step, **{name: float(np.mean(values)) for name, values in scores.items()}}

    def _write(self, losses: list[tuple[int, float]]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        history = json.dumps(self.history, indent=2).encode()
        atomic.atomic_write(self.history_path, lambda handle: handle.write(history))
        for item in self.images:  # the LQ inputs once, for the "before" column
            before = self.folder / "lq" / page_name(item)
            if not before.exists():
                before.parent.mkdir(parents=True, exist_ok=True)
                _save_png(before, read_rgb(item.path))
        svg = loss_plot(losses, self.history).encode()
        atomic.atomic_write(self.folder / "plot.svg", lambda handle: handle.write(svg))
        page = self.page().encode()
        atomic.atomic_write(self.folder / "index.md", lambda handle: handle.write(page))
        self._write_review()

    def _write_review(self) -> None:
        """run/review/index.html: the same page as ``restore --review``'s, a column per step."""
        from lucidflux_cli.metrics.registry import higher_better

        images = [(item.relative.as_posix(), page_name(item)) for item in self.images]
        try:
            self.review.write(review.validation_page(self.folder, images, self.history, higher_better))
        except review.ReviewRefused as error:
            log.warning("%s", error)

    def page(self) -> str:
        steps = [e["step"] for e in self.history]
        metrics = sorted({k for e in self.history for k in e if k != "step"})
        lines = ["# Validation", "", "![loss and scores](plot.svg)", ""]
        if metrics:
            lines += ["| step | " + " | ".join(metrics) + " |", "|---:|" + "---:|" * len(metrics)]
            lines += [
                f"| {e['step']} | " + " | ".join(f"{e.get(m, float('nan')):.4g}" for m in metrics) + " |"
                for e in sorted(self.history, key=lambda e: e["step"])
            ]
            lines.append("")
        shown = sorted(steps)[-3:]  # the latest steps side by side
        lines += [
            "| image | LQ | " + " | ".join(f"step {s}" for s in shown) + " |",
            "|---|---|" + "---|" * len(shown),
        ]
        for item in self.images:
            name = page_name(item)
            cells = [f"![](lq/{name})"] + [f"![](step-{s}/{name})" for s in shown]
            lines.append(f"| {item.relative.as_posix()} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def loss_plot(
    losses: list[tuple[int, float]], history: list[dict[str, Any]], width: int = 640, height: int = 240
) -> str:
    """An SVG line chart: the training loss (blue) and each validation score (own scale), by step."""
    series = [("loss", [(s, v) for s, v in losses], "#1f77b4")]
    colours = ("#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
    metrics = sorted({k for e in history for k in e if k != "step"})
    for colour, name in zip(colours, metrics, strict=False):
        series.append(
            (
                name,
                [(e["step"], e[name]) for e in sorted(history, key=lambda e: e["step"]) if name in e],
                colour,
            )
        )
    last = max([s for _, points, _ in series for s, _ in points] or [1])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 20}">',
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    for index, (name, points, colour) in enumerate(series):
        if not points:
            continue
        low, high = min(v for _, v in points), max(v for _, v in points)
        span = (high - low) or 1.0
        coords = " ".join(
            f"{s / last * (width - 10) + 5:.1f},{height - (v - low) / span * (height - 10) - 5:.1f}"
            for s, v in points
        )
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}"/>')
        parts.append(
            f'<text x="{5 + index * 150}" y="{height + 15}" font-size="12" fill="{colour}">'
            f"{name} {low:.4g}..{high:.4g}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def page_name(item) -> str:
    """One flat, unique file name per held-out image (``a/b.jpg`` -> ``a__b.jpg.png``, ``c.png`` kept)."""
    flat = item.relative.as_posix().replace("/", "__")
    return flat if flat.lower().endswith(".png") else flat + ".png"


def _save_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    image = Image.fromarray((np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8))
    atomic.atomic_write(path, lambda handle: image.save(handle, format="PNG"))
