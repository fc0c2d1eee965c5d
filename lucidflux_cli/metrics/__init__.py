"""Image-quality metrics (pyiqa) for ``lucidflux eval`` and ``restore --score``: arrays in, numbers out.

This layer knows nothing about image files: the engine reads them and hands over float32
``H x W x 3`` arrays in [0, 1]. pyiqa is imported only when a metric is built (the ``eval`` extra).

* :mod:`.registry`: ``METRICS`` (one ``Metric`` per name: direction, kind, cost, licence),
  ``parse_metrics``, the default sets, ``PYIQA_LICENCE``;
* :mod:`.cache`: ``<cache root>/metrics``, ``metric_files``, ``missing``, ``download``,
  ``MetricUnavailable``, ``redirected`` (where pyiqa, torch hub and the hub put weights);
* :mod:`.scoring`: ``Scorer`` (lazy, batched; no-reference, full-reference, FID), ``SizeMismatch``;
* :mod:`.fid`: FID on arrays as pyiqa computes it on folders;
* :mod:`.pairing`: restored files with references by relative path;
* :mod:`.tables`: CSV, JSON lines, summary JSON, the side-by-side Markdown table.
"""

from lucidflux_cli.metrics.cache import (
    MetricFile,
    MetricUnavailable,
    download,
    metric_files,
    metrics_dir,
    missing,
    redirected,
    require,
    status,
)
from lucidflux_cli.metrics.pairing import Pairing, PairingError, pair
from lucidflux_cli.metrics.registry import (
    DEFAULT_SCORE,
    METRICS,
    PAPER_TABLE1,
    PYIQA_LICENCE,
    Metric,
    default_metrics,
    parse_metrics,
)
from lucidflux_cli.metrics.scoring import ScoreError, Scorer, SizeMismatch, check_pair
from lucidflux_cli.metrics.tables import (
    PAPER_COLUMN,
    PAPER_LUCIDFLUX_REALLQ250,
    got_worse,
    markdown_table,
    row_json,
    rows_csv,
    rows_jsonl,
    summary,
    summary_json,
    summary_markdown,
)

__all__ = [
    "DEFAULT_SCORE",
    "METRICS",
    "PAPER_COLUMN",
    "PAPER_LUCIDFLUX_REALLQ250",
    "PAPER_TABLE1",
    "PYIQA_LICENCE",
    "Metric",
    "MetricFile",
    "MetricUnavailable",
    "Pairing",
    "PairingError",
    "ScoreError",
    "Scorer",
    "SizeMismatch",
    "check_pair",
    "default_metrics",
    "download",
    "got_worse",
    "markdown_table",
    "metric_files",
    "metrics_dir",
    "missing",
    "pair",
    "parse_metrics",
    "redirected",
    "require",
    "row_json",
    "rows_csv",
    "rows_jsonl",
    "summary",
    "summary_json",
    "status",
    "summary_markdown",
]
