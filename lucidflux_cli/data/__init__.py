"""Training data synthesis: the Real-ESRGAN degradation pipeline as a library (issue 14).

Pure functions of (image, numpy Generator, config); no file I/O here. The ``lucidflux data``
commands wire this onto the run engine.
"""

from lucidflux_cli.data.config import (
    PRESETS,
    DegradationConfig,
    FinalConfig,
    KernelConfig,
    NoiseConfig,
    ResizeConfig,
    SharpenConfig,
    StageConfig,
    preset,
)
from lucidflux_cli.data.degrade import Pair, make_pair, rng_for
from lucidflux_cli.data.kernels import KernelSpec, build_kernel, sample_kernel, sample_sinc

__all__ = [
    "PRESETS",
    "DegradationConfig",
    "FinalConfig",
    "KernelConfig",
    "KernelSpec",
    "NoiseConfig",
    "Pair",
    "ResizeConfig",
    "SharpenConfig",
    "StageConfig",
    "build_kernel",
    "make_pair",
    "preset",
    "rng_for",
    "sample_kernel",
    "sample_sinc",
]
