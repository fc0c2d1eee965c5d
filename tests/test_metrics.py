"""Metrics library (lucidflux_cli.metrics): the real pyiqa classes on the CPU, no downloads.

PSNR-Y and SSIM are checked against small numpy implementations of their formulas written here;
learned metrics run with random (or synthetic) weights: their numbers mean nothing, but they are
finite and reach the CSV / JSON / Markdown outputs.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lucidflux_cli.errors import LucidFluxError
from lucidflux_cli.metrics import (
    METRICS,
    MetricUnavailable,
    PairingError,
    ScoreError,
    Scorer,
    SizeMismatch,
    cache,
    fid,
    pair,
    parse_metrics,
    registry,
    scoring,
    tables,
)

pyiqa_configs = pytest.importorskip("pyiqa.default_model_configs")


def rng_image(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


def eight_bit(seed: int, height: int, width: int) -> np.ndarray:
    """8-bit values whose 255 * luma is never within 0.05 of a .5 (SSIM rounds it: no float ties)."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (height, width, 3))
    while True:
        frac = (rgb @ np.array([0.299, 0.587, 0.114])) % 1
        bad = np.abs(frac - 0.5) < 0.05
        if not bad.any():
            return (rgb / 255.0).astype(np.float32)
        rgb[bad] = rng.integers(0, 256, (int(bad.sum()), 3))


# ------------------------------------------------------------------------------------- registry


def test_directions_and_kinds_agree_with_pyiqa():
    for name, metric in METRICS.items():
        config = pyiqa_configs.DEFAULT_CONFIGS[metric.pyiqa_name]
        assert metric.higher_better is not config.get("lower_better", False), name
        assert metric.full_reference == (config["metric_mode"] == "FR"), name
    assert [m for m in METRICS if METRICS[m].folder_level] == ["fid"]


def test_parse_metrics_and_defaults():
    assert parse_metrics("musiq, NIQE,musiq") == ("musiq", "niqe")
    assert parse_metrics(["psnr-y", "ssim"]) == ("psnr-y", "ssim")
    with pytest.raises(ValueError, match=r"psnry is two conventions now: psnr-y .* or psnr-y-full"):
        parse_metrics("psnry")
    with pytest.raises(ValueError, match=r"unknown metric 'brisqe'; known: clipiqa\+, qalign") as info:
        parse_metrics("musiq,brisqe")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="no metric given"):
        parse_metrics(" , ")
    assert registry.default_metrics() == ("clipiqa+", "musiq", "maniqa", "nima", "clipiqa", "niqe")
    assert registry.default_metrics(reference=True)[-4:] == ("psnr-y", "ssim", "lpips", "dists")
    assert METRICS["qalign"].cost == "large" and "8B" in METRICS["qalign"].opt_in
    assert all(METRICS[n].cost in registry.COSTS for n in METRICS)
    assert "PolyForm Noncommercial" in registry.PYIQA_LICENCE
    assert "| NIQE | `niqe` | ↓ |" in registry.metrics_markdown()


def test_file_table_agrees_with_pyiqa_timm_and_torchvision():
    import timm
    import torchvision.models as tvm
    from pyiqa.archs import dists_arch, inception, lpips_arch, maniqa_arch, musiq_arch, nima_arch, niqe_arch

    def pyiqa_names(name: str) -> set[str]:
        return {f.path for f in cache.metric_files(name) if f.store == "pyiqa"}

    tail = lambda url: url.rsplit("/", 1)[-1]  # noqa: E731
    assert pyiqa_names("musiq") == {tail(musiq_arch.default_model_urls["koniq10k"])}
    assert pyiqa_names("maniqa") == {tail(maniqa_arch.default_model_urls["koniq"])}
    assert pyiqa_names("nima") == {tail(nima_arch.default_model_urls["inception_resnet_v2-ava"])}
    assert pyiqa_names("niqe") == {tail(niqe_arch.default_model_urls["url"])}
    assert pyiqa_names("lpips") == {tail(lpips_arch.default_model_urls["0.1_alex"])}
    assert pyiqa_names("dists") == {tail(dists_arch.default_model_urls["url"])}
    assert pyiqa_names("fid") == {tail(inception.FID_WEIGHTS_URL)}
    # clipiqa_arch imports openai-clip (needs pkg_resources): read its source instead of importing it.
    source = (Path(maniqa_arch.__file__).parent / "clipiqa_arch.py").read_text()
    assert f"'clipiqa+': get_url_from_name('{next(iter(pyiqa_names('clipiqa+')))}')" in source
    clip_source = (Path(maniqa_arch.__file__).parent / "clip_model.py").read_text()
    assert f"'RN50': '{cache._CLIP_RN50.url}'" in clip_source

    torch_files = {f.path for n in ("lpips", "dists") for f in cache.metric_files(n) if f.store == "torch"}
    assert torch_files == {
        "checkpoints/" + tail(tvm.AlexNet_Weights.IMAGENET1K_V1.url),
        "checkpoints/" + tail(tvm.VGG16_Weights.IMAGENET1K_V1.url),
    }
    for name, arch in (("maniqa", "vit_base_patch8_224"), ("nima", "inception_resnet_v2")):
        (hub_file,) = [f for f in cache.metric_files(name) if f.store == "hub"]
        assert hub_file.repo == timm.models.get_pretrained_cfg(arch).hf_hub_id
    assert cache.metric_files("psnr-y") == () and cache.metric_files("musiq", pretrained=False) == ()


