"""Peak memory and time of tiled restoration with the tiny random model (not part of pytest).

    python benchmarks/tiling_memory.py                       # 1024x1024, 4096x3072, 4096x4096 on CPU
    python benchmarks/tiling_memory.py --sizes 1024x1024 2048x2048 --device cuda --steps 2

Each size runs in its own subprocess (a fresh process, so the peak is that run's): it loads
the tiny release, restores a synthetic photo of that size with the given tile options and
reports seconds, the process's peak resident memory (VmHWM) and, on CUDA,
``torch.cuda.max_memory_allocated``. The table goes to stdout and, with ``--write``, to
``docs/tiling-benchmark.md``. The size given is the processing size (``--min-side`` is a
CLI policy and plays no part here).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def vm_status(field: str) -> float:
    """A /proc/self/status field (VmRSS, VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def synthetic_photo(width: int, height: int):
    """A smooth gradient with grain, built in bands so the input itself stays 3 bytes per pixel."""
    import numpy as np
    from PIL import Image

    pixels = np.empty((height, width, 3), dtype=np.uint8)
    x = np.arange(width) / width
    rng = np.random.default_rng(0)
    for top in range(0, height, 256):
        y = (np.arange(top, min(top + 256, height)) / height)[:, None]
        band = np.stack([x + 0 * y, y + 0 * x, 1 - x * y], axis=-1) * 200 + rng.normal(
            0, 12, (len(y), width, 3)
        )
        pixels[top : top + len(y)] = np.clip(band, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def child(args: argparse.Namespace) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_weights import write_tiny_release

    from lucidflux_cli.model import tiling
    from lucidflux_cli.model.components import WeightPaths, load_components
    from lucidflux_cli.model.pipeline import LucidFluxPipeline, RestoreSettings

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    release = write_tiny_release(Path(args.release), seed=0)
    paths = WeightPaths(
        flux=release.flux,
        ae=release.ae,
        lucidflux=release.lucidflux,
        swinir=release.swinir,
        siglip=release.siglip,
        prompt_embeddings=release.prompt_embeddings,
    )
    pipeline = LucidFluxPipeline(load_components(paths, device, torch.float32), device, torch.float32)
    width, height = args.size
    photo = synthetic_photo(width, height)
    options = tiling.TileOptions(size=args.tile_size, overlap=args.tile_overlap, batch=args.tile_batch)
    loaded_rss = vm_status("VmRSS")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    out = pipeline(photo, size=(width, height), settings=RestoreSettings(steps=args.steps, tiles=options))
    seconds = time.perf_counter() - started
    assert out.shape == (height, width, 3)
    grid = tiling.denoise_grid(width, height, options)
    print(
        json.dumps(
            {
                "size": f"{width}x{height}",
                "tiles": f"{len(grid.cols)}x{len(grid.rows)}",
                "seconds": round(seconds, 1),
                "rss_after_load_mib": round(loaded_rss),
                "peak_rss_mib": round(vm_status("VmHWM")),
                "cuda_peak_mib": round(torch.cuda.max_memory_allocated(device) / MIB)
                if device.type == "cuda"
                else None,
            }
        ),
        flush=True,
    )


def run_size(size: str, args: argparse.Namespace, release: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--release",
        release,
        "--sizes",
        size,
        "--steps",
        str(args.steps),
        "--tile-size",
        str(args.tile_size),
        "--tile-batch",
        str(args.tile_batch),
        "--device",
        args.device,
        "--threads",
        str(args.threads),
    ]
    if args.tile_overlap is not None:
        command += ["--tile-overlap", str(args.tile_overlap)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), **_inherited_env()},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{size} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _inherited_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def table(rows: list[dict], args: argparse.Namespace) -> str:
    from lucidflux_cli.model import tiling

    tile_options = tiling.TileOptions(size=args.tile_size, overlap=args.tile_overlap, batch=args.tile_batch)
    head = (
        f"Tiny random model, {args.device}, {args.threads} threads, {args.steps} step(s), "
        f"{tile_options.describe()}; "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}.\n\n"
    )
    lines = [
        "| processing size | tiles | seconds | RSS after loading (MiB) | peak RSS (MiB) | CUDA peak (MiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        cuda = row["cuda_peak_mib"] if row["cuda_peak_mib"] is not None else "-"
        lines.append(
            f"| {row['size']} | {row['tiles']} | {row['seconds']} | {row['rss_after_load_mib']} | "
            f"{row['peak_rss_mib']} | {cuda} |"
        )
    base = rows[0]["peak_rss_mib"]
    ratios = ", ".join(f"{row['size']}: {row['peak_rss_mib'] / base:.2f}" for row in rows[1:])
    return head + "\n".join(lines) + f"\n\nPeak RSS relative to {rows[0]['size']}: {ratios}.\n"


def parse_size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1024x1024", "4096x3072", "4096x4096"])
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--tile-size", type=int, default=1024)
    parser.add_argument("--tile-overlap", type=int, help="default: a quarter of the tile")
    parser.add_argument("--tile-batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path, nargs="?", const=ROOT / "docs" / "tiling-benchmark.md")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--release", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.size = parse_size(args.sizes[0])
        child(args)
        return
    with tempfile.TemporaryDirectory() as release:
        rows = []
        for size in args.sizes:
            rows.append(run_size(size, args, release))
            print(json.dumps(rows[-1]), flush=True)
    report = table(rows, args)
    print(report)
    if args.write:
        args.write.write_text("# Tiling benchmark (generated by benchmarks/tiling_memory.py)\n\n" + report)


if __name__ == "__main__":
    main()
