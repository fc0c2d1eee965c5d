"""Tiled restoration: geometry, exactness with one tile, seams, memory bound, OOM retry, CLI.

Seam measure (``seam_p_values``): the gradient energy of a pixel line (between rows or
columns i-1 and i) is the mean, over the other axis and the channels, of the squared
difference across it. For each tiled stage (diffusion, VAE decode, SwinIR) and each axis,
the stage's seam lines (tile edges and overlap centres) are compared with interior lines:
lines more than 3 px from every stage's seam lines, at the same position modulo 8 px (the
VAE's latent grid gives each phase its own texture statistics), and at least 32 px from the
image edge (the tiny random decoder has strong edge artefacts). One-sided permutation test:
p is the share of 4000 random draws (one interior line of the matching phase per seam line)
whose mean energy is at least the seam lines' mean. Seams count as statistically
indistinguishable from the interior when every p >= 0.01. The measure has power: restored
with hard cuts instead of blending, the same smooth inputs give some p < 0.01.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from lucidflux_cli.commands.main import main
from lucidflux_cli.imageio.discovery import InputFile
from lucidflux_cli.model import sampling, tiling
from lucidflux_cli.model.colorfix import color_fix_windows, wavelet_color_fix
from lucidflux_cli.model.pipeline import LucidFluxPipeline, RestoreSettings
from lucidflux_cli.model.sizes import output_size, processing_size
from lucidflux_cli.model.tiling import TileOptions, axis_weights, make_grid, spans
from lucidflux_cli.restore import batch

SMALL = TileOptions(size=64, overlap=16, min_size=64)  # 4x4-token tiles: many tiles on small images
STEPS = 2
P_THRESHOLD = 0.01
PHASE = 8  # px per VAE latent position
EDGE = 32  # px at the image edges left out of the seam measure


def smooth_image(width: int, height: int) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    return Image.fromarray((np.stack([x, y, 1 - x * y], axis=-1) * 200 + 20).astype(np.uint8))


def textured_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 128 + 60 * np.sin(x / 3.0) * np.cos(y / 5.0)
    pixels = np.stack([base, base[::-1], base[:, ::-1]], axis=-1) + rng.normal(0, 25, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def line_energies(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient energy per row line and per column line; index i is the line between i-1 and i (0 unused)."""
    rows = ((image[1:] - image[:-1]) ** 2).mean(axis=(1, 2))
    cols = ((image[:, 1:] - image[:, :-1]) ** 2).mean(axis=(0, 2))
    return np.concatenate([[np.nan], rows]), np.concatenate([[np.nan], cols])


def permutation_p(energy: np.ndarray, seams: set[int], avoid: set[int], draws: int = 4000) -> float:
    """p of 'seam lines have no more gradient energy than phase-matched interior lines'."""
    last = len(energy) - EDGE
    seams = sorted(line for line in seams if EDGE <= line <= last)
    if not seams:
        return 1.0
    near = {line + d for line in avoid for d in range(-3, 4)}
    pools = [
        [i for i in range(EDGE, last + 1) if i % PHASE == line % PHASE and i not in near] for line in seams
    ]
    rng = np.random.default_rng(0)
    drawn = np.stack([energy[rng.choice(pool, draws)] for pool in pools]).mean(axis=0)
    return float((drawn >= energy[seams].mean()).mean())


def stage_seams(width: int, height: int, options: TileOptions) -> dict[str, tuple[set[int], set[int]]]:
    """(row lines, column lines) of tile edges and overlap centres per tiled stage, in output pixels."""
    rows, cols = tiling.latent_shape(width, height)
    return {
        "diffusion": tiling.denoise_grid(width, height, options).scaled(tiling.TOKEN).borders(),
        "decode": tiling.decode_grid(2 * rows, 2 * cols, options).scaled(tiling.LATENT).borders(),
        "swinir": tiling.swinir_grid(rows * tiling.TOKEN, cols * tiling.TOKEN, options).borders(),
    }


def seam_p_values(image: np.ndarray, seams: dict[str, tuple[set[int], set[int]]]) -> dict[str, float]:
    """p per seam family and axis; interior lines keep clear of every family's lines."""
    all_rows = set().union(*(r for r, _ in seams.values()))
    all_cols = set().union(*(c for _, c in seams.values()))
    row_energy, col_energy = line_energies(image)
    p_values = {}
    for name, (rows, cols) in seams.items():
        p_values[name + " rows"] = permutation_p(row_energy, rows, all_rows)
        p_values[name + " cols"] = permutation_p(col_energy, cols, all_cols)
    return p_values


