"""``lucidflux data filter`` against a plain OpenCV script doing the same stages, and the IQA stage.

Both run as whole processes (start-up included) over the same generated photos (1.5 MP JPEGs:
textured, blurred, flat, one near-duplicate pair), alternately, ``--repeats`` times each; the
best time of each is compared, and the two must keep the same files. The plain script is what one
would write by hand: cv2.imread, cvtColor, Laplacian and Sobel in float64, numpy per-patch
variances, imagehash's pHash, pairwise duplicates. Then the quality metric's images/s through the
function the filter calls (``score_each``), one image per call and ``--batch-size`` per call:
CLIP-IQA when its weights are cached, else NIQE with synthetic statistics (no download, same cost).

    python benchmarks/filter_benchmark.py --photos 40 --repeats 3
    python benchmarks/filter_benchmark.py --iqa-device cuda --iqa-batch 16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
SIZE = (1500, 1000)  # 1.5 MP

PLAIN_SCRIPT = r"""
import json, sys
from pathlib import Path
import cv2, imagehash, numpy as np
from PIL import Image

folder, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = []
for path in sorted(folder.glob("*.jpg")):
    bgr = cv2.imread(str(path))
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    row = {"name": path.name, "w": gray.shape[1], "h": gray.shape[0], "bytes": path.stat().st_size}
    variance = cv2.Laplacian(gray, cv2.CV_64F).var()
    magnitude = cv2.magnitude(cv2.Sobel(gray, cv2.CV_64F, 1, 0), cv2.Sobel(gray, cv2.CV_64F, 0, 1))
    p = 240
    r, c = gray.shape[0] // p, gray.shape[1] // p
    flat = (magnitude[:r * p, :c * p].reshape(r, p, c, p).var(axis=(1, 3)) < 800).mean() if r and c else 0.0
    row["ok"] = min(gray.shape) >= 384 and 150 <= variance <= 8000 and flat <= 0.5
    row["hash"] = imagehash.phash(Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    rows.append(row)
kept = []
for row in sorted((r for r in rows if r["ok"]), key=lambda r: (-r["w"] * r["h"], -r["bytes"], r["name"])):
    if all(row["hash"] - other["hash"] > 4 for other in kept):
        kept.append(row)
out.write_text(json.dumps(sorted(r["name"] for r in kept)))
"""


def make_photos(folder: Path, count: int) -> None:
    """Blocks of random colour (kept), with every 5th blurred, every 7th mostly flat, and photo 1 a
    near-copy of photo 0 (dropped as a duplicate)."""
    rng = np.random.default_rng(0)
    width, height = SIZE
    for index in range(count):
        blocks = np.kron(rng.random((height // 8, width // 8, 3)), np.ones((8, 8, 1))) * 255
        image = Image.fromarray(blocks.astype(np.uint8))
        if index == 1:
            image = Image.open(folder / "photo000.jpg").convert("RGB")
        elif index % 5 == 4:
            image = image.filter(ImageFilter.GaussianBlur(6))
        elif index % 7 == 6:
            flat = np.full((height, width, 3), 120, np.uint8)
            flat[:240, :480] = blocks[:240, :480]
            image = Image.fromarray(flat)
        image.save(folder / f"photo{index:03d}.jpg", quality=90 if index != 1 else 85)


def timed(command: list[str], pycache: Path) -> float:
    # as installed: bytecode cached (this machine may set PYTHONDONTWRITEBYTECODE), kept out of the tree
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=str(pycache))
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    return time.perf_counter() - started


def tool_command(photos: Path, manifest: Path, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lucidflux_cli",
        "data",
        "filter",
        str(photos),
        "-o",
        str(manifest),
        "--iqa-metric",
        "none",
        "--min-bytes",
        "0",
        "--threads",
        str(threads),
        "--overwrite",
        "-q",
    ]


def kept_by_tool(manifest: Path) -> list[str]:
    lines = [json.loads(line) for line in manifest.read_text().splitlines()[1:]]
    return sorted(line["name"] for line in lines if line["kept"])


def compare(photos: Path, tmp: Path, repeats: int, threads: list[int]) -> dict[str, dict[int, list[float]]]:
    """Seconds of each command on all photos and on one (start-up), alternately, so that a busy
    moment of the machine hits all of them."""
    script = tmp / "plain_filter.py"
    script.write_text(PLAIN_SCRIPT)
    one = tmp / "one"
    one.mkdir()
    first = sorted(photos.glob("*.jpg"))[0]
    (one / first.name).write_bytes(first.read_bytes())
    commands = {
        "plain OpenCV script": lambda folder, out: [sys.executable, str(script), str(folder), str(out)]
    }
    for n in threads:
        commands[f"lucidflux data filter --threads {n}"] = lambda folder, out, n=n: tool_command(
            folder, out, n
        )
    count = len(list(photos.glob("*.jpg")))
    times: dict[str, dict[int, list[float]]] = {name: {count: [], 1: []} for name in commands}
    for index in range(repeats + 1):  # the first round warms the bytecode and file caches
        for position, (name, command) in enumerate(commands.items()):
            for folder, size in ((photos, count), (one, 1)):
                seconds = timed(command(folder, tmp / f"out{position}-{size}"), tmp / "pycache")
                if index:
                    times[name][size].append(seconds)
    plain = json.loads((tmp / f"out0-{count}").read_text())
    for position in range(1, len(commands)):
        assert kept_by_tool(tmp / f"out{position}-{count}") == plain, (
            "the tool and the script keep different files"
        )
    print(f"both keep the same {len(plain)} of {count} photos", file=sys.stderr)
    return times


def speed_table(times: dict[str, dict[int, list[float]]], photos: int) -> str:
    """Best times; per photo = (all - one) / (photos - 1), so start-up is apart; core-days for 2.3 M."""
    plain = min(next(iter(times.values()))[photos])
    lines = [
        f"| {photos} photos of 1.5 MP, whole processes | best s (median) | photos/s | vs script | "
        "start-up s | ms/photo | core-days for 2.3 M |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in times.items():
        best, one = min(runs[photos]), min(runs[1])
        per_photo = max(best - one, 0.0) / (photos - 1)
        days = (
            2.3e6 * per_photo / 86400 * (1 if "--threads 1" in name or "script" in name else os.cpu_count())
        )
        lines.append(
            f"| {name} | {best:.2f} ({statistics.median(runs[photos]):.2f}) | {photos / best:.1f} | "
            f"{plain / best:.2f}x | {one - per_photo:.2f} | {per_photo * 1000:.0f} | {days:.2f} |"
        )
    return "\n".join(lines)


def iqa_rates(count: int, batch: int, device: str) -> tuple[str, list[tuple[int, float]]]:
    sys.path.insert(0, str(ROOT))
    from lucidflux_cli.metrics import cache
    from lucidflux_cli.metrics.scoring import Scorer, score_each, untrained_options

    name, options, pretrained = "clipiqa", {}, True
    if cache.missing(["clipiqa"], None):
        workdir = Path(tempfile.mkdtemp(prefix="lucidflux-iqa-"))
        name, options, pretrained = "niqe", {"niqe": untrained_options("niqe", workdir)}, False
    rng = np.random.default_rng(1)
    width, height = SIZE
    images = [
        (np.kron(rng.random((height // 8, width // 8, 3)), np.ones((8, 8, 1))) * 255).astype(np.uint8)
        for _ in range(count)
    ]
    rates = []
    for size in sorted({1, batch}):
        scorer = Scorer(
            name, device=device, batch_size=size, offline=True, pretrained=pretrained, options=options
        )
        score_each(scorer, images[:1], ["warm-up"])
        started = time.perf_counter()
        values = score_each(scorer, images, [str(i) for i in range(count)])
        if scorer.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        rates.append((size, count / (time.perf_counter() - started)))
        assert all(isinstance(v, float) for v in values), values
    return f"{name} ({'real' if pretrained else 'synthetic'} weights) on {scorer.device}", rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1, 0], help="the tool's --threads (0: cores)"
    )
    parser.add_argument("--iqa-images", type=int, default=8)
    parser.add_argument("--iqa-batch", type=int, default=8)
    parser.add_argument("--iqa-device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        photos = tmp / "photos"
        photos.mkdir()
        make_photos(photos, args.photos)
        times = compare(photos, tmp, args.repeats, args.threads)
    print(speed_table(times, args.photos))
    print(
        f"\n{os.cpu_count()} CPU cores visible, best of {args.repeats} runs each (median in brackets); "
        "core-days: the per-photo time on one core (all cores for --threads 0)."
    )
    if args.iqa_images:
        what, rates = iqa_rates(args.iqa_images, args.iqa_batch, args.iqa_device)
        print(f"\nQuality stage, {what}, {args.iqa_images} images of 1.5 MP:\n")
        print("| images per call | images/s |\n| --- | --- |")
        for size, rate in rates:
            print(f"| {size} | {rate:.2f} |")


if __name__ == "__main__":
    main()
