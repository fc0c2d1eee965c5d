"""Shared fixtures: tiny random weights in the released formats, written once per session."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from tiny_weights import TinyRelease, write_tiny_release

from lucidflux_cli.model.components import WeightPaths, load_components
from lucidflux_cli.model.pipeline import LucidFluxPipeline

warnings.filterwarnings("ignore", category=FutureWarning)  # diffusers' own deprecations
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch, tmp_path_factory):
    """A developer's own ~/.config/lucidflux/config.toml must not change what tests do."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "xdg-config"))
    monkeypatch.delenv("LUCIDFLUX_CONFIG", raising=False)


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory) -> TinyRelease:
    return write_tiny_release(tmp_path_factory.mktemp("release"), seed=0)


def weight_paths(release: TinyRelease, **overrides: Path) -> WeightPaths:
    paths = dict(
        flux=release.flux,
        ae=release.ae,
        lucidflux=release.lucidflux,
        swinir=release.swinir,
        siglip=release.siglip,
        prompt_embeddings=release.prompt_embeddings,
    )
    return WeightPaths(**{**paths, **overrides})


@pytest.fixture(scope="session")
def tiny_paths(tiny_release) -> WeightPaths:
    return weight_paths(tiny_release)


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_paths) -> LucidFluxPipeline:
    components = load_components(tiny_paths, torch.device("cpu"), torch.float32)
    return LucidFluxPipeline(components, torch.device("cpu"), torch.float32)


def weight_args(release: TinyRelease) -> list[str]:
    """CLI flags pointing every weight at the tiny release."""
    return [
        "--flux",
        str(release.flux),
        "--ae",
        str(release.ae),
        "--lucidflux",
        str(release.lucidflux),
        "--swinir",
        str(release.swinir),
        "--siglip",
        str(release.siglip),
        "--prompt-embeddings",
        str(release.prompt_embeddings),
    ]