def tiled_p_values(image: np.ndarray, options: TileOptions) -> dict[str, float]:
    height, width = image.shape[:2]
    return seam_p_values(image, stage_seams(width, height, options))


def no_seams(p_values: dict[str, float]) -> bool:
    return min(p_values.values()) >= P_THRESHOLD


def naive_tiles(
    pipeline: LucidFluxPipeline, image: Image.Image, block: int, settings: RestoreSettings
) -> np.ndarray:
    """The seam-prone baseline: restore blocks independently (same seed each) and butt them together."""
    pixels = np.asarray(image)
    out = np.zeros(pixels.shape, dtype=np.float32)
    for top in range(0, pixels.shape[0], block):
        for left in range(0, pixels.shape[1], block):
            crop = Image.fromarray(pixels[top : top + block, left : left + block])
            out[top : top + block, left : left + block] = pipeline(crop, size=crop.size, settings=settings)
    return out


def variant(pipeline: LucidFluxPipeline, **changes) -> LucidFluxPipeline:
    return LucidFluxPipeline(dataclasses.replace(pipeline.c, **changes), pipeline.device, pipeline.dtype)


# --- geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "length,tile,overlap,align",
    [(10, 4, 1, 1), (97, 16, 4, 1), (1000, 128, 32, 1), (300, 128, 64, 64), (5, 8, 2, 1)],
)
def test_spans_cover_with_at_least_the_overlap(length, tile, overlap, align):
    starts = spans(length, tile, overlap, align)
    covered = np.zeros(length, bool)
    for start in starts:
        covered[start : start + tile] = True
    assert covered.all() and starts[0] == 0 and starts[-1] == max(0, length - tile)
    assert all(a + tile - b >= overlap for a, b in zip(starts, starts[1:], strict=False))
    assert all(s % align == 0 for s in starts[:-1])


@pytest.mark.parametrize("blend", tiling.BLENDS)
def test_weights_sum_to_one_everywhere(blend):
    for height, width, tile, overlap in [(8, 10, 4, 1), (37, 61, 12, 5), (128, 96, 32, 8), (5, 5, 8, 2)]:
        grid = make_grid(height, width, tile, overlap)
        total = np.zeros((height, width))
        for box, weight in zip(grid.boxes(), grid.weights(blend), strict=True):
            assert weight.shape == (box.height, box.width) and (weight >= 0).all()
            total[box.slices] += weight
        np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_cosine_weights_are_smooth_positive_and_flat_inside():
    starts = spans(200, 64, 24)
    for weight in axis_weights(starts, 64, 200):
        assert weight.min() > 0
        assert np.abs(np.diff(weight)).max() < 0.1  # no step: a ramp over >= 24 samples
    middle = axis_weights(starts, 64, 200)[1]
    assert (middle[30:34] == 1.0).all()  # a tile's own prediction in its interior


def test_tile_options_validate_and_shrink_on_oom():
    with pytest.raises(ValueError):
        TileOptions(size=100)
    with pytest.raises(ValueError):
        TileOptions(size=256, overlap=200)
    options = TileOptions(size=1024, overlap=256, batch=4)
    sizes = []
    while options is not None:
        sizes.append((options.size, options.overlap, options.batch))
        options = options.smaller()
    assert sizes == [(1024, 256, 4), (1024, 256, 2), (1024, 256, 1), (512, 128, 1), (256, 64, 1)]


def test_size_policy_scale_min_side_and_aspect():
    assert output_size((400, 300), None, scale=2) == (800, 600)
    assert output_size((400, 300), (800, 0), scale=1) == (800, 600)
    assert processing_size((800, 600), 1024) == (1365, 1024)
    assert processing_size((600, 800), 1024) == (1024, 1365)
    assert processing_size((3000, 2000), 1024) == (3000, 2000)
    assert processing_size((800, 600), 0) == (800, 600)


