"""Draw the tile grid and blending weights the pipeline uses -> docs/images/tile-grid.png.

    python benchmarks/tiling_figure.py [--width 3000] [--height 2000] [--out docs/images/tile-grid.png]

Top: the diffusion tiles of a WIDTH x HEIGHT processing size with the default options, each
tile in its own colour, mixed by its blending weight (overlaps show the ramps); tile outlines
on top. Bottom: the normalised 1-D weights of each column of tiles along one row; they sum
to one at every position. Uses the project's own geometry (lucidflux_cli.model.tiling); no model.
"""

from __future__ import annotations

import argparse
import colorsys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lucidflux_cli.model import tiling
from lucidflux_cli.model.tiling import TileOptions

SCALE = 3  # pixels of the figure per latent position (8 px of the image)
PLOT_HEIGHT = 160
MARGIN = 12


def tile_colours(count: int) -> list[np.ndarray]:
    return [np.array(colorsys.hsv_to_rgb(i / count, 0.55, 0.95)) * 255 for i in range(count)]


def blended_canvas(grid: tiling.Grid, blend: str) -> np.ndarray:
    """Each tile's colour times its normalised weight, summed: a partition of unity made visible."""
    canvas = np.zeros((grid.height, grid.width, 3))
    colours = tile_colours(grid.count)
    for box, weight, colour in zip(grid.boxes(), grid.weights(blend), colours, strict=True):
        canvas[box.slices] += weight[..., None] * colour
    return canvas


def draw_profiles(draw: ImageDraw.ImageDraw, grid: tiling.Grid, blend: str, top: int, width: int) -> None:
    weights = tiling.axis_weights(grid.cols, grid.tile_width, grid.width, blend)
    colours = tile_colours(grid.count)[: len(grid.cols)]  # the first row's tile colours
    draw.line([(MARGIN, top + PLOT_HEIGHT), (MARGIN + width, top + PLOT_HEIGHT)], fill=(90, 90, 90))
    draw.line([(MARGIN, top), (MARGIN + width, top)], fill=(200, 200, 200))
    for start, weight, colour in zip(grid.cols, weights, colours, strict=True):
        xs = MARGIN + (start + np.arange(len(weight)) + 0.5) * SCALE
        ys = top + PLOT_HEIGHT - weight * PLOT_HEIGHT
        draw.line(
            list(zip(xs.tolist(), ys.tolist(), strict=True)),
            fill=tuple(int(c * 0.7) for c in colour),
            width=2,
        )
    draw.text((MARGIN, top - 11), "weight 1", fill=(60, 60, 60))
    draw.text(
        (MARGIN + 4, top + PLOT_HEIGHT + 2),
        "normalised weights of each tile column along a row (sum = 1)",
        fill=(60, 60, 60),
    )


def figure(width: int, height: int, options: TileOptions) -> Image.Image:
    grid = tiling.denoise_grid(width, height, options).scaled(2)  # latent positions (8 px)
    canvas = blended_canvas(grid, options.blend)
    picture = Image.fromarray(canvas.clip(0, 255).astype(np.uint8)).resize(
        (grid.width * SCALE, grid.height * SCALE), Image.NEAREST
    )
    out = Image.new(
        "RGB", (picture.width + 2 * MARGIN, picture.height + PLOT_HEIGHT + 4 * MARGIN + 24), "white"
    )
    out.paste(picture, (MARGIN, MARGIN + 12))
    draw = ImageDraw.Draw(out)
    draw.text(
        (MARGIN, 0),
        f"{width}x{height} px, {len(grid.cols)}x{len(grid.rows)} tiles: {options.describe()}",
        fill=(0, 0, 0),
    )
    for box in grid.boxes():
        x0, y0 = MARGIN + box.left * SCALE, MARGIN + 12 + box.top * SCALE
        draw.rectangle(
            [x0, y0, x0 + box.width * SCALE - 1, y0 + box.height * SCALE - 1], outline=(40, 40, 40)
        )
    draw_profiles(draw, grid, options.blend, picture.height + 3 * MARGIN + 12, picture.width)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=3000)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--tile-size", type=int, default=TileOptions.size)
    parser.add_argument("--tile-overlap", type=int, default=TileOptions.overlap)
    parser.add_argument("--out", type=Path, default=Path("docs/images/tile-grid.png"))
    args = parser.parse_args()
    options = TileOptions(size=args.tile_size, overlap=args.tile_overlap)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure(args.width, args.height, options).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
