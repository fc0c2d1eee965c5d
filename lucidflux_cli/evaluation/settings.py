"""Settings of ``lucidflux eval``: every option declared once, here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lucidflux_cli.runner.settings import ModelSettings, setting


def parse_metric_list(text: str) -> str:
    """A comma-separated list of known metrics (ValueError names an unknown one and the known ones)."""
    from lucidflux_cli.metrics import registry

    return ",".join(registry.parse_metrics(text))


@dataclass
class EvalRequest(ModelSettings):
    """``lucidflux eval FOLDER... [--reference DIR] [--metrics LIST] -o results/``."""

    out_dir: Path = setting(
        None,
        flags=("-o", "--output"),
        path="dir",
        required=True,
        help="Results folder: scores.jsonl, scores.csv, summary.json, table.md.",
    )
    reference: Path | None = setting(
        None,
        path="dir",
        help="Ground-truth folder, paired by relative path (extension may differ): adds the "
        "full-reference metrics (PSNR-Y, SSIM, LPIPS, DISTS) and allows fid.",
    )
    metrics: str | None = setting(
        None,
        parse=parse_metric_list,
        metavar="LIST",
        help="Comma-separated metrics (`lucidflux weights list --metrics`). Default: the paper's "
        "no-reference set without Q-Align (8B parameters, opt-in), plus the full-reference set with "
        "--reference.",
    )
    crop_border: int = setting(
        0,
        minimum=0,
        metavar="N",
        help="Pixels taken off every side of image and reference before PSNR-Y and "
        "SSIM, as BasicSR's crop_border (SR papers use the scale factor).",
    )
    batch_size: int = setting(4, minimum=1, help="Images per metric call (raise it on a GPU).")
    paper: bool = setting(False, flag=True, help="Add the paper's LucidFlux RealLQ250 column to table.md.")
    review: bool = setting(
        False,
        flag=True,
        help="Write OUTPUT/review/index.html: each image of every FOLDER side by side, "
        "the table above (docs/review.md).",
    )
