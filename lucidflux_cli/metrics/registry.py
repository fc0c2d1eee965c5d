"""The one table of image-quality metrics: what each is, its direction, cost and licence.

Names are pyiqa's (``pyiqa.create_metric(name)``), except the two PSNR-Y conventions: pyiqa's
``psnry`` in two colour spaces (``Metric.pyiqa``, ``Metric.pyiqa_options``). Nothing here imports
pyiqa: the table is read by ``weights list``, ``doctor`` and ``--help`` without the ``eval`` extra
installed. The tests check that ``higher_better`` and ``full_reference`` agree with pyiqa's own
``DEFAULT_CONFIGS``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Cost classes: "cheap" has no neural network (fast on a CPU), "standard" is a network under
# 1B parameters (seconds per 1024 px image on a CPU, fast on a GPU), "large" is opt-in only.
COSTS = ("cheap", "standard", "large")

# pyiqa 0.1.16's package metadata: "License-Expression: PolyForm-Noncommercial-1.0.0", plus the
# S-Lab License 1.0 (LICENSE-S-Lab) "for applicable components"; both are non-commercial.
PYIQA_LICENCE = (
    "pyiqa (IQA-PyTorch) is licensed under the PolyForm Noncommercial License 1.0.0 "
    '("Any noncommercial purpose is a permitted purpose.") and, for some components, the NTU S-Lab '
    'License 1.0 ("Redistribution and use for non-commercial purpose ... are permitted"): '
    "commercial use of `lucidflux eval` / `--score` needs the authors' permission."
)


@dataclass(frozen=True)
class Metric:
    """One metric. ``name`` is ours and pyiqa's; ``label`` is how tables show it."""

    name: str
    label: str
    higher_better: bool
    full_reference: bool = False  # needs a reference image (paired by relative path)
    folder_level: bool = False  # one number per pair of folders (fid), not per image
    cost: str = "standard"
    measures: str = ""
    licence: str = ""  # of the method / its weights, where known
    opt_in: str = ""  # non-empty: never in a default set, and why
    pyiqa: str = ""  # pyiqa's name, where ours differs
    pyiqa_options: tuple[tuple[str, Any], ...] = ()  # create_metric keyword arguments that make it ours
    crops_border: bool = False  # eval --crop-border applies (pixel fidelity, as BasicSR's crop_border)

    @property
    def pyiqa_name(self) -> str:
        return self.pyiqa or self.name

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_better else "↓"

    @property
    def kind(self) -> str:
        if self.folder_level:
            return "folder"
        return "full-reference" if self.full_reference else "no-reference"


_UPSTREAM = "not stated by pyiqa; check the method's upstream repository"
# BT.601 studio-range Y spans 219 of 255 levels: the same error is 219/255 as large on it, so
# PSNR on YCbCr Y (psnr-y) is 20 log10(255/219) = 1.32 dB above PSNR on full-range luma (psnr-y-full).
YCBCR_OFFSET_DB = 20 * math.log10(255 / 219)
# Names that meant something else before: refused with what to use instead.
RENAMED = {
    "psnry": "psnry is two conventions now: psnr-y (BT.601 YCbCr Y, studio range: BasicSR's and "
    "SR papers') or psnr-y-full (full-range luma, pyiqa's psnry; 1.32 dB lower)"
}

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "clipiqa+",
            "CLIP-IQA+",
            True,
            measures="CLIP (RN50) with prompts learned on KonIQ-10k",
            licence="CLIP weights MIT (OpenAI); CLIP-IQA: S-Lab License 1.0 (non-commercial)",
        ),
        Metric(
            "qalign",
            "Q-Align",
            True,
            cost="large",
            measures="multimodal LLM (mPLUG-Owl2, ~8B parameters) rating quality from 1 to 5",
            licence="Q-Align code MIT; the model builds on mPLUG-Owl2 / LLaMA-2: check the "
            "q-future/one-align model card",
            opt_in="~8B parameters (~16 GB download, a GPU with >= 16 GB): name it in --metrics",
        ),
        Metric(
            "musiq",
            "MUSIQ",
            True,
            measures="multi-scale image transformer trained on KonIQ-10k",
            licence="MUSIQ code Apache-2.0 (google-research); converted checkpoint",
        ),
        Metric(
            "maniqa",
            "MANIQA",
            True,
            measures="multi-dimension attention on ViT-B/8 features, KonIQ-10k",
            licence=f"ViT-B/8 backbone Apache-2.0 (timm); MANIQA head {_UPSTREAM}",
        ),
        Metric(
            "nima",
            "NIMA",
            True,
            measures="aesthetic score distribution (Inception-ResNet-v2, AVA)",
            licence=f"backbone Apache-2.0 (timm); NIMA head {_UPSTREAM}",
        ),
        Metric(
            "clipiqa",
            "CLIP-IQA",
            True,
            measures="CLIP (RN50) antonym prompts, zero-shot",
            licence="CLIP weights MIT (OpenAI); CLIP-IQA: S-Lab License 1.0 (non-commercial)",
        ),
        Metric(
            "niqe",
            "NIQE",
            False,
            cost="cheap",
            measures="natural scene statistics distance to pristine images (no learning on opinions)",
            licence=f"model parameters from the NIQE MATLAB release (LIVE); {_UPSTREAM}",
        ),
        Metric(
            "psnr-y",
            "PSNR-Y (YCbCr)",
            True,
            full_reference=True,
            cost="cheap",
            pyiqa="psnry",
            pyiqa_options=(("color_space", "ycbcr"),),
            crops_border=True,
            measures="PSNR on the Y of ITU-R BT.601 YCbCr, studio range (16-235): BasicSR's "
            "and the SR papers' convention",
            licence="formula; no weights",
        ),
        Metric(
            "psnr-y-full",
            "PSNR-Y (full-range luma)",
            True,
            full_reference=True,
            cost="cheap",
            pyiqa="psnry",
            crops_border=True,
            measures="PSNR on full-range luma 0.299 R + 0.587 G + 0.114 B (pyiqa's psnry): "
            f"{YCBCR_OFFSET_DB:.2f} dB below psnr-y, always",
            licence="formula; no weights",
        ),
        Metric(
            "ssim",
            "SSIM",
            True,
            full_reference=True,
            cost="cheap",
            crops_border=True,
            measures="SSIM on full-range luma 0.299 R + 0.587 G + 0.114 B rounded to 8 bits "
            "(11x11 Gaussian window; pyiqa's ssim)",
            licence="formula; no weights",
        ),
        Metric(
            "lpips",
            "LPIPS",
            False,
            full_reference=True,
            measures="learned perceptual distance on AlexNet features",
            licence="LPIPS BSD-2-Clause; AlexNet ImageNet weights from torchvision",
        ),
        Metric(
            "dists",
            "DISTS",
            False,
            full_reference=True,
            measures="structure and texture similarity on VGG16 features",
            licence=f"VGG16 ImageNet weights from torchvision; DISTS {_UPSTREAM}",
        ),
        Metric(
            "fid",
            "FID",
            False,
            folder_level=True,
            measures="Frechet distance of Inception-v3 features between two folders (clean-fid resize)",
            licence="Inception weights from pytorch-fid (Apache-2.0), converted from TensorFlow",
        ),
    )
}

