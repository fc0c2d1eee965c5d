"""Tile geometry and blending weights for restoring images larger than one model tile.

Torch-free on purpose: ``--dry-run`` and the docs figure use it without loading any model.
A grid is the Cartesian product of row spans and column spans, and a tile's weight is the
product of a row ramp and a column ramp, so the weights normalise per axis: the 2-D
weights of all tiles sum to one wherever the 1-D ones do (``axis_weights``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from lucidflux_cli.model.config import TILE_BATCH
from lucidflux_cli.model.sizes import LATENT_MULTIPLE, round_up

TOKEN = LATENT_MULTIPLE  # pixels per packed latent token (8x VAE, then 2x2 packing)
LATENT = 8  # pixels per VAE latent position
SWINIR_MULTIPLE = 64
COLOR_FIX_MARGIN = 64  # the wavelet fix reaches 1+2+4+8+16 = 31 px each side; 64 is exact with room
BLENDS = ("cosine", "linear", "hard")


# --tile-size auto: of these tile sides, those whose one-tile restore fits the GPU; per image,
# the one that needs the least work (cheapest_tiles): a 1536x1024 photo (3:2 at --min-side 1024)
# in one 1536 px tile is ~1.4x less work than in two overlapping 1024 px tiles, and has no seam
# at all, while large scans divide better into 1024 px tiles. Not
# 2048: a 2048 px tile is 4 megapixels and RoPE ids up to 128, beyond the 1-2 megapixels FLUX
# was trained at and the 1024 px the reference is run at (docs/tiling.md); --tile-size 2048 asks
# for it.
AUTO_TILE_SIDES = (1536, 1024)
# Estimated device memory, rounded up from benchmarks/memory_model.py (the full-size architecture
# counted on meta tensors; docs/performance.md) until a GPU benchmark measures it: the weights
# kept on the GPU (26.4 GiB in bf16: backbone 22.2, condition branches 2.9, SigLIP + connector
# 0.9, VAE and SwinIR 0.4; 14.1 GiB with float8 blocks; with --offload model the denoise stage's
# backbone and branches, 25.1 and 12.8 GiB), per precision and offload mode ...
RESIDENT_GIB = {
    ("bf16", "none"): 27.0,
    ("bf16", "model"): 26.0,
    ("fp8", "none"): 15.0,
    ("fp8", "model"): 13.5,
}
SEQUENTIAL_RESIDENT_GIB = 1.0  # --offload sequential streams the weights in, layer by layer
# ... plus the largest stage's activations per megapixel of tile: the float32 VAE decode, 3.0 GiB
# (denoising takes 1.5),
ACTIVATION_GIB_PER_MEGAPIXEL = 3.0
HEADROOM_GIB = 4.0  # CUDA context, allocator rounding and fragmentation, kernels' workspaces


def cheapest_tiles(
    width: int, height: int, sides: tuple[int, ...], overlap: int | None = None, batch: int = 1
) -> TileOptions:
    """Of tiles with these ``sides``, the ones whose grid over a ``width`` x ``height`` image needs
    the least diffusion work (ties: the larger tile, fewer seams).

    Which size is cheaper depends on how the image divides: a 1536x1024 photo is one 1536 px tile
    but two overlapping 1024 px ones (1.4x the work); a 4096x3072 scan is 12 tiles of 1536 px but
    20 of 1024 px, which is less work (0.8x).
    """
    options = [TileOptions(size=side, overlap=overlap, batch=batch) for side in sorted(sides, reverse=True)]
    return min(options, key=lambda tiles: denoise_work(width, height, tiles))


def auto_tiles(
    width: int, height: int, largest: int, overlap: int | None = None, batch: int = 1
) -> TileOptions:
    """``--tile-size auto`` for one image: the cheapest of the auto sides up to ``largest``
    (``auto_tile_size``) that take the given ``overlap``."""
    sides = tuple(
        side for side in AUTO_TILE_SIDES if side <= largest and (overlap is None or overlap <= side // 2)
    )
    return cheapest_tiles(width, height, sides or (largest,), overlap, batch)


# Context tokens every tile attends to (512 T5 + 1024 SigLIP), and the token count at which a
# step's attention costs as much as its linear layers (FLUX.1-dev: 4 N^2 x 3072 x 57 blocks
# against 2 N x 11.9e9 parameters).
CONTEXT_TOKENS = 1536
ATTENTION_BREAK_EVEN_TOKENS = 34_000


def denoise_work(width: int, height: int, options: TileOptions) -> float:
    """Relative work of one denoising step over the image's tile grid (linear + attention)."""
    grid = denoise_grid(width, height, options)
    tokens = grid.tile_width * grid.tile_height + CONTEXT_TOKENS
    return grid.count * (tokens + tokens * tokens / ATTENTION_BREAK_EVEN_TOKENS)