@pytest.mark.parametrize(
    "scale,min_side,processed,written",
    [
        (1, 1024, (1536, 1024), (300, 200)),
        (2, 0, (600, 400), (600, 400)),
        (4, 1024, (1536, 1024), (1200, 800)),
    ],
)
def test_batch_restores_at_the_processing_size_and_writes_the_output_size(
    tmp_path, scale, min_side, processed, written
):
    smooth_image(300, 200).save(tmp_path / "photo.png")
    seen = []

    def restorer(image, size, on_step):
        seen.append(size)
        return np.full((size[1], size[0], 3), 0.5, dtype=np.float32)

    options = batch.OutputOptions(out_dir=tmp_path / "out", scale=scale, min_side=min_side)
    item = InputFile(tmp_path / "photo.png", tmp_path.joinpath("photo.png").relative_to(tmp_path))
    report = batch.restore_files([item], lambda: restorer, options, {})
    assert report.results[0].status == "done" and seen == [processed]
    with Image.open(tmp_path / "out" / "photo.png") as out:
        assert out.size == written and abs(np.asarray(out).astype(int) - 128).max() <= 1


def test_plan_description_names_the_grid():
    assert "one tile" in tiling.describe_plan(1024, 768, TileOptions())
    assert "5x4 tiles of 1024x1024 px" in tiling.describe_plan(4096, 3072, TileOptions())


# --- exactness -----------------------------------------------------------------------------


def test_lq_crops_equal_regions_of_the_whole(tiny_pipeline):
    for image in (textured_image(90, 70), np.asarray(textured_image(90, 70), dtype=np.float32) / 255):
        lq = tiny_pipeline.lq_image([image, image], (80, 56))
        whole = lq.crop()
        box = tiling.Box(16, 32, 32, 48)
        assert whole.shape == (2, 3, 64, 80)  # padded to whole tokens
        assert torch.equal(lq.crop(box), whole[(..., *box.slices)])
        assert torch.equal(lq.crop(box, image=1), whole[(slice(1, 2), slice(None), *box.slices)])


def test_one_tile_image_is_identical_whatever_the_tile_size(tiny_pipeline):
    image, size = textured_image(70, 50), (64, 48)
    settings = RestoreSettings(steps=STEPS, seed=5)
    untiled = tiny_pipeline(
        image, size=size, settings=dataclasses.replace(settings, tiles=TileOptions(size=4096))
    )
    one_tile = tiny_pipeline(
        image, size=size, settings=dataclasses.replace(settings, tiles=TileOptions(size=64))
    )
    assert np.array_equal(untiled, one_tile)


def test_an_image_of_one_tile_is_one_window_in_every_stage():
    # The reference's computation: each stage sees the whole (padded) image.
    for options in (TileOptions(size=64, overlap=0), TileOptions(size=1024, semantic="tile", blend="hard")):
        plan = tiling.plan(64, 48, options)
        assert not plan.tiled and plan.semantic == "global"
        assert (plan.denoise.count, plan.clean.count, plan.decode.count) == (1, 1, 1)
        assert (plan.clean.height, plan.clean.width, plan.decode.height, plan.decode.width) == (48, 64, 6, 8)
        assert tiling.core_boxes(48, 64, plan.color_window, tiling.COLOR_FIX_MARGIN) == [
            (tiling.Box(0, 0, 48, 64), tiling.Box(0, 0, 48, 64))
        ]
    tiled = tiling.plan(640, 512, SMALL)
    assert tiled.tiled and tiled.clean.count > 1 and tiled.decode.count > 1 and tiled.color_window == 256
    assert tiling.plan(256, 192, SMALL, remover_tileable=False).clean.count == 1


def test_stages_over_one_window_are_the_models_on_the_whole_image(tiny_pipeline):
    pipe, size = tiny_pipeline, (64, 48)
    lq = pipe.lq_image([textured_image(64, 48)], size)
    plan = pipe.plan(lq, TileOptions(size=64, overlap=0))
    cleaned = pipe.clean(lq, plan)
    assert torch.equal(cleaned, pipe.remove(torch.clamp((lq.crop().float() + 1) / 2, 0, 1)))
    latents = torch.randn(1, 16, 6, 8, generator=torch.Generator().manual_seed(0))
    decoded = pipe.decode(latents, size, plan)
    whole = pipe.decode_latents(latents)
    assert np.array_equal(decoded[0], whole[0].permute(1, 2, 0).numpy())
    fixed = pipe.color_fix(decoded, cleaned, plan)
    assert np.array_equal(fixed[0], wavelet_color_fix(whole, cleaned)[0].permute(1, 2, 0).numpy())


