"""benchmarks/memory_model.py: device memory counted on meta tensors, without a GPU."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import memory_model  # noqa: E402

META = torch.device("meta")


def test_live_bytes_counts_allocations_not_views_or_in_place_updates():
    with memory_model.LiveBytes() as tracker:
        a = torch.empty(250, device=META)  # 1000 bytes
        b = torch.empty(500, device=META)  # 2000 bytes
        view = b.view(25, 20)
        b.add_(1.0)
        assert (tracker.live, tracker.peak) == (3000, 3000)
        del a
        c = torch.empty(125, device=META)  # 500 bytes
        assert (tracker.live, tracker.peak) == (2500, 3000)
        del b
        assert tracker.live == 2500  # the view keeps b's storage
        del view, c
        assert tracker.live == 0


def test_attention_is_counted_as_the_fused_kernels_allocate():
    q = torch.empty(1, 24, 4096, 128, device=META, dtype=torch.bfloat16)
    with memory_model.fused_attention_everywhere(), memory_model.LiveBytes() as tracker:
        out = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert out.shape == q.shape
    assert tracker.live == q.numel() * 2  # no 4096 x 4096 score matrix
    assert tracker.peak == q.numel() * 2 + 24 * 4096 * 4  # + the log-sum-exp while it lived


def test_stage_peaks_grow_with_the_image():
    pipeline = memory_model.build(tiny=True)
    small, large = (memory_model.stage_peaks(pipeline, size) for size in (64, 128))
    assert set(small) == {"clean", "encode", "denoise", "decode", "colour fix"}
    assert large["decode"] >= 3 * 128 * 128 * 4  # at least the float32 output
    assert 3.0 < large["decode"] / small["decode"] < 5.0  # activations scale with the pixels
    assert all(large[stage] > small[stage] for stage in small)  # the cleaned image etc. are held throughout


@pytest.mark.slow
def test_full_size_weights_are_flux_dev_sized():
    pipeline = memory_model.build()
    bf16, fp8 = (memory_model.resident_bytes(pipeline.c, p) for p in ("bf16", "fp8"))
    assert bf16["backbone"] / 2 == pytest.approx(11.9e9, rel=0.01)  # FLUX.1-dev's parameters, bf16
    assert 0.49 < fp8["backbone"] / bf16["backbone"] < 0.52  # one byte per block weight (+ row scales)
    assert 0.5 < fp8["condition branches"] / bf16["condition branches"] < 0.6  # blocks float8, embedders not
