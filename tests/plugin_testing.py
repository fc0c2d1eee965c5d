"""What the example plugins' end-to-end suites share (plugins/*/tests import it from here)."""

from __future__ import annotations

import dataclasses
import json
import os
from importlib import metadata
from pathlib import Path

import pytest
from tiny_weights import TinyRelease, write_tiny_release

FAST = ["--steps", "1", "--device", "cpu", "--min-side", "0"]  # restore at the input size


def require_installed(group: str, name: str, distribution: str) -> None:
    """Skip the calling test module unless the plugin is installed; in CI its absence is an error."""
    if any(ep.name == name for ep in metadata.entry_points(group=group)):
        return
    if os.environ.get("CI"):
        raise RuntimeError(f"{distribution} is not installed; .ci/run installs plugins/*/")
    pytest.skip(f"pip install -e plugins/{distribution} to run these tests", allow_module_level=True)


def shared_release(tmp_path_factory: pytest.TempPathFactory) -> TinyRelease:
    """Tiny random LucidFlux weights, written once per session however many plugin suites ask."""
    folder = tmp_path_factory.getbasetemp() / "tiny-release-for-plugins"
    record = folder / "release.json"
    if record.exists():
        return TinyRelease(**{k: Path(v) for k, v in json.loads(record.read_text()).items()})
    release = write_tiny_release(folder, seed=0)
    record.write_text(json.dumps({k: str(v) for k, v in dataclasses.asdict(release).items()}))
    return release