@pytest.mark.parametrize("tileable", [True, False])
def test_remover_is_windowed_only_when_it_says_it_may_be(tiny_pipeline, tileable):
    from lucidflux_cli.model.removers import RemoverModel

    shapes = []

    def global_contrast(x):  # depends on the whole input: windows would change the answer
        shapes.append(tuple(x.shape[-2:]))
        return (x - x.mean() + 0.5).clamp(0, 1)

    pipeline = variant(
        tiny_pipeline, remover=RemoverModel(run=global_contrast, tileable=tileable), remover_multiple=1
    )
    lq = pipeline.lq_image([textured_image(256, 192)], (256, 192))
    cleaned = pipeline.clean(lq, pipeline.plan(lq, TileOptions(size=128, overlap=32)))
    if tileable:
        assert len(shapes) > 1 and all(h < 192 and w < 256 for h, w in shapes)
    else:
        assert shapes == [(192, 256)]
        assert torch.equal(cleaned, pipeline.remove(torch.clamp((lq.crop().float() + 1) / 2, 0, 1)))


def test_windowed_colour_fix_equals_whole_image_fix():
    rng = np.random.default_rng(1)
    content = torch.from_numpy(rng.random((2, 3, 150, 230), dtype=np.float32))
    colour = torch.from_numpy(rng.random((2, 3, 150, 230), dtype=np.float32))
    expected = wavelet_color_fix(content, colour).permute(0, 2, 3, 1).numpy()
    restored = np.ascontiguousarray(content.permute(0, 2, 3, 1).numpy())
    assert (
        len(tiling.core_boxes(150, 230, 256, tiling.COLOR_FIX_MARGIN)) == 4
    )  # 64 px margins: several windows
    fixed = color_fix_windows(restored, colour, window=256, device=torch.device("cpu"))
    np.testing.assert_allclose(fixed, expected, atol=2e-6)
    assert not np.array_equal(fixed, restored)


# --- a stand-in denoiser whose exact answer is known ----------------------------------------


class TargetBranch(torch.nn.Module):
    """Stand-in dual branch: its one 'residual' is a target latent read off the LQ crop (8x8 means)."""

    def hints(self, lq_image, ldr_image):
        pooled = F.avg_pool2d(lq_image.float(), 8)  # (B, 3, h, w): local, so crops agree with the whole
        target = sampling.pack_latents(pooled.repeat(1, 6, 1, 1)[:, :16]).to(lq_image.dtype)
        return target, target

    def embed_text(self, txt, vec, guidance):
        return None

    def rope(self, text_length, img_ids):
        return None

    def forward(self, latents, timestep, text, rotary, hints):
        return [hints[0].to(latents.dtype)]


class TargetBackbone:
    """Stand-in backbone step: the velocity that lands every Euler trajectory exactly on the target at t=0."""

    def embed_text(self, context, vec, guidance):
        return None

    def rope(self, context_length, img_ids):
        return None

    def __call__(self, latents, timestep, text, rotary, residuals):
        return (latents - residuals[0]) / timestep[:, None, None]


def with_backbone(pipeline: LucidFluxPipeline, backbone) -> LucidFluxPipeline:
    """A copy of ``pipeline`` whose backbone step is ``backbone`` (a stand-in or a spy)."""
    changed = variant(pipeline)
    changed.backbone = backbone
    return changed


@pytest.fixture(scope="module")
def stand_in(tiny_pipeline) -> LucidFluxPipeline:
    return with_backbone(variant(tiny_pipeline, dual_branch=TargetBranch()), TargetBackbone())


