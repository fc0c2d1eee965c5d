"""`lucidflux doctor`: report sections, self-test, exit codes, offline by default, no token leak."""

from __future__ import annotations

import json
import os
import socket

import pytest
from click.testing import CliRunner

from lucidflux_cli.commands import configfile
from lucidflux_cli.commands.main import main
from lucidflux_cli.diagnostics import doctor
from lucidflux_cli.model import selftest
from lucidflux_cli.weights import REGISTRY

TOKEN = "hf_secretXYZ"
SECTIONS = {"versions", "devices", "restore", "cache", "hub", "selftest", "errors", "warnings", "exit_code"}


@pytest.fixture(autouse=True)
def machine(tmp_path, monkeypatch) -> list[tuple]:
    """An empty cache, a token in the env, plenty of disk, and a network that records any use."""
    for name in list(os.environ):
        if name.startswith(("LUCIDFLUX_", "HF_HUB_OFFLINE")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LUCIDFLUX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(configfile, "user_config_path", lambda: tmp_path / "no-user-config.toml")
    monkeypatch.setattr(doctor, "free_disk", lambda path: 10**13)
    used: list[tuple] = []

    def refuse(*args, **kwargs):
        used.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return used


def run(*args: str):
    return CliRunner().invoke(main, ["doctor", *args], catch_exceptions=False)


def test_json_report_cpu_selftest_passes_offline_and_no_token(machine):
    result = run("--json")
    report = json.loads(result.stdout)
    assert set(report) == SECTIONS
    assert result.exit_code == report["exit_code"] == 0, report["errors"]
    cpu = next(r for r in report["selftest"] if r["device"] == "cpu")
    assert cpu["ok"] and cpu["dtype"] == "float32" and cpu["error"] is None
    assert cpu["seconds"] >= 0
    assert report["devices"][0]["name"] == "cpu" and report["devices"][0]["cores"] >= 1
    assert {"torch", "diffusers", "transformers", "huggingface_hub", "spandrel", "pillow", "python"} <= set(
        report["versions"]
    )
    assert report["cache"]["root"] == os.environ["LUCIDFLUX_CACHE"]
    assert [e["state"] for e in report["cache"]["entries"]] == [
        "optional" if entry.optional else "missing" for entry in REGISTRY.values()
    ]
    assert any("not downloaded yet" in w for w in report["warnings"])  # a warning, not an error
    assert report["hub"]["token"] is True and report["hub"]["online_checked"] is False
    assert TOKEN not in result.output and "secretXYZ" not in result.output
    assert machine == []  # offline by default


def test_text_report_never_shows_the_token(machine):
    result = run()
    assert result.exit_code == 0
    assert "token: set (HF_TOKEN environment variable; never shown)" in result.output
    assert "secretXYZ" not in result.output
    assert "READY" in result.output and machine == []


def test_online_without_network_degrades_gracefully(machine):
    result = run("--json", "--online")
    report = json.loads(result.stdout)
    assert report["hub"]["online_checked"] is True
    access = report["hub"]["gated_access"]["black-forest-labs/FLUX.1-dev"]
    assert access["access"] == "unknown" and "cannot reach the hub" in access["detail"]
    assert result.exit_code == 0 and "secretXYZ" not in result.output


def test_offline_with_missing_weights_blocks(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    report = doctor.collect(doctor.Settings(), selftest=False)
    assert report.exit_code == doctor.EXIT_BLOCKED
    assert any("offline mode is on" in e for e in report.errors)


def test_gated_weights_without_token_block(monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(doctor, "_token", lambda: None)  # ignore a developer's stored login
    report = doctor.collect(doctor.Settings(), selftest=False)
    assert any("gated and no Hugging Face token" in e for e in report.errors)


def test_not_enough_disk_blocks(monkeypatch):
    monkeypatch.setattr(doctor, "free_disk", lambda path: 10**9)
    report = doctor.collect(doctor.Settings(), selftest=False)
    assert any("not enough disk space" in e for e in report.errors)


def test_local_weights_from_config_count_as_present(tmp_path):
    files = {name: tmp_path / name for name in REGISTRY}
    for path in files.values():
        path.write_text("")
    cfg = tmp_path / "c.toml"
    cfg.write_text("[weights]\n" + "".join(f'{name} = "{path}"\n' for name, path in files.items()))
    report = json.loads(run("--json", "--config", str(cfg)).stdout)
    assert {e["name"]: e["state"] for e in report["cache"]["entries"]} == dict.fromkeys(REGISTRY, "local")
    assert not any("not downloaded" in w for w in report["warnings"])


def test_a_failing_device_is_exit_1_and_no_working_device_exit_3(monkeypatch):
    monkeypatch.setattr(selftest, "devices", lambda: ["cpu", "cuda:99"])  # cuda:99 exists nowhere
    result = run("--json")
    report = json.loads(result.stdout)
    failed = next(r for r in report["selftest"] if r["device"] == "cuda:99")
    assert not failed["ok"] and failed["error"] and "\n" not in failed["error"]
    assert result.exit_code == 1
    monkeypatch.setattr(selftest, "devices", lambda: ["cuda:99"])
    assert run("--json").exit_code == 3


def test_selftest_builds_the_real_classes():
    import torch
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import SiglipVisionModel

    components = selftest.build_components(torch.device("cpu"), torch.float32)
    assert isinstance(components.transformer, FluxTransformer2DModel)
    assert isinstance(components.vae, AutoencoderKL)
    assert isinstance(components.siglip, SiglipVisionModel)
    assert type(components.remover.run.model).__name__ == "SwinIR"


def test_settings_error_is_reported(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("stepz = 1\n")
    result = run("--json", "--config", str(cfg))
    report = json.loads(result.stdout)
    assert result.exit_code == 3 and "unknown key 'stepz'" in report["errors"][0]


def test_a_missing_cache_is_reported_as_missing_weights_at_the_given_root(tmp_path):
    local = tmp_path / "my-flux.safetensors"
    local.write_bytes(b"x")
    settings = doctor.Settings(cache_dir=tmp_path / "no-cache", overrides={"flux": local})
    data = json.loads(json.dumps(doctor.collect(settings, selftest=False).to_dict()))
    assert data["cache"]["root"] == str(tmp_path / "no-cache") and data["cache"]["exists"] is False
    states = {entry["name"]: (entry["state"], entry["path"]) for entry in data["cache"]["entries"]}
    assert states["flux"] == ("local", str(local))  # a path given on the command line is used as it is
    assert states["lucidflux"] == ("missing", None) and states["text_encoders"] == ("optional", None)
    assert data["cache"]["missing_bytes"] == sum(
        e.size or 0 for e in REGISTRY.values() if e.name not in ("flux",) and not e.optional
    )


def test_a_configured_device_that_does_not_exist_blocks(monkeypatch):
    monkeypatch.setenv("LUCIDFLUX_DEVICE", "cuda:99")
    result = run("--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 3
    assert any(e.startswith("--device cuda:99") for e in report["errors"])


def _gpu_report(gib: float, capability: str = "9.0", dtype: str = "bfloat16") -> doctor.Report:
    """This machine's report, as if it had one CUDA device of ``gib`` GiB."""
    report = doctor.collect(doctor.Settings(), selftest=False)
    device = {
        "name": "cuda:0",
        "model": "GPU",
        "capability": capability,
        "memory_total": int(gib * 2**30),
        "memory_free": int(gib * 2**30),
        "bf16": True,
    }
    report.devices, report.restore, report.warnings = [device], {"device": "cuda:0", "dtype": dtype}, []
    return report


@pytest.mark.parametrize(
    "gib,capability,hint",
    [
        (79.1, "9.0", None),  # H100: the default fits, in one tile up to 1536 px
        (23.6, "8.9", "use --precision fp8"),  # RTX 4090: float8 weights fit
        (23.6, "8.6", "use --offload sequential"),  # no float8 tensor cores: stream the weights
        (15.6, "8.9", "use --offload sequential"),
        (5.8, "8.6", "no memory mode fits it: use a larger GPU, or --shard-model over several"),
    ],
)
def test_memory_warning_names_the_fastest_mode_that_fits(gib, capability, hint):
    report = _gpu_report(gib, capability)
    doctor._judge_memory(report)
    if hint is None:
        assert report.warnings == [] and report.restore["tile_size_auto"] == 1536
    else:
        (warning,) = report.warnings
        assert warning.startswith(f"cuda:0 has {gib:.0f} GiB; a default restore needs about 34 GiB; ")
        assert warning.endswith(hint)
    assert "restore would use: cuda:0 (bfloat16), one tile up to" in doctor.render(report)


def test_float32_counts_twice_the_weights():
    report = _gpu_report(44.4, dtype="float32")
    doctor._judge_memory(report)
    assert "needs about 64 GiB" in report.warnings[0]
