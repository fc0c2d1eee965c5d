"""Training data: curation rules and the Real-ESRGAN degradation pipeline as a library (issue 14).

Pure functions of images, numpy Generators and configs; no file I/O here. The ``lucidflux
data`` commands run them on the shared runner. Names are imported on first use, so the CLI's
``--help`` (which reads the configs' defaults) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PRESETS": "config",
    "DegradationConfig": "config",
    "FinalConfig": "config",
    "KernelConfig": "config",
    "NoiseConfig": "config",
    "ResizeConfig": "config",
    "SharpenConfig": "config",
    "StageConfig": "config",
    "preset": "config",
    "Pair": "degrade",
    "make_pair": "degrade",
    "make_pairs": "degrade",
    "rng_for": "degrade",
    "KernelSpec": "kernels",
    "build_kernel": "kernels",
    "sample_kernel": "kernels",
    "sample_sinc": "kernels",
    "FilterConfig": "curation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lucidflux_cli.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lucidflux_cli.data.{_EXPORTS[name]}"), name)
