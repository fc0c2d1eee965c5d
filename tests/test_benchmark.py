"""The GPU benchmark suite runs end to end at tiny size on the CPU (no timing is asserted)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lucidflux_cli.model import sampling

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_benchmark.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    return module


def run_script(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    command = [
        sys.executable,
        str(SCRIPT),
        "--tiny",
        "--steps",
        "1",
        "--images",
        "1",
        "--compile-backend",
        "eager",
        "--cache-dir",
        str(tmp_path / "cache"),
        *arguments,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_suite_runs_every_case_and_records_what_cannot_run(tmp_path):
    out, lines, table = tmp_path / "bench.json", tmp_path / "bench.jsonl", tmp_path / "table.md"
    cases = "reference:64,eager:64,compiled:64,tiled:128,offload:64,fp8:64"
    done = run_script(
        tmp_path, "--cases", cases, "--json", str(out), "--jsonl", str(lines), "--markdown", str(table)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["architecture"] == "tiny" and report["steps"] == 1
    results = {r["case"]: r for r in report["results"]}
    assert list(results) == cases.split(",")
    assert results["reference:64"]["error"] == "CaseError: no --reference PATH given"
    assert results["fp8:64"]["error"].startswith("CaseError: --precision fp8 needs an NVIDIA GPU")
    for label in ("eager:64", "compiled:64", "tiled:128", "offload:64"):
        result = results[label]
        assert set(result["stages_s"]) == {"clean", "encode", "denoise", "decode", "colour fix"}, label
        assert result["seconds_per_image"] > 0 and result["first_image_s"] > 0
        assert result["out_of_memory_retries"] == 0
    assert (results["tiled:128"]["tiled"], results["compiled:64"]["tiled"]) == (True, False)
    # Each case was on disk as soon as it was measured, in order.
    assert [json.loads(line)["case"] for line in lines.read_text().splitlines()] == cases.split(",")
    rows = table.read_text().splitlines()
    assert rows[0].startswith("date: ") and "Command: `" in rows[1]
    assert rows[3].startswith("| case | size |") and len(rows) == 5 + len(cases.split(","))
    assert all(row.count("|") == rows[3].count("|") for row in rows[3:])


@pytest.mark.slow
def test_cases_must_follow_the_models_one_way_changes(tmp_path):
    done = run_script(tmp_path, "--cases", "fp8:64,eager:64")
    assert done.returncode != 0
    assert "case 'eager:64' after fp8:64" in done.stderr


@pytest.mark.slow
def test_a_spent_time_budget_skips_the_remaining_cases(tmp_path):
    out = tmp_path / "bench.json"
    done = run_script(tmp_path, "--cases", "eager:64,tiled:128", "--budget-s", "0", "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r.get("skipped") for r in json.loads(out.read_text())["results"]] == ["time budget spent"] * 2


def test_case_syntax():
    bench = load_benchmark()
    assert bench.parse_cases("eager:1024, offload:1024@24 ,fp8-offload:1024@16") == [
        bench.Case("eager", 1024),
        bench.Case("offload", 1024, 24.0),
        bench.Case("fp8-offload", 1024, 16.0),
    ]
    assert bench.Case("offload", 1024, 24.0).label == "offload:1024@24"
    with pytest.raises(SystemExit, match="bad case 'fast:1024'"):
        bench.parse_cases("fast:1024")


@torch.no_grad()
def test_velocity_drift_is_measured_on_the_kept_bf16_inputs():
    """The fp8 accuracy figure: velocities on the very latents and inputs of the bf16 run. Here
    the "quantization" is a bf16 round trip of the blocks' weights: a small, non-zero drift."""
    bench = load_benchmark()
    torch.manual_seed(0)
    components = bench.build_components(bench.TINY, torch.device("cpu"), torch.float32)
    args = argparse.Namespace(
        steps=4, images=1, tile_size=64, tile_batch=1, compile_backend="eager", cache_dir=None
    )
    suite = bench.Suite(args, components, torch.device("cpu"), torch.float32, None)
    suite.run(bench.Case("eager", 64))
    times = sampling.timesteps(4, 64, 64)
    assert [t for _, t, _, _ in suite.bf16_velocities[64]] == [times[0], times[2], times[3]]
    assert suite._fp8_drift(64)["velocity_rel_l2_vs_bf16"] == 0.0
    for name, parameter in components.transformer.named_parameters():
        if "transformer_blocks." in name and parameter.ndim == 2:
            parameter.copy_(parameter.to(torch.bfloat16).float())
    drift = suite._fp8_drift(64)
    assert 0.0 < drift["velocity_rel_l2_vs_bf16"] < 0.05
    assert len(drift["velocity_rel_l2_vs_bf16_steps"]) == 3
    assert suite._fp8_drift(128) == {"velocity_rel_l2_vs_bf16": None}


@pytest.mark.slow
def test_a_second_process_loads_the_compiled_blocks_from_the_tools_cache(tmp_path):
    """The cron-job promise: the inductor cache lands under --cache-dir (not torch's /tmp default,
    which importing diffusers selects), and the next process compiles nothing afresh."""
    counts = []
    for run in range(2):
        out = tmp_path / f"run{run}.json"
        env = {key: value for key, value in os.environ.items() if key != "TORCHINDUCTOR_CACHE_DIR"}
        command = [
            sys.executable,
            str(SCRIPT),
            "--tiny",
            "--cases",
            "compiled:64",
            "--steps",
            "1",
            "--images",
            "1",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--json",
            str(out),
        ]
        done = subprocess.run(
            command, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-2000:]
        counts.append(json.loads(out.read_text())["results"][0]["compile_cache"])
    assert any((tmp_path / "cache" / "torch-compile" / "fxgraph").iterdir())
    assert counts[0]["misses"] > 0
    assert counts[1] == {"hits": counts[0]["hits"] + counts[0]["misses"], "misses": 0}