# ---------------------------------------------------------------------------------------- cache


def test_redirected_points_pyiqa_torch_and_hub_into_the_metrics_cache(tmp_path):
    import huggingface_hub.constants as hub
    import pyiqa.utils.download_util as download_util

    before = (download_util.DEFAULT_CACHE_DIR, torch.hub.get_dir(), hub.HF_HUB_CACHE)
    with cache.redirected(tmp_path) as root:
        assert root == tmp_path / "metrics"
        assert str(root / "pyiqa") == download_util.DEFAULT_CACHE_DIR
        assert torch.hub.get_dir() == str(root / "torch")
        assert str(root / "hub") == hub.HF_HUB_CACHE
    assert (download_util.DEFAULT_CACHE_DIR, torch.hub.get_dir(), hub.HF_HUB_CACHE) == before


def test_offline_with_an_empty_cache_names_the_metric(tmp_path, monkeypatch):
    images = [rng_image(0, 200, 200)]
    with pytest.raises(MetricUnavailable) as info:
        Scorer("psnr-y,niqe", cache_dir=tmp_path, offline=True).check()
    message = str(info.value)
    assert message.startswith("metric niqe: offline") and "niqe_modelparameters.mat" in message
    assert "`lucidflux weights download --metrics niqe`" in message and "\n" not in message
    assert isinstance(info.value, LucidFluxError) and info.value.name == "niqe"
    with pytest.raises(MetricUnavailable, match="metric musiq"):
        Scorer("musiq", cache_dir=tmp_path, offline=True).score(images)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MetricUnavailable, match="metric lpips: offline .*alexnet-owt-7be5be79.pth"):
        cache.download(["psnr-y", "lpips"], tmp_path)
    assert not (tmp_path / "metrics" / "pyiqa").exists()  # nothing fetched, nothing created


def write_niqe_params(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = scoring.untrained_options("niqe", path.parent)
    Path(options["pretrained_model_path"]).rename(path)
    return path


def fake_hub_file(hub: Path, repo: str, filename: str) -> None:
    """A file in a Hugging Face cache layout (what hf_hub_download leaves)."""
    folder = hub / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_bytes(b"fake")


def test_files_present_in_the_metrics_cache_are_used_offline(tmp_path):
    root = cache.metrics_dir(tmp_path)
    write_niqe_params(root / "pyiqa" / "niqe_modelparameters.mat")
    fake_hub_file(root / "hub", "timm/vit_base_patch8_224.augreg2_in21k_ft_in1k", "model.safetensors")
    assert cache.missing(["niqe", "psnr-y"], tmp_path) == {}
    assert cache.missing(["maniqa"], tmp_path, pretrained=False) == {}
    assert [f.path for f in cache.missing(["maniqa"], tmp_path)["maniqa"]] == ["ckpt_koniq10k.pt"]
    image = rng_image(1, 200, 200)
    # The "real" NIQE build reads its parameters from <cache>/metrics/pyiqa, offline.
    real = Scorer("niqe", cache_dir=tmp_path, offline=True).score([image])
    untrained = Scorer("niqe", cache_dir=tmp_path, pretrained=False).score([image])
    assert real == untrained and np.isfinite(real[0]["niqe"])


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """The local fake hub (tests/fake_hub.py) in place of huggingface.co; nothing else reachable."""
    import socket

    from fake_hub import FakeHub
    from huggingface_hub import constants
    from huggingface_hub.utils import close_session

    hub = FakeHub().start()
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    close_session()
    real = socket.create_connection

    def local_only(address, *args, **kwargs):
        assert address[0] in ("127.0.0.1", "localhost"), f"test tried to reach {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", local_only)
    yield hub
    hub.stop()
    close_session()


