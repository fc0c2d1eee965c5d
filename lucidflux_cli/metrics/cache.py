"""Where metric weights live, what each metric needs, and getting them there.

pyiqa fetches weights from three places, each with its own default folder:

* its own checkpoints (``chaofengc/IQA-PyTorch-Weights`` on the Hugging Face hub, plain HTTP) via
  ``pyiqa.utils.download_util.load_file_from_url`` into ``DEFAULT_CACHE_DIR`` =
  ``torch.hub.get_dir()/pyiqa``, a module constant fixed when pyiqa is imported;
* ``torch.hub.get_dir()`` read at call time: torchvision ImageNet backbones (LPIPS' AlexNet,
  DISTS' VGG16) in ``checkpoints/``, OpenAI CLIP (CLIP-IQA) in ``clip/``;
* the Hugging Face hub cache (``huggingface_hub.constants.HF_HUB_CACHE``, read at call time):
  timm backbones (MANIQA's ViT-B/8, NIMA's Inception-ResNet-v2) and Q-Align.

:func:`redirected` points all three at ``<cache root>/metrics/{pyiqa,torch,hub}`` while a metric
is built (builds are where pyiqa downloads), so nothing lands in a folder the user did not choose.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lucidflux_cli.errors import LucidFluxError
from lucidflux_cli.metrics.registry import get
from lucidflux_cli.weights.cache import cache_root, is_offline

PYIQA_REPO = "chaofengc/IQA-PyTorch-Weights"
QALIGN_REPO = "q-future/one-align"


class MetricUnavailable(LucidFluxError):
    """A metric's weights are not in the cache and cannot be fetched (offline, no network)."""

    def __init__(self, name: str, cause: str):
        self.name = name
        self.cause = cause
        super().__init__(f"metric {name}: {cause}; get it with `lucidflux weights download --metrics {name}`")


@dataclass(frozen=True)
class MetricFile:
    """One file a metric needs. ``store`` is the subfolder of the metrics cache it goes to:
    ``pyiqa`` (flat; fetched from ``repo`` on the hub), ``torch`` (a torch hub folder; fetched from
    ``url``) or ``hub`` (a Hugging Face hub cache, where ``path`` is the file inside ``repo``;
    ``path=""`` means the whole repository)."""

    store: str
    path: str
    url: str = ""
    repo: str = ""
    size: int | None = None  # approximate bytes, where known
    backbone: bool = False  # needed even for a build with random weights (pretrained=False)


def _pyiqa(filename: str, size: int | None = None, backbone: bool = False) -> MetricFile:
    # No url: it is built at download time with hf_hub_url, as pyiqa does (HF_ENDPOINT applies).
    return MetricFile("pyiqa", filename, repo=PYIQA_REPO, size=size, backbone=backbone)


_CLIP_RN50 = MetricFile(
    "torch",
    "clip/RN50.pt",
    backbone=True,
    size=256_000_000,
    url="https://openaipublic.azureedge.net/clip/models/"
    "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
)
_ALEXNET = MetricFile(
    "torch",
    "checkpoints/alexnet-owt-7be5be79.pth",
    backbone=True,
    size=244_000_000,
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
)
_VGG16 = MetricFile(
    "torch",
    "checkpoints/vgg16-397923af.pth",
    backbone=True,
    size=553_000_000,
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
)

