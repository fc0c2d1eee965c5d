"""An interrupted run's report and summary keep what it did (issue 17), for every scheduler.

Real CLI processes on tiny weights: SIGTERM after some files are written, SIGKILL mid-run, then
a rerun. The report must name exactly the finished files, with counts that add up to the plan.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import weight_args
from make_images import rgb_pattern
from PIL import Image

NAMES = [f"{index}.png" for index in range(8)]
# Slow enough per file (about a second on 2 cores) that a signal lands mid-run.
SLOW = ["--steps", "8", "--min-side", "0", "--report-every", "0", "--json"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for index, name in enumerate(NAMES):
        Image.fromarray(rgb_pattern(64, 48, seed=index)).save(folder / name)
    return folder


def _torchrun() -> list[str]:
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


def _start(args: list[str], launcher: list[str] | None = None) -> subprocess.Popen:
    command = [sys.executable, *(launcher or []), "-m", "lucidflux_cli", "restore", *args]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _outputs(out: Path) -> set[str]:
    return {p.name for p in out.glob("*.png")} if out.exists() else set()


def _wait_for_outputs(process: subprocess.Popen, out: Path, count: int) -> None:
    deadline = time.monotonic() + 300
    while len(_outputs(out)) < count and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, f"the run ended before it could be interrupted:\n{process.stderr.read()}"


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


def _by_status(document: dict) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for entry in document["files"]:
        found.setdefault(entry["status"], set()).add(Path(entry["source"]).name)
    return found


def _assert_adds_up(document: dict) -> None:
    statuses = _by_status(document)
    assert document["planned"] == len(NAMES)
    for status in ("done", "skipped", "failed", "not_started"):
        assert document[status] == len(statuses.get(status, ())), status
    assert sum(document[s] for s in ("done", "skipped", "failed", "not_started")) == len(NAMES)
    assert set().union(*statuses.values()) == set(NAMES)  # every planned file, once


def _rerun_completes(photos: Path, out: Path, report: Path, extra: list[str], launcher=None) -> None:
    before = _outputs(out)
    again = _start([str(photos), "-o", str(out), *SLOW, "--report", str(report), *extra], launcher)
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    document = _report(report)
    assert document["state"] == "finished" and document["not_started"] == 0
    assert _by_status(document)["skipped"] == before and document["done"] == len(NAMES) - len(before)
    assert _outputs(out) == set(NAMES)


SCHEDULERS = {
    "single": ([], None),
    "devices": (["--devices", "cpu,cpu"], None),
    "torchrun": ([], _torchrun),
}


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_sigterm_keeps_every_finished_file_in_the_report_and_the_summary(
    photos, tiny_release, tmp_path, scheduler
):
    extra, launcher = SCHEDULERS[scheduler]
    out, report = tmp_path / "out", tmp_path / "report.json"
    args = [str(photos), "-o", str(out), *SLOW, "--report", str(report), *extra, *weight_args(tiny_release)]
    process = _start(args, launcher() if launcher else None)
    _wait_for_outputs(process, out, 3)
    process.send_signal(signal.SIGTERM)  # torchrun passes it on to every rank
    stdout, stderr = process.communicate(timeout=120)
    if scheduler != "torchrun":  # torchrun's own exit code says it was stopped; the ranks exit 130
        assert process.returncode == 130, stderr
    document = _report(report)
    finished = _outputs(out)
    assert document["state"] == "interrupted" and document["exit_code"] == 130
    assert 3 <= len(finished) < len(NAMES)
    assert _by_status(document).get("done", set()) == finished  # exactly the files on disk
    _assert_adds_up(document)
    summary = [json.loads(line) for line in stdout.splitlines() if '"summary"' in line][-1]
    assert {k: summary[k] for k in ("done", "skipped", "failed", "not_started")} == {
        k: document[k] for k in ("done", "skipped", "failed", "not_started")
    }
    last_line = [line for line in stderr.splitlines() if "interrupted after" in line]
    assert last_line and "run the same command again to resume" in last_line[-1]
    assert f"({len(finished)} restored" in last_line[-1]
    _rerun_completes(
        photos, out, report, [*extra, *weight_args(tiny_release)], launcher() if launcher else None
    )


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["single", "devices"])
def test_sigkill_leaves_a_valid_report_of_what_was_finished(photos, tiny_release, tmp_path, scheduler):
    extra, _ = SCHEDULERS[scheduler]
    out, report = tmp_path / "out", tmp_path / "report.json"
    process = _start(
        [str(photos), "-o", str(out), *SLOW, "--report", str(report), *extra, *weight_args(tiny_release)]
    )
    _wait_for_outputs(process, out, 3)
    os.killpg(process.pid, signal.SIGKILL)  # the whole group: a power cut, as far as the folder knows
    process.communicate(timeout=60)
    document = _report(report)  # valid JSON: written atomically
    assert document["state"] == "running"
    done = _by_status(document).get("done", set())
    finished = _outputs(out)
    in_flight = 2 if scheduler == "devices" else 1  # written, not yet reported, when the kill came
    assert done <= finished and len(done) >= len(finished) - in_flight
    _assert_adds_up(document)
    _rerun_completes(photos, out, report, [*extra, *weight_args(tiny_release)])
