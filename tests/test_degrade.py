"""The Real-ESRGAN degradation library (issue 14, item 2): kernels, sampler, seeding, pairs.

Small GT crops (64 px) keep the whole file to a few seconds on two cores; the pipeline is the
same code at 1024.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from lucidflux_cli.data import (
    DegradationConfig,
    KernelConfig,
    KernelSpec,
    NoiseConfig,
    build_kernel,
    make_pair,
    preset,
    rng_for,
    sample_kernel,
)
from lucidflux_cli.data.degrade import add_noise, filter2d, jpeg, usm_sharpen
from lucidflux_cli.data.kernels import (
    gaussian_kernel,
    generalized_gaussian_kernel,
    plateau_kernel,
    sinc_kernel,
)

REALESRGAN = DegradationConfig.realesrgan()
SMALL = dataclasses.replace(REALESRGAN, gt_size=64)
PAIR_SEEDS = range(48)


def _texture(h: int = 96, w: int = 80, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 127 + 80 * np.sin(xx / 3.0)[..., None] * np.cos(yy / 5.0)[..., None]
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # 64 px images: a second OpenMP thread only spins, and on a loaded machine that costs
    # seconds (4-10 s for the pairs below instead of 0.2 s)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pairs() -> list:
    image = _texture()
    return [make_pair(image, rng_for(seed, "texture.png", 0), SMALL) for seed in PAIR_SEEDS]


# ---------------------------------------------------------------------------------- kernels

ISOTROPIC = [
    gaussian_kernel(21, 2.5),
    generalized_gaussian_kernel(21, 2.5, beta=0.6),
    generalized_gaussian_kernel(13, 1.2, beta=3.5),
    plateau_kernel(21, 2.5, beta=1.5),
    sinc_kernel(21, math.pi / 4),
    sinc_kernel(7, math.pi),
]
ANISOTROPIC = [
    gaussian_kernel(21, 3.0, 0.7, 0.6),
    generalized_gaussian_kernel(15, 2.0, 0.5, -2.0, beta=2.0),
    plateau_kernel(9, 1.5, 0.4, 1.1, beta=1.2),
]


@pytest.mark.parametrize("kernel", ISOTROPIC + ANISOTROPIC)
def test_kernels_sum_to_one(kernel: np.ndarray) -> None:
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert abs(kernel.sum() - 1.0) < 1e-6
    assert np.unravel_index(kernel.argmax(), kernel.shape) == (kernel.shape[0] // 2,) * 2


@pytest.mark.parametrize("kernel", ISOTROPIC)
def test_isotropic_kernels_have_all_symmetries(kernel: np.ndarray) -> None:
    for view in (kernel.T, kernel[::-1], kernel[:, ::-1]):
        np.testing.assert_allclose(view, kernel, atol=1e-12)


@pytest.mark.parametrize("kernel", ANISOTROPIC)
def test_anisotropic_kernels_are_point_symmetric_only(kernel: np.ndarray) -> None:
    # point symmetry makes conv2d's correlation a convolution; a rotated ellipse has no mirror axis
    np.testing.assert_allclose(kernel[::-1, ::-1], kernel, atol=1e-12)
    assert not np.allclose(kernel.T, kernel, atol=1e-6)


def test_kernel_parameters_mean_what_they_say() -> None:
    np.testing.assert_allclose(
        generalized_gaussian_kernel(15, 2.0, 1.0, 0.3, beta=1.0),
        gaussian_kernel(15, 2.0, 1.0, 0.3),
        atol=1e-12,
    )
    # a quarter turn swaps the axes
    np.testing.assert_allclose(
        gaussian_kernel(15, 3.0, 1.0, math.pi / 2), gaussian_kernel(15, 1.0, 3.0), atol=1e-12
    )
    wide, narrow = gaussian_kernel(21, 1.0, 3.0), gaussian_kernel(21, 1.0, 3.0).T
    assert wide[10, 10 + 5] < wide[10 + 5, 10] and narrow[10 + 5, 10] < narrow[10, 10 + 5]
    # a low cutoff rings: negative lobes, and a wider main lobe than a high one
    low, high = sinc_kernel(21, math.pi / 5), sinc_kernel(21, math.pi * 0.9)
    assert low.min() < 0 and low[10, 10] < high[10, 10]


def test_sampled_kernels_sum_to_one_within_ranges() -> None:
    rng = np.random.default_rng(1)
    cfg = REALESRGAN.stage1.kernel
    for _ in range(300):
        spec = sample_kernel(rng, cfg)
        kernel = build_kernel(spec)
        assert spec.size in range(7, 22, 2) and kernel.shape == (spec.size, spec.size)
        assert abs(kernel.sum() - 1.0) < 1e-6
        if spec.family == "sinc":
            low = math.pi / 5 if spec.size >= 13 else math.pi / 3
            assert low <= spec.cutoff <= math.pi
            continue
        assert 0.2 <= spec.sigma_x <= 3.0 and 0.2 <= spec.sigma_y <= 3.0
        assert -math.pi <= spec.rotation <= math.pi
        if spec.family.endswith("_iso") or spec.family == "iso":
            assert spec.sigma_x == spec.sigma_y and spec.rotation == 0.0
        beta_range = {"generalized": (0.5, 4.0), "plateau": (1.0, 2.0)}.get(
            spec.family.split("_")[0], (1.0, 1.0)
        )
        assert beta_range[0] <= spec.beta <= beta_range[1]


def test_family_and_sinc_frequencies_match_the_table() -> None:
    n = 4000
    rng = np.random.default_rng(2026)
    cfg = REALESRGAN.stage1.kernel
    specs = [sample_kernel(rng, cfg) for _ in range(n)]
    counts = Counter(s.family for s in specs)

    def near(observed: int, trials: int, p: float) -> bool:  # within 4 standard errors
        return abs(observed / trials - p) <= 4 * math.sqrt(p * (1 - p) / trials)

    assert near(counts["sinc"], n, 0.1), counts
    rest = n - counts["sinc"]
    for family, p in cfg.families:
        assert near(counts[family], rest, p), (family, counts[family] / rest, p)
    # the lower sinc cutoff is used, and only, from size 13 on
    sinc = [s for s in specs if s.family == "sinc"]
    assert all(s.cutoff >= math.pi / 3 for s in sinc if s.size < 13)
    assert any(s.cutoff < math.pi / 3 for s in sinc if s.size >= 13)


def test_plateau_beta_is_one_half_the_time_as_the_reference() -> None:
    # BasicSR/DreamClear: a coin picks [low, 1] or [1, high]; for the plateau's 1-2 the lower
    # half is the point 1. The generalized 0.5-4 splits the same way: half below 1.
    rng = np.random.default_rng(7)
    cfg = KernelConfig(
        sigma=(0.2, 3.0),
        sinc_prob=0.0,
        families=(("plateau_iso", 0.5), ("plateau_aniso", 0.2), ("generalized_iso", 0.3)),
    )
    specs = [sample_kernel(rng, cfg) for _ in range(3000)]
    plateau = [s.beta for s in specs if s.family.startswith("plateau")]
    generalized = [s.beta for s in specs if s.family.startswith("generalized")]
    ones = sum(beta == 1.0 for beta in plateau) / len(plateau)
    assert abs(ones - 0.5) < 4 * math.sqrt(0.25 / len(plateau)), ones
    above = [beta for beta in plateau if beta != 1.0]
    assert min(above) > 1.0 and max(above) <= 2.0 and abs(np.mean(above) - 1.5) < 0.05  # U(1, 2)
    below = sum(beta < 1.0 for beta in generalized) / len(generalized)
    assert abs(below - 0.5) < 4 * math.sqrt(0.25 / len(generalized)), below


def test_channels_last_convolution_gives_the_same_bytes_as_nchw(monkeypatch) -> None:
    from lucidflux_cli.data import degrade

    image = _texture(90, 100, seed=3)
    fast = [make_pair(image, rng_for(seed, "c.png", 0), SMALL) for seed in range(12)]
    monkeypatch.setattr(degrade, "CONV_LAYOUT", torch.contiguous_format)
    slow = [make_pair(image, rng_for(seed, "c.png", 0), SMALL) for seed in range(12)]
    for a, b in zip(fast, slow, strict=True):
        assert a.hq.tobytes() == b.hq.tobytes() and a.lq.tobytes() == b.lq.tobytes()


def test_poisson_level_count_is_the_number_of_distinct_8_bit_values() -> None:
    from lucidflux_cli.data.degrade import _poisson

    img = np.random.default_rng(0).random((1, 40, 50), dtype=np.float32)
    img[0, 0, :3] = (-0.2, 1.3, 0.5)  # out of range: clipped first
    levels = len(np.unique(np.round(np.clip(img, 0, 1) * 255.0)))
    vals = 2.0 ** math.ceil(math.log2(levels))
    expected = np.random.default_rng(1).poisson(np.clip(img, 0, 1) * vals) / vals - np.clip(img, 0, 1)
    np.testing.assert_array_equal(_poisson(np.random.default_rng(1), img), expected.astype(np.float32))


# ---------------------------------------------------------------------------------- seeding


def test_rng_for_is_a_pure_function_of_seed_name_and_pass() -> None:
    assert rng_for(3, "a/b.jpg", 1).bytes(64) == rng_for(3, "a/b.jpg", 1).bytes(64)
    first = rng_for(3, "a/b.jpg", 1).bytes(64)
    for other in (rng_for(3, "a/b.jpg", 2), rng_for(4, "a/b.jpg", 1), rng_for(3, "a/c.jpg", 1)):
        assert other.bytes(64) != first
    # pinned: the derivation is part of the data's reproducibility (any machine, any version)
    # (v2 domain since the plateau beta's coin changed the draw order)
    assert rng_for(0, "photos/a.jpg", 0).integers(1 << 62) == 1121208844170671044
    assert rng_for(7, "ü/b.png", 3).integers(1 << 62) == 3190966055191696268


def test_same_seed_same_bytes_other_pass_other_pair() -> None:
    image = _texture(70, 90, seed=5)
    a = make_pair(image, rng_for(11, "x.png", 0), SMALL)
    b = make_pair(image, rng_for(11, "x.png", 0), SMALL)
    c = make_pair(image, rng_for(11, "x.png", 1), SMALL)
    for name in ("hq", "lq", "lq_up"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
    assert a.params == b.params
    assert a.lq.tobytes() != c.lq.tobytes()


def test_a_photos_passes_in_one_batch_are_the_pairs_made_one_by_one() -> None:
    from lucidflux_cli.data import make_pairs

    image = _texture(80, 100, seed=8)
    batch = make_pairs(image, [rng_for(4, "b.png", k) for k in range(4)], SMALL)
    for k, pair in enumerate(batch):
        alone = make_pair(image, rng_for(4, "b.png", k), SMALL)
        assert pair.params == alone.params
        for name in ("hq", "lq", "lq_up"):
            assert getattr(pair, name).tobytes() == getattr(alone, name).tobytes()


def test_drawn_parameters_do_not_depend_on_pixels() -> None:
    # only the image size may steer the draws (the crop range), so a manifest's record of a
    # pair survives float-level differences between machines
    a = make_pair(_texture(70, 90, seed=1), rng_for(5, "p.png", 0), SMALL)
    b = make_pair(np.full((70, 90, 3), 200, np.uint8), rng_for(5, "p.png", 0), SMALL)
    assert a.params == b.params


# ------------------------------------------------------------------------------------ pairs


def test_pair_shapes_and_dtypes(pairs: list) -> None:
    for pair in pairs[:8]:
        assert pair.hq.shape == (64, 64, 3) and pair.lq_up.shape == (64, 64, 3)
        assert pair.lq.shape == (16, 16, 3)
        assert pair.hq.dtype == pair.lq.dtype == pair.lq_up.dtype == np.uint8
    # smaller than the crop on one side: reflect-padded; larger: cropped
    for shape in ((20, 200, 3), (1, 1, 3), (300, 64, 3)):
        pair = make_pair(np.full(shape, 90, np.uint8), rng_for(0, "s", 0), SMALL)
        assert pair.hq.shape == (64, 64, 3) and pair.lq.shape == (16, 16, 3)
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        make_pair(np.zeros((64, 64), np.uint8), rng_for(0, "s", 0), SMALL)


def test_both_branches_of_every_choice_are_taken(pairs: list) -> None:
    params = [p.params for p in pairs]
    assert {p["stage2"]["blur"] is None for p in params} == {True, False}
    assert {p["final"]["order"] for p in params} == {"resize_first", "jpeg_first"}
    assert {p["final"]["sinc"] is None for p in params} == {True, False}
    assert {p["stage1"]["resize"]["direction"] for p in params} == {"up", "down", "keep"}
    assert {p["stage2"]["resize"]["direction"] for p in params} == {"up", "down", "keep"}
    assert {p["stage1"]["noise"]["type"] for p in params} == {"gaussian", "poisson"}
    assert {p["crop"]["hflip"] for p in params} == {True, False}
    assert all(p["stage1"]["blur"] is not None for p in params)  # stage 1 always blurs


def test_jpeg_qualities_in_range_and_jpeg_is_real(pairs: list) -> None:
    qualities = [p.params["stage1"]["jpeg"] for p in pairs] + [p.params["final"]["jpeg"] for p in pairs]
    assert all(isinstance(q, int) and 30 <= q <= 95 for q in qualities)
    x = torch.from_numpy(_texture(64, 64)).permute(2, 0, 1)[None].float() / 255
    errors = [(jpeg(x, q) - x).abs().mean().item() for q in (30, 95)]
    assert errors[0] > errors[1] > 0.5 / 255  # pixels change, more at low quality
    assert jpeg(x, 95).shape == x.shape


def test_flat_grey_stays_grey_without_noise() -> None:
    quiet = dataclasses.replace(
        SMALL,
        stage1=dataclasses.replace(SMALL.stage1, noise=None),
        stage2=dataclasses.replace(SMALL.stage2, noise=None),
    )
    grey = np.full((80, 80, 3), 128, np.uint8)
    for seed in range(6):
        pair = make_pair(grey, rng_for(seed, "grey", 0), quiet)
        assert (pair.hq == 128).all()
        assert np.abs(pair.lq.astype(int) - 128).max() <= 2
        assert np.abs(pair.lq_up.astype(int) - 128).max() <= 2


def test_gray_noise_is_the_same_on_every_channel() -> None:
    x = torch.full((1, 3, 32, 32), 0.5)
    rng = np.random.default_rng(0)
    for gaussian_prob in (1.0, 0.0):
        cfg = NoiseConfig(
            gaussian_prob=gaussian_prob, gaussian_sigma=(10, 10), poisson_scale=(1, 1), gray_prob=1.0
        )
        out, record = add_noise(x, rng, cfg)
        assert record["gray"] and out.std() > 0.005
        assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    # bicubic overshoot outside [0, 1] must not reach the Poisson sampler as a negative count
    poisson = NoiseConfig(gaussian_prob=0.0, gaussian_sigma=(1, 1), poisson_scale=(1, 1), gray_prob=0.0)
    out, _ = add_noise(torch.linspace(-0.1, 1.1, 3 * 32 * 32).view(1, 3, 32, 32), rng, poisson)
    assert out.min() >= 0 and out.max() <= 1
    color = NoiseConfig(gaussian_prob=1.0, gaussian_sigma=(10, 10), poisson_scale=(1, 1), gray_prob=0.0)
    out, _ = add_noise(x, rng, color)
    assert not torch.equal(out[:, 0], out[:, 1])


def test_unsharp_mask_sharpens_edges_only() -> None:
    step = torch.zeros(1, 3, 64, 64)
    step[..., 32:] = 0.6
    step += 0.2
    sharp = usm_sharpen(step, REALESRGAN.sharpen)
    assert sharp[0, 0, 10, 34] > step[0, 0, 10, 34] and sharp[0, 0, 10, 29] < step[0, 0, 10, 29]
    flat = torch.full((1, 3, 40, 40), 0.3)
    assert torch.allclose(usm_sharpen(flat, REALESRGAN.sharpen), flat)


def test_blur_keeps_size_on_images_smaller_than_the_kernel() -> None:
    x = torch.rand(1, 3, 5, 9)
    out = filter2d(x, build_kernel(KernelSpec("iso", 21, 2.0, 2.0)))
    assert out.shape == x.shape and torch.all(out >= x.min() - 1e-6) and torch.all(out <= x.max() + 1e-6)


def test_config_validates_and_presets_are_named() -> None:
    assert preset("realesrgan") == REALESRGAN and hash(REALESRGAN)
    assert REALESRGAN.gt_size == 1024 and REALESRGAN.lq_size == 256
    with pytest.raises(ValueError, match="unknown degradation preset"):
        preset("nope")
    with pytest.raises(ValueError, match="sum to 1"):
        KernelConfig(sigma=(0.2, 3.0), families=(("iso", 0.5), ("aniso", 0.2)))
    with pytest.raises(ValueError, match="multiple of scale"):
        dataclasses.replace(REALESRGAN, gt_size=66)


def test_pairs_do_not_depend_on_torch_threads() -> None:
    # last in the file: changing torch's thread pool slows the tests that run after it
    image = _texture(70, 90, seed=6)
    one = make_pair(image, rng_for(2, "t.png", 0), SMALL)  # one thread: the module's fixture
    try:
        torch.set_num_threads(2)
        two = make_pair(image, rng_for(2, "t.png", 0), SMALL)
    finally:
        torch.set_num_threads(1)
    assert one.lq.tobytes() == two.lq.tobytes() and one.hq.tobytes() == two.hq.tobytes()