# Checked against pyiqa's own URL tables and timm/torchvision's pretrained configs by the tests.
FILES: dict[str, tuple[MetricFile, ...]] = {
    "clipiqa+": (_CLIP_RN50, _pyiqa("CLIP-IQA+_learned_prompts-603f3273.pth")),
    "clipiqa": (_CLIP_RN50,),
    "qalign": (MetricFile("hub", "", repo=QALIGN_REPO, size=16_400_000_000, backbone=True),),
    "musiq": (_pyiqa("musiq_koniq_ckpt-e95806b9.pth"),),
    "maniqa": (
        MetricFile(
            "hub",
            "model.safetensors",
            repo="timm/vit_base_patch8_224.augreg2_in21k_ft_in1k",
            backbone=True,
            size=347_000_000,
        ),
        _pyiqa("ckpt_koniq10k.pt"),
    ),
    "nima": (
        MetricFile(
            "hub",
            "model.safetensors",
            repo="timm/inception_resnet_v2.tf_in1k",
            backbone=True,
            size=224_000_000,
        ),
        _pyiqa("NIMA_InceptionV2_ava-b0c77c00.pth"),
    ),
    "niqe": (_pyiqa("niqe_modelparameters.mat"),),
    "psnr-y": (),
    "psnr-y-full": (),
    "ssim": (),
    "lpips": (_ALEXNET, _pyiqa("LPIPS_v0.1_alex-df73285e.pth")),
    "dists": (_VGG16, _pyiqa("DISTS_weights-f5e65c96.pth")),
    "fid": (_pyiqa("pt_inception-2015-12-05-6726825d.pth", size=95_000_000, backbone=True),),
}


def metrics_dir(cache_dir: Path | str | None = None) -> Path:
    """``<cache root>/metrics``: the cache root is the one ``restore`` uses (``--cache-dir`` /
    ``LUCIDFLUX_CACHE``, else the Hugging Face hub cache)."""
    return cache_root(cache_dir) / "metrics"


def metric_files(name: str, pretrained: bool = True) -> tuple[MetricFile, ...]:
    """The files ``name`` needs (only its backbones when built with random weights)."""
    get(name)
    return tuple(f for f in FILES.get(name, ()) if pretrained or f.backbone)


def local_path(file: MetricFile, cache_dir: Path | str | None = None) -> Path | None:
    """Where ``file`` is in the metrics cache; None when it is not there."""
    root = metrics_dir(cache_dir)
    if file.store != "hub":
        path = root / file.store / file.path
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    hub = root / "hub"
    # A whole repository (Q-Align, downloaded as one snapshot): its config.json stands for it.
    found = try_to_load_from_cache(file.repo, file.path or "config.json", cache_dir=hub)
    if not file.path and isinstance(found, str):
        return Path(found).parent
    return Path(found) if isinstance(found, str) else None


def missing(
    names: Iterable[str], cache_dir: Path | str | None = None, pretrained: bool = True
) -> dict[str, list[MetricFile]]:
    """Metric name -> its files not in the cache (metrics with everything present are left out)."""
    out: dict[str, list[MetricFile]] = {}
    for name in names:
        absent = [f for f in metric_files(name, pretrained) if local_path(f, cache_dir) is None]
        if absent:
            out[name] = absent
    return out


def status(names: Iterable[str] | None = None, cache_dir: Path | str | None = None) -> list[dict[str, Any]]:
    """One row per metric for ``weights list`` / ``doctor``: ``name``, ``cost``, ``opt_in``, ``files``
    (count), ``missing`` (paths not cached) and ``size`` (approximate bytes of all its files, None
    when some size is unknown). Files shared by metrics (CLIP RN50) count for each."""
    rows = []
    for name in names if names is not None else list(FILES):
        files = metric_files(name)
        sizes = [f.size for f in files]
        rows.append(
            {
                "name": name,
                "cost": get(name).cost,
                "opt_in": bool(get(name).opt_in),
                "files": len(files),
                "missing": [f.path or f.repo for f in files if local_path(f, cache_dir) is None],
                "size": None if None in sizes else sum(s for s in sizes if s is not None),
            }
        )
    return rows


def files_markdown() -> str:
    """What each metric downloads, as Markdown (docs/eval.md embeds it)."""
    from lucidflux_cli.weights.registry import format_size

    rows = [
        "| metric | file | into `metrics/` | from | approx. size | also with random weights |",
        "|---|---|---|---|---|---|",
    ]
    for name, files in FILES.items():
        for f in files:
            shown = f.path or "(whole repository)"
            source = f"`{f.repo}`" if f.repo else f.url.split("/")[2]
            rows.append(
                f"| `{name}` | `{shown}` | `{f.store}/` | {source} | {format_size(f.size)} | "
                f"{'yes' if f.backbone else 'no'} |"
            )
        if not files:
            rows.append(f"| `{name}` | none (a formula) | | | | |")
    return "\n".join(rows)


