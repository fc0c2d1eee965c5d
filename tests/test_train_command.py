"""``lucidflux train`` end to end at tiny size: pairs on disk -> steps -> checkpoints -> restore."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from lucidflux_cli.commands.main import main
from tests.conftest import weight_args

ROOT = Path(__file__).parents[1]
SIZE = 32
FAST = ["--device", "cpu", "--learning-rate", "1e-3", "--seed", "5"]


def picture(seed: int, size: int = SIZE) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    for side in ("hq", "lq"):
        (root / side).mkdir()
    for index in range(2):
        hq = picture(index)
        hq.save(root / "hq" / f"p{index}.png")
        hq.resize((SIZE // 4, SIZE // 4), Image.BICUBIC).save(root / "lq" / f"p{index}.png")
    return root


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def train_subprocess(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "lucidflux_cli", "train", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_train_writes_released_checkpoints_that_restore_loads(pairs, tiny_release, tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = run(
        "train",
        "--pairs",
        str(pairs),
        "-o",
        str(out),
        "--steps",
        "2",
        "--save-every",
        "1",
        *FAST,
        *weight_args(tiny_release),
        "--json",
        "--report",
        str(tmp_path / "r.json"),
    )
    assert code == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2]
    assert all(np.isfinite(e["loss"]) for e in events if e["event"] == "step")
    summary = events[-1]
    assert summary["event"] == "summary" and summary["exit_code"] == 0 and summary["steps"] == 2
    for name in ("step-1.pth", "step-2.pth", "step-2.safetensors", "step-2.state.pt", "run-config.json"):
        assert (out / name).is_file(), name
    assert json.loads((tmp_path / "r.json").read_text())["state"] == "finished"
    photos = tmp_path / "photos"
    photos.mkdir()
    picture(9, 48).save(photos / "a.png")
    for weights in ("step-2.pth", "step-2.safetensors"):
        args = [*weight_args(tiny_release)]
        args[args.index("--lucidflux") + 1] = str(out / weights)
        code, _, stderr = run(
            "restore",
            str(photos),
            "-o",
            str(tmp_path / weights),
            "--steps",
            "1",
            "--min-side",
            "0",
            "--device",
            "cpu",
            *args,
        )
        assert code == 0, stderr
        assert (tmp_path / weights / "a.png").is_file()


@pytest.fixture(scope="module")
def tar_pairs(pairs, tmp_path_factory) -> Path:
    """The same pairs as one WebDataset tar shard (``KEY.hq.png``, ``KEY.lq.png``)."""
    from lucidflux_cli.imageio.shards import write_tar

    root = tmp_path_factory.mktemp("tars")
    write_tar(
        root / "pairs-000000.tar",
        [
            (f"p{i}.{part}.png", (pairs / part / f"p{i}.png").read_bytes())
            for i in range(2)
            for part in ("hq", "lq")
        ],
    )
    return root


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["folders", "tars"])
def test_a_terminated_run_saves_and_the_same_command_resumes_to_the_same_weights(
    layout, pairs, tar_pairs, tiny_release, tmp_path
):
    source = pairs if layout == "folders" else tar_pairs
    args = [
        "--pairs",
        str(source),
        "--steps",
        "4",
        "--save-every",
        "0",
        *FAST,
        *weight_args(tiny_release),
        "--json",
    ]
    straight = train_subprocess(*args, "-o", str(tmp_path / "straight"))
    assert straight.wait(timeout=600) == 0, straight.stderr.read()
    out = tmp_path / "stopped"
    process = train_subprocess(*args, "-o", str(out))
    for line in process.stdout:  # the first step is done: stop the run there
        if '"event": "step"' in line:
            process.send_signal(signal.SIGTERM)
            break
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 130, stderr
    saved = sorted(p.name for p in out.glob("step-*.state.pt"))
    assert saved and "run the same command again to resume" in stderr
    again = train_subprocess(*args, "-o", str(out))
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    assert "resumed from" in stderr
    assert (out / "step-4.safetensors").read_bytes() == (
        tmp_path / "straight" / "step-4.safetensors"
    ).read_bytes()


def test_validation_writes_a_page_with_pictures_and_a_plot(pairs, tiny_release, tmp_path):
    held_out = tmp_path / "held-out"
    held_out.mkdir()
    picture(7, 16).save(held_out / "v.png")
    out = tmp_path / "run"
    code, _, stderr = run(
        "train",
        "--pairs",
        str(pairs),
        "-o",
        str(out),
        "--steps",
        "2",
        *FAST,
        *weight_args(tiny_release),
        "--validation",
        str(held_out),
        "--validate-every",
        "1",
        "--validation-steps",
        "1",
        "--validation-metrics",
        "none",
    )
    assert code == 0, stderr
    page = (out / "validation" / "index.md").read_text()
    assert "![](lq/v.png)" in page and "![](step-2/v.png)" in page and "plot.svg" in page
    assert (out / "validation" / "step-1" / "v.png").is_file()
    assert "<polyline" in (out / "validation" / "plot.svg").read_text()
    html = (out / "review" / "index.html").read_text()  # the review page: a column per validation step
    assert '"columns":["LQ","step 1","step 2"]' in html and "../validation/step-2/v.png" in html


def test_bad_pairs_fail_in_one_line_before_any_model_loads(tmp_path, tiny_release):
    bad = tmp_path / "bad"
    (bad / "hq").mkdir(parents=True)
    (bad / "lq").mkdir()
    picture(1).save(bad / "hq" / "only-hq.png")
    code, _, stderr = run(
        "train", "--pairs", str(bad), "-o", str(tmp_path / "run"), *FAST, *weight_args(tiny_release)
    )
    assert code == 1 and len([line for line in stderr.splitlines() if "only-hq.png" in line]) == 1
    assert not (tmp_path / "run" / "cache").exists()  # refused before any model was loaded
    assert (
        run("train", "--pairs", str(bad), "-o", str(tmp_path / "r"), "--crop", "20")[0] == 2
    )  # not a multiple of 16


@pytest.mark.slow
def test_two_processes_under_torchrun_train_as_one_with_twice_the_batch(pairs, tiny_release, tmp_path):
    """accelerate's DDP (gloo on the CPU): 2 processes x 1 pair per step = 1 process x 2 pairs."""
    import socket

    import torch

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    common = ["train", "--pairs", str(pairs), "--steps", "2", *FAST, *weight_args(tiny_release), "-q"]
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(port),
        "-m",
        "lucidflux_cli",
    ]
    both = subprocess.run(
        [*launcher, *common, "-o", str(tmp_path / "ddp")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert both.returncode == 0, both.stderr[-3000:]
    single = [sys.executable, "-m", "lucidflux_cli", *common, "--batch-size", "2"]
    one = subprocess.run(
        [*single, "-o", str(tmp_path / "one")], env=env, capture_output=True, text=True, timeout=600
    )
    assert one.returncode == 0, one.stderr[-3000:]
    other = subprocess.run(
        [*single, "-o", str(tmp_path / "other"), "--seed", "6"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )  # other pairs, times and noise: a real difference
    assert other.returncode == 0, other.stderr[-3000:]

    def trained(run: str) -> dict:
        parts = torch.load(tmp_path / run / "step-2.state.pt", weights_only=True)["trainable"]
        return {f"{part}.{key}": value for part, state in parts.items() for key, value in state.items()}

    def distance(a: dict, b: dict) -> float:
        return sum((a[k] - b[k]).abs().sum().item() for k in a) / sum(v.numel() for v in a.values())

    ddp, one_process, reseeded = trained("ddp"), trained("one"), trained("other")
    assert ddp.keys() == one_process.keys() and len(ddp) > 100
    # the same update up to float summation order (gradients all-reduced vs summed in one batch),
    # which Adam's normalisation amplifies on near-zero gradients: tiny next to another seed's run
    assert distance(ddp, one_process) < 0.02 * distance(one_process, reseeded)


def test_the_seed_decides_the_draws(pairs, tiny_release, tmp_path):
    losses = {}
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        code, stdout, stderr = run(
            "train",
            "--pairs",
            str(pairs),
            "-o",
            str(tmp_path / name),
            "--steps",
            "1",
            *FAST,
            "--seed",
            seed,
            *weight_args(tiny_release),
            "--json",
        )
        assert code == 0, stderr
        losses[name] = json.loads(stdout.splitlines()[0])["loss"]
    assert losses["a"] == losses["b"] != losses["c"]


def _validation_request(tmp_path: Path) -> SimpleNamespace:
    held_out = tmp_path / "held-out"
    held_out.mkdir()
    picture(7, 16).save(held_out / "v.png")
    return SimpleNamespace(
        validation=held_out,
        out_dir=tmp_path / "run",
        validation_metrics="none",
        validation_steps=1,
        cache_dir=None,
        offline=True,
    )


def test_validation_runs_in_the_training_precision(tiny_paths, tmp_path):
    """bf16 frozen side + float32 trainable parts (every CUDA run): outside the training autocast the
    two meet in one matmul and fail; in it (CPU autocast has bf16) the page is written."""
    from lucidflux_cli.finetune.validation import Validation
    from lucidflux_cli.model.components import load_components
    from lucidflux_cli.model.pipeline import LucidFluxPipeline
    from lucidflux_cli.training.trainable import prepare_trainable

    cpu = torch.device("cpu")
    pipeline = LucidFluxPipeline(load_components(tiny_paths, cpu, torch.bfloat16), cpu, torch.bfloat16)
    prepare_trainable(pipeline.c)  # float32 master weights, as the trainer keeps them
    request = _validation_request(tmp_path)
    assert "same dtype" in Validation(request, pipeline).run(1, [(1, 0.5)])

    def autocast():  # what Accelerator(mixed_precision="bf16").autocast() enters (not built here: its
        return torch.autocast("cpu", dtype=torch.bfloat16)  # state is process-wide)

    assert Validation(request, pipeline, autocast).run(2, [(1, 0.5), (2, 0.4)]) is None
    assert "![](step-2/v.png)" in (request.out_dir / "validation" / "index.md").read_text()


def test_a_failed_validation_is_an_error_line_and_in_the_report(pairs, tiny_release, tmp_path, monkeypatch):
    from lucidflux_cli.model.pipeline import LucidFluxPipeline

    def broken(self, *args, **kwargs):
        raise RuntimeError("the validation broke")

    monkeypatch.setattr(LucidFluxPipeline, "__call__", broken)
    request = _validation_request(tmp_path)
    report = tmp_path / "r.json"
    code, stdout, stderr = run(
        "train",
        "--pairs",
        str(pairs),
        "-o",
        str(request.out_dir),
        "--steps",
        "1",
        *FAST,
        *weight_args(tiny_release),
        "--validation",
        str(request.validation),
        "--validate-every",
        "1",
        "--validation-steps",
        "1",
        "--validation-metrics",
        "none",
        "--json",
        "--report",
        str(report),
    )
    assert code == 0, stderr  # the run goes on
    assert [
        line for line in stderr.splitlines() if "error" in line.lower() and "the validation broke" in line
    ]
    failed = "validation at step 1 failed: RuntimeError: the validation broke"
    assert json.loads(report.read_text())["validation_errors"] == [failed]
    events = [json.loads(line) for line in stdout.splitlines()]
    assert {"event": "validation", "step": 1, "error": failed} in events


@pytest.mark.slow
def test_training_on_tar_shards_equals_training_on_the_same_pairs_in_folders(
    pairs, tar_pairs, tiny_release, tmp_path
):
    losses = {}
    for name, source in (("tars", tar_pairs), ("folders", pairs)):
        code, stdout, stderr = run(
            "train",
            "--pairs",
            str(source),
            "-o",
            str(tmp_path / name),
            "--steps",
            "2",
            *FAST,
            *weight_args(tiny_release),
            "--json",
        )
        assert code == 0, stderr
        losses[name] = [json.loads(line)["loss"] for line in stdout.splitlines() if '"event": "step"' in line]
    assert len(losses["tars"]) == 2 and losses["tars"] == losses["folders"]
