"""FID from arrays, computed as pyiqa's folder FID computes it.

pyiqa's ``fid`` metric only takes two folder paths and reads the files itself (PIL, 8-bit). The
engine reads images (any format the tool supports, 16-bit included) and hands arrays over, so the
same steps are done here on arrays: pyiqa's default "clean" mode resizes each channel as a float
PIL image (bicubic) to 299 x 299 on the 0..255 scale, maps it to [-1, 1] with (x - 128) / 128 and
takes the Inception pool features; the distance is pyiqa's own ``frechet_distance``. Features can
be kept per image, so a rerun need not recompute them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lucidflux_cli.metrics.arrays import Image, to_tensor
from lucidflux_cli.pixels import resize_float

if TYPE_CHECKING:
    import torch

SIZE = (299, 299)


def preprocess(image: Image) -> torch.Tensor:
    """``3 x 299 x 299`` float tensor on the 0..255 scale (pyiqa's ``ResizeDataset``, clean mode)."""
    import torch

    array = to_tensor(image).permute(1, 2, 0).numpy() * 255.0
    resized = resize_float(array, SIZE).clip(0, 255)  # Pillow bicubic per channel, as pyiqa's clean mode
    return torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1)


def features(model: Any, images: Sequence[Image], device: str = "cpu", batch_size: int = 8) -> np.ndarray:
    """``N x D`` features of ``images`` from pyiqa's FID Inception (``metric.net.model``)."""
    import torch

    out = []
    for start in range(0, len(images), max(1, batch_size)):
        batch = torch.stack([preprocess(i) for i in images[start : start + batch_size]])
        batch = (batch - 128) / 128
        with torch.no_grad():
            feat = model(batch.to(device), False, False)[0]
        out.append(feat.reshape(feat.shape[0], -1).detach().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2048), dtype=np.float32)


def distance(first: np.ndarray, second: np.ndarray) -> float:
    """Frechet distance between the Gaussians fitted to two feature sets (pyiqa's formula)."""
    from pyiqa.archs.fid_arch import frechet_distance

    for feats in (first, second):
        if len(feats) < 2:
            raise ValueError(f"FID needs at least 2 images per folder, got {len(feats)}")
    mu1, sigma1 = np.mean(first, axis=0), np.cov(first, rowvar=False)
    mu2, sigma2 = np.mean(second, axis=0), np.cov(second, rowvar=False)
    return float(frechet_distance(mu1, sigma1, mu2, sigma2))
