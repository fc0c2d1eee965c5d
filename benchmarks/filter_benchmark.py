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

PLAIN_SCRIPT = r'''
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
'''


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


def timed(command: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    return time.perf_counter() - started


def tool_command(photos: Path, manifest: Path, threads: int) -> list[str]:
    return [sys.executable, "-m", "lucidflux_cli", "data", "filter", str(photos), "-o", str(manifest),
            "--iqa-metric", "none", "--min-bytes", "0", "--threads", str(threads), "--overwrite", "-q"]


def kept_by_tool(manifest: Path) -> list[str]:
    lines = [json.loads(line) for line in manifest.read_text().splitlines()[1:]]
    return sorted(line["name"] for line in lines if line["kept"])


def compare(photos: Path, tmp: Path, count: int, repeats: int, threads: list[int]) -> list[tuple[str, float]]:
    script = tmp / "plain_filter.py"
    script.write_text(PLAIN_SCRIPT)
    times: dict[str, list[float]] = {"plain OpenCV script": []}
    for _ in range(repeats):  # alternately, so that a busy moment hits both
        times["plain OpenCV script"].append(timed([sys.executable, str(script), str(photos), str(tmp / "plain.json")]))
        for n in threads:
            times.setdefault(f"lucidflux data filter --threads {n}", []).append(
                timed(tool_command(photos, tmp / f"m{n}.jsonl", n)))
    plain = json.loads((tmp / "plain.json").read_text())
    for n in threads:
        assert kept_by_tool(tmp / f"m{n}.jsonl") == plain, "the tool and the script keep different files"
    print(f"both keep the same {len(plain)} of {count} photos", file=sys.stderr)
    return [(name, min(values), statistics.median(values)) for name, values in times.items()]


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
    images = [(np.kron(rng.random((height // 8, width // 8, 3)), np.ones((8, 8, 1))) * 255).astype(np.uint8)
              for _ in range(count)]
    rates = []
    for size in sorted({1, batch}):
        scorer = Scorer(name, device=device, batch_size=size, offline=True, pretrained=pretrained, options=options)
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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 0], help="the tool's --threads (0: cores)")
    parser.add_argument("--iqa-images", type=int, default=8)
    parser.add_argument("--iqa-batch", type=int, default=8)
    parser.add_argument("--iqa-device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        photos = tmp / "photos"
        photos.mkdir()
        make_photos(photos, args.photos)
        rows = compare(photos, tmp, args.photos, args.repeats, args.threads)
    plain_best = rows[0][1]
    print(f"| {args.photos} photos of 1.5 MP, whole processes | best s | median s | photos/s (best) | vs script |")
    print("| --- | --- | --- | --- | --- |")
    for name, best, median in rows:
        print(f"| {name} | {best:.2f} | {median:.2f} | {args.photos / best:.1f} | {plain_best / best:.2f}x |")
    print(f"\n{os.cpu_count()} CPU cores visible, best of {args.repeats} runs each.")
    if args.iqa_images:
        what, rates = iqa_rates(args.iqa_images, args.iqa_batch, args.iqa_device)
        print(f"\nQuality stage, {what}, {args.iqa_images} images of 1.5 MP:\n")
        print("| images per call | images/s |\n| --- | --- |")
        for size, rate in rates:
            print(f"| {size} | {rate:.2f} |")


if __name__ == "__main__":
    main()
