import math

import pytest
import torch

from lucidflux_cli.model import sampling
from lucidflux_cli.model.colorfix import wavelet_color_fix, wavelet_split
from lucidflux_cli.model.sizes import crop_to_aspect, output_size, parse_size


def test_pack_unpack_round_trip_and_token_layout():
    latents = torch.arange(2 * 16 * 4 * 6, dtype=torch.float32).reshape(2, 16, 4, 6)
    tokens = sampling.pack_latents(latents)
    assert tokens.shape == (2, 2 * 3, 64)
    # token (row 0, col 1) holds channel 0's 2x2 patch at columns 2..3 first
    assert tokens[0, 1, :4].tolist() == [2.0, 3.0, 8.0, 9.0]
    assert torch.equal(sampling.unpack_latents(tokens, 32, 48), latents)


def test_noise_is_seeded_and_shaped_for_odd_sizes():
    a = sampling.make_noise(40, 72, 7, torch.device("cpu"), torch.float32)
    b = sampling.make_noise(40, 72, 7, torch.device("cpu"), torch.float32)
    assert a.shape == (1, 16, 2 * math.ceil(40 / 16), 2 * math.ceil(72 / 16))
    assert torch.equal(a, b)
    assert not torch.equal(a, sampling.make_noise(40, 72, 8, torch.device("cpu"), torch.float32))


def test_schedule_uses_the_reference_sequence_length_quirk():
    # 1024x1024: the reference interpolates mu at 64 (not 4096 tokens) -> mu below base shift
    assert sampling.schedule_mu(1024, 1024) == pytest.approx(0.5 + 0.65 * (64 - 256) / 3840)
    times = sampling.timesteps(20, 1024, 1024)
    assert len(times) == 21 and times[0] == 1.0 and times[-1] == 0.0
    assert all(a > b for a, b in zip(times, times[1:], strict=False))
    mu = sampling.schedule_mu(1024, 1024)
    t = 0.5
    assert times[10] == pytest.approx(math.exp(mu) / (math.exp(mu) + (1 / t - 1)), rel=1e-6)


def test_positions():
    ids = sampling.image_positions(32, 48)
    assert ids.shape == (6, 3)
    assert ids[:, 0].eq(0).all() and ids[4].tolist() == [0.0, 1.0, 1.0]


def test_wavelet_color_fix_takes_colour_from_the_source_and_detail_from_the_content():
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 64, 64, generator=generator) * 0.2 + 0.3
    source = torch.full((1, 3, 64, 64), 0.7)
    fixed = wavelet_color_fix(content, source)
    assert fixed.mean().item() == pytest.approx(0.7, abs=0.02)
    high_content, _ = wavelet_split(content)
    high_fixed, _ = wavelet_split(fixed)
    # the decomposition is not an exact projection, but the detail survives almost unchanged
    assert (high_content - high_fixed).abs().mean() < 0.1 * high_content.abs().mean()
    assert wavelet_color_fix(source, source).sub(source).abs().max() < 1e-6


def test_sizes():
    assert parse_size("1024x768") == (1024, 768)
    assert parse_size("1024x") == (1024, 0)
    for bad in ("", "x", "abc", "0x0", "10"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert output_size((333, 517), None) == (333, 517)
    assert output_size((400, 300), (800, 0)) == (800, 600)
    assert output_size((400, 300), (0, 150)) == (200, 150)
    assert crop_to_aspect((400, 300), (800, 600)) == (0, 0, 400, 300)
    assert crop_to_aspect((400, 300), (300, 300)) == (50, 0, 350, 300)
    assert crop_to_aspect((300, 400), (300, 300)) == (0, 50, 300, 350)
