"""Curating training photos as the LucidFlux report does: per-image rules, then set-level stages.

Funnel (docs/data.md): readable -> size -> blur -> flat regions -> duplicates -> quality.
:func:`measure` takes one decoded photo and returns every measurement; :func:`judge` applies the
per-image rules to them; :func:`select` applies the stages that need the whole set (duplicates,
the quality quantile) to all records at once, so shards measured apart and merged give the
same manifest as one run. No file I/O here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

FUNNEL = ("read", "size", "blur", "flat", "duplicate", "quality")  # stage names, in order


@dataclass(frozen=True)
class FilterConfig:
    """The rules and their defaults (sources in docs/data.md)."""

    blur_min: float = 150.0  # variance of the Laplacian, 8-bit gray [LF, as LSDIR]
    blur_max: float = 8000.0
    patch: int = 240  # flat-region patches, non-overlapping; partial border patches ignored [LF]
    flat_gradient_var: float = 800.0  # a patch is flat below this variance of the Sobel magnitude [LF]
    flat_max_fraction: float = 0.5  # the image is dropped above this fraction of flat patches [LF]
    min_side: int = 384  # DreamClear's loader skips images under 384x384 px ...
    min_bytes: int = 100_000  # ... or 100 KB
    near_duplicate_bits: int = 4  # perceptual hashes within this Hamming distance are one photo [here]
    quality_metric: str | None = "clipiqa"  # None: no quality stage
    quality_top: float = 0.2  # keep the best ``top`` of the set: scores >= the (1 - top) quantile [LF] ...
    quality_min: float | None = None  # ... or a fixed cut instead
    higher_better: bool = True  # the metric's direction (NIQE: lower is better; the cut mirrors)

    def __post_init__(self) -> None:
        if not 0.0 < self.quality_top <= 1.0:
            raise ValueError(f"the quality top fraction must be in (0, 1], got {self.quality_top}")
        if self.blur_min > self.blur_max:
            raise ValueError(f"blur range is empty: {self.blur_min} > {self.blur_max}")
        if self.patch < 3 or not 0.0 <= self.flat_max_fraction <= 1.0:
            raise ValueError("flat-region rule: patch >= 3 px and a fraction in [0, 1]")


# ------------------------------------------------------------------------------- measurements


def _padded(gray: np.ndarray) -> np.ndarray:
    """float64 with a 1-px border mirrored without repeating the edge (OpenCV's default border)."""
    return np.pad(gray.astype(np.float64), 1, mode="reflect")


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian [[0,1,0],[1,-4,1],[0,1,0]] (OpenCV's ksize=1) of 8-bit gray."""
    p = _padded(gray)
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * p[1:-1, 1:-1]
    return float(lap.var())


def sobel_magnitude(gray: np.ndarray) -> np.ndarray:
    """Gradient magnitude of OpenCV's 3x3 Sobel pair, float64."""
    p = _padded(gray)
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return np.hypot(gx, gy)


def flat_fraction(gray: np.ndarray, patch: int, threshold: float) -> tuple[float, int]:
    """(fraction of flat patches, number of patches). The Sobel magnitude is taken over the whole
    image, then cut into whole ``patch`` x ``patch`` squares; an image with none is not flat."""
    rows, cols = gray.shape[0] // patch, gray.shape[1] // patch
    if rows == 0 or cols == 0:
        return 0.0, 0
    magnitude = sobel_magnitude(gray)[: rows * patch, : cols * patch]
    variances = magnitude.reshape(rows, patch, cols, patch).var(axis=(1, 3))
    return float((variances < threshold).mean()), rows * cols


def to_gray8(rgb: np.ndarray) -> np.ndarray:
    """8-bit luma (ITU-R 601, rounded), as the rules are defined on 8-bit grayscale."""
    weights = np.array([299, 587, 114], dtype=np.int64)
    return ((rgb.astype(np.int64) @ weights + 500) // 1000).astype(np.uint8)


def perceptual_hash(rgb: np.ndarray) -> str:
    """64-bit DCT perceptual hash (imagehash's pHash) as 16 hex digits."""
    import imagehash
    from PIL import Image

    return str(imagehash.phash(Image.fromarray(rgb)))


def measure(rgb: np.ndarray, config: FilterConfig) -> dict[str, Any]:
    """Everything the per-image rules and the duplicate stage need, JSON-ready."""
    gray = to_gray8(rgb)
    fraction, patches = flat_fraction(gray, config.patch, config.flat_gradient_var)
    return {
        "width": int(rgb.shape[1]),
        "height": int(rgb.shape[0]),
        "laplacian_var": round(laplacian_variance(gray), 4),
        "flat_fraction": round(fraction, 6),
        "patches": patches,
        "phash": perceptual_hash(rgb),
    }


def judge(record: dict[str, Any], config: FilterConfig) -> tuple[str, str] | None:
    """The first per-image rule a measured record fails, as (stage, reason); None: it passes."""
    if min(record["width"], record["height"]) < config.min_side:
        return "size", f"{record['width']}x{record['height']} px, under {config.min_side} px"
    if record.get("bytes") is not None and record["bytes"] < config.min_bytes:
        return "size", f"{record['bytes']} bytes, under {config.min_bytes}"
    variance = record["laplacian_var"]
    if variance < config.blur_min:
        return "blur", f"blurry: Laplacian variance {variance:.1f} < {config.blur_min:g}"
    if variance > config.blur_max:
        return "blur", f"noisy or over-sharp: Laplacian variance {variance:.1f} > {config.blur_max:g}"
    if record["flat_fraction"] > config.flat_max_fraction:
        return "flat", (f"flat: {record['flat_fraction']:.0%} of {record['patches']} patches under gradient "
                        f"variance {config.flat_gradient_var:g}")
    return None


# ------------------------------------------------------------------------------ set-level stages


def _hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _bands(value: int, count: int) -> list[tuple[int, int]]:
    """Split a 64-bit hash into ``count`` bands: two hashes within count-1 bits share one exactly."""
    width = -(-64 // count)
    return [(band, (value >> (band * width)) & ((1 << width) - 1)) for band in range(count)]


def mark_duplicates(records: Sequence[dict[str, Any]], max_bits: int) -> None:
    """Among records still kept, keep one of each group of (near-)identical photos: the most
    pixels, then the most bytes, then the first name; the others get stage "duplicate".

    Candidates come from hash bands (pigeonhole), so a million photos are not compared pairwise.
    """
    order = sorted((r for r in records if r.get("stage") is None),
                   key=lambda r: (-r["width"] * r["height"], -(r.get("bytes") or 0), r["name"]))
    index: dict[tuple[int, int], list[tuple[int, str]]] = {}
    for record in order:
        value = int(record["phash"], 16)
        bands = _bands(value, max_bits + 1)
        twin = next((name for key in bands for other, name in index.get(key, ())
                     if _hamming(value, other) <= max_bits), None)
        if twin is not None:
            record.update(stage="duplicate", reason=f"duplicate of {twin}")
            continue
        for key in bands:
            index.setdefault(key, []).append((value, record["name"]))


def quality_cut(scores: Sequence[float], config: FilterConfig) -> float:
    """The worst score kept: the fixed ``quality_min``, or the quantile of the set that leaves the
    best ``quality_top`` (the (1 - top) quantile; the top quantile when lower is better)."""
    if config.quality_min is not None:
        return config.quality_min
    level = 1.0 - config.quality_top if config.higher_better else config.quality_top
    return float(np.quantile(np.asarray(scores, dtype=np.float64), level))


def passes_quality(score: float, cut: float, config: FilterConfig) -> bool:
    return score >= cut if config.higher_better else score <= cut


def select(records: list[dict[str, Any]], config: FilterConfig) -> dict[str, Any]:
    """Apply the set-level stages to records whose per-image stage is settled (``stage`` None when
    they passed); set ``kept`` on each; return the funnel (count left after each stage) and the cut."""
    mark_duplicates(records, config.near_duplicate_bits)
    cut = None
    if config.quality_metric is not None:
        scored = [r for r in records if r.get("stage") is None]
        missing = [r["name"] for r in scored if r.get("score") is None]
        if missing:
            raise ValueError(f"{len(missing)} images have no {config.quality_metric} score (e.g. {missing[0]})")
        if scored:
            cut = quality_cut([r["score"] for r in scored], config)
            sign = "<" if config.higher_better else ">"
            for record in scored:
                if not passes_quality(record["score"], cut, config):
                    record.update(stage="quality",
                                  reason=f"{config.quality_metric} {record['score']:.4f} {sign} cut {cut:.4f}")
    for record in records:
        record["kept"] = record.get("stage") is None
    left, funnel = len(records), {"images": len(records)}
    for stage in FUNNEL:
        left -= sum(r.get("stage") == stage for r in records)
        funnel[stage] = left
    return {"funnel": funnel, "quality_cut": cut}
