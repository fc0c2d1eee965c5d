"""The runner's shared rules, asked of every scheduler: --fail-fast, the dry run that plans what
the run does, --suffix; and the behaviours that were added last without a test."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import weight_args
from PIL import Image
from test_parallel import torchrun

from lucidflux_cli import atomic
from lucidflux_cli.commands.main import main
from lucidflux_cli.restore import restorer
from lucidflux_cli.runner.job import Job
from lucidflux_cli.runner.results import FileResult

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--steps", "1", "--min-side", "0"]


def _photo(path: Path, seed: int = 0, size: tuple[int, int] = (32, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _broken(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return path


class _FlatRestorer:
    """Stands in for the model in-process: correct sizes, no weights, no time."""

    def __call__(self, image, size, on_step=None):
        return np.full((size[1], size[0], 3), 0.5, dtype=np.float32)


@pytest.fixture
def flat_model(monkeypatch):
    monkeypatch.setattr(restorer, "build_restorer", lambda request: _FlatRestorer())


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _summary(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ the dry run plans what the run does


def test_a_dry_run_reports_the_conflicts_and_exit_code_of_the_real_run(tmp_path, flat_model):
    source, out = tmp_path / "in", tmp_path / "out"
    _photo(source / "a.png")
    Image.open(source / "a.png").save(source / "a.jpg")
    args = [
        "restore",
        str(source / "a.png"),
        str(source / "a.jpg"),
        "-o",
        str(out),
        "--format",
        "png",
        "--json",
    ]

    planned = _invoke(*args, "--dry-run")
    ran = _invoke(*args)

    assert planned.exit_code == ran.exit_code == 1
    plan = {Path(event["source"]).name: event for event in map(json.loads, planned.stdout.splitlines())}
    assert plan["a.png"]["status"] == "planned" and plan["a.png"]["output"] == str(out / "a.png")
    assert plan["a.jpg"]["status"] == "failed" and "already written by" in plan["a.jpg"]["error"]
    events = [json.loads(line) for line in ran.stdout.splitlines()[:-1]]
    assert {Path(e["source"]).name: e["status"] for e in events} == {"a.png": "done", "a.jpg": "failed"}
    assert [e["error"] for e in events if e["status"] == "failed"] == [plan["a.jpg"]["error"]]


def test_a_dry_run_after_the_run_plans_nothing_and_exits_as_a_rerun_would(tmp_path, flat_model):
    source, out = tmp_path / "in", tmp_path / "out"
    _photo(source / "x.png")
    assert _invoke("restore", str(source), "-o", str(out)).exit_code == 0
    again = _invoke("restore", str(source), "-o", str(out), "--dry-run", "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout.splitlines()[0])["status"] == "skipped"


# ------------------------------------------------------------------ --suffix


def test_suffix_names_the_outputs_and_a_rerun_skips_them(tmp_path, flat_model):
    source, out = tmp_path / "in", tmp_path / "out"
    _photo(source / "sub" / "photo.png")
    first = _invoke("restore", str(source), "-o", str(out), "--suffix", "_restored", "--json")
    assert first.exit_code == 0, first.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["sub/photo_restored.png"]
    again = _invoke("restore", str(source), "-o", str(out), "--suffix", "_restored", "--json")
    assert _summary(again.stdout)["skipped"] == 1
    # without the suffix the same folder is a new output: nothing of the suffixed run counts as done
    plain = _invoke("restore", str(source), "-o", str(out), "--json")
    assert _summary(plain.stdout)["done"] == 1 and (out / "sub" / "photo.png").exists()


# ------------------------------------------------------------------ --fail-fast in every scheduler


def test_fail_fast_stops_a_single_process_run_at_the_first_failure(tmp_path, flat_model):
    source, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.json"
    _photo(source / "0.png")
    _broken(source / "1.png")
    for index in (2, 3):
        _photo(source / f"{index}.png", seed=index)
    result = _invoke("restore", str(source), "-o", str(out), "--fail-fast", "--json", "--report", str(report))
    assert result.exit_code == 1
    summary = _summary(result.stdout)
    assert (summary["done"], summary["failed"], summary["not_started"]) == (1, 1, 2)
    statuses = {Path(f["source"]).name: f["status"] for f in json.loads(report.read_text())["files"]}
    assert statuses == {"0.png": "done", "1.png": "failed", "2.png": "not_started", "3.png": "not_started"}
    assert not (out / "2.png").exists()


def test_fail_fast_stops_batched_restores_too(tmp_path, flat_model):
    source, out = tmp_path / "in", tmp_path / "out"
    _broken(source / "0.png")
    for index in (1, 2, 3):
        _photo(source / f"{index}.png", seed=index)
    result = _invoke("restore", str(source), "-o", str(out), "--fail-fast", "--batch-size", "2", "--json")
    summary = _summary(result.stdout)
    assert result.exit_code == 1 and summary["failed"] == 1 and summary["done"] == 0
    assert summary["not_started"] == 3


def test_fail_fast_stops_a_job_on_the_generic_loop(tmp_path):
    # data degrade runs through Job.process_all, the loop every job without its own shares
    source = tmp_path / "in"
    _broken(source / "a.png")
    _photo(source / "b.png", size=(400, 400))
    result = _invoke(
        "data",
        "degrade",
        str(source),
        "-o",
        str(tmp_path / "pairs"),
        "--passes",
        "1",
        "--fail-fast",
        "--json",
    )
    summary = _summary(result.stdout)
    assert result.exit_code == 1 and (summary["failed"], summary["done"], summary["not_started"]) == (1, 0, 1)


def _cli(*args: str, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, *(launcher or []), "-m", "lucidflux_cli", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def broken_first(tmp_path_factory) -> Path:
    """Eight photos, the first broken: it fails at once, before any model is built."""
    source = tmp_path_factory.mktemp("broken-first")
    _broken(source / "0.png")
    for index in range(1, 8):
        _photo(source / f"{index}.png", seed=index)
    return source


@pytest.mark.slow
def test_fail_fast_stops_every_worker(broken_first, tiny_release, tmp_path):
    result = _cli(
        "restore",
        str(broken_first),
        "-o",
        str(tmp_path / "out"),
        *FAST,
        *weight_args(tiny_release),
        "--devices",
        "cpu,cpu",
        "--fail-fast",
        "--json",
    )
    summary = _summary(result.stdout)
    assert result.returncode == 1, result.stderr
    # the other worker finishes at most the file it holds; nothing new is handed out
    assert summary["failed"] == 1 and summary["done"] <= 1 and summary["not_started"] >= 6


@pytest.mark.slow
def test_fail_fast_stops_every_torchrun_rank(broken_first, tiny_release, tmp_path):
    result = _cli(
        "restore",
        str(broken_first),
        "-o",
        str(tmp_path / "out"),
        *FAST,
        *weight_args(tiny_release),
        "--fail-fast",
        "--json",
        launcher=torchrun(),
    )
    summary = _summary(result.stdout)
    assert summary["exit_code"] == 1, result.stderr
    # rank 0 fails file 0 and raises the flag; rank 1 stops after the file it is on
    assert summary["failed"] == 1 and summary["done"] <= 1 and summary["not_started"] >= 6
    assert not [p for p in (tmp_path / "out").glob(".*") if atomic.is_temp_name(p.name)]


# ------------------------------------------------------------------ behaviours added last


def test_a_resumed_training_run_names_the_options_that_changed(tmp_path, caplog):
    from lucidflux_cli.finetune.run import _warn_changed_options
    from lucidflux_cli.training.options import TrainOptions

    saved = tmp_path / "run-config.json"
    before = TrainOptions()
    saved.write_text(json.dumps(json.loads(json.dumps(dataclasses.asdict(before), default=str))))
    with caplog.at_level(logging.WARNING, logger="lucidflux"):
        _warn_changed_options(saved, before)
    assert not caplog.records
    changed = dataclasses.replace(before, learning_rate=before.learning_rate * 10)
    with caplog.at_level(logging.WARNING, logger="lucidflux"):
        _warn_changed_options(saved, changed)
    assert [r.getMessage() for r in caplog.records] == [
        "resuming with other options than the saved run: learning_rate"
    ]


def test_degrade_on_a_full_disk_fails_that_photo_and_goes_on(tmp_path, monkeypatch):
    source = tmp_path / "in"
    for name in ("a.png", "b.png"):
        _photo(source / name, seed=len(name), size=(400, 400))
    real = atomic.atomic_write

    def full_for_a(path, write):
        if Path(path).name.startswith("a_"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, write)

    monkeypatch.setattr(atomic, "atomic_write", full_for_a)
    result = _invoke("data", "degrade", str(source), "-o", str(tmp_path / "pairs"), "--passes", "1", "--json")
    assert result.exit_code == 1
    assert "No space left on device" in result.stderr and "a.png" in result.stderr
    summary = _summary(result.stdout)
    assert summary["failed"] == 1 and summary["done"] == 1
    assert (tmp_path / "pairs" / "hq" / "b_p0.png").exists()
    records = [json.loads(line) for line in (tmp_path / "pairs" / "manifest.jsonl").read_text().splitlines()]
    assert [r.get("name") for r in records if "hq" in r] == ["b.png"]


def test_eval_says_what_an_opt_in_metric_costs(tmp_path):
    folder = tmp_path / "restored"
    _photo(folder / "a.png")
    result = CliRunner().invoke(
        main,
        [
            "eval",
            str(folder),
            "--metrics",
            "qalign",
            "-o",
            str(tmp_path / "r"),
            "--offline",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert "qalign: ~8B parameters" in result.stderr
    assert result.exit_code == 3  # offline without its weights: a setup error, after the warning


def test_a_branch_copied_from_the_backbone_names_a_weight_it_lacks(tiny_pipeline):
    from lucidflux_cli.training import trainable

    transformer = tiny_pipeline.c.transformer

    class Lacking(type(transformer)):
        def state_dict(self, *args, **kwargs):
            state = super().state_dict(*args, **kwargs)
            return {k: v for k, v in state.items() if not k.startswith("x_embedder.")}

    original = transformer.__class__
    transformer.__class__ = Lacking
    try:
        with pytest.raises(ValueError, match="backbone lacks branch weights.*x_embedder"):
            trainable._branch_from_backbone(transformer, depth=1)
    finally:
        transformer.__class__ = original


class _SettledFailure(Job):
    """Fails its first file before any work (as a conflict does); the others would need a worker."""

    def settle(self, files):
        return {0: FileResult(files[0].path, None, "failed", error="conflict")}

    def processor(self):
        raise AssertionError("no file may reach a worker after --fail-fast stopped the run")


def test_fail_fast_stops_the_worker_pool_at_a_settled_failure(tmp_path):
    from types import SimpleNamespace

    from lucidflux_cli.imageio.discovery import InputFile
    from lucidflux_cli.runner.workers import Workers

    files = [InputFile(tmp_path / f"{index}.png", Path(f"{index}.png")) for index in range(4)]
    job = _SettledFailure(SimpleNamespace(fail_fast=True, out_dir=tmp_path))
    seen = []
    results = Workers(job, ["cpu", "cpu"]).work(files, seen.append, None)
    assert [r.status for r in results] == ["failed"] and seen == results  # nothing handed to a worker


def test_fail_fast_stops_the_filter_at_a_name_conflict(tmp_path):
    for folder in ("a", "b"):
        for name in ("x.png", "y.png"):
            _photo(tmp_path / folder / name, seed=len(folder + name), size=(64, 64))
    result = _invoke(
        "data",
        "filter",
        str(tmp_path / "a"),
        str(tmp_path / "b"),
        "-o",
        str(tmp_path / "m.jsonl"),
        "--iqa-metric",
        "none",
        "--min-bytes",
        "0",
        "--min-side",
        "0",
        "--fail-fast",
        "--json",
    )
    summary = _summary(result.stdout)
    assert result.exit_code == 1 and summary["failed"] == 1 and summary["done"] == 0, result.output
