"""Blur kernels of the Real-ESRGAN degradation model, and the sampler that draws them.

Each family is a small function of its parameters returning a float64 ``size x size`` array
normalised to sum 1 (rows are y, columns x, the centre at ``size // 2``). With
``x`` the offset from the centre and ``Sigma = R(rotation) diag(sigma_x^2, sigma_y^2) R^T``,
``q = x^T Sigma^-1 x``:

    gaussian             exp(-q / 2)
    generalized gaussian exp(-q^beta / 2)      beta < 1 heavier tails, > 1 flatter top
    plateau              1 / (1 + q^beta)
    sinc                 cutoff J1(cutoff r) / (2 pi r)   (ideal circular low-pass, ringing)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from lucidflux_cli.data.config import KernelConfig


def _offsets(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be odd and positive, got {size}")
    axis = np.arange(size, dtype=np.float64) - size // 2
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    return xx, yy


def _quadratic(size: int, sigma_x: float, sigma_y: float, rotation: float) -> np.ndarray:
    """``x^T Sigma^-1 x`` on the kernel grid: the squared Mahalanobis distance to the centre."""
    xx, yy = _offsets(size)
    c, s = math.cos(rotation), math.sin(rotation)
    # coordinates in the kernel's own (rotated) axes, where Sigma is diagonal
    u = c * xx + s * yy
    v = -s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalised(kernel: np.ndarray) -> np.ndarray:
    return kernel / kernel.sum()


def gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, rotation: float = 0.0
) -> np.ndarray:
    """Isotropic (``sigma_y`` None) or anisotropic rotated Gaussian."""
    sy = sigma_x if sigma_y is None else sigma_y
    return _normalised(np.exp(-0.5 * _quadratic(size, sigma_x, sy, rotation)))


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, rotation: float = 0.0, beta: float = 1.0
) -> np.ndarray:
    """Generalized Gaussian: ``beta`` = 1 is the Gaussian."""
    sy = sigma_x if sigma_y is None else sigma_y
    return _normalised(np.exp(-0.5 * _quadratic(size, sigma_x, sy, rotation) ** beta))


def plateau_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, rotation: float = 0.0, beta: float = 1.0
) -> np.ndarray:
    """Plateau-shaped kernel: flat top, polynomial tails (``beta`` sets the fall-off)."""
    sy = sigma_x if sigma_y is None else sigma_y
    return _normalised(1.0 / (1.0 + _quadratic(size, sigma_x, sy, rotation) ** beta))


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """2-D ideal low-pass (``cutoff`` in radians per pixel, pi = no cut): Bessel J1 over radius."""
    xx, yy = _offsets(size)
    r = torch.from_numpy(np.hypot(xx, yy))
    # torch's J1 keeps scipy out of the dependencies; float64 keeps the sum exact to 1e-12
    kernel = cutoff * torch.special.bessel_j1(cutoff * r) / (2 * math.pi * r.clamp_min(1e-12))
    kernel = torch.where(r == 0, torch.full_like(r, cutoff**2 / (4 * math.pi)), kernel)  # the limit at 0
    return _normalised(kernel.numpy())


@dataclass(frozen=True)
class KernelSpec:
    """One drawn kernel: everything needed to build it again (and to record it in a manifest)."""

    family: str  # one of config.FAMILIES, or "sinc"
    size: int
    sigma_x: float = 0.0
    sigma_y: float = 0.0
    rotation: float = 0.0
    beta: float = 1.0
    cutoff: float = 0.0  # sinc only

    def as_dict(self) -> dict[str, float | int | str]:
        """JSON-ready fields: a sinc kernel has only a size and a cutoff, the others no cutoff."""
        if self.family == "sinc":
            return {"family": "sinc", "size": self.size, "cutoff": self.cutoff}
        return {k: v for k, v in asdict(self).items() if k != "cutoff"}


def build_kernel(spec: KernelSpec) -> np.ndarray:
    """The kernel a spec describes, float64, summing to 1."""
    if spec.family == "sinc":
        return sinc_kernel(spec.size, spec.cutoff)
    if spec.family in ("iso", "aniso"):
        return gaussian_kernel(spec.size, spec.sigma_x, spec.sigma_y, spec.rotation)
    if spec.family in ("generalized_iso", "generalized_aniso"):
        return generalized_gaussian_kernel(spec.size, spec.sigma_x, spec.sigma_y, spec.rotation, spec.beta)
    if spec.family in ("plateau_iso", "plateau_aniso"):
        return plateau_kernel(spec.size, spec.sigma_x, spec.sigma_y, spec.rotation, spec.beta)
    raise ValueError(f"unknown kernel family {spec.family!r}")


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _draw_beta(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    # The reference's rule (BasicSR's random_bivariate_generalized_Gaussian and _plateau, which
    # DreamClear uses): a fair coin picks [low, 1] or [1, high]. For the plateau's 1-2 the lower
    # half is the single point 1, so beta = 1 (Cauchy-like tails) half the time.
    low, high = bounds
    if not low <= 1.0 <= high:  # a custom range that does not hold 1: uniform over it
        return _uniform(rng, bounds)
    return _uniform(rng, (low, 1.0) if rng.uniform() < 0.5 else (1.0, high))


def sample_sinc(rng: np.random.Generator, sizes: tuple[int, ...], cutoff: tuple[float, float]) -> KernelSpec:
    """A sinc kernel of a random size from ``sizes`` and a cutoff uniform in ``cutoff``."""
    size = int(rng.choice(sizes))
    return KernelSpec("sinc", size, cutoff=_uniform(rng, cutoff))


def sample_kernel(rng: np.random.Generator, config: KernelConfig) -> KernelSpec:
    """Draw a size, then sinc with ``sinc_prob``, else a family by its probability and its parameters."""
    size = int(rng.choice(config.sizes))
    if rng.uniform() < config.sinc_prob:
        bounds = config.sinc_cutoff_large if size >= config.sinc_large_from else config.sinc_cutoff
        return KernelSpec("sinc", size, cutoff=_uniform(rng, bounds))
    names = [name for name, _ in config.families]
    probs = np.array([p for _, p in config.families], dtype=np.float64)
    family = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    sigma_x = _uniform(rng, config.sigma)
    if family.endswith("aniso"):
        sigma_y = _uniform(rng, config.sigma)
        rotation = _uniform(rng, config.rotation)
    else:
        sigma_y, rotation = sigma_x, 0.0
    if family.startswith("generalized"):
        beta = _draw_beta(rng, config.beta_generalized)
    elif family.startswith("plateau"):
        beta = _draw_beta(rng, config.beta_plateau)
    else:
        beta = 1.0
    return KernelSpec(family, size, sigma_x, sigma_y, rotation, beta)
