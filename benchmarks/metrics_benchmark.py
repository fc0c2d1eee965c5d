"""Images per second of each quality metric at 1024 px (not part of pytest).

    python benchmarks/metrics_benchmark.py                            # cheap + MUSIQ on the CPU
    python benchmarks/metrics_benchmark.py --metrics all --device cuda --count 16 --batch-size 8
    python benchmarks/metrics_benchmark.py --metrics niqe,musiq --size 512 --threads 2

A metric runs with its real weights when they are in the metrics cache (``lucidflux weights
download --metrics ...``); otherwise with random weights (``pretrained=False``) when pyiqa can
build it without downloading, which costs the same time; otherwise it is skipped and the files
it needs are named. Never downloads (offline). Prints a Markdown table (docs/eval.md quotes it).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT = "psnr-y,ssim,niqe,musiq,lpips,dists,clipiqa,clipiqa+,maniqa,nima,fid"


def synthetic(count: int, size: int, seed: int = 0):
    """Smooth gradients with grain (natural-ish statistics; NIQE and MUSIQ see texture)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    images = []
    for _ in range(count):
        base = np.stack([x * rng.random(), y * rng.random(), (x + y) / 2 * rng.random()], axis=2)
        images.append(np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1).astype(np.float32))
    return images


def weights_mode(name: str, cache_dir: str | None) -> str | None:
    """ "real", "random", or None (backbone files missing: cannot run without downloading)."""
    from lucidflux_cli.metrics import cache

    if not cache.missing([name], cache_dir):
        return "real"
    if not cache.missing([name], cache_dir, pretrained=False):
        return "random"
    return None


def bench(name: str, images, device: str, batch_size: int, cache_dir: str | None) -> dict:
    import torch

    from lucidflux_cli.metrics import Scorer, cache, registry

    mode = weights_mode(name, cache_dir)
    if mode is None:
        absent = cache.missing([name], cache_dir, pretrained=False)[name]
        return {"metric": name, "skipped": "needs " + ", ".join(f.path or f.repo for f in absent)}
    scorer = Scorer(
        name,
        device=device,
        batch_size=batch_size,
        cache_dir=cache_dir,
        offline=True,
        pretrained=mode == "real",
    )
    start = time.perf_counter()
    scorer.metric(name)
    build = time.perf_counter() - start
    info = registry.get(name)
    references = [i[::-1].copy() for i in images]

    def run(subset):
        if info.folder_level:
            return scorer.fid_features(subset)
        return scorer.score(subset, references[: len(subset)] if info.full_reference else None)

    run(images[:1])  # warm-up (cuDNN autotune, lazy buffers)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run(images)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    scorer.close()
    return {
        "metric": name,
        "weights": mode,
        "build": build,
        "per_image": seconds / len(images),
        "rate": len(images) / seconds,
        "peak_gib": peak,
    }


def table(rows: list[dict], device: str, size: int, batch: int) -> str:
    lines = [
        f"| metric | weights | {device} images/s | s/image | build s |"
        + (" peak GiB |" if device != "cpu" else ""),
        "|---|---|---:|---:|---:|" + ("---:|" if device != "cpu" else ""),
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(
                f"| {r['metric']} | skipped: {r['skipped']} | | | |" + (" |" if device != "cpu" else "")
            )
            continue
        peak = f" {r['peak_gib']:.2f} |" if r["peak_gib"] is not None else ""
        lines.append(
            f"| {r['metric']} | {r['weights']} | {r['rate']:.2f} | {r['per_image']:.2f} | {r['build']:.1f} |"
            + peak
        )
    return "\n".join(lines) + f"\n\n{size}x{size} px, batch {batch}.\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--metrics", default=DEFAULT, help=f"comma list or 'all' (default {DEFAULT})")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--count", type=int, default=4, help="images timed per metric (after one warm-up)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--cache-dir", default=os.environ.get("LUCIDFLUX_CACHE"))
    args = parser.parse_args()

    import torch

    from lucidflux_cli.metrics import METRICS, parse_metrics

    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    names = list(METRICS) if args.metrics == "all" else parse_metrics(args.metrics)
    names = [n for n in names if n != "qalign" or args.metrics != DEFAULT]
    images = synthetic(args.count, args.size)
    processor = platform.processor() or platform.machine()
    cpu = f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, {processor}"
    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else cpu
    print(f"# metrics benchmark on {device} ({where}), torch {torch.__version__}\n", flush=True)
    rows = []
    for name in names:
        row = bench(name, images, device, args.batch_size, args.cache_dir)
        rows.append(row)
        shown = row["skipped"] if "skipped" in row else f"{row['rate']:.2f} images/s"
        print(f"  {name}: {shown}", file=sys.stderr, flush=True)
    print(table(rows, device, args.size, args.batch_size))


if __name__ == "__main__":
    main()