@pytest.mark.parametrize(
    "options",
    [SMALL, dataclasses.replace(SMALL, batch=3), dataclasses.replace(SMALL, positions="global", overlap=32)],
)
def test_stand_in_denoiser_lands_exactly_on_the_known_answer(stand_in, options):
    width, height = 208, 144
    lq = stand_in.lq_image([smooth_image(width, height)], (width, height))
    cleaned = torch.zeros(1, 3, lq.height, lq.width)
    context = torch.zeros(1, 4, 32)
    settings = RestoreSettings(steps=4, seed=1, tiles=options)
    latents = stand_in.denoise(lq, cleaned, context, settings, stand_in.plan(lq, options))
    exact = F.avg_pool2d(lq.crop().float(), 8).repeat(1, 6, 1, 1)[:, :16]
    assert tiling.denoise_grid(width, height, options).count >= 12
    torch.testing.assert_close(latents, exact, atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("make_image", [smooth_image, textured_image])
def test_stand_in_output_has_no_seams(stand_in, make_image):
    """Denoising is exact here, so this checks the tiled SwinIR, VAE decode and colour fix."""
    width, height = 448, 320  # several SwinIR and VAE windows, many diffusion tiles
    image = make_image(width, height)
    out = stand_in(image, size=(width, height), settings=RestoreSettings(steps=2, tiles=SMALL))
    assert no_seams(p_values := tiled_p_values(out, SMALL)), p_values
    if make_image is smooth_image:  # hard cuts are seen (on texture a tone step can hide)
        hard = dataclasses.replace(SMALL, blend="hard")
        cut = stand_in(image, size=(width, height), settings=RestoreSettings(steps=2, tiles=hard))
        assert not no_seams(tiled_p_values(cut, hard))


# --- the tiny random model: seams ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("make_image", [smooth_image, textured_image])
def test_tiny_model_tile_borders_are_indistinguishable_from_the_interior(tiny_pipeline, make_image):
    width, height = 256, 192  # 5x4 diffusion tiles, 3x2 SwinIR windows
    image = make_image(width, height)
    settings = RestoreSettings(steps=STEPS, seed=3, tiles=SMALL)
    blended = tiny_pipeline(image, size=(width, height), settings=settings)
    assert no_seams(p_values := tiled_p_values(blended, SMALL)), p_values
    # The tiny model's attention is mostly on its 1040 text tokens, so its tiles barely disagree
    # and even hard cuts leave no mark; independent 64 px blocks do, and the measure sees them.
    naive = naive_tiles(tiny_pipeline, image, 64, dataclasses.replace(settings, tiles=TileOptions(size=1024)))
    assert not no_seams(seam_p_values(naive, {"blocks": ({64, 128}, {64, 128, 192})}))


def test_tile_batches_give_the_same_image(tiny_pipeline):
    image, size = textured_image(128, 96), (128, 96)
    one = tiny_pipeline(image, size=size, settings=RestoreSettings(steps=1, tiles=SMALL))
    batched = tiny_pipeline(
        image, size=size, settings=RestoreSettings(steps=1, tiles=dataclasses.replace(SMALL, batch=4))
    )
    np.testing.assert_allclose(batched, one, atol=1e-5)


# --- memory bound and out-of-memory retry --------------------------------------------------


class Spy(torch.nn.Module):
    """Wraps a model, records the largest input it was given (elements), optionally fails once."""

    def __init__(self, model, fail_above: int | None = None):
        super().__init__()
        self.model, self.fail_above, self.largest, self.failed = model, fail_above, 0, False

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)

    def forward(self, *args, **kwargs):
        tensor = kwargs.get("hidden_states", args[0] if args else None)
        self.largest = max(self.largest, tensor.numel())
        if self.fail_above is not None and tensor.numel() > self.fail_above and not self.failed:
            self.failed = True
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        return self.model(*args, **kwargs)


class StepSpy(Spy):
    """The same for a backbone step (called with the packed latents first)."""

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)


class VaeSpy(Spy):
    def decode(self, z, **kwargs):
        self.largest = max(self.largest, z.numel())
        return self.model.decode(z, **kwargs)


@pytest.mark.slow
def test_model_inputs_are_bounded_by_the_tile_not_the_image(stand_in):
    """What reaches each model is one tile (or window), however large the image."""
    largest = {}
    for width, height in [(128, 128), (640, 512)]:
        backbone = StepSpy(stand_in.backbone)
        spies = {"vae": VaeSpy(stand_in.c.vae), "remover": Spy(stand_in.c.remover)}
        spied = with_backbone(variant(stand_in, **spies), backbone)
        spied(
            smooth_image(width, height), size=(width, height), settings=RestoreSettings(steps=1, tiles=SMALL)
        )
        largest[width] = {
            "transformer": backbone.largest,
            **{name: spy.largest for name, spy in spies.items()},
        }
    assert (
        largest[640]["transformer"] == largest[128]["transformer"] == 4 * 4 * 64
    )  # one 64 px tile of tokens
    assert largest[640]["vae"] == 16 * 32 * 32  # one 256 px decode window
    assert largest[640]["remover"] == 3 * 128 * 128  # one 128 px SwinIR window


