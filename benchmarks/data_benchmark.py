"""Throughput of ``lucidflux data filter`` (images/s) and ``data degrade`` (pairs/s).

Runs the real commands (subprocesses, as a user would) on synthetic 1600x1200 JPEG photos, with
1 and N worker processes, and prints a Markdown table for docs/data.md. The filter runs its
per-image rules only (``--iqa-metric none``: the quality metric's speed is in
benchmarks/metrics_benchmark.py). Times include process start and model-free imports.

    python benchmarks/data_benchmark.py --photos 12 --workers 1 2
    python benchmarks/data_benchmark.py --device cuda          # degrade's torch ops on the GPU
    python benchmarks/data_benchmark.py --library-only --pairs 6  # before/after of the convolution layout

Before/after in one run: ``make_pair`` itself (no file I/O, one torch thread) timed with the
convolutions in NCHW, as up to 0.x, and in channels-last, as now; the bytes are checked equal.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).parents[1]


def make_photos(folder: Path, count: int, size: tuple[int, int] = (1600, 1200)) -> None:
    rng = np.random.default_rng(0)
    for index in range(count):
        blocks = np.kron(rng.random((size[1] // 8, size[0] // 8, 3)), np.ones((8, 8, 1))) * 255
        Image.fromarray(blocks.astype(np.uint8)).save(folder / f"photo{index:03d}.jpg", quality=90)


def timed(*args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lucidflux_cli", "data", *args, "-q"], check=True, env=env)
    return time.perf_counter() - started


def library_rates(pairs: int) -> list[tuple[str, float]]:
    """pairs/s of ``make_pair`` at 1024 px with the old (NCHW) and the new (channels-last) layout."""
    import torch

    sys.path.insert(0, str(ROOT))
    from lucidflux_cli.data import degrade, make_pair, preset, rng_for

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    image = (np.kron(rng.random((150, 200, 3)), np.ones((8, 8, 1))) * 255).astype(np.uint8)
    config, rows, made = preset("realesrgan"), [], {}
    for label, layout in (
        ("NCHW (before)", torch.contiguous_format),
        ("channels-last (now)", torch.channels_last),
    ):
        degrade.CONV_LAYOUT = layout
        started = time.perf_counter()
        made[label] = [
            make_pair(image, rng_for(seed, "bench.png", 0), config).lq.tobytes() for seed in range(pairs)
        ]
        rows.append((label, pairs / (time.perf_counter() - started)))
    degrade.CONV_LAYOUT = torch.channels_last
    if len(set(map(tuple, made.values()))) != 1:
        raise SystemExit("the two layouts gave different bytes")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", help="degrade's torch device")
    parser.add_argument("--pairs", type=int, default=6, help="pairs per layout in the before/after")
    parser.add_argument("--library-only", action="store_true", help="only the before/after of make_pair")
    args = parser.parse_args()
    print("| make_pair, 1024 GT, 1 thread | pairs/s |\n| --- | --- |")
    for label, rate in library_rates(args.pairs):
        print(f"| {label} | {rate:.2f} |")
    print("(same bytes: checked)\n")
    if args.library_only:
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        make_photos(photos, args.photos)
        for workers in args.workers:
            seconds = timed(
                "filter",
                str(photos),
                "-o",
                f"{tmp}/m{workers}.jsonl",
                "--iqa-metric",
                "none",
                "--min-bytes",
                "0",
                "--workers",
                str(workers),
            )
            rows.append(("filter (rules, 1600x1200)", workers, "cpu", args.photos / seconds, "images/s"))
            for level, label in ((6, "PNG level 6, as 0.x"), (1, "PNG level 1, now")):
                seconds = timed(
                    "degrade",
                    str(photos),
                    "-o",
                    f"{tmp}/p{workers}-{level}",
                    "--passes",
                    str(args.passes),
                    "--workers",
                    str(workers),
                    "--device",
                    args.device,
                    "--png-level",
                    str(level),
                )
                rows.append(
                    (
                        f"degrade (1024 GT, {label})",
                        workers,
                        args.device,
                        args.photos * args.passes / seconds,
                        "pairs/s",
                    )
                )
    print("| command | workers | device | throughput |\n| --- | --- | --- | --- |")
    for name, workers, device, rate, unit in rows:
        print(f"| {name} | {workers} | {device} | {rate:.2f} {unit} |")
    print(f"\n{os.cpu_count()} CPU cores visible; {args.photos} photos, {args.passes} pass(es).")


if __name__ == "__main__":
    main()