def auto_tile_size(device_gib: float | None, precision: str = "bf16", offload: str = "none") -> int:
    """The largest tile side ``--tile-size auto`` may use on a device of ``device_gib`` GiB (None: a CPU).

    By the device's total memory, not what is free at the moment, so one GPU model always
    restores an image in the same tiles (and so to the same pixels). The CPU keeps FLUX's native
    1024 px. If an estimate is too optimistic, the out-of-memory retry halves the tiles.
    """
    if device_gib is None:
        return AUTO_TILE_SIDES[-1]
    for side in AUTO_TILE_SIDES:
        if estimated_peak_gib(side, side, precision, offload) + HEADROOM_GIB <= device_gib:
            return side
    return AUTO_TILE_SIDES[-1]


def estimated_peak_gib(width: int, height: int, precision: str = "bf16", offload: str = "none") -> float:
    """Estimated peak device memory of restoring one tile of ``width`` x ``height`` px (the
    benchmark prints it beside the measured peak)."""
    resident = SEQUENTIAL_RESIDENT_GIB if offload == "sequential" else RESIDENT_GIB[(precision, offload)]
    return resident + ACTIVATION_GIB_PER_MEGAPIXEL * width * height / 2**20


@dataclass(frozen=True)
class TileOptions:
    """How an image larger than one tile is covered. Sizes are output pixels at processing size."""

    size: int = 1024  # tile side; FLUX is at home near 1024 px
    overlap: int | None = None  # minimum overlap of neighbours (tiles are spread evenly); None: size / 4
    batch: int = TILE_BATCH  # tiles per model call
    positions: str = "local"  # RoPE ids per tile: "local" (from 0, as in training) or "global"
    semantic: str = "global"  # SigLIP tokens: "global" (whole image, once) or "tile" (per tile crop)
    blend: str = "cosine"  # "cosine" ramps; "linear" and "hard" (no blending) exist for comparison
    min_size: int = 256  # out-of-memory retries halve the tile down to this

    def __post_init__(self) -> None:
        if self.size < 4 * TOKEN or self.size % TOKEN:
            raise ValueError(
                f"tile size must be a multiple of {TOKEN} and at least {4 * TOKEN} px, got {self.size}"
            )
        if self.overlap is None:
            object.__setattr__(self, "overlap", self.size // 4 // TOKEN * TOKEN)
        if self.overlap % TOKEN or not 0 <= self.overlap <= self.size // 2:
            raise ValueError(
                f"tile overlap must be a multiple of {TOKEN} px between 0 and half the tile size, "
                f"got {self.overlap}"
            )
        if self.batch < 1:
            raise ValueError(f"tile batch must be at least 1, got {self.batch}")
        if self.positions not in ("local", "global") or self.semantic not in ("global", "tile"):
            raise ValueError(f"unknown tile positions/semantic mode: {self.positions!r}/{self.semantic!r}")
        if self.blend not in BLENDS:
            raise ValueError(f"tile blend must be one of {BLENDS}, got {self.blend!r}")

    def smaller(self) -> TileOptions | None:
        """The next try after running out of memory: fewer tiles per call, then half-size tiles."""
        if self.batch > 1:
            return replace(self, batch=self.batch // 2)
        size = max(self.min_size, self.size // 2 // TOKEN * TOKEN)
        if size >= self.size:
            return None
        overlap = min(size // 2, round(self.overlap * size / self.size / TOKEN) * TOKEN)
        return replace(self, size=size, overlap=overlap)

    def describe(self) -> str:
        return f"{self.size} px tiles, overlap {self.overlap} px, batch {self.batch}"


@dataclass(frozen=True)
class Box:
    """A tile: top-left corner and size, in the grid's units."""

    top: int
    left: int
    height: int
    width: int

    def scaled(self, factor: int) -> Box:
        return Box(self.top * factor, self.left * factor, self.height * factor, self.width * factor)

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


@dataclass(frozen=True)
class Grid:
    """Overlapping tiles of one size covering a ``height`` x ``width`` array."""

    height: int
    width: int
    rows: tuple[int, ...]  # tile tops
    cols: tuple[int, ...]  # tile lefts
    tile_height: int
    tile_width: int
    margin: int = 0  # outer band of each tile that gets no weight where it overlaps a neighbour

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)

    def boxes(self) -> list[Box]:
        """Tiles in raster order."""
        return [Box(top, left, self.tile_height, self.tile_width) for top in self.rows for left in self.cols]

    def scaled(self, factor: int) -> Grid:
        return Grid(
            self.height * factor,
            self.width * factor,
            tuple(r * factor for r in self.rows),
            tuple(c * factor for c in self.cols),
            self.tile_height * factor,
            self.tile_width * factor,
            self.margin * factor,
        )

    def borders(self) -> tuple[set[int], set[int]]:
        """Where seams could show, as (rows, cols) pixel-line indices (a line i lies between i-1 and i):
        every tile edge inside the image, and the middle of every overlap (where neighbouring
        weights cross, and where a cut without blending falls)."""
        return _borders(self.rows, self.tile_height, self.height), _borders(
            self.cols, self.tile_width, self.width
        )

    def weights(self, blend: str = "cosine") -> Iterator[np.ndarray]:
        """Per tile (raster order), its float32 (tile_height, tile_width) weights; they sum to one everywhere.

        Made one at a time: all of them together would take as much memory as the image.
        """
        row_w = axis_weights(self.rows, self.tile_height, self.height, blend, self.margin)
        col_w = axis_weights(self.cols, self.tile_width, self.width, blend, self.margin)
        return (np.outer(r, c).astype(np.float32) for r in row_w for c in col_w)


def spans(length: int, tile: int, overlap: int, align: int = 1) -> tuple[int, ...]:
    """Starts of the fewest ``tile``-long spans covering ``length`` with at least ``overlap`` shared.

    The spans are spread evenly (so the actual overlap is usually larger than asked), and their
    starts are multiples of ``align`` except the last, which ends flush with ``length``.
    """
    if length <= tile:
        return (0,)
    if tile - overlap < align:
        raise ValueError(f"tile {tile} too small for overlap {overlap} aligned to {align}")
    last = length - tile
    count = math.ceil(last / (tile - overlap)) + 1
    while True:  # aligning the starts down can shrink an overlap: add a span until none is short
        starts = (*(round(i * last / (count - 1)) // align * align for i in range(count - 1)), last)
        if all(a + tile - b >= overlap for a, b in zip(starts, starts[1:], strict=False)):
            return starts
        count += 1


def make_grid(height: int, width: int, tile: int, overlap: int, align: int = 1, margin: int = 0) -> Grid:
    return Grid(
        height,
        width,
        spans(height, tile, overlap, align),
        spans(width, tile, overlap, align),
        min(tile, height),
        min(tile, width),
        margin,
    )


def axis_weights(
    starts: tuple[int, ...], tile: int, length: int, blend: str = "cosine", margin: int = 0
) -> list[np.ndarray]:
    """Normalised 1-D weights (float64) of each span; they sum to one at every position.

    ``cosine``: each span ramps up over its overlap with the previous span and down over the
    next, ``sin^2`` of the distance to its edge (half-sample centred, so never exactly zero
    and complementary to the neighbour's ramp); flat 1 elsewhere, so a tile's interior is its
    own prediction. ``linear``: the same with straight ramps. ``hard``: no blending, each
    position belongs to the span whose centre is nearest (seams are expected; a control).
    ``margin``: the outer band of a span where it overlaps a neighbour gets weight 0 and the
    ramp runs between the bands (for decoders whose outputs go wrong near their input's edge);
    the ramps stay complementary, so the sum is still one.
    """
    tile = min(tile, length)
    if blend == "hard":
        raw = _nearest_centre(starts, tile, length)
    else:
        raw = [_tile_ramps(starts, i, tile, blend, margin) for i in range(len(starts))]
    total = np.zeros(length)
    for start, weight in zip(starts, raw, strict=True):
        total[start : start + tile] += weight
    return [weight / total[start : start + tile] for start, weight in zip(starts, raw, strict=True)]


def _tile_ramps(starts: tuple[int, ...], i: int, tile: int, blend: str, margin: int) -> np.ndarray:
    position = np.arange(tile, dtype=np.float64)
    weight = np.ones(tile)
    if i > 0:
        weight *= _ramp(position, starts[i - 1] + tile - starts[i], blend, margin)
    if i < len(starts) - 1:
        weight *= _ramp(tile - 1 - position, starts[i] + tile - starts[i + 1], blend, margin)
    return weight


def _borders(starts: tuple[int, ...], tile: int, length: int) -> set[int]:
    edges = {e for start in starts for e in (start, start + tile) if 0 < e < length}
    changes = np.flatnonzero(np.diff(_owners(starts, min(tile, length), length))) + 1
    return edges | {int(i) for i in changes}


def _ramp(distance: np.ndarray, width: int, blend: str, margin: int = 0) -> np.ndarray:
    """Weight by distance from the tile edge over an overlap ``width`` wide; 1 beyond it."""
    margin = min(margin, (width - 1) // 2)  # a narrow overlap keeps a ramp of at least one sample
    x = np.clip((distance + 0.5 - margin) / max(width - 2 * margin, 1), 0.0, 1.0)
    return np.sin(x * np.pi / 2) ** 2 if blend == "cosine" else x


def _owners(starts: tuple[int, ...], tile: int, length: int) -> np.ndarray:
    """For each position, the span whose centre is nearest."""
    centres = np.asarray(starts) + (tile - 1) / 2
    return np.abs(np.arange(length)[:, None] - centres[None, :]).argmin(axis=1)


def _nearest_centre(starts: tuple[int, ...], tile: int, length: int) -> list[np.ndarray]:
    owner = _owners(starts, tile, length)
    return [(owner[start : start + tile] == i).astype(np.float64) for i, start in enumerate(starts)]


# --- the grids each stage uses -----------------------------------------------------------


def latent_shape(width: int, height: int) -> tuple[int, int]:
    """(rows, cols) of packed tokens for a processing size (padded up to whole tokens)."""
    return round_up(height, TOKEN) // TOKEN, round_up(width, TOKEN) // TOKEN


def denoise_grid(width: int, height: int, options: TileOptions) -> Grid:
    """Diffusion tiles in packed-token units (16 px)."""
    rows, cols = latent_shape(width, height)
    return make_grid(rows, cols, options.size // TOKEN, options.overlap // TOKEN)


def stage_window(options: TileOptions, smallest: int) -> int:
    """Side of the SwinIR and VAE windows: 3/4 of the tile (a multiple of 64, at least ``smallest``).

    Their activations grow with the window's area (at 1024 px they dominate a one-tile run's
    peak), and a tiled run also holds whole-image buffers on the host; windows of 3/4 the
    tile side halve the activations, which keeps a tiled run's peak near a one-tile run's.
    """
    return max(smallest, options.size * 3 // 4 // SWINIR_MULTIPLE * SWINIR_MULTIPLE)


def decode_grid(latent_height: int, latent_width: int, options: TileOptions) -> Grid:
    """VAE decode windows in latent units (8 px), at least 256 px.

    The decoder goes wrong near the edges of what it is given (zero padding, group norms over
    the window), so each window's outer sixteenth is discarded where a neighbour covers it
    and the weights ramp over a quarter window beyond that.
    """
    window = stage_window(options, 256)
    margin = window // 16
    overlap = window // 4 + 2 * margin
    return make_grid(
        latent_height, latent_width, window // LATENT, overlap // LATENT, margin=margin // LATENT
    )


def swinir_grid(height: int, width: int, options: TileOptions) -> Grid:
    """Degradation-remover windows in pixels, at least 128 px; like :func:`decode_grid`, but
    starts on SwinIR's 64 px grid, so overlapping windows share their attention windows."""
    window = stage_window(options, 2 * SWINIR_MULTIPLE)
    margin = window // 16
    overlap = min(window // 2, round_up(window // 4 + 2 * margin, SWINIR_MULTIPLE))
    return make_grid(height, width, window, overlap, align=SWINIR_MULTIPLE, margin=margin)


@dataclass(frozen=True)
class Plan:
    """How each stage covers one processing size: a single window is the whole image.

    An image that fits in one diffusion tile is processed whole by every stage, which is the
    reference's computation; a larger one gets each stage's own windows.
    """

    denoise: Grid  # packed tokens (16 px)
    clean: Grid  # pixels
    decode: Grid  # VAE latent positions (8 px)
    color_window: int  # side of the colour fix's windows, margins included
    semantic: str  # SigLIP tokens: "global" or "tile" (per tile only when there are tiles)
    blend: str  # TileOptions.blend, for every stage's windows

    @property
    def tiled(self) -> bool:
        return self.denoise.count > 1


def whole(height: int, width: int) -> Grid:
    """One window covering a ``height`` x ``width`` array."""
    return make_grid(height, width, max(height, width), 0)


def plan(width: int, height: int, options: TileOptions, remover_tileable: bool = True) -> Plan:
    """Every stage's windows for a processing size padded to whole tokens (``latent_shape``).

    ``remover_tileable``: False for a degradation remover whose output depends on the whole
    image; it then sees the whole image in one piece, at the cost of memory.
    """
    rows, cols = latent_shape(width, height)
    pixels_h, pixels_w = rows * TOKEN, cols * TOKEN
    denoise = denoise_grid(width, height, options)
    latent_h, latent_w = pixels_h // LATENT, pixels_w // LATENT
    if denoise.count == 1:
        return Plan(
            denoise,
            whole(pixels_h, pixels_w),
            whole(latent_h, latent_w),
            max(pixels_h, pixels_w) + 2 * COLOR_FIX_MARGIN,
            "global",
            options.blend,
        )
    clean = swinir_grid(pixels_h, pixels_w, options) if remover_tileable else whole(pixels_h, pixels_w)
    return Plan(
        denoise,
        clean,
        decode_grid(latent_h, latent_w, options),
        max(options.size, 4 * COLOR_FIX_MARGIN),
        options.semantic,
        options.blend,
    )


def core_boxes(height: int, width: int, window: int, margin: int) -> list[tuple[Box, Box]]:
    """Non-overlapping cores covering the image, each with its window (core + ``margin``, clipped)."""
    core = max(window - 2 * margin, TOKEN)
    pairs = []
    for top in range(0, height, core):
        for left in range(0, width, core):
            inner = Box(top, left, min(core, height - top), min(core, width - left))
            y0, x0 = max(0, top - margin), max(0, left - margin)
            y1, x1 = min(height, top + inner.height + margin), min(width, left + inner.width + margin)
            pairs.append((inner, Box(y0, x0, y1 - y0, x1 - x0)))
    return pairs


def describe_plan(width: int, height: int, options: TileOptions) -> str:
    """One line for ``--dry-run``: the processing size and the diffusion tile grid."""
    grid = denoise_grid(width, height, options)
    if grid.count == 1:
        return f"process {width}x{height} px in one tile"
    tile_w, tile_h = grid.tile_width * TOKEN, grid.tile_height * TOKEN
    return (
        f"process {width}x{height} px in {len(grid.cols)}x{len(grid.rows)} tiles of {tile_w}x{tile_h} px "
        f"(overlap >= {options.overlap} px, batch {options.batch})"
    )