@pytest.mark.slow
def test_out_of_memory_retries_the_image_with_smaller_tiles(tiny_pipeline, caplog):
    options = TileOptions(size=128, overlap=32, min_size=64)
    spy = StepSpy(tiny_pipeline.backbone, fail_above=4 * 4 * 64)  # more than a 64 px tile's tokens
    spied = with_backbone(tiny_pipeline, spy)
    with caplog.at_level(logging.WARNING, logger="lucidflux_cli.model.pipeline"):
        out = spied(textured_image(96, 80), size=(96, 80), settings=RestoreSettings(steps=1, tiles=options))
    assert out.shape == (80, 96, 3) and np.isfinite(out).all()
    assert spy.failed and "retrying this image with 64 px tiles" in caplog.text
    assert "using 64 px tiles, overlap 16 px, batch 1 for the rest of this run" in caplog.text
    # The next image starts at the tiles that fitted: nothing larger reaches the backbone again.
    spy.largest = 0
    spied(textured_image(96, 80), size=(96, 80), settings=RestoreSettings(steps=1, tiles=options))
    assert spy.largest == 4 * 4 * 64
    # So do batches: one image at a time in those tiles, not 96x80 untiled.
    spied.restore_batch([textured_image(96, 80)] * 2, (96, 80), RestoreSettings(steps=1, tiles=options))
    assert spy.largest == 4 * 4 * 64


def test_out_of_memory_at_the_floor_is_raised(tiny_pipeline):
    spied = with_backbone(tiny_pipeline, StepSpy(tiny_pipeline.backbone, fail_above=0))
    floor = TileOptions(size=64, overlap=16, min_size=64)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        spied(textured_image(64, 64), size=(64, 64), settings=RestoreSettings(steps=1, tiles=floor))


# --- command line --------------------------------------------------------------------------