def require(
    names: Iterable[str], cache_dir: Path | str | None = None, pretrained: bool = True, offline: bool = False
) -> None:
    """Offline (``--offline`` / ``HF_HUB_OFFLINE``) with files missing: MetricUnavailable naming the
    first metric that lacks some. Online it does nothing (the build downloads)."""
    if not is_offline(offline):
        return
    for name, files in missing(names, cache_dir, pretrained).items():
        shown = ", ".join(f.path or f.repo for f in files)
        raise MetricUnavailable(name, f"offline and not in {metrics_dir(cache_dir)} ({shown})")


def download(names: Iterable[str], cache_dir: Path | str | None = None, progress: bool = True) -> list[Path]:
    """Fetch every missing file of ``names`` into the metrics cache; returns the paths fetched.

    Offline: MetricUnavailable for the first metric with files missing. A failed transfer:
    MetricUnavailable naming the metric and the cause.
    """
    names = list(names)
    require(names, cache_dir)
    fetched: list[Path] = []
    for name, files in missing(names, cache_dir).items():
        for file in files:
            try:
                fetched.append(_fetch(file, metrics_dir(cache_dir), progress))
            except (OSError, RuntimeError) as error:  # URLError, HTTP errors, hash mismatch
                what = file.path or file.repo
                raise MetricUnavailable(name, f"download of {what} failed: {error}") from error
    return fetched


def _fetch(file: MetricFile, root: Path, progress: bool) -> Path:
    if file.store == "hub":
        from huggingface_hub import hf_hub_download, snapshot_download

        if not file.path:
            return Path(snapshot_download(file.repo, cache_dir=root / "hub"))
        return Path(hf_hub_download(file.repo, file.path, cache_dir=root / "hub"))
    from huggingface_hub import hf_hub_url
    from torch.hub import download_url_to_file

    target = root / file.store / file.path
    target.parent.mkdir(parents=True, exist_ok=True)
    url = hf_hub_url(file.repo, file.path) if file.store == "pyiqa" else file.url
    # OpenAI's CLIP URLs carry the file's sha256 (pyiqa checks it too); the others carry none here.
    sha = url.split("/")[-2] if "openaipublic" in url else None
    download_url_to_file(url, str(target), hash_prefix=sha, progress=progress)
    return target


@contextlib.contextmanager
def redirected(cache_dir: Path | str | None = None, offline: bool = False) -> Iterator[Path]:
    """While building a metric, make pyiqa, torch hub and huggingface_hub use the metrics cache.

    pyiqa offers no argument or variable for its folder: ``DEFAULT_CACHE_DIR`` is computed once at
    import, so it is patched here; ``torch.hub.set_dir`` is torch's public knob (restored after, via
    its private ``_hub_dir``, so other torch hub users keep their folder); huggingface_hub reads
    ``constants.HF_HUB_CACHE`` / ``HF_HUB_OFFLINE`` at call time (timm and transformers call it
    without a ``cache_dir``). Process-wide while it lasts: build metrics from one thread.
    """
    import huggingface_hub.constants as hub_constants
    import pyiqa.utils.download_util as pyiqa_download
    import torch.hub

    root = metrics_dir(cache_dir)
    saved = (
        pyiqa_download.DEFAULT_CACHE_DIR,
        torch.hub._hub_dir,
        hub_constants.HF_HUB_CACHE,
        hub_constants.HF_HUB_OFFLINE,
    )
    pyiqa_download.DEFAULT_CACHE_DIR = os.fspath(root / "pyiqa")
    torch.hub.set_dir(os.fspath(root / "torch"))
    hub_constants.HF_HUB_CACHE = os.fspath(root / "hub")
    hub_constants.HF_HUB_OFFLINE = saved[3] or is_offline(offline)
    try:
        yield root
    finally:
        (
            pyiqa_download.DEFAULT_CACHE_DIR,
            torch.hub._hub_dir,
            hub_constants.HF_HUB_CACHE,
            hub_constants.HF_HUB_OFFLINE,
        ) = saved
