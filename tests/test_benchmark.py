"""The GPU benchmark script runs end to end at tiny size on the CPU (no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_tiny_smoke_run(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_benchmark.py"), "--tiny", "--sizes", "64,128",
               "--steps", "1", "--images", "1", "--json", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["architecture"] == "tiny" and report["compiled"] is False
    untiled, tiled = report["results"]
    assert (untiled["size"], untiled["tiled"], tiled["size"], tiled["tiled"]) == (64, False, 128, True)
    for result in report["results"]:
        assert set(result["stages_s"]) == {"clean", "encode", "denoise", "decode", "colour fix"}
        assert result["seconds_per_image"] > 0 and result["first_image_s"] > 0
