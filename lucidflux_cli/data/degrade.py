"""Second-order Real-ESRGAN degradation: one HQ photo in, one (HQ, LQ, LQ upsampled) pair out.

    rng = rng_for(seed, "photos/0001.jpg", pass_index)
    pair = make_pair(image, rng, DegradationConfig.realesrgan())

Order (docs/data.md): GT crop + flip + unsharp mask -> stage 1 (blur, resize, noise, JPEG) ->
stage 2 (blur with p .8, resize, noise) -> final step, either (resize to LQ + sinc, JPEG) or
(JPEG, resize to LQ + sinc). Every random choice comes from the one numpy Generator, in a fixed
order (noise fields from child Generators it seeds); torch only does deterministic arithmetic
(float32, CPU by default), so a pair depends on (image, seed, name, pass, config) and the
software stack, never on workers or scheduling.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lucidflux_cli.data.config import DegradationConfig, NoiseConfig, SharpenConfig, StageConfig
from lucidflux_cli.data.kernels import KernelSpec, build_kernel, sample_kernel, sample_sinc

Device = str | torch.device | None
# change when the draw order changes: old seeds mean other pairs (v2: the plateau beta draws a coin)
SEED_DOMAIN = b"lucidflux-degrade-v2"
_LUMA = (0.299, 0.587, 0.114)  # Rec. 601, as the reference's gray conversion


@dataclass
class Pair:
    """One synthetic training pair, all ``uint8`` HxWx3, and the record of every draw made."""

    hq: np.ndarray  # gt_size x gt_size, cropped, flipped, sharpened
    lq: np.ndarray  # lq_size x lq_size
    lq_up: np.ndarray  # the LQ resized back to gt_size
    params: dict[str, Any] = field(default_factory=dict)  # JSON-ready, for a manifest


def rng_for(seed: int, name: str, pass_index: int) -> np.random.Generator:
    """The Generator for one image in one pass: same (seed, name, pass) -> same stream anywhere.

    ``name`` should be machine-independent (the path relative to the source root, with ``/``).
    SHA-256 rather than ``hash()``, which is salted per process; PCG64 is numpy's stable
    bit generator. Fields are length-prefixed so ("a", "1b") and ("a1", "b") never collide.
    """
    digest = hashlib.sha256(SEED_DOMAIN)
    for part in (str(int(seed)), name, str(int(pass_index))):
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big") + data)
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest.digest(), "big")))


# ------------------------------------------------------------------------------ tensor helpers


def _to_tensor(image: np.ndarray, device: Device) -> torch.Tensor:
    image = np.require(image, requirements=["C", "W"])  # decoded JPEGs are read-only: copy those
    return torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float() / 255.0


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x[0].clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _reflect_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    # Mirror without repeating the edge (OpenCV's REFLECT_101, torch's "reflect"), folded as
    # often as needed: F.pad refuses pad >= size, which small stage-1 images reach.
    idx = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= n, period - idx, idx)


def _reflect_pad(x: torch.Tensor, pad_y: int, pad_x: int) -> torch.Tensor:
    if pad_y < x.shape[2] and pad_x < x.shape[3]:  # the fast path; same values as the gather
        return F.pad(x, (pad_x, pad_x, pad_y, pad_y), mode="reflect")
    x = x.index_select(2, _reflect_index(x.shape[2], pad_y, x.device))
    return x.index_select(3, _reflect_index(x.shape[3], pad_x, x.device))


def _depthwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Every channel convolved with the same (1, 1, kh, kw) weight, no padding.

    Channels-last input takes the CPU's vectorised depthwise kernel: 2-4x faster than NCHW's at
    these sizes, with identical bytes (each output sums the same products in the same order;
    tests/test_degrade.py compares the two). ``CONV_LAYOUT`` names the layout so the
    benchmark can time the old one in the same run.
    """
    channels = x.shape[1]
    out = F.conv2d(
        x.contiguous(memory_format=CONV_LAYOUT),
        weight.expand(channels, 1, *weight.shape[2:]),
        groups=channels,
    )
    return out.contiguous()