def test_download_fills_the_metrics_cache_then_offline_works(fake_hub, tmp_path):
    params = write_niqe_params(tmp_path / "made" / "niqe.mat").read_bytes()
    fake_hub.add_repo(cache.PYIQA_REPO, {"niqe_modelparameters.mat": params, "ckpt_koniq10k.pt": b"maniqa"})
    fake_hub.add_repo("timm/vit_base_patch8_224.augreg2_in21k_ft_in1k", {"model.safetensors": b"vit"})
    fetched = cache.download(["niqe", "maniqa", "psnr-y"], tmp_path / "c", progress=False)
    root = cache.metrics_dir(tmp_path / "c")
    assert {p.name for p in fetched} == {"niqe_modelparameters.mat", "ckpt_koniq10k.pt", "model.safetensors"}
    assert (root / "pyiqa" / "niqe_modelparameters.mat").read_bytes() == params
    assert cache.missing(["niqe", "maniqa"], tmp_path / "c") == {}
    assert cache.download(["niqe"], tmp_path / "c") == []  # nothing left to fetch
    rows = {r["name"]: r for r in cache.status(cache_dir=tmp_path / "c")}
    assert rows["niqe"]["missing"] == [] and rows["psnr-y"] == {**rows["psnr-y"], "files": 0, "size": 0}
    assert rows["lpips"]["missing"] == [
        "checkpoints/alexnet-owt-7be5be79.pth",
        "LPIPS_v0.1_alex-df73285e.pth",
    ]
    assert rows["qalign"]["opt_in"] and rows["qalign"]["cost"] == "large"
    score = Scorer("niqe", cache_dir=tmp_path / "c", offline=True).score([rng_image(0, 200, 200)])
    assert np.isfinite(score[0]["niqe"])
    with pytest.raises(
        MetricUnavailable, match=r"^metric musiq: download of musiq_koniq_ckpt-e95806b9.pth failed"
    ):
        cache.download(["musiq"], tmp_path / "c", progress=False)  # the fake hub has no such file


# -------------------------------------------------------------------------------------- scoring


def psnr_y(x: np.ndarray, y: np.ndarray, border: int = 0) -> float:
    """pyiqa's psnry (our psnr-y-full): luma 0.299 R + 0.587 G + 0.114 B (YIQ's Y) in [0, 1],
    10 log10(1 / (MSE + 1e-8)), ``border`` pixels off every side first."""
    if border:
        x, y = x[border:-border, border:-border], y[border:-border, border:-border]
    weights = np.array([0.299, 0.587, 0.114])
    mse = np.mean((x.astype(np.float64) @ weights - y.astype(np.float64) @ weights) ** 2)
    return float(10 * np.log10(1.0 / (mse + 1e-8)))


def psnr_y_ycbcr(x: np.ndarray, y: np.ndarray) -> float:
    """BasicSR's calculate_psnr(test_y_channel=True): BT.601 YCbCr Y = 16 + 65.481 R + 128.553 G +
    24.966 B on [0, 255], PSNR with peak 255 (on [0, 1] as pyiqa: /255, eps 1e-8)."""
    weights = np.array([65.481, 128.553, 24.966])
    a, b = ((16 + i.astype(np.float64) @ weights) / 255 for i in (x, y))
    return float(10 * np.log10(1.0 / (np.mean((a - b) ** 2) + 1e-8)))


