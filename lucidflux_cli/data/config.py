"""The degradation parameter table: one frozen config, with the Real-ESRGAN preset.

Every number here has its source in docs/data.md. A preset is a classmethod returning a
complete config; variants are made with ``dataclasses.replace`` (the tests shrink ``gt_size``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Range = tuple[float, float]  # closed interval [low, high] for a uniform draw

KERNEL_SIZES: tuple[int, ...] = tuple(range(7, 22, 2))  # odd, 7..21
RESIZE_MODES: tuple[str, ...] = ("area", "bilinear", "bicubic")
FAMILIES: tuple[str, ...] = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)


def _check_probs(what: str, probs: tuple[float, ...]) -> None:
    if any(p < 0 for p in probs) or not math.isclose(sum(probs), 1.0, abs_tol=1e-9):
        raise ValueError(f"{what}: probabilities must be >= 0 and sum to 1, got {probs}")


def _check_range(what: str, bounds: Range) -> None:
    if len(bounds) != 2 or bounds[0] > bounds[1]:
        raise ValueError(f"{what}: expected (low, high) with low <= high, got {bounds}")


@dataclass(frozen=True)
class KernelConfig:
    """How one blur kernel is drawn: its size, sinc-or-family, then the family's parameters."""

    sigma: Range
    sizes: tuple[int, ...] = KERNEL_SIZES
    # (family, probability) pairs; a tuple, not a dict, so the config stays hashable
    families: tuple[tuple[str, float], ...] = (
        ("iso", 0.45),
        ("aniso", 0.25),
        ("generalized_iso", 0.12),
        ("generalized_aniso", 0.03),
        ("plateau_iso", 0.12),
        ("plateau_aniso", 0.03),
    )
    rotation: Range = (-math.pi, math.pi)
    beta_generalized: Range = (0.5, 4.0)
    beta_plateau: Range = (1.0, 2.0)
    sinc_prob: float = 0.1
    sinc_cutoff: Range = (math.pi / 3, math.pi)
    # large sinc kernels may cut lower: more ringing, as the reference allows
    sinc_cutoff_large: Range = (math.pi / 5, math.pi)
    sinc_large_from: int = 13

    def __post_init__(self) -> None:
        if not self.sizes or any(s < 1 or s % 2 == 0 for s in self.sizes):
            raise ValueError(f"kernel sizes must be odd and positive, got {self.sizes}")
        unknown = [name for name, _ in self.families if name not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown kernel families {unknown}; known: {FAMILIES}")
        _check_probs("kernel families", tuple(p for _, p in self.families))
        if not 0.0 <= self.sinc_prob <= 1.0:
            raise ValueError(f"sinc_prob must be in [0, 1], got {self.sinc_prob}")
        for what, bounds in (
            ("sigma", self.sigma),
            ("rotation", self.rotation),
            ("beta_generalized", self.beta_generalized),
            ("beta_plateau", self.beta_plateau),
            ("sinc_cutoff", self.sinc_cutoff),
            ("sinc_cutoff_large", self.sinc_cutoff_large),
        ):
            _check_range(what, bounds)
        if self.sigma[0] <= 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")


@dataclass(frozen=True)
class ResizeConfig:
    """A random resize: up, down or keep, then a scale in that direction's range and a mode."""

    probs: tuple[float, float, float]  # up, down, keep
    up: Range
    down: Range
    modes: tuple[str, ...] = RESIZE_MODES  # drawn uniformly
    # "current": scale the image as it is (stage 1); "output": scale the final LQ size (stage 2,
    # so that the second stage works near the output resolution whatever stage 1 did)
    relative_to: Literal["current", "output"] = "current"

    def __post_init__(self) -> None:
        _check_probs("resize up/down/keep", self.probs)
        _check_range("resize up", self.up)
        _check_range("resize down", self.down)
        if self.down[0] <= 0:
            raise ValueError(f"resize down scale must be > 0, got {self.down}")
        bad = [m for m in self.modes if m not in RESIZE_MODES]
        if not self.modes or bad:
            raise ValueError(f"resize modes must be among {RESIZE_MODES}, got {self.modes}")


@dataclass(frozen=True)
class NoiseConfig:
    """Gaussian noise (sigma on the 0-255 scale) with gaussian_prob, else Poisson noise."""

    gaussian_prob: float
    gaussian_sigma: Range
    poisson_scale: Range
    gray_prob: float  # the same noise on all three channels (luminance noise)

    def __post_init__(self) -> None:
        for what, p in (("gaussian_prob", self.gaussian_prob), ("gray_prob", self.gray_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{what} must be in [0, 1], got {p}")
        _check_range("gaussian_sigma", self.gaussian_sigma)
        _check_range("poisson_scale", self.poisson_scale)


@dataclass(frozen=True)
class StageConfig:
    """One degradation stage: blur (with blur_prob), resize, noise, then JPEG when given."""

    kernel: KernelConfig
    resize: ResizeConfig
    noise: NoiseConfig | None  # None: no noise (sanity checks, custom presets)
    blur_prob: float = 1.0
    jpeg_quality: tuple[int, int] | None = None  # inclusive; None: this stage has no JPEG

    def __post_init__(self) -> None:
        if not 0.0 <= self.blur_prob <= 1.0:
            raise ValueError(f"blur_prob must be in [0, 1], got {self.blur_prob}")
        if self.jpeg_quality is not None:
            _check_jpeg(self.jpeg_quality)


def _check_jpeg(quality: tuple[int, int]) -> None:
    if not 1 <= quality[0] <= quality[1] <= 100:
        raise ValueError(f"JPEG quality must satisfy 1 <= low <= high <= 100, got {quality}")


@dataclass(frozen=True)
class FinalConfig:
    """The last step: (resize to the LQ size + sinc, then JPEG) or (JPEG, then resize + sinc)."""

    resize_first_prob: float = 0.5
    modes: tuple[str, ...] = RESIZE_MODES
    sinc_prob: float = 0.8  # otherwise no filter (the reference's identity "pulse" kernel)
    sinc_sizes: tuple[int, ...] = KERNEL_SIZES
    sinc_cutoff: Range = (math.pi / 3, math.pi)
    jpeg_quality: tuple[int, int] = (30, 95)

    def __post_init__(self) -> None:
        for what, p in (("resize_first_prob", self.resize_first_prob), ("sinc_prob", self.sinc_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{what} must be in [0, 1], got {p}")
        if not self.sinc_sizes or any(s < 1 or s % 2 == 0 for s in self.sinc_sizes):
            raise ValueError(f"sinc sizes must be odd and positive, got {self.sinc_sizes}")
        _check_range("sinc_cutoff", self.sinc_cutoff)
        _check_jpeg(self.jpeg_quality)


@dataclass(frozen=True)
class SharpenConfig:
    """Unsharp masking of the ground truth: blur window from radius, soft mask above threshold."""

    weight: float = 0.5
    radius: int = 50  # made odd (51) for the window, as the reference does
    threshold: float = 10.0  # on the 0-255 scale


@dataclass(frozen=True)
class DegradationConfig:
    """The whole parameter table of one synthetic LQ/HQ pair pipeline."""

    name: str
    stage1: StageConfig
    stage2: StageConfig
    final: FinalConfig = field(default_factory=FinalConfig)
    gt_size: int = 1024  # square GT crop; images smaller than this are reflect-padded first
    scale: int = 4  # LQ side = gt_size / scale
    hflip_prob: float = 0.5
    sharpen: SharpenConfig | None = field(default_factory=SharpenConfig)
    lq_up_mode: str = "bicubic"  # how the LQ is brought back to gt_size for the lq_up output
    # torch's default (False) as the reference: downscaling aliases, which is itself a
    # degradation real photos show. True low-passes bilinear/bicubic downscales first.
    antialias: bool = False

    def __post_init__(self) -> None:
        if self.scale < 1 or self.gt_size < self.scale or self.gt_size % self.scale:
            raise ValueError(f"gt_size ({self.gt_size}) must be a positive multiple of scale ({self.scale})")
        if not 0.0 <= self.hflip_prob <= 1.0:
            raise ValueError(f"hflip_prob must be in [0, 1], got {self.hflip_prob}")
        if self.lq_up_mode not in RESIZE_MODES:
            raise ValueError(f"lq_up_mode must be among {RESIZE_MODES}, got {self.lq_up_mode}")

    @property
    def lq_size(self) -> int:
        return self.gt_size // self.scale

    @classmethod
    def realesrgan(cls) -> DegradationConfig:
        """Real-ESRGAN's second-order pipeline with DreamClear's sizes (GT 1024, LQ 256)."""
        return cls(
            name="realesrgan",
            stage1=StageConfig(
                kernel=KernelConfig(sigma=(0.2, 3.0)),
                resize=ResizeConfig(probs=(0.2, 0.7, 0.1), up=(1.0, 1.5), down=(0.15, 1.0)),
                noise=NoiseConfig(
                    gaussian_prob=0.5, gaussian_sigma=(1.0, 30.0), poisson_scale=(0.05, 3.0), gray_prob=0.4
                ),
                blur_prob=1.0,
                jpeg_quality=(30, 95),
            ),
            stage2=StageConfig(
                kernel=KernelConfig(sigma=(0.2, 1.5)),
                resize=ResizeConfig(
                    probs=(0.3, 0.4, 0.3), up=(1.0, 1.2), down=(0.3, 1.0), relative_to="output"
                ),
                noise=NoiseConfig(
                    gaussian_prob=0.5, gaussian_sigma=(1.0, 25.0), poisson_scale=(0.05, 2.5), gray_prob=0.4
                ),
                blur_prob=0.8,
                jpeg_quality=None,  # stage 2's JPEG is part of the final step
            ),
            final=FinalConfig(),
        )


# name -> factory; a new preset is one more classmethod and one more entry here
PRESETS: dict[str, Callable[[], DegradationConfig]] = {
    "realesrgan": DegradationConfig.realesrgan,
}


def preset(name: str) -> DegradationConfig:
    """The preset called ``name``; ValueError naming the known ones otherwise."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(
            f"unknown degradation preset {name!r}; known: {', '.join(sorted(PRESETS))}"
        ) from None