CONV_LAYOUT = torch.channels_last  # torch.contiguous_format: the slower layout of 0.x, same bytes


def filter2d(x: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    """Each channel filtered with the same odd-sized kernel, reflect padding, same size out."""
    kh, kw = kernel.shape
    weight = torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32)).to(x.device)
    # the kernels are point-symmetric, so conv2d's correlation equals convolution
    return _depthwise(_reflect_pad(x, kh // 2, kw // 2), weight.view(1, 1, kh, kw))


def resize(x: torch.Tensor, size: tuple[int, int], mode: str, antialias: bool = False) -> torch.Tensor:
    """torch interpolate to ``size`` (area, bilinear or bicubic); no-op when the size is unchanged."""
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == "area":  # a box average when shrinking, nearest when enlarging
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=antialias)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """A real JPEG round trip through Pillow (4:2:0, as the usual encoders' default)."""
    buffer = io.BytesIO()
    Image.fromarray(_to_uint8(x)).save(buffer, format="JPEG", quality=int(quality), subsampling=2)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return _to_tensor(np.asarray(decoded.convert("RGB")), x.device)


# ------------------------------------------------------------------------------------ noise


def _poisson(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Shot noise at a photon count set by the image's 8-bit level count (rounded up to 2^k)."""
    img = np.clip(img, 0.0, 1.0)  # bicubic overshoot would make a negative photon count
    # the distinct 8-bit levels, counted in one O(n) pass (np.unique sorted the whole image)
    levels = np.count_nonzero(np.bincount(np.round(img * 255.0).astype(np.uint8).ravel(), minlength=256))
    vals = 2.0 ** math.ceil(math.log2(max(levels, 1)))
    return (rng.poisson(img * vals) / vals - img).astype(np.float32)


def add_noise(x: torch.Tensor, rng: np.random.Generator, config: NoiseConfig) -> tuple[torch.Tensor, dict]:
    """Gaussian (``gaussian_prob``) or Poisson noise, colour or gray (``gray_prob``); clipped to [0, 1].

    The noise field comes from its own Generator, seeded by one draw from ``rng``: the Poisson
    sampler consumes a pixel-dependent count of numbers, and sharing the stream would let a
    1-ulp pixel difference shift every later parameter of the pair.
    """
    gaussian = bool(rng.uniform() < config.gaussian_prob)
    gray = bool(rng.uniform() < config.gray_prob)
    amount = float(rng.uniform(*(config.gaussian_sigma if gaussian else config.poisson_scale)))
    field_seed = int(rng.integers(0, 2**63))
    field_rng = np.random.Generator(np.random.PCG64(field_seed))
    img = x[0].cpu().numpy()  # C, H, W
    if gaussian:
        shape = (1, *img.shape[1:]) if gray else img.shape
        noise = field_rng.standard_normal(shape, dtype=np.float32) * np.float32(amount / 255.0)
        record = {"type": "gaussian", "gray": gray, "sigma": amount, "seed": field_seed}
    else:
        if gray:
            img = np.tensordot(np.asarray(_LUMA, dtype=np.float32), img, axes=1)[None]
        noise = _poisson(field_rng, img) * np.float32(amount)
        record = {"type": "poisson", "gray": gray, "scale": amount, "seed": field_seed}
    # a gray noise plane (1, H, W) broadcasts over the three channels
    out = (x + torch.from_numpy(np.ascontiguousarray(noise)).to(x.device)[None]).clamp(0, 1)
    return out, record


# ------------------------------------------------------------------------------ ground truth


def random_crop(
    image: np.ndarray, rng: np.random.Generator, size: int, hflip_prob: float
) -> tuple[np.ndarray, dict]:
    """A ``size`` square at a random place (reflect-padded at the bottom/right when smaller), maybe
    flipped."""
    source_h, source_w = image.shape[:2]
    pad_h, pad_w = max(0, size - source_h), max(0, size - source_w)
    if pad_h or pad_w:  # numpy's "reflect" is REFLECT_101 and folds as often as needed
        mode = "reflect" if min(source_h, source_w) > 1 else "edge"
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)
    h, w = image.shape[:2]
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    crop = image[top : top + size, left : left + size]
    flip = bool(rng.uniform() < hflip_prob)
    if flip:
        crop = crop[:, ::-1]
    record = {
        "source_size": [source_h, source_w],
        "padded": [pad_h, pad_w],
        "top": top,
        "left": left,
        "hflip": flip,
    }
    return crop, record


def _gaussian_1d(window: int) -> np.ndarray:
    # OpenCV's sigma for a window when none is given: the reference's GaussianBlur(…, 0)
    sigma = 0.3 * ((window - 1) * 0.5 - 1) + 0.8
    t = np.arange(window, dtype=np.float64) - window // 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def _separable_blur(x: torch.Tensor, g: np.ndarray) -> torch.Tensor:
    # two 1-D passes over one padded copy: reflection commutes with each pass, so this equals
    # filter2d with the outer product, at 2k instead of k^2 multiplies per pixel
    k = g.shape[0]
    w = torch.from_numpy(np.ascontiguousarray(g, dtype=np.float32)).to(x.device)
    x = _depthwise(_reflect_pad(x, k // 2, k // 2), w.view(1, 1, 1, k))
    return _depthwise(x, w.view(1, 1, k, 1))


def usm_sharpen(x: torch.Tensor, config: SharpenConfig) -> torch.Tensor:
    """Unsharp masking where the detail exceeds ``threshold``, blended through a soft mask."""
    window = config.radius + 1 if config.radius % 2 == 0 else config.radius
    g = _gaussian_1d(window)
    residual = x - _separable_blur(x, g)
    mask = (residual.abs() * 255.0 > config.threshold).float()
    soft = _separable_blur(mask, g)  # feathered, so flat areas (film grain, sky) are left alone
    sharp = (x + config.weight * residual).clamp(0, 1)
    return soft * sharp + (1 - soft) * x


# ------------------------------------------------------------------------------------ stages


def _random_resize(
    x: torch.Tensor,
    rng: np.random.Generator,
    stage: StageConfig,
    config: DegradationConfig,
    gt_hw: tuple[int, int],
) -> tuple[torch.Tensor, dict]:
    rc = stage.resize
    direction = ("up", "down", "keep")[int(rng.choice(3, p=np.asarray(rc.probs, dtype=np.float64)))]
    scale = 1.0
    if direction != "keep":
        scale = float(rng.uniform(*(rc.up if direction == "up" else rc.down)))
    mode = str(rng.choice(rc.modes))
    if rc.relative_to == "output":
        base = (gt_hw[0] / config.scale, gt_hw[1] / config.scale)
    else:
        base = (float(x.shape[2]), float(x.shape[3]))
    size = (max(1, int(base[0] * scale)), max(1, int(base[1] * scale)))
    x = resize(x, size, mode, config.antialias)
    return x, {"direction": direction, "scale": scale, "mode": mode, "size": list(size)}


def _stage(
    x: torch.Tensor,
    rng: np.random.Generator,
    stage: StageConfig,
    config: DegradationConfig,
    gt_hw: tuple[int, int],
) -> tuple[torch.Tensor, dict]:
    record: dict[str, Any] = {"blur": None}
    if rng.uniform() < stage.blur_prob:
        spec = sample_kernel(rng, stage.kernel)
        x = filter2d(x, build_kernel(spec))
        record["blur"] = spec.as_dict()
    x, record["resize"] = _random_resize(x, rng, stage, config, gt_hw)
    record["noise"] = None
    if stage.noise is not None:
        x, record["noise"] = add_noise(x, rng, stage.noise)
    record["jpeg"] = None
    if stage.jpeg_quality is not None:
        record["jpeg"] = int(rng.integers(stage.jpeg_quality[0], stage.jpeg_quality[1] + 1))
        x = jpeg(x, record["jpeg"])
    return x, record


def _final(
    x: torch.Tensor, rng: np.random.Generator, config: DegradationConfig, gt_hw: tuple[int, int]
) -> tuple[torch.Tensor, dict]:
    fc = config.final
    resize_first = bool(rng.uniform() < fc.resize_first_prob)
    mode = str(rng.choice(fc.modes))
    sinc: KernelSpec | None = None
    if rng.uniform() < fc.sinc_prob:
        sinc = sample_sinc(rng, fc.sinc_sizes, fc.sinc_cutoff)
    quality = int(rng.integers(fc.jpeg_quality[0], fc.jpeg_quality[1] + 1))
    lq_size = (gt_hw[0] // config.scale, gt_hw[1] // config.scale)

    def resize_and_sinc(t: torch.Tensor) -> torch.Tensor:
        t = resize(t, lq_size, mode, config.antialias)
        return filter2d(t, build_kernel(sinc)) if sinc is not None else t

    x = jpeg(resize_and_sinc(x), quality) if resize_first else resize_and_sinc(jpeg(x, quality))
    record = {
        "order": "resize_first" if resize_first else "jpeg_first",
        "mode": mode,
        "sinc": sinc.as_dict() if sinc is not None else None,
        "jpeg": quality,
    }
    return x, record


def make_pair(
    image: np.ndarray,
    rng: np.random.Generator,
    config: DegradationConfig | None = None,
    device: Device = None,
) -> Pair:
    """Degrade one ``uint8`` HxWx3 photo into a (HQ, LQ, LQ upsampled) pair with ``config``'s table."""
    return make_pairs(image, [rng], config, device)[0]


def make_pairs(
    image: np.ndarray,
    rngs: list[np.random.Generator],
    config: DegradationConfig | None = None,
    device: Device = None,
) -> list[Pair]:
    """One pair per Generator (a photo's passes), batched where the shapes agree.

    The GT crops are sharpened in one batch and the LQs brought back to the GT size in one
    batch (on a GPU: one launch each instead of one per pass); the degradations, whose sizes
    each pair draws, run pair by pair. Every Generator makes the draws ``make_pair`` would, and
    on the CPU the bytes are those of ``make_pair`` per Generator (tested). On a GPU the batch
    is always the ``passes`` of one photo, so the bytes do not depend on workers either.
    """
    config = config or DegradationConfig.realesrgan()
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 image, got {image.dtype} {image.shape}")
    device = torch.device(device or "cpu")
    crops = [random_crop(image, rng, config.gt_size, config.hflip_prob) for rng in rngs]
    gt_hw = (config.gt_size, config.gt_size)
    with torch.no_grad():
        gt = torch.cat([_to_tensor(crop, device) for crop, _ in crops])
        if config.sharpen is not None:
            gt = usm_sharpen(gt, config.sharpen)
        # degrade the HQ as saved (8-bit), so the pair on disk is exactly consistent
        hqs = [_to_uint8(gt[index : index + 1]) for index in range(len(rngs))]
        lqs, records = [], []
        for rng, hq, (_, crop_record) in zip(rngs, hqs, crops, strict=True):
            params: dict[str, Any] = {"preset": config.name, "crop": crop_record}
            x = _to_tensor(hq, device)
            x, params["stage1"] = _stage(x, rng, config.stage1, config, gt_hw)
            x, params["stage2"] = _stage(x, rng, config.stage2, config, gt_hw)
            x, params["final"] = _final(x, rng, config, gt_hw)
            lqs.append(_to_uint8(x))
            records.append(params)
        up = resize(torch.cat([_to_tensor(lq, device) for lq in lqs]), gt_hw, config.lq_up_mode)
    return [
        Pair(hq=hq, lq=lq, lq_up=_to_uint8(up[index : index + 1]), params=params)
        for index, (hq, lq, params) in enumerate(zip(hqs, lqs, records, strict=True))
    ]
