"""Weights: registry, cache, downloads against a local fake hub (no network), the CLI group."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import socket
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner
from fake_hub import FakeHub

from lucidflux_cli import weights
from lucidflux_cli.commands.weights import weights_group
from lucidflux_cli.weights import WeightFile, WeightsUnavailable, resume
from lucidflux_cli.weights import registry as weights_registry

TOKEN = "hf_secretTOKEN0123456789abcdef"  # granted access to the fake gated repo


def blob(size: int, seed: int) -> bytes:
    return hashlib.shake_256(f"{seed}".encode()).digest(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A started fake hub that huggingface_hub talks to; no token, no other host reachable."""
    from huggingface_hub import constants
    from huggingface_hub.utils import close_session

    fake = FakeHub().start()
    # huggingface_hub reads HF_ENDPOINT (and HF_HUB_OFFLINE, the token path) at import: patch the constants.
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setattr(constants, "ENDPOINT", fake.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", fake.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-home" / "stored_tokens"))
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "hf-home" / "agents.json"))
    for name in (
        "HF_HUB_OFFLINE",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "LUCIDFLUX_CACHE",
        "HF_HUB_DISABLE_XET",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    close_session()  # the shared HTTP client reads proxy settings when it is built
    _only_localhost(monkeypatch)
    yield fake
    fake.stop()
    close_session()


def _only_localhost(monkeypatch) -> None:
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        assert address[0] in ("127.0.0.1", "localhost"), f"test tried to reach {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


FAKE_FILES = {  # name -> (repo, files); flux/ae sit in a gated repo as on the real hub
    "flux": ("test/flux", {"flux.safetensors": blob(6000, 1)}),
    "ae": ("test/flux", {"ae.safetensors": blob(2000, 2)}),
    "lucidflux": ("test/lucid", {"lucidflux.pth": blob(3000, 3)}),
    "prompt_embeddings": ("test/lucid", {"prompt.pt": blob(1500, 4)}),
    "swinir": ("test/diffbir", {"swinir.ckpt": blob(2500, 5)}),
    "siglip": (
        "test/siglip",
        {
            "config.json": b'{"model_type": "siglip"}',
            "model.safetensors": blob(4000, 6),
            "preprocessor_config.json": b"{}",
        },
    ),
}


@pytest.fixture
def registry(hub, monkeypatch) -> dict[str, WeightFile]:
    """The registry swapped for entries pointing at small fake repos; HF_TOKEN is granted."""
    repos: dict[str, dict[str, bytes]] = {}
    for repo, files in FAKE_FILES.values():
        repos.setdefault(repo, {}).update(files)
    for repo, files in repos.items():
        hub.add_repo(repo, files, gated=repo == "test/flux")
    hub.granted_tokens.add(TOKEN)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    fake = {}
    for name, (repo, files) in FAKE_FILES.items():
        real = weights.REGISTRY[name]
        single = next(iter(files)) if len(files) == 1 else None
        fake[name] = WeightFile(
            name,
            repo,
            single,
            files=() if single else tuple(files),
            size=real.size,
            gated=real.gated,
            about=real.about,
        )
    use_registry(monkeypatch, fake)
    return fake


def use_registry(monkeypatch, replacement: dict[str, WeightFile]) -> None:
    """Swap the registry where the weights package reads it and where other layers import it from."""
    monkeypatch.setattr(weights_registry, "REGISTRY", replacement)
    monkeypatch.setattr(weights, "REGISTRY", replacement)


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def run_cli(*args: str, env: dict[str, str] | None = None):
    group = click.Group("lucidflux")
    group.add_command(weights_group)
    result = CliRunner().invoke(group, ["weights", *args], env=env, catch_exceptions=False)
    return result


def content(name: str, filename: str | None = None) -> bytes:
    files = FAKE_FILES[name][1]
    return files[filename or next(iter(files))]


# --------------------------------------------------------------------------------------- downloads


def test_download_into_empty_cache_then_cache_only(registry, hub, cache):
    paths = weights.resolve_weights({}, cache_dir=cache, quiet=True)
    for name in ("flux", "ae", "lucidflux", "prompt_embeddings", "swinir"):
        path = getattr(paths, name)
        assert path.read_bytes() == content(name)
        assert cache in path.parents
    assert paths.siglip.is_dir()
    assert {p.name for p in paths.siglip.iterdir()} == set(FAKE_FILES["siglip"][1])
    assert (paths.siglip / "model.safetensors").read_bytes() == content("siglip", "model.safetensors")

    seen = len(hub.requests)
    again = weights.resolve_weights({}, cache_dir=cache, offline=False)
    assert again == paths
    assert len(hub.requests) == seen  # cached weights need no network at all


def test_cli_download_path_list(registry, hub, cache):
    rows = [
        row
        for row in run_cli("list", "--cache-dir", str(cache)).output.splitlines()
        if not row.startswith("metric:")
    ]
    assert "\n".join(rows).count(" no ") == len(registry)
    result = run_cli("download", "-q", "--cache-dir", str(cache))
    assert result.exit_code == 0, result.output
    path = run_cli("path", "flux", "--cache-dir", str(cache))
    assert path.exit_code == 0
    assert Path(path.output.strip()).read_bytes() == content("flux")
    listing = run_cli("list", env={"LUCIDFLUX_CACHE": str(cache)}).output
    for name, entry in registry.items():
        line = next(row for row in listing.splitlines() if row.startswith(name + " "))
        assert " yes " in line and entry.source in line and str(cache) in line


def test_progress_bars_show_unless_quiet(registry, hub, cache, monkeypatch, capsys):
    monkeypatch.setenv("TQDM_POSITION", "-1")  # huggingface_hub's switch: bars even without a terminal
    weights.fetch(registry["swinir"], cache_dir=cache, offline=False, quiet=False)
    assert "swinir.ckpt" in capsys.readouterr().err
    weights.fetch(registry["lucidflux"], cache_dir=cache, offline=False, quiet=True)
    assert capsys.readouterr().err == ""
    logging.getLogger("lucidflux").setLevel(logging.ERROR)  # `restore -q`: quiet is inferred
    try:
        weights.fetch(registry["ae"], cache_dir=cache, offline=False)
    finally:
        logging.getLogger("lucidflux").setLevel(logging.NOTSET)
    assert capsys.readouterr().err == ""


def test_overrides_are_not_downloaded(registry, hub, cache, tmp_path):
    local = tmp_path / "flux.safetensors"
    local.write_bytes(b"x")
    paths = weights.resolve_weights({"flux": local, "ae": None}, cache_dir=cache, quiet=True)
    assert paths.flux == local
    assert not hub.gets("flux.safetensors") and hub.gets("ae.safetensors")


def test_interrupted_download_resumes_on_the_next_run(registry, hub, cache, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1024)  # so a few KB arrive in several writes
    hub.cut_after("test/flux", "flux.safetensors", 3500)

    def user_presses_ctrl_c(seconds):  # the downloader pauses before resuming a dropped connection
        raise KeyboardInterrupt

    monkeypatch.setattr(resume.time, "sleep", user_presses_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        weights.fetch(registry["flux"], cache_dir=cache, offline=False, quiet=True)
    (partial,) = cache.glob("models--test--flux/blobs/*.incomplete")
    kept = partial.stat().st_size
    assert 0 < kept <= 3500
    assert weights.cached_path(registry["flux"], cache) is None

    monkeypatch.setattr(resume.time, "sleep", lambda seconds: None)
    path = weights.fetch(registry["flux"], cache_dir=cache, offline=False, quiet=True)
    assert hub.ranges("flux.safetensors") == [f"bytes={kept}-"]
    assert sha(path.read_bytes()) == sha(content("flux"))
    assert not partial.exists()


def test_connection_drop_is_resumed_within_the_run(registry, hub, cache, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    monkeypatch.setattr(resume.time, "sleep", lambda seconds: None)
    hub.cut_after("test/lucid", "lucidflux.pth", 2100)
    path = weights.fetch(registry["lucidflux"], cache_dir=cache, offline=False, quiet=True)
    (wanted,) = hub.ranges("lucidflux.pth")  # one more request, from where the data stopped
    assert wanted in ("bytes=2048-", "bytes=2100-")
    assert path.read_bytes() == content("lucidflux")


def test_corrupt_partial_is_discarded_not_published(registry, hub, cache):
    entry = registry["swinir"]
    blobs = cache / "models--test--diffbir" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{sha(content('swinir'))}.incomplete").write_bytes(b"\0" * 100)  # wrong bytes
    with pytest.raises(WeightsUnavailable, match="sha256 mismatch"):
        weights.fetch(entry, cache_dir=cache, offline=False, quiet=True)
    assert not list(blobs.iterdir())
    assert weights.fetch(entry, cache_dir=cache, offline=False, quiet=True).read_bytes() == content("swinir")


def test_a_complete_partial_is_checked_and_published_without_a_transfer(registry, hub, cache):
    blobs = cache / "models--test--diffbir" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{sha(content('swinir'))}.incomplete").write_bytes(content("swinir"))  # stopped while checking
    assert weights.fetch(
        registry["swinir"], cache_dir=cache, offline=False, quiet=True
    ).read_bytes() == content("swinir")
    assert not hub.gets("swinir.ckpt")


def test_list_counts_only_a_folder_entrys_own_files(registry, hub, cache, monkeypatch):
    """A folder entry's path is a snapshot it may share (text_encoders with flux): its size is its
    own files'."""
    hub.repos["test/flux"].files["enc/config.json"] = b'{"x": 1}'
    encoders = WeightFile("text_encoders", "test/flux", None, files=("enc/config.json",), optional=True)
    monkeypatch.setitem(registry, "text_encoders", encoders)
    weights.fetch(registry["flux"], cache_dir=cache, offline=False, quiet=True)
    assert (
        weights.fetch(encoders, cache_dir=cache, offline=False, quiet=True)
        == weights.cached_path(registry["flux"], cache).parent
    )
    listing = run_cli("list", "--cache-dir", str(cache)).output.splitlines()
    line = next(row for row in listing if row.startswith("text_encoders "))
    assert " 8 B " in line


# ----------------------------------------------------------------------------------- offline / errors


@pytest.mark.parametrize("how", ["flag", "env"])
def test_offline_with_empty_cache_lists_every_missing_file(registry, hub, cache, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable) as caught:
        weights.resolve_weights({}, cache_dir=cache, offline=how == "flag")
    message = str(caught.value)
    assert len(caught.value.problems) == len(registry)
    for name, entry in registry.items():
        assert entry.source in message and f"lucidflux weights download {name}" in message
        assert f"{entry.flag} PATH" in message
    assert "gated" in message and "https://huggingface.co/test/flux" in message
    assert str(cache) in message
    assert not hub.requests


def _restore_offline(cache: Path, tmp_path: Path):
    from PIL import Image

    from lucidflux_cli.commands.main import main

    Image.new("RGB", (16, 16), "gray").save(tmp_path / "in.png")
    return CliRunner().invoke(
        main,
        [
            "restore",
            str(tmp_path / "in.png"),
            "-o",
            str(tmp_path / "out"),
            "--offline",
            "--cache-dir",
            str(cache),
            "--device",
            "cpu",
        ],
    )


def test_restore_offline_with_empty_cache_lists_the_missing_files(registry, hub, cache, tmp_path):
    result = _restore_offline(cache, tmp_path)
    assert result.exit_code != 0
    for entry in registry.values():
        assert entry.source in result.output
    assert not hub.requests


def test_restore_offline_with_empty_cache_exits_3(registry, hub, cache, tmp_path):
    assert _restore_offline(cache, tmp_path).exit_code == 3


def test_weights_download_offline_env_exits_3(registry, hub, cache):
    result = run_cli("download", "--cache-dir", str(cache), env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 3
    assert "test/flux:flux.safetensors@main" in result.output


def test_gated_repo_without_token(registry, hub, cache, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(WeightsUnavailable) as caught:
        weights.resolve_weights({}, cache_dir=cache, quiet=True)
    message = str(caught.value)
    assert "test/flux is gated" in message and "https://huggingface.co/test/flux" in message
    assert "hf auth login" in message and "HF_TOKEN" in message and "--flux PATH" in message
    assert "--ae PATH" in message  # each gated entry is named
    assert not [r for r in hub.requests if r.method == "GET"]  # nothing fetched before the plan is whole


def test_gated_repo_with_token_lacking_access(registry, hub, cache, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_notgrantedTOKEN999")
    with pytest.raises(WeightsUnavailable, match="no access yet") as caught:
        weights.fetch(registry["ae"], cache_dir=cache, offline=False)
    assert "hf_notgranted" not in str(caught.value)


def test_other_http_errors_are_one_line_naming_repo_and_file(registry, hub, cache, monkeypatch):
    missing = WeightFile("lucidflux", "test/lucid", "nope.pth")
    with pytest.raises(WeightsUnavailable) as caught:
        weights.fetch(missing, cache_dir=cache, offline=False)
    (line,) = caught.value.problems
    assert "test/lucid:nope.pth@main" in line and "not found" in line
    unknown = WeightFile("swinir", "test/absent", "x.ckpt")
    with pytest.raises(WeightsUnavailable, match="test/absent:x.ckpt@main: repository not found"):
        weights.fetch(unknown, cache_dir=cache, offline=False)


def test_unreachable_hub(registry, hub, cache):
    hub.stop()
    with pytest.raises(WeightsUnavailable, match="cannot reach the hub.*check the network"):
        weights.fetch(registry["swinir"], cache_dir=cache, offline=False)


def test_disk_space_is_checked_before_downloading(registry, hub, cache, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: _Usage(10_000))
    with pytest.raises(WeightsUnavailable) as caught:
        weights.resolve_weights({}, cache_dir=cache, quiet=True)
    message = str(caught.value)
    assert "not enough disk space" in message and "GB free" in message and "--cache-dir" in message
    assert not [r for r in hub.requests if r.method == "GET"]
    monkeypatch.setattr(shutil, "disk_usage", lambda path: _Usage(10**12))
    weights.resolve_weights({}, cache_dir=cache, quiet=True)


class _Usage:
    def __init__(self, free: int):
        self.total, self.used, self.free = free * 2, free, free


# ----------------------------------------------------------------------------------------- verify


def test_verify_detects_a_corrupted_blob_and_force_repairs_it(registry, hub, cache):
    assert run_cli("download", "-q", "--cache-dir", str(cache)).exit_code == 0
    ok = run_cli("verify", "--cache-dir", str(cache))
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("ok ") == 8  # five files + three in the SigLIP folder (config: git sha1)

    blob_path = weights.cached_path(registry["flux"], cache).resolve()
    blob_path.write_bytes(b"corrupt" + content("flux")[7:])
    bad = run_cli("verify", "--cache-dir", str(cache))
    assert bad.exit_code == 1
    assert any(row.startswith("mismatch") and "flux.safetensors" in row for row in bad.output.splitlines())

    assert run_cli("download", "--force", "-q", "flux", "--cache-dir", str(cache)).exit_code == 0
    assert run_cli("verify", "flux", "--cache-dir", str(cache)).exit_code == 0


def test_verify_missing_and_path_missing_exit_3(registry, hub, cache):
    result = run_cli("verify", "siglip", "--cache-dir", str(cache))
    assert result.exit_code == 3
    assert sum(row.startswith("missing") for row in result.output.splitlines()) == 3
    result = run_cli("path", "flux", "--cache-dir", str(cache))
    assert result.exit_code == 3 and "lucidflux weights download flux" in result.output
    assert not hub.requests


def test_unknown_name_is_a_usage_error(registry, cache):
    assert run_cli("path", "nope", "--cache-dir", str(cache)).exit_code == 2
    assert run_cli("download", "flux", "nope", "--cache-dir", str(cache)).exit_code == 2


# ------------------------------------------------------------------------------------------ secrets


def test_token_never_appears_in_output(registry, hub, cache, monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    weights.resolve_weights({}, cache_dir=cache, quiet=False)  # succeeds, with the token
    hub.granted_tokens.clear()
    with pytest.raises(WeightsUnavailable) as caught:  # fails: the token lost access
        weights.fetch(weights.REGISTRY["ae"], cache_dir=cache / "other", offline=False)
    cli = run_cli("download", "--cache-dir", str(cache / "third"))
    assert cli.exit_code == 3

    assert any(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub.requests)  # it was used
    out = capsys.readouterr()
    seen = "\n".join([out.out, out.err, caplog.text, str(caught.value), cli.output])
    assert "gated" in seen
    assert TOKEN not in seen and TOKEN[3:15] not in seen


# -------------------------------------------------------------------------------- the real registry


def test_real_registry_served_by_the_fake_hub(hub, cache, monkeypatch, tiny_release):
    """The real names and repos, served with tiny loadable weights, load as a pipeline."""
    import torch

    from lucidflux_cli.model.components import load_components

    # The tiny files are not the pinned releases: unpin them (pins have their own test).
    use_registry(monkeypatch, {n: dataclasses.replace(e, sha256=None) for n, e in weights.REGISTRY.items()})
    for entry in weights.REGISTRY.values():
        if entry.optional:
            continue
        local = getattr(tiny_release, entry.name)
        if entry.filename is not None:
            files = {entry.filename: local.read_bytes()}
        else:
            files = {
                name: (local / name).read_bytes() if (local / name).exists() else b"{}"
                for name in entry.files
            }
        repo = hub.repos.get(entry.repo) or hub.add_repo(entry.repo, {}, gated=entry.gated)
        repo.files.update(files)
    hub.granted_tokens.add(TOKEN)
    monkeypatch.setenv("HF_TOKEN", TOKEN)

    paths = weights.resolve_weights({}, cache_dir=cache, quiet=True)
    assert paths.flux.name == "flux1-dev.safetensors" and "models--black-forest-labs--FLUX.1-dev" in str(
        paths.flux
    )
    components = load_components(paths, torch.device("cpu"), torch.float32)
    assert components.remover_multiple > 0


def test_a_pinned_file_that_changed_on_the_hub_is_not_downloaded(registry, hub, cache, monkeypatch):
    wrong = dataclasses.replace(registry["lucidflux"], sha256="0" * 64)
    with pytest.raises(weights.WeightsUnavailable) as caught:
        weights.ensure([wrong], cache_dir=cache, quiet=True)
    assert "serves another file" in str(caught.value) and "--lucidflux PATH" in str(caught.value)
    assert not hub.gets("lucidflux.pth")  # refused from the HEAD answer, before any transfer
    right = dataclasses.replace(wrong, sha256=sha(content("lucidflux")))
    assert weights.ensure([right], cache_dir=cache, quiet=True)["lucidflux"].read_bytes() == content(
        "lucidflux"
    )


def test_text_encoders_are_fetched_only_when_asked_and_load_from_the_snapshot(
    hub, cache, monkeypatch, tmp_path
):
    from tiny_text_encoders import write_tiny_text_encoders

    from lucidflux_cli.model.prompt import load_clip, load_t5

    folder = write_tiny_text_encoders(tmp_path / "FLUX.1-dev")
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }
    hub.add_repo("test/flux-dev", files)
    entry = dataclasses.replace(
        weights.REGISTRY["text_encoders"], repo="test/flux-dev", files=tuple(files), gated=False
    )
    monkeypatch.setitem(weights.REGISTRY, "text_encoders", entry)
    assert "text_encoders" not in {e.name for e in weights.entries()}  # not in a bare `weights download`
    snapshot = weights.fetch(entry, cache_dir=cache, offline=False, quiet=True)
    assert (snapshot / "text_encoder" / "config.json").is_file() and (snapshot / "tokenizer_2").is_dir()
    assert weights.cached_path(entry, cache) == snapshot
    load_clip(snapshot, device=torch.device("cpu"), dtype=torch.float32)
    load_t5(snapshot, device=torch.device("cpu"), dtype=torch.float32)


# Written once from Black Forest Labs' published values (github.com/black-forest-labs/flux README:
# the FLUX.1 [dev] sha256; the hub's LFS metadata of black-forest-labs/FLUX.1-dev for ae and the sizes),
# independently of the registry: a typo or a swapped value there fails here.
RELEASED = {
    "flux": (
        "flux1-dev.safetensors",
        "4610115bb0c89560703c892c59ac2742fa821e60ef5871b33493ba544683abd7",
        23_802_932_552,
    ),
    "ae": ("ae.safetensors", "afc8e28272cd15db3919bacdb6918ce9c1ed22e96cb12c4d5ed0fba823529e38", 335_304_388),
}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_the_released_flux_files_are_pinned_by_content(name):
    entry = weights.REGISTRY[name]
    assert (entry.filename, entry.sha256, entry.size) == RELEASED[name]
    assert entry.repo == "black-forest-labs/FLUX.1-dev" and entry.gated


def test_verify_checks_a_pinned_file_against_its_pin_not_the_hub(registry, hub, cache, monkeypatch):
    """The pin is what is compared: a file the hub serves unchanged still fails when it is not the
    pinned one."""
    pinned = dataclasses.replace(registry["ae"], sha256=sha(content("ae")), size=len(content("ae")))
    assert weights.fetch(pinned, cache_dir=cache, offline=False, quiet=True).read_bytes() == content("ae")
    assert [c.status for c in weights.verify(pinned, cache)] == ["ok"]
    other = dataclasses.replace(pinned, sha256=sha(b"another release"))
    (check,) = weights.verify(other, cache)
    assert check.status == "mismatch" and sha(b"another release") in check.detail


def test_a_pinned_file_of_another_size_is_not_downloaded(registry, hub, cache):
    wrong = dataclasses.replace(
        registry["swinir"], sha256=sha(content("swinir")), size=len(content("swinir")) + 1
    )
    with pytest.raises(weights.WeightsUnavailable, match="serves another file"):
        weights.ensure([wrong], cache_dir=cache, quiet=True)
    assert not hub.gets("swinir.ckpt")


# ------------------------------------------------------------------------------------ the registry


def test_registry_is_complete_and_documented():
    from dataclasses import fields

    from lucidflux_cli.model.components import WeightPaths

    assert set(weights.REGISTRY) == {f.name for f in fields(WeightPaths)}
    docs = Path(__file__).parent.parent / "docs" / "weights.md"
    assert weights.registry_markdown() in docs.read_text(), "regenerate the table in docs/weights.md"


def test_fake_hub_serves_snapshot_download(hub, cache):
    from huggingface_hub import snapshot_download

    hub.add_repo("test/snap", {"a.json": b"{}", "b.safetensors": blob(1000, 9)})
    folder = Path(snapshot_download("test/snap", cache_dir=cache))
    assert (folder / "b.safetensors").read_bytes() == blob(1000, 9)