# The paper's Table 1 (no-reference metrics), in its column order.
PAPER_TABLE1: tuple[str, ...] = ("clipiqa+", "qalign", "musiq", "maniqa", "nima", "clipiqa", "niqe")
# What `lucidflux eval` computes without --metrics: Table 1 minus the opt-in Q-Align ...
DEFAULT_NO_REFERENCE: tuple[str, ...] = tuple(n for n in PAPER_TABLE1 if not METRICS[n].opt_in)
# ... plus these when --reference is given.
DEFAULT_FULL_REFERENCE: tuple[str, ...] = ("psnr-y", "ssim", "lpips", "dists")
# `restore --score` with no list: NIQE (no network, ~0.3 s per 1024 px image on 2 CPU cores) and
# MUSIQ (a learned opinion score, ~5 s there, well under a second on a GPU); see docs/eval.md.
DEFAULT_SCORE: tuple[str, ...] = ("niqe", "musiq")


def default_metrics(reference: bool = False) -> tuple[str, ...]:
    """The set `lucidflux eval` uses when no list is given."""
    return DEFAULT_NO_REFERENCE + (DEFAULT_FULL_REFERENCE if reference else ())


def get(name: str) -> Metric:
    """One metric by name; ValueError (one line) names it and lists the known ones."""
    try:
        return METRICS[name]
    except KeyError:
        if name in RENAMED:
            raise ValueError(RENAMED[name]) from None
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None


def higher_better(name: str) -> bool | None:
    """Whether a higher value of ``name`` is better; None for a name that is no known metric."""
    metric = METRICS.get(name)
    return None if metric is None else metric.higher_better


def parse_metrics(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"musiq, niqe"`` (or a list of names) -> ``("musiq", "niqe")``: validated, duplicates dropped,
    order kept. Names are case-insensitive. Empty -> ValueError."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(dict.fromkeys(p.strip().lower() for p in parts if p.strip()))
    if not names:
        raise ValueError(f"no metric given; known: {', '.join(METRICS)}")
    for name in names:
        get(name)
    return names


def no_reference(names: Iterable[str]) -> tuple[str, ...]:
    """The per-image no-reference metrics among ``names``."""
    return tuple(n for n in names if not get(n).full_reference and not get(n).folder_level)


def full_reference(names: Iterable[str]) -> tuple[str, ...]:
    """The per-image full-reference metrics among ``names``."""
    return tuple(n for n in names if get(n).full_reference)


def folder_level(names: Iterable[str]) -> tuple[str, ...]:
    """The folder-level metrics (fid) among ``names``."""
    return tuple(n for n in names if get(n).folder_level)


def metrics_markdown() -> str:
    """The table as Markdown (docs/eval.md embeds it)."""
    rows = [
        "| metric | name | better | kind | cost | measures | licence (method / weights) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in METRICS.values():
        cost = m.cost + (" (opt-in)" if m.opt_in else "")
        rows.append(
            f"| {m.label} | `{m.name}` | {m.arrow} | {m.kind} | {cost} | {m.measures} | {m.licence} |"
        )
    return "\n".join(rows)
