"""Training steps/s and peak memory of ``lucidflux train``'s trainer on random weights.

The full-size architecture (12B backbone frozen, the condition module trained) with random
weights built on the device, synthetic pairs at ``--size`` px, so it runs without downloads;
``--tiny`` is the CPU rehearsal. Prints one JSON line per setup (full/LoRA, checkpointing):

    python benchmarks/train_benchmark.py --size 1024 --steps 5             # on a GPU
    python benchmarks/train_benchmark.py --tiny --size 64 --steps 2 --setups full   # CPU rehearsal
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from gpu_benchmark import build_components  # noqa: E402

from lucidflux_cli.model.config import LucidFluxConfig  # noqa: E402
from lucidflux_cli.model.pipeline import LucidFluxPipeline  # noqa: E402
from lucidflux_cli.training.cache import cached_pairs  # noqa: E402
from lucidflux_cli.training.loop import Trainer  # noqa: E402
from lucidflux_cli.training.options import LoraOptions, TrainOptions  # noqa: E402

SETUPS = {
    "full+ckpt": dict(gradient_checkpointing=True),
    "full": dict(),
    "lora16+ckpt": dict(gradient_checkpointing=True, lora=LoraOptions(rank=16)),
}


def write_pairs(folder: Path, size: int, count: int) -> Path:
    rng = np.random.default_rng(0)
    for side in ("hq", "lq"):
        (folder / side).mkdir(parents=True)
    for index in range(count):
        hq = Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8))
        hq.save(folder / "hq" / f"{index}.png")
        hq.resize((size // 4, size // 4), Image.BICUBIC).save(folder / "lq" / f"{index}.png")
    return folder


def measure(name: str, arch: LucidFluxConfig, device: torch.device, size: int, steps: int) -> dict:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    pipeline = LucidFluxPipeline(build_components(arch, device, dtype), device, dtype)
    with tempfile.TemporaryDirectory() as tmp:
        data = cached_pairs(pipeline, write_pairs(Path(tmp) / "pairs", size, 2), Path(tmp) / "cache")
        trainer = Trainer(pipeline, data, TrainOptions(**SETUPS[name]))
        trainer.train_step()  # warm-up: allocations, autotuning
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "setup": name,
        "size": size,
        "device": str(device),
        "steps_per_second": round(steps / seconds, 4),
        "peak_gib": round(peak, 2) if peak else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="LucidFluxConfig.tiny() (CPU rehearsal)")
    parser.add_argument("--setups", default=",".join(SETUPS), help=f"comma list of {', '.join(SETUPS)}")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    arch = LucidFluxConfig.tiny() if args.tiny else LucidFluxConfig.full()
    for name in args.setups.split(","):
        try:
            print(json.dumps(measure(name, arch, device, args.size, args.steps)), flush=True)
        except torch.OutOfMemoryError as error:
            print(
                json.dumps({"setup": name, "size": args.size, "error": f"out of memory: {error}"[:300]}),
                flush=True,
            )
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