def test_dry_run_shows_the_tile_grid_per_image(tmp_path):
    textured_image(300, 200).save(tmp_path / "wide.png")
    smooth_image(40, 30).save(tmp_path / "small.png")
    result = CliRunner().invoke(
        main,
        [
            "restore",
            str(tmp_path),
            "-o",
            str(tmp_path / "out"),
            "--dry-run",
            "--scale",
            "4",
            "--min-side",
            "0",
            "--tile-size",
            "512",
            "--tile-overlap",
            "128",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "process 1200x800 px in 3x2 tiles of 512x512 px" in result.stdout
    assert "process 160x120 px in one tile" in result.stdout


@pytest.mark.parametrize(
    "gib,precision,offload,side",
    [
        (None, "bf16", "none", 1024),  # the CPU: FLUX's native tile
        (79.1, "bf16", "none", 1536),  # 80 GB (H100, A100 80GB): never 2048 (quality)
        (39.4, "bf16", "none", 1536),  # A100 40GB
        (35.0, "bf16", "none", 1024),
        (23.6, "bf16", "none", 1024),  # 24 GB: smallest; the out-of-memory retry goes lower
        (27.0, "fp8", "none", 1536),
        (20.0, "fp8", "none", 1024),
        (15.6, "bf16", "sequential", 1536),  # weights streamed in: the activations alone decide
    ],
)
def test_auto_tile_size_is_the_largest_that_the_device_holds(gib, precision, offload, side):
    assert tiling.auto_tile_size(gib, precision, offload) == side


def test_auto_tile_size_grows_with_memory_and_shrinks_with_what_stays_resident():
    sides = [tiling.auto_tile_size(gib) for gib in range(8, 160)]
    assert sides == sorted(sides) and set(sides) == set(tiling.AUTO_TILE_SIDES)
    for gib in range(8, 160):
        assert tiling.auto_tile_size(gib, "fp8") >= tiling.auto_tile_size(gib, "bf16")
        assert tiling.auto_tile_size(gib, "bf16", "sequential") >= tiling.auto_tile_size(gib, "bf16", "model")


@pytest.mark.parametrize(
    "gib,plans",
    [
        (
            None,
            [
                "1536x1024 px in 2x1 tiles of 1024x1024 px",
                "1800x1200 px in 3x2 tiles of 1024x1024 px",
                "2400x1600 px in 3x2 tiles of 1024x1024 px",
            ],
        ),  # the CPU
        (30.0, ["1536x1024 px in 2x1 tiles of 1024x1024 px"]),  # 1536 px tiles do not fit
        # Room for 1536 px tiles: each image gets the tiles that need the least work.
        (
            80.0,
            [
                "1536x1024 px in one tile",
                "1800x1200 px in 2x1 tiles of 1536x1200 px",
                "2400x1600 px in 3x2 tiles of 1024x1024 px",
            ],
        ),
    ],
)
def test_dry_run_tile_size_auto_follows_the_device_memory_and_the_image(tmp_path, monkeypatch, gib, plans):
    from lucidflux_cli import devices

    monkeypatch.setattr(devices, "device_memory_gib", lambda name: gib)
    smooth_image(600, 400).save(tmp_path / "snapshot.png")  # restored at --min-side 1024: 1536x1024
    smooth_image(1800, 1200).save(tmp_path / "print.png")
    smooth_image(2400, 1600).save(tmp_path / "scan.png")
    result = CliRunner().invoke(
        main, ["restore", str(tmp_path), "-o", str(tmp_path / "out"), "--dry-run"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    for plan in plans:
        assert f"process {plan}" in result.stdout
    pinned = CliRunner().invoke(
        main,
        ["restore", str(tmp_path), "-o", str(tmp_path / "out"), "--dry-run", "--tile-size", "2048"],
        catch_exceptions=False,
    )
    assert "process 2400x1600 px in 2x1 tiles of 2048x1600 px" in pinned.stdout


@pytest.mark.parametrize(
    "width,height,side",
    [
        (1536, 1024, 1536),
        (1365, 1024, 1536),
        (2048, 1365, 1536),
        (3000, 2000, 1024),
        (4096, 3072, 1024),
        (6000, 4000, 1024),
    ],
)
def test_cheapest_tiles_depend_on_how_the_image_divides(width, height, side):
    chosen = tiling.cheapest_tiles(width, height, (1024, 1536))
    assert chosen.size == side and chosen.overlap == side // 4
    other = TileOptions(size=2560 - side)
    assert tiling.denoise_work(width, height, chosen) < tiling.denoise_work(width, height, other)


def test_denoise_work_counts_tiles_and_attention():
    one = tiling.denoise_work(1024, 1024, TileOptions(size=1024))
    assert tiling.denoise_work(1024, 1024, TileOptions(size=512)) > one  # 3x3 overlapping tiles
    assert tiling.denoise_work(2048, 2048, TileOptions(size=2048)) > 4 * one  # attention grows faster


def test_tiling_usage_errors_exit_2(tmp_path):
    base = ["restore", str(tmp_path), "-o", str(tmp_path / "out"), "--dry-run"]
    for extra in (
        ["--tile-size", "100"],
        ["--tile-size", "big"],
        ["--tile-overlap", "900"],
        ["--scale", "2", "--size", "64x64"],
        ["--scale", "0"],
        ["--tile-batch", "0"],
    ):
        assert CliRunner().invoke(main, base + extra).exit_code == 2, extra


def test_the_restorer_gives_each_image_its_own_auto_tiles(monkeypatch, tmp_path):
    from lucidflux_cli import devices
    from lucidflux_cli.restore import restorer as engine_restorer
    from lucidflux_cli.restore import settings

    monkeypatch.setattr(devices, "device_memory_gib", lambda name: 80.0)
    request = settings.RestoreRequest(inputs=[], out_dir=tmp_path)
    seen = []

    class Recorder:  # stands in for the pipeline: records the tiles each call gets
        def __call__(self, image, size, settings, on_step=None):
            seen.append(settings.tiles.size)

        def restore_batch(self, images, size, settings, on_step=None):
            seen.append(settings.tiles.size)

    restorer = engine_restorer.PipelineRestorer(Recorder(), request.sampling, "warm-up")
    restorer(None, (1536, 1024))
    restorer(None, (4096, 3072))
    restorer.batch([None, None], (1800, 1200))
    assert seen == [1536, 1024, 1536]
    pinned = settings.RestoreRequest(inputs=[], out_dir=tmp_path, tile_size=1024)
    assert {pinned.tiles(size).size for size in [(1536, 1024), (4096, 3072)]} == {1024}