def ssim_y(x: np.ndarray, y: np.ndarray) -> float:
    """pyiqa's ssim: luma rounded to 0..255, 11x11 Gaussian (sigma 1.5), 'valid', C1=(0.01*255)^2,
    C2=(0.03*255)^2, contrast-structure term clipped at 0, mean of the map."""
    weights = np.array([0.299, 0.587, 0.114])
    a, b = (np.round(255 * (i.astype(np.float64) @ weights)) for i in (x, y))
    grid = np.arange(11) - 5.0
    g = np.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / (2 * 1.5**2))
    g /= g.sum()

    def filt(img: np.ndarray) -> np.ndarray:
        return np.einsum("ijkl,kl->ij", np.lib.stride_tricks.sliding_window_view(img, (11, 11)), g)

    mu1, mu2 = filt(a), filt(b)
    s11, s22, s12 = filt(a * a) - mu1**2, filt(b * b) - mu2**2, filt(a * b) - mu1 * mu2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    cs = np.maximum((2 * s12 + c2) / (s11 + s22 + c2), 0)
    return float(np.mean((2 * mu1 * mu2 + c1) / (mu1**2 + mu2**2 + c1) * cs))


def test_psnr_y_and_ssim_match_the_formulas(tmp_path):
    refs = [eight_bit(10, 40, 48), eight_bit(11, 40, 48), eight_bit(12, 24, 32)]
    noisy = [
        np.clip(r + np.random.default_rng(i).normal(0, 0.04, r.shape), 0, 1).astype(np.float32)
        for i, r in enumerate(refs)
    ]
    noisy[1] = eight_bit(13, 40, 48)  # unrelated content: low SSIM
    rows = Scorer("psnr-y-full,ssim", cache_dir=tmp_path, offline=True, batch_size=2).score(noisy, refs)
    for row, image, ref in zip(rows, noisy, refs, strict=True):
        assert row["psnr-y-full"] == pytest.approx(psnr_y(image, ref), rel=1e-5, abs=1e-4)
        assert row["ssim"] == pytest.approx(ssim_y(image, ref), rel=1e-6, abs=1e-7)
    assert rows[0]["ssim"] > rows[1]["ssim"]
    # Identical images: SSIM 1, PSNR at pyiqa's 1e-8 floor (80 dB).
    same = Scorer("psnr-y-full,ssim", cache_dir=tmp_path).score(
        [refs[2]], [torch.from_numpy(refs[2]).permute(2, 0, 1)]
    )
    assert same[0]["ssim"] == pytest.approx(1.0, abs=1e-12) and same[0]["psnr-y-full"] == pytest.approx(80.0)


def test_the_two_psnr_y_conventions_differ_by_20_log10_255_over_219(tmp_path):
    refs = [eight_bit(20, 40, 48), eight_bit(21, 40, 48)]
    noisy = [
        np.clip(r + np.random.default_rng(i).normal(0, 0.05, r.shape), 0, 1).astype(np.float32)
        for i, r in enumerate(refs)
    ]
    rows = Scorer("psnr-y,psnr-y-full", cache_dir=tmp_path, offline=True).score(noisy, refs)
    offset = 20 * np.log10(255 / 219)  # 1.32 dB: the same error is 219/255 as large on studio-range Y
    for row, image, ref in zip(rows, noisy, refs, strict=True):
        assert row["psnr-y"] == pytest.approx(psnr_y_ycbcr(image, ref), abs=1e-4)  # BasicSR's number
        assert row["psnr-y"] - row["psnr-y-full"] == pytest.approx(offset, abs=1e-4)
    assert abs(registry.YCBCR_OFFSET_DB - offset) < 1e-12


def test_crop_border_takes_pixels_off_every_side_before_psnr_and_ssim(tmp_path):
    ref = eight_bit(30, 40, 48)
    image = ref.copy()
    image[:3] = 1 - image[:3]  # the error sits in the top 3 rows only
    image[10:20, 10:20] = np.clip(image[10:20, 10:20] + 0.1, 0, 1)
    whole, cropped = (
        Scorer("psnr-y-full,ssim", cache_dir=tmp_path, crop_border=border).score([image], [ref])[0]
        for border in (0, 4)
    )
    assert whole["psnr-y-full"] == pytest.approx(psnr_y(image, ref), abs=1e-4)
    assert cropped["psnr-y-full"] == pytest.approx(psnr_y(image, ref, border=4), abs=1e-4)
    assert cropped["psnr-y-full"] > whole["psnr-y-full"] + 5
    assert cropped["ssim"] == pytest.approx(ssim_y(image[4:-4, 4:-4], ref[4:-4, 4:-4]), rel=1e-6, abs=1e-7)
    assert [m for m in METRICS if METRICS[m].crops_border] == ["psnr-y", "psnr-y-full", "ssim"]  # as BasicSR
    with pytest.raises(ScoreError, match=r"crop border of 24 px leaves nothing"):
        Scorer("psnr-y", cache_dir=tmp_path, crop_border=24).score([image], [ref], labels=["small.png"])


