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


def _cv2():
    """OpenCV, imported on first use: ``--help`` and the other commands do without it."""
    try:
        import cv2
    except ImportError as error:
        raise ImportError("the filter's measures need OpenCV: pip install 'lucidflux-cli[data]'") from error
    return cv2


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian [[0,1,0],[1,-4,1],[0,1,0]] (OpenCV's ksize=1, mirrored border
    without repeating the edge) of 8-bit gray: exact, then rounded once to float64."""
    cv2 = _cv2()
    laplacian = cv2.Laplacian(gray, cv2.CV_16S, ksize=1)  # |value| <= 1020: exact in 16 bits
    squares = cv2.multiply(laplacian, laplacian, dtype=cv2.CV_32S)
    # OpenCV sums integers in integer blocks and float64 (exact below 2**53): the sums are exact,
    # and Python integers do the rest
    count, total, sum_squares = laplacian.size, int(cv2.sumElems(laplacian)[0]), int(cv2.sumElems(squares)[0])
    return (count * sum_squares - total * total) / (count * count)


def _sobel(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's 3x3 Sobel pair (x, y), float64 (integers), mirrored border."""
    cv2 = _cv2()
    return cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_64F, 0, 1, ksize=3)


def sobel_magnitude(gray: np.ndarray) -> np.ndarray:
    """Gradient magnitude of OpenCV's 3x3 Sobel pair, float64: the square root of an exact integer."""
    return _cv2().magnitude(*_sobel(gray))


def flat_fraction(gray: np.ndarray, patch: int, threshold: float) -> tuple[float, int]:
    """(fraction of flat patches, number of patches). The Sobel magnitude is taken over the whole
    image, then cut into whole ``patch`` x ``patch`` squares; an image with none is not flat."""
    rows, cols = gray.shape[0] // patch, gray.shape[1] // patch
    if rows == 0 or cols == 0:
        return 0.0, 0
    flat = sum(int((_strip_variances(gray, row, patch, cols) < threshold).sum()) for row in range(rows))
    return flat / (rows * cols), rows * cols


def _strip_variances(gray: np.ndarray, row: int, patch: int, cols: int) -> np.ndarray:
    """Variance of the Sobel magnitude in each patch of patch row ``row``. One strip at a time, so
    that the float64 arrays stay in cache; the strip keeps one real pixel row (column) beyond its
    patches wherever the image has one, so its border equals the whole image's."""
    top = row * patch
    first = max(top - 1, 0)
    strip = gray[first : min(top + patch + 1, gray.shape[0]), : min(cols * patch + 1, gray.shape[1])]
    magnitude = _cv2().magnitude(*_sobel(strip))[top - first : top - first + patch, : cols * patch]
    return magnitude.reshape(patch, cols, patch).var(axis=(0, 2))


def to_gray8(rgb: np.ndarray) -> np.ndarray:
    """8-bit luma (ITU-R 601, rounded halves up): ``(299 R + 587 G + 114 B + 500) // 1000``.

    OpenCV rounds ``(299 R + 587 G + 114 B + 0.5) / 1000`` to the nearest integer, which is that:
    the value is never within 0.0005 of a half, far beyond float error (tests check every colour)."""
    return _cv2().transform(np.ascontiguousarray(rgb), _LUMA_601)


_LUMA_601 = np.array([[0.299, 0.587, 0.114, 0.0005]])


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
        "laplacian_var": laplacian_variance(gray),  # unrounded: the rules compare these values
        "flat_fraction": fraction,
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
        return (
            "blur",
            f"blurry: Laplacian variance {_beside(variance, config.blur_min)} < {config.blur_min:g}",
        )
    if variance > config.blur_max:
        return "blur", (
            f"noisy or over-sharp: Laplacian variance {_beside(variance, config.blur_max)} > "
            f"{config.blur_max:g}"
        )
    if record["flat_fraction"] > config.flat_max_fraction:
        flat = round(record["flat_fraction"] * record["patches"])
        return "flat", (
            f"flat: {flat} of {record['patches']} patches ({record['flat_fraction']:.0%}) under "
            f"gradient variance {config.flat_gradient_var:g}"
        )
    return None


def _beside(value: float, limit: float) -> str:
    """``value`` to one decimal, or in full where that would print the limit it was compared with."""
    short = f"{value:.1f}"
    return repr(value) if float(short) == limit else short


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
    order = sorted(
        (r for r in records if r.get("stage") is None),
        key=lambda r: (-r["width"] * r["height"], -(r.get("bytes") or 0), r["name"]),
    )
    index: dict[tuple[int, int], list[tuple[int, str]]] = {}
    for record in order:
        value = int(record["phash"], 16)
        bands = _bands(value, max_bits + 1)
        twin = next(
            (
                name
                for key in bands
                for other, name in index.get(key, ())
                if _hamming(value, other) <= max_bits
            ),
            None,
        )
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
            raise ValueError(
                f"{len(missing)} images have no {config.quality_metric} score (e.g. {missing[0]})"
            )
        if scored:
            cut = quality_cut([r["score"] for r in scored], config)
            sign = "<" if config.higher_better else ">"
            for record in scored:
                if not passes_quality(record["score"], cut, config):
                    record.update(
                        stage="quality",
                        reason=f"{config.quality_metric} {record['score']:.4f} {sign} cut {cut:.4f}",
                    )
    for record in records:
        record["kept"] = record.get("stage") is None
    left, funnel = len(records), {"images": len(records)}
    for stage in FUNNEL:
        left -= sum(r.get("stage") == stage for r in records)
        funnel[stage] = left
    return {"funnel": funnel, "quality_cut": cut}
