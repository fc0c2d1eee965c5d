"""--devices workers and torchrun ranks: same bytes as a single run, retries, resume (CPU, tiny weights)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from conftest import weight_args
from make_images import rgb_pattern
from PIL import Image

from lucidflux_cli import atomic, devices
from lucidflux_cli.commands.main import main
from lucidflux_cli.devices import parse_devices
from lucidflux_cli.imageio.discovery import InputFile
from lucidflux_cli.model import sharding
from lucidflux_cli.runner import ranks as distributed
from lucidflux_cli.runner import workers as parallel
from lucidflux_cli.runner.control import OutputLocked, output_lock
from lucidflux_cli.runner.results import FileResult

FAST = ["--steps", "2", "--min-side", "0"]
NAMES = [f"{index}.png" for index in range(5)]  # odd: the ranks get unequal shares


def lucidflux(
    *args: str,
    env: dict[str, str] | None = None,
    launcher: list[str] | None = None,
    program: list[str] | None = None,
):
    command = [sys.executable, *(launcher or []), *(program or ["-m", "lucidflux_cli"]), "restore", *args]
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), **(env or {})}
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)


def torchrun() -> list[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return [
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(port),
    ]


def summary(process) -> dict:
    return json.loads(process.stdout.splitlines()[-1])


def report_files(path: Path) -> dict[str, dict]:
    return {Path(entry["source"]).name: entry for entry in json.loads(path.read_text())["files"]}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for index, name in enumerate(NAMES):
        Image.fromarray(rgb_pattern(48, 32, seed=index)).save(folder / name)
    return folder


@pytest.fixture(scope="module")
def single(photos, tiny_release, tmp_path_factory) -> dict[str, bytes]:
    """The reference: one process, one device."""
    out = tmp_path_factory.mktemp("single")
    process = lucidflux(str(photos), "-o", str(out), *FAST, "--device", "cpu", *weight_args(tiny_release))
    assert process.returncode == 0, process.stderr
    return {name: (out / name).read_bytes() for name in NAMES}


def assert_same_bytes(out: Path, single: dict[str, bytes]) -> None:
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == NAMES
    for name in NAMES:
        assert (out / name).read_bytes() == single[name], name


# ------------------------------------------------------------------------------------ pure parts


@pytest.mark.parametrize("rank", ["0", "1"])
def test_dry_run_under_torchrun_prints_the_plan_once(photos, tmp_path, rank):
    env = {"WORLD_SIZE": "2", "RANK": rank, "LOCAL_RANK": rank}
    result = CliRunner().invoke(
        main, ["restore", str(photos), "-o", str(tmp_path / "out"), "--dry-run"], env=env
    )
    assert result.exit_code == 0, result.output
    planned = [line for line in result.stdout.splitlines() if line.startswith("restore ")]
    assert len(planned) == (len(NAMES) if rank == "0" else 0)


def test_parse_devices():
    assert parse_devices("cpu,cpu", cuda_count=0) == ["cpu", "cpu"]
    assert parse_devices(" cuda:1, cuda:0 ", cuda_count=2) == ["cuda:1", "cuda:0"]
    assert parse_devices("all", cuda_count=3) == ["cuda:0", "cuda:1", "cuda:2"]
    for bad, message in [
        ("all", "no CUDA device"),
        ("cpu,,cpu", "comma-separated"),
        ("", "comma-separated"),
        ("cuda", "name the GPU"),
        ("cuda:2", "does not exist"),
        ("gpu0", "not a device"),
        ("meta", "only cpu and cuda"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_devices(bad, cuda_count=0 if bad == "all" else 2)


def test_devices_usage_errors_exit_2_with_one_line(tmp_path):
    def usage(*args: str) -> str:
        result = CliRunner().invoke(main, ["restore", str(tmp_path), "-o", str(tmp_path / "o"), *args])
        assert result.exit_code == 2, result.output
        return result.output.strip().splitlines()[-1]

    assert "not a device" in usage("--devices", "cpu,tpu7")
    assert "comma-separated" in usage("--devices", "cpu,,cpu")
    assert "needs --devices" in usage("--shard-model")
    assert "GPUs only" in usage("--shard-model", "--devices", "cpu,cpu")
    assert "choose one" in usage("--shard-model", "--devices", "cuda:0,cuda:1", "--offload", "model")
    if not __import__("torch").cuda.is_available():
        assert "no CUDA device" in usage("--devices", "all")


def test_round_robin_share_and_rank_device():
    shares = [list(distributed.share(5, rank, 2)) for rank in range(2)]
    assert shares == [[0, 2, 4], [1, 3]]
    assert sorted(sum(shares, [])) == list(range(5))
    assert devices.rank_device("auto", 3, cuda_available=True) == "cuda:3"
    assert devices.rank_device("auto", 3, cuda_available=False) == "cpu"
    assert devices.rank_device("cpu", 1, cuda_available=True) == "cpu"


def test_world_is_read_from_the_launcher_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.world() is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert distributed.world() is None  # one process: the plain single-device path
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed.world() == (2, 4, 0)


def test_rank0_lock_refuses_a_folder_another_run_holds(tmp_path, monkeypatch):
    import contextlib

    import torch.distributed as dist

    broadcast = []  # what rank 0 tells the other ranks
    monkeypatch.setattr(dist, "broadcast_object_list", lambda objects, src: broadcast.append(list(objects)))
    rank0 = distributed.Ranks.__new__(distributed.Ranks)  # no process group: only the lock is under test
    rank0.rank = 0
    rank0.job = rank0.request = type(
        "Job", (), {"out_dir": tmp_path / "out", "lock_name": None, "remove_stale_temps": lambda self: None}
    )()
    with (
        output_lock(tmp_path / "out"),
        contextlib.ExitStack() as stack,
        pytest.raises(OutputLocked, match="another lucidflux run"),
    ):
        rank0.lock(stack)
    assert "another lucidflux run" in broadcast[-1][0]
    with contextlib.ExitStack() as stack:
        rank0.lock(stack)
        error, token = broadcast[-1]  # no error, and the name of this run's --fail-fast flag
        assert error is None and (tmp_path / "out" / ".lucidflux.lock").exists()
        assert rank0.stop_flag.name == f".fail-fast.lfx{token}.tmp" and atomic.is_temp_name(
            rank0.stop_flag.name
        )


def test_a_file_that_kills_two_workers_fails_alone(tmp_path):
    files = [InputFile(tmp_path / name, Path(name)) for name in ("a.png", "b.png")]
    seen: list[FileResult] = []
    without_fail_fast = SimpleNamespace(stops_after=lambda result: False)  # the pool asks the job's rule
    pool = parallel.Pool(files, without_fail_fast, ["cpu", "cpu"], on_result=seen.append)
    worker = parallel.Worker(1, "cpu", process=None, conn=None)
    pool.retry_or_fail(worker, 0, 137)
    assert list(pool.pending) == [0] and pool.avoid == {0: 1} and not seen
    pool.workers = [worker, parallel.Worker(0, "cpu", process=None, conn=None)]
    assert (
        pool.next_for(worker) is None and pool.next_for(pool.workers[1]) == 0
    )  # not back to the slot it died on while another lives
    pool.retry_or_fail(worker, 0, -9)
    assert seen[0].status == "failed" and seen[0].retried
    assert "worker died twice (exit code 137, killed by SIGKILL)" in seen[0].error


# ------------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_two_cpu_workers_give_the_single_run_bytes(photos, single, tiny_release, tmp_path):
    out, report = tmp_path / "out", tmp_path / "report.json"
    process = lucidflux(
        str(photos),
        "-o",
        str(out),
        *FAST,
        "--devices",
        "cpu,cpu",
        *weight_args(tiny_release),
        "--json",
        "--report",
        str(report),
    )
    assert process.returncode == 0, process.stderr
    assert summary(process)["done"] == len(NAMES)
    assert_same_bytes(out, single)
    files = report_files(report)
    assert list(files) == NAMES  # discovery order, whatever order they finished in
    assert {entry["worker"] for entry in files.values()} == {"cpu#0", "cpu#1"}


@pytest.mark.slow
def test_a_killed_worker_has_its_file_retried_then_rerun_resumes(photos, single, tiny_release, tmp_path):
    out, report = tmp_path / "out", tmp_path / "report.json"
    args = [str(photos), "-o", str(out), *FAST, "--devices", "cpu,cpu", *weight_args(tiny_release), "--json"]
    marker = tmp_path / "killed-once"  # workers die on 2.png until this exists (tests/dying_workers.py)
    process = lucidflux(
        *args,
        "--report",
        str(report),
        program=[str(Path(__file__).parent / "dying_workers.py")],
        env={"LUCIDFLUX_TEST_KILL": f"2.png:{marker}"},
    )
    assert process.returncode == 0, process.stderr
    assert "died (exit code 137) while restoring" in process.stderr
    assert_same_bytes(out, single)
    files = report_files(report)
    assert files["2.png"]["retried"] is True and files["2.png"]["status"] == "done"
    assert not any("retried" in entry for name, entry in files.items() if name != "2.png")
    again = lucidflux(*args)
    assert again.returncode == 0, again.stderr
    assert summary(again)["skipped"] == len(NAMES) and summary(again)["done"] == 0


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "\nState:\tZ" in status.read_text()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads worker processes from /proc (Linux)")
def test_sigterm_stops_every_worker_cleanly_then_rerun_completes(photos, single, tiny_release, tmp_path):
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "lucidflux_cli",
        "restore",
        str(photos),
        "-o",
        str(out),
        *FAST,
        "--devices",
        "cpu,cpu",
        *weight_args(tiny_release),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(out.glob("*.png")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    workers = _children(process.pid)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    deadline = time.monotonic() + 30  # workers stop cleanly after the parent; none may keep restoring
    while not all(_gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers and [pid for pid in workers if not _gone(pid)] == [], [
        Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ") for pid in workers if not _gone(pid)
    ]
    finished = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert 1 <= len(finished) < len(NAMES) and not [p for p in out.rglob("*") if atomic.is_temp_name(p.name)]
    for name in finished:
        assert (out / name).read_bytes() == single[name]
    again = lucidflux(
        str(photos), "-o", str(out), *FAST, "--devices", "cpu,cpu", *weight_args(tiny_release), "--json"
    )
    assert again.returncode == 0, again.stderr
    assert summary(again)["skipped"] == len(finished) and summary(again)["done"] == len(NAMES) - len(finished)
    assert_same_bytes(out, single)


@pytest.mark.slow
def test_torchrun_two_ranks_give_the_single_run_bytes_and_resume(photos, single, tiny_release, tmp_path):
    out, report = tmp_path / "out", tmp_path / "report.json"
    args = [str(photos), "-o", str(out), *FAST, *weight_args(tiny_release), "--json"]
    process = lucidflux(*args, "--report", str(report), launcher=torchrun())
    assert process.returncode == 0, process.stderr
    summaries = [json.loads(line) for line in process.stdout.splitlines() if '"summary"' in line]
    assert len(summaries) == 1 and summaries[0]["done"] == len(NAMES)  # rank 0 speaks for the run
    assert_same_bytes(out, single)
    files = report_files(report)
    assert list(files) == NAMES
    assert [files[name]["worker"] for name in NAMES] == ["rank 0", "rank 1", "rank 0", "rank 1", "rank 0"]
    (out / "3.png").unlink()  # rank 1's file: resume redoes it alone
    again = lucidflux(*args, launcher=torchrun())
    assert again.returncode == 0, again.stderr
    assert summary(again)["done"] == 1 and summary(again)["skipped"] == len(NAMES) - 1
    assert_same_bytes(out, single)


# ------------------------------------------------------------------------------------ --shard-model


def test_shard_plan_is_contiguous_balanced_and_spares_the_first_gpu():
    devices = ["cuda:0", "cuda:1", "cuda:2"]
    plan = sharding.plan_blocks([10] * 12, head_bytes=0, devices=devices)
    assert plan == ["cuda:0"] * 4 + ["cuda:1"] * 4 + ["cuda:2"] * 4
    plan = sharding.plan_blocks([10] * 12, head_bytes=30, devices=devices)  # the small parts sit on cuda:0
    assert plan == ["cuda:0"] * 2 + ["cuda:1"] * 5 + ["cuda:2"] * 5
    assert plan == sorted(plan)  # contiguous runs: activations cross each GPU boundary once
    assert sharding.plan_blocks([5, 5], head_bytes=0, devices=["cuda:0"]) == ["cuda:0", "cuda:0"]


def test_shard_model_over_two_devices_gives_the_same_pixels(tiny_paths, tiny_pipeline):
    """The mechanics (device map, dispatch hooks, residual routing) on CPU "devices"; on GPUs the
    same code moves each block to its GPU."""
    import numpy as np
    import torch

    from lucidflux_cli.model.components import load_components
    from lucidflux_cli.model.pipeline import LucidFluxPipeline, RestoreSettings

    image = Image.fromarray(rgb_pattern(48, 32, seed=1))
    settings = RestoreSettings(steps=2)
    mapping = sharding.device_map(tiny_pipeline.c.transformer, ["cpu", "meta-placeholder"])
    blocks = [mapping[name] for name in mapping if name.startswith(sharding.BLOCK_LISTS)]
    assert blocks[0] == "cpu" and blocks[-1] == "meta-placeholder" and blocks == sorted(blocks)
    assert mapping["x_embedder"] == mapping["proj_out"] == "cpu"
    expected = tiny_pipeline(image, size=(48, 32), settings=settings)
    sharded = sharding.shard(load_components(tiny_paths, torch.device("cpu"), torch.float32), ["cpu", "cpu"])
    assert isinstance(sharded.dual_branch, sharding.ResidualRouter)
    got = LucidFluxPipeline(sharded, torch.device("cpu"), torch.float32)(
        image, size=(48, 32), settings=settings
    )
    np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
def test_a_worker_setup_error_ends_the_run_with_exit_3(photos, tmp_path):
    process = lucidflux(
        str(photos),
        "-o",
        str(tmp_path / "out"),
        *FAST,
        "--devices",
        "cpu,cpu",
        "--offline",
        env={"HF_HUB_CACHE": str(tmp_path / "empty-cache")},
    )
    assert process.returncode == 3, process.stderr
    assert "is not cached" in process.stderr