def test_size_mismatch_names_the_file_and_tiny_images_fail_clearly(tmp_path):
    scorer = Scorer("psnr-y,niqe", cache_dir=tmp_path, pretrained=False)
    with pytest.raises(SizeMismatch) as info:
        scorer.score(
            [rng_image(0, 32, 32), rng_image(1, 32, 40)],
            [rng_image(2, 32, 32), rng_image(3, 32, 32)],
            labels=["a.png", "sub/b.png"],
        )
    assert str(info.value) == (
        "sub/b.png: 40x32 but its reference is 32x32; full-reference metrics need the same size"
    )
    assert info.value.label == "sub/b.png"
    with pytest.raises(ScoreError, match=r"^niqe failed on tiny.png \(40x30\): RuntimeError"):
        scorer.score([rng_image(0, 30, 40)], labels=["tiny.png"])
    # In a batch, the image at fault is found and named; with errors="skip" the others are scored.
    blank = np.zeros((200, 200, 3), np.float32)
    with pytest.raises(ScoreError, match=r"^niqe failed on blank.png \(200x200\)") as info:
        scorer.score([rng_image(0, 200, 200), blank], labels=["ok.png", "blank.png"])
    assert (info.value.label, info.value.metric) == ("blank.png", "niqe")
    rows = scorer.score([rng_image(0, 200, 200), blank], labels=["ok.png", "blank.png"], errors="skip")
    assert set(rows[0]) == {"niqe"} and rows[1] == {}
    assert [(e.label, e.metric) for e in scorer.failures] == [("blank.png", "niqe")]
    assert scorer.score([rng_image(0, 30, 40)], labels=["tiny.png"], errors="skip") == [{}]
    assert [e.label for e in scorer.failures] == ["blank.png", "tiny.png"]


def test_untrained_no_reference_metrics_reach_csv_json_and_markdown(tmp_path):
    images = [rng_image(i, 192, 192) for i in range(3)]
    scorer = Scorer("musiq,niqe", cache_dir=tmp_path, offline=True, pretrained=False, batch_size=2)
    scores = scorer.score(images, labels=["a.png", "b.png", "c.png"])
    assert [sorted(s) for s in scores] == [["musiq", "niqe"]] * 3
    assert all(np.isfinite(v) for s in scores for v in s.values())
    one_by_one = [scorer.score([image])[0] for image in images]
    for batched, single in zip(scores, one_by_one, strict=True):
        assert batched == pytest.approx(single, rel=1e-4, abs=1e-5)
    scorer.close()

    rows = [{"folder": "runA", "file": f, **s} for f, s in zip(("a.png", "b.png"), scores[:2], strict=True)]
    rows.append({"folder": "runB", "file": "c.png", **scores[2]})
    parsed = list(csv.DictReader(io.StringIO(tables.rows_csv(rows, ["musiq", "niqe"]))))
    assert [r["file"] for r in parsed] == ["a.png", "b.png", "c.png"]
    assert float(parsed[0]["niqe"]) == scores[0]["niqe"]
    lines = [json.loads(line) for line in tables.rows_jsonl(rows).splitlines()]
    assert lines[2] == {"folder": "runB", "file": "c.png", **scores[2]}
    summary = tables.summary(rows, ["musiq", "niqe"], {"runA": {"fid": 12.5}})
    assert summary["runA"]["count"] == 2 and summary["runA"]["mean"]["fid"] == 12.5
    assert summary["runA"]["mean"]["niqe"] == pytest.approx((scores[0]["niqe"] + scores[1]["niqe"]) / 2)
    assert json.loads(tables.summary_json(summary)) == summary
    table = tables.summary_markdown(summary, ["musiq", "niqe", "fid"])
    assert "| metric | runA | runB |" in table
    assert tables.format_value(scores[2]["niqe"]) in table and "| FID ↓ | 12.50 | – |" in table


