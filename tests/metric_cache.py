"""A metrics cache for tests: NIQE's parameter file with random statistics, where pyiqa reads it."""

from __future__ import annotations

from pathlib import Path

from lucidflux_cli.metrics import cache, scoring


def niqe_cache(root: Path) -> Path:
    """``root`` as a ``--cache-dir`` holding NIQE's ``niqe_modelparameters.mat`` (no download)."""
    target = cache.metrics_dir(root) / "pyiqa" / "niqe_modelparameters.mat"
    target.parent.mkdir(parents=True, exist_ok=True)
    (root / "made").mkdir(parents=True)
    made = Path(scoring.untrained_options("niqe", root / "made")["pretrained_model_path"])
    made.rename(target)
    return root
