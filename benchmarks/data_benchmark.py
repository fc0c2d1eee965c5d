"""Throughput of ``lucidflux data filter`` (images/s) and ``data degrade`` (pairs/s).

Runs the real commands (subprocesses, as a user would) on synthetic 1600x1200 JPEG photos, with
1 and N worker processes, and prints a Markdown table for docs/data.md. The filter runs its
per-image rules only (``--iqa-metric none``: the quality metric's speed is in
benchmarks/metrics_benchmark.py). Times include process start and model-free imports.

    python benchmarks/data_benchmark.py --photos 12 --workers 1 2
    python benchmarks/data_benchmark.py --device cuda          # degrade's torch ops on the GPU
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", help="degrade's torch device")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        make_photos(photos, args.photos)
        for workers in args.workers:
            seconds = timed("filter", str(photos), "-o", f"{tmp}/m{workers}.jsonl", "--iqa-metric", "none",
                            "--min-bytes", "0", "--workers", str(workers))
            rows.append(("filter (rules, 1600x1200)", workers, "cpu", args.photos / seconds, "images/s"))
            seconds = timed("degrade", str(photos), "-o", f"{tmp}/p{workers}", "--passes", str(args.passes),
                            "--workers", str(workers), "--device", args.device)
            rows.append(("degrade (1024 GT)", workers, args.device, args.photos * args.passes / seconds, "pairs/s"))
    print("| command | workers | device | throughput |\n| --- | --- | --- | --- |")
    for name, workers, device, rate, unit in rows:
        print(f"| {name} | {workers} | {device} | {rate:.2f} {unit} |")
    print(f"\n{os.cpu_count()} CPU cores visible; {args.photos} photos, {args.passes} pass(es).")


if __name__ == "__main__":
    main()