def test_fid_on_arrays_matches_pyiqa_folder_preprocessing_and_formula(tmp_path):
    from PIL import Image
    from pyiqa.archs.fid_arch import ResizeDataset

    pixels = np.random.default_rng(5).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    ours = fid.preprocess(pixels.astype(np.float32) / 255)
    theirs = ResizeDataset([tmp_path / "x.png"], mode="clean")[0]
    assert ours.shape == (3, 299, 299) and torch.allclose(ours, theirs, atol=2e-3)

    class MeanColour(torch.nn.Module):  # stands in for the Inception: features = mean colour
        def forward(self, x, resize_input, normalize_input):
            return [x.mean(dim=(2, 3), keepdim=True)]

    feats = fid.features(MeanColour(), [pixels / 255.0 for _ in range(3)], batch_size=2)
    assert feats.shape == (3, 3)
    rng = np.random.default_rng(0)
    first = rng.normal(size=(64, 4))
    assert fid.distance(first, first) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 2.0, 0.0, -2.0])
    assert fid.distance(first, first + shift) == pytest.approx(9.0, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 images"):
        fid.distance(first[:1], first)


# ------------------------------------------------------------------------------- pairing, tables


def test_pairing_by_relative_path():
    result = pair(
        ["a.png", "sub/b.png", "c.png", "d.avif", "d.jpg", "extra.png"],
        ["a.png", "sub/b.jpg", "c.tif", "d.jpg", "unused.png", "sub/z.png"],
    )
    assert result.pairs == [
        ("a.png", "a.png"),
        ("c.png", "c.tif"),
        ("d.jpg", "d.jpg"),
        ("sub/b.png", "sub/b.jpg"),
    ]
    assert result.unpaired == ["d.avif", "extra.png"]
    assert result.unused == ["sub/z.png", "unused.png"]
    assert result.describe() == (
        "4 paired; 2 without a reference (d.avif, extra.png); 2 references unused (sub/z.png, unused.png)"
    )
    assert pair(["a\\b.png"], ["a/b.png"]).pairs == [("a/b.png", "a/b.png")]
    with pytest.raises(
        PairingError, match=r"^x.png: more than one reference could pair with it \(x.jpg, x.tif\)"
    ):
        pair(["x.png"], ["x.jpg", "x.tif"])
    for bad in ("/abs.png", "../up.png", ""):
        with pytest.raises(PairingError, match="not a relative path"):
            pair([bad], [])


def test_markdown_table_marks_the_best_per_direction():
    columns = {
        "steps 20": {"musiq": 70.5, "niqe": 4.1, "psnr-y": 24.0},
        "steps 50": {"musiq": 72.25, "niqe": 3.9, "psnr-y": 24.0},
        "tiles": {"musiq": 68.0, "niqe": float("nan")},
    }
    table = tables.markdown_table(columns)
    lines = table.splitlines()
    assert lines[0] == "| metric | steps 20 | steps 50 | tiles |"
    assert "| MUSIQ ↑ | 70.50 | **72.25** | 68.00 |" in lines  # higher is better
    assert "| NIQE ↓ | 4.1000 | **3.9000** | – |" in lines  # lower is better; NaN is left out
    assert "| PSNR-Y (YCbCr) ↑ | **24.00** | **24.00** | – |" in lines  # ties are all marked
    with_paper = tables.markdown_table(
        {"ours": {"niqe": 3.5, "musiq": 60.0}, tables.PAPER_COLUMN: tables.PAPER_LUCIDFLUX_REALLQ250},
        ["musiq", "niqe"],
    )
    assert (
        "| MUSIQ ↑ | 60.00 | **73.01** |" in with_paper and "| NIQE ↓ | **3.5000** | 3.6742 |" in with_paper
    )
    assert tables.PAPER_LUCIDFLUX_REALLQ250 == {
        "clipiqa+": 0.7406,
        "qalign": 4.3935,
        "musiq": 73.01,
        "maniqa": 0.5589,
        "nima": 5.4836,
        "clipiqa": 0.7122,
        "niqe": 3.6742,
    }


def test_got_worse_follows_each_direction():
    before = {"musiq": 60.0, "niqe": 5.0, "clipiqa": 0.5}
    after = {"musiq": 55.0, "niqe": 4.0, "clipiqa": 0.5, "maniqa": 0.3}
    assert tables.got_worse(before, after) == ["musiq"]
    assert tables.got_worse(after, before) == ["niqe"]
    assert tables.got_worse(before, after, margin=5.0) == []


def test_docs_embed_the_generated_tables():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "eval.md").read_text()
    assert registry.metrics_markdown() in docs, "regenerate the metrics table in docs/eval.md"
    assert cache.files_markdown() in docs, "regenerate the files table in docs/eval.md"
