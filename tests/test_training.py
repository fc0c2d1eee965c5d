"""The training library (issue 15) at tiny size: CPU, random weights written by the tests."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from lucidflux_cli import manifests
from lucidflux_cli.model import sampling
from lucidflux_cli.model.components import load_components
from lucidflux_cli.model.loading.models import load_dual_branch, read_lucidflux
from lucidflux_cli.model.pipeline import LucidFluxPipeline, RestoreSettings
from lucidflux_cli.training import checkpoint, objective, timesteps
from lucidflux_cli.training.cache import CachedPairs, build_cache, cached_pairs, encode_pair
from lucidflux_cli.training.loop import Trainer, TrainOptions
from lucidflux_cli.training.pairs import PairError, TrainingPair, check_sizes, find_pairs
from lucidflux_cli.training.step import Batch, ConditionTrainer, Draws, enable_gradient_checkpointing
from lucidflux_cli.training.trainable import (
    LoraOptions,
    from_scratch,
    frozen_modules,
    part_modules,
    prepare_trainable,
)

CPU = torch.device("cpu")
SIZE = 32  # px: 2x2 latent tokens; SigLIP still sees 512 px (1024 tokens)


def fresh_pipeline(tiny_paths, lucidflux=None) -> LucidFluxPipeline:
    paths = tiny_paths if lucidflux is None else dataclasses.replace(tiny_paths, lucidflux=lucidflux)
    return LucidFluxPipeline(load_components(paths, CPU, torch.float32), CPU, torch.float32)


def picture(size: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x, y, 1 - x * y], axis=-1) * 200 + rng.normal(0, 25, (size, size, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def write_folder_pairs(root, count: int = 2, size: int = SIZE):
    for side in ("hq", "lq"):
        (root / side).mkdir(parents=True)
    for i in range(count):
        hq = picture(size, i)
        hq.save(root / "hq" / f"p{i}.png")
        hq.resize((size // 4, size // 4), Image.BICUBIC).save(root / "lq" / f"p{i}.png")
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on 2 shared cores, two spinning OpenMP threads per process slowed these
    tiny steps by up to 50x whenever another process was busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def samples(tiny_paths, tmp_path_factory) -> list[dict[str, torch.Tensor]]:
    """Two cached pairs (frozen models' outputs), computed once for the module.

    Only the first 16 of SigLIP's 1024 feature tokens are kept: the connector is per token and the
    backbone takes any context length, and 32 context tokens instead of 1040 make a step ~10x faster.
    """
    root = write_folder_pairs(tmp_path_factory.mktemp("pairs"))
    pipeline = fresh_pipeline(tiny_paths)
    encoded = [encode_pair(pipeline, pair) for pair in find_pairs(root)]
    return [{**sample, "features": sample["features"][:16]} for sample in encoded]


def trainer(tiny_paths, samples, **options) -> Trainer:
    torch.manual_seed(0)
    return Trainer(fresh_pipeline(tiny_paths), CachedPairs(samples), TrainOptions(**options))


def trainable_tensors(pipeline) -> dict[str, torch.Tensor]:
    return {
        f"{part}.{k}": v.detach().clone()
        for part, m in part_modules(pipeline.c).items()
        for k, v in m.state_dict().items()
    }


# --- 1. timesteps ------------------------------------------------------------------------------


def test_clamped_uniform_puts_eps_over_1_plus_2eps_at_each_end():
    options = timesteps.TimestepOptions("clamped-uniform", epsilon=0.05, shift=False)
    t = timesteps.draw(400_000, options, torch.Generator().manual_seed(0))
    expected = 0.05 / 1.1
    assert abs(float((t == 0).float().mean()) - expected) < 0.002
    assert abs(float((t == 1).float().mean()) - expected) < 0.002
    inner = t[(t > 0) & (t < 1)]
    assert abs(float(inner.mean()) - 0.5) < 0.005  # uniform between the ends


def test_logit_normal_and_uniform_statistics():
    generator = torch.Generator().manual_seed(1)
    t = timesteps.draw(200_000, timesteps.TimestepOptions("logit-normal", mean=0.5, std=0.8), generator)
    logits = torch.logit(t.double())
    assert abs(float(logits.mean()) - 0.5) < 0.01 and abs(float(logits.std()) - 0.8) < 0.01
    u = timesteps.draw(200_000, timesteps.TimestepOptions("uniform"), generator)
    assert float(u.min()) >= 0 and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.005
    assert abs(float(u.var()) - 1 / 12) < 0.002


def test_timesteps_are_deterministic_and_shifted_like_the_inference_schedule():
    options = timesteps.TimestepOptions()
    a = timesteps.sample_timesteps(64, options, 1024, 1024, torch.Generator().manual_seed(3))
    b = timesteps.sample_timesteps(64, options, 1024, 1024, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    grid = torch.linspace(1, 0, 21)
    assert timesteps.resolution_shift(grid, 768, 512).tolist() == sampling.timesteps(20, 768, 512)
    unshifted = timesteps.sample_timesteps(
        64, dataclasses.replace(options, shift=False), 1024, 1024, torch.Generator().manual_seed(3)
    )
    assert bool((a >= unshifted).all()) and bool((a > unshifted).any())  # shifted towards noise
    with pytest.raises(ValueError, match="unknown timestep sampler"):
        timesteps.TimestepOptions("cosine")


# --- 2. the objective against the inference sampler ------------------------------------------


def test_sampler_convention_euler_round_trip(tiny_paths):
    """Patch the pipeline's velocity with the training target's field and run its own denoise loop."""
    pipeline = fresh_pipeline(tiny_paths)
    settings = RestoreSettings(steps=6, seed=5)
    lq = pipeline.lq_image([picture(SIZE, 0)], (SIZE, SIZE))
    plan = pipeline.plan(lq, settings.tiles)
    cleaned = pipeline.clean(lq, plan)
    context = pipeline.encode_context(cleaned)
    x0 = torch.randn(1, 16, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(9))
    noise = sampling.make_noise(SIZE, SIZE, settings.seed, CPU, torch.float32)
    seen = []

    def true_field(tokens, t_curr, fixed):
        # Every Euler step of the sampler lands on the training path x_s = (1 - s) x0 + s noise ...
        seen.append((t_curr, tokens.clone()))
        return sampling.pack_latents(objective.velocity_target(x0, noise))  # ... with the target noise - x0

    pipeline.velocity = true_field
    out = pipeline.denoise(lq, cleaned, context, settings, plan)
    assert torch.allclose(out, x0, atol=1e-5)
    for t_curr, tokens in seen:
        expected = sampling.pack_latents(objective.noisy_latents(x0, noise, torch.tensor([t_curr])))
        assert torch.allclose(tokens, expected, atol=1e-5)
    # The field v(x, s) = (x - x0) / s of the same path, integrated by the sampler, also ends at x0.
    x0_tokens = sampling.pack_latents(x0)
    pipeline.velocity = lambda tokens, t_curr, fixed: (tokens - x0_tokens) / t_curr
    assert torch.allclose(pipeline.denoise(lq, cleaned, context, settings, plan), x0, atol=1e-5)
    s = torch.tensor([0.3])
    x_s = objective.noisy_latents(x0, noise, s)
    assert torch.allclose(
        objective.predicted_clean(x_s, s, objective.velocity_target(x0, noise)), x0, atol=1e-6
    )


# --- 3. what trains --------------------------------------------------------------------------


def test_frozen_weights_bit_identical_trainable_changed(tiny_paths, samples):
    run = trainer(tiny_paths, samples, pixel_loss=1.0, pixel_crop=16, batch_size=2)
    c = run.pipeline.c
    frozen = {
        name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in frozen_modules(c).items()
    }
    prompt = (c.txt.clone(), c.vec.clone())
    before = trainable_tensors(run.pipeline)
    losses = run.run(3).losses
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    for name, module in frozen_modules(c).items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, frozen[name][key]), f"{name}.{key} changed"
    assert torch.equal(c.txt, prompt[0]) and torch.equal(c.vec, prompt[1])
    after = trainable_tensors(run.pipeline)
    for part in part_modules(c):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part + ".")), part


def test_from_scratch_adds_exactly_nothing_at_step_zero(tiny_paths, samples):
    pipeline = fresh_pipeline(tiny_paths)
    pipeline = LucidFluxPipeline(from_scratch(pipeline.c, seed=1), CPU, torch.float32)
    prepare_trainable(pipeline.c)
    model = ConditionTrainer(pipeline)
    batch = Batch(**{k: v[None] for k, v in CachedPairs(samples).sample(0).items()})
    tokens = sampling.pack_latents(
        torch.randn(batch.latents.shape, generator=torch.Generator().manual_seed(2))
    )
    s = torch.tensor([0.7])
    semantic = pipeline.c.connector(batch.features).image_embeds
    context = torch.cat([pipeline.c.txt, semantic], dim=1)
    hints = pipeline.c.dual_branch.hints(batch.lq, batch.ldr)
    fixed = pipeline.step_inputs(context, 4.0, sampling.image_positions(SIZE, SIZE), hints)
    residuals = pipeline.c.dual_branch(tokens, s, fixed.branch_text, fixed.branch_rope, fixed.hints)
    assert len(residuals) == 19 and all(not r.any() for r in residuals)  # exactly zero
    own = pipeline.backbone(
        tokens, s, fixed.backbone_text, fixed.backbone_rope, [torch.zeros_like(r) for r in residuals]
    )
    assert torch.equal(model.velocity(tokens, s, batch, SIZE, SIZE), own)
    # ... and gradients reach the zero-initialised outputs, so training can start from there.
    loss = model(batch, Draws(s, torch.randn(batch.latents.shape)))["loss"]
    loss.backward()
    assert pipeline.c.dual_branch.modulation_lq.linear.bias.grad.abs().sum() > 0
    assert pipeline.c.dual_branch.lq.controlnet_blocks[0].weight.grad.abs().sum() > 0


def test_lora_trains_adapters_and_exports_merged_weights(tiny_paths, samples, tmp_path):
    run = trainer(tiny_paths, samples, lora=LoraOptions(rank=2), learning_rate=1e-3)
    lq = run.pipeline.c.dual_branch.lq
    base = lq.transformer_blocks[0].attn.to_q.base_layer.weight.clone()
    run.run(2)
    assert torch.equal(lq.transformer_blocks[0].attn.to_q.base_layer.weight, base)  # base frozen
    assert lq.transformer_blocks[0].attn.to_q.lora_B["default"].weight.abs().sum() > 0  # adapter learnt
    pth, _ = checkpoint.export_weights(run.pipeline.c, tmp_path / "lora", dtype=None)
    dual, _ = load_dual_branch(pth, 19, torch.float32)
    merged = base + lq.transformer_blocks[0].attn.to_q.get_delta_weight("default")
    assert torch.allclose(dual.lq.transformer_blocks[0].attn.to_q.weight, merged, atol=1e-7)
    assert not torch.equal(merged, base)


# --- 4. steps ----------------------------------------------------------------------------------


def _fixed_loss(run: Trainer) -> float:
    batch = Batch(**{k: v[None] for k, v in run.data.sample(0).items()})
    draws = Draws(
        torch.tensor([0.5]), torch.randn(batch.latents.shape, generator=torch.Generator().manual_seed(4))
    )
    with torch.no_grad():
        return float(run.model(batch, draws)["loss"])


def test_loss_falls_when_overfitting_one_pair(tiny_paths, samples):
    run = trainer(tiny_paths, samples[:1], learning_rate=1e-3, timesteps=timesteps.TimestepOptions("uniform"))
    before = _fixed_loss(run)
    losses = run.run(30).losses
    after = _fixed_loss(run)
    assert after < 0.5 * before, (before, after)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def _gradients(run: Trainer) -> dict[str, torch.Tensor]:
    run.accumulate_gradients()
    return {n: p.grad.clone() for n, p in run.model.named_parameters() if p.grad is not None}


def test_accumulation_2x1_equals_1x2_and_checkpointing_changes_nothing(tiny_paths, samples):
    pixel = dict(pixel_loss=1.0, pixel_crop=16)  # the pixel loss's windows are per sample too
    two_by_one = _gradients(trainer(tiny_paths, samples, batch_size=2, accumulation=1, **pixel))
    one_by_two = trainer(tiny_paths, samples, batch_size=1, accumulation=2, **pixel)
    assert one_by_two._sample_indices(0, 1) == [1]
    grads = _gradients(one_by_two)
    assert grads.keys() == two_by_one.keys()
    for name, grad in grads.items():
        assert torch.allclose(grad, two_by_one[name], rtol=1e-4, atol=1e-7), name
    checkpointed = trainer(
        tiny_paths, samples, batch_size=1, accumulation=2, gradient_checkpointing=True, **pixel
    )
    for name, grad in _gradients(checkpointed).items():
        assert torch.allclose(grad, grads[name], rtol=1e-5, atol=1e-8), name
    # The whole update too. AdamW's first step is lr * g / (|g| + eps): where |g| is near eps it
    # magnifies the last-bit differences of summing in another order, so the bound is a tenth of lr.
    one_by_two.apply_gradients()
    reference = trainer(tiny_paths, samples, batch_size=2, accumulation=1, **pixel)
    reference.train_step()
    a, b = trainable_tensors(one_by_two.pipeline), trainable_tensors(reference.pipeline)
    lr = TrainOptions().learning_rate
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 0.1 * lr


def test_gradient_checkpointing_keeps_state_dict_keys(tiny_paths):
    pipeline = fresh_pipeline(tiny_paths)
    keys = set(pipeline.c.dual_branch.state_dict())
    assert enable_gradient_checkpointing(pipeline) == 19 + 2 + 2 + 2
    assert set(pipeline.c.dual_branch.state_dict()) == keys


# --- 5. checkpoints ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sig, lora",
    [(signal.SIGTERM, None), (signal.SIGINT, LoraOptions(rank=2))],
    ids=["sigterm-full", "sigint-lora"],
)
@pytest.mark.slow
def test_kill_and_resume_equals_an_uninterrupted_run(tiny_paths, samples, tmp_path, sig, lora):
    options = dict(learning_rate=1e-3, warmup_steps=2, accumulation=2, lora=lora)
    straight = trainer(tiny_paths, samples, **options)
    straight_losses = straight.run(4).losses

    killed = trainer(tiny_paths, samples, **options)

    def kill_at_two(step, loss, rate):
        if step == 2:
            os.kill(os.getpid(), sig)

    outcome = killed.run(4, tmp_path / "run", on_step=kill_at_two)
    assert outcome.interrupted == sig.name and outcome.steps == 2
    state = tmp_path / "run" / "step-2.state.pt"
    assert outcome.checkpoints == [state] and (tmp_path / "run" / "step-2.pth").is_file()
    assert json.loads((tmp_path / "run" / "run-config.json").read_text())["accumulation"] == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    assert checkpoint.load_state(state)["data"]["next_sample"] == 4  # 2 steps x 2 micro-batches x 1 image

    resumed = trainer(tiny_paths, samples, **options)  # a new process: everything rebuilt
    resumed.resume(state)
    rest = resumed.run(4).losses
    assert outcome.losses + rest == straight_losses
    a, b = trainable_tensors(resumed.pipeline), trainable_tensors(straight.pipeline)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_export_loads_through_the_model_loader(tiny_paths, samples, tmp_path):
    run = trainer(tiny_paths, samples, learning_rate=1e-3)
    run.run(1)
    pth, safetensors = checkpoint.export_weights(run.pipeline.c, tmp_path / "step-1", dtype=None)
    loaded = fresh_pipeline(tiny_paths, lucidflux=pth)  # what `restore --lucidflux step-1.pth` builds
    a, b = trainable_tensors(run.pipeline), trainable_tensors(loaded)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the .safetensors holds the very same tensors under <part>.<key>
    parts = checkpoint.split_parts(load_file(str(safetensors)))
    released = read_lucidflux(pth)
    assert parts.keys() == released.keys()
    assert all(torch.equal(parts[p][k], released[p][k]) for p in parts for k in released[p])
    bf16, _ = checkpoint.export_weights(run.pipeline.c, tmp_path / "small")
    assert next(iter(read_lucidflux(bf16)["connector"].values())).dtype == torch.bfloat16


def test_resume_rejects_other_architecture_state(tiny_paths, samples, tmp_path):
    run = trainer(tiny_paths, samples)
    state = run.state_dict()
    state["trainable"]["connector"] = {"nonsense": torch.zeros(1)}
    checkpoint.save_state(tmp_path / "bad.state.pt", state)
    with pytest.raises(ValueError, match="does not match 'connector'"):
        trainer(tiny_paths, samples).resume(tmp_path / "bad.state.pt")


# --- 6. pairs and the cache --------------------------------------------------------------------


def test_pairs_from_a_degrade_manifest_and_from_folders(tmp_path):
    root = tmp_path / "out"
    lines = []
    for name in ("a", "b"):
        folder = root / "pairs" / name / "pass-0"
        folder.mkdir(parents=True)
        picture(SIZE, 0).save(folder / "hq.png")
        picture(SIZE, 0).resize((8, 8)).save(folder / "lq.png")
        picture(SIZE, 0).save(folder / "lq_up.png")
        lines.append(
            json.dumps(
                {
                    "name": name,
                    "pass": 0,
                    "source": f"{name}.png",
                    "params": {},
                    **{k: f"pairs/{name}/pass-0/{k}.png" for k in ("hq", "lq", "lq_up")},
                }
            )
        )
    header = json.dumps(manifests.header("lucidflux-pairs", {}))
    (root / "manifest.jsonl").write_text("\n".join([header, *lines]) + "\n")
    pairs = find_pairs(root)
    assert [p.lq_up.name for p in pairs] == ["lq_up.png"] * 2 and find_pairs(root / "manifest.jsonl") == pairs
    assert check_sizes(pairs[0]) == (SIZE, SIZE)
    folder_pairs = find_pairs(write_folder_pairs(tmp_path / "plain"))
    assert [p.name for p in folder_pairs] == ["p0.png", "p1.png"] and folder_pairs[0].lq_up is None


def test_pair_errors_are_one_line(tmp_path):
    root = write_folder_pairs(tmp_path / "plain")
    (root / "lq" / "p1.png").unlink()
    with pytest.raises(PairError, match=r"hq/p1.png has no partner .*lq/p1.png") as error:
        find_pairs(root)
    assert "\n" not in str(error.value)
    picture(SIZE, 1).save(tmp_path / "up.png")
    picture(48, 1).save(tmp_path / "big.png")
    with pytest.raises(PairError, match="48x48 but its HQ image"):
        check_sizes(TrainingPair("x", tmp_path / "up.png", tmp_path / "up.png", tmp_path / "big.png"))
    picture(40, 1).save(tmp_path / "odd.png")
    with pytest.raises(PairError, match="not a multiple of 16"):
        check_sizes(TrainingPair("x", tmp_path / "odd.png", tmp_path / "odd.png"))
    (tmp_path / "bad.jsonl").write_text('{"hq": "a.png"}\n')  # no header: not a manifest of ours
    with pytest.raises(
        PairError, match=r"bad.jsonl:1: no lucidflux manifest header; expected a lucidflux-pairs"
    ):
        find_pairs(tmp_path / "bad.jsonl")
    header = json.dumps(manifests.header("lucidflux-pairs", {}))
    (tmp_path / "bad.jsonl").write_text(header + '\n{"hq": "a.png"}\n')
    with pytest.raises(PairError, match=r"bad.jsonl:2: not a lucidflux-pairs record \(no name, pass, source"):
        find_pairs(tmp_path / "bad.jsonl")
    filtered = json.dumps(manifests.header("lucidflux-filter", {}))
    (tmp_path / "bad.jsonl").write_text(filtered + "\n")
    with pytest.raises(
        PairError, match=r"bad.jsonl:1: a lucidflux-filter manifest .*expected a lucidflux-pairs"
    ):
        find_pairs(tmp_path / "bad.jsonl")
    (tmp_path / "bad.jsonl").write_text(json.dumps({**json.loads(header), "schema": 99}) + "\n")
    with pytest.raises(PairError, match=r"bad.jsonl:1: schema 99 .*reads schema 1"):
        find_pairs(tmp_path / "bad.jsonl")
    with pytest.raises(PairError, match="nothing to train on"):
        find_pairs(tmp_path / "empty-dir" if (tmp_path / "empty-dir").mkdir() is None else tmp_path)


def test_cache_holds_what_the_pipeline_computes(tiny_paths, tmp_path):
    pipeline = fresh_pipeline(tiny_paths)
    pairs = find_pairs(write_folder_pairs(tmp_path / "plain", count=1))
    paths = build_cache(pipeline, pairs, tmp_path / "cache")
    stamp = paths[0].stat().st_mtime_ns
    assert build_cache(pipeline, pairs, tmp_path / "cache") == paths and paths[0].stat().st_mtime_ns == stamp
    sample = CachedPairs(paths).sample(0)
    with Image.open(pairs[0].lq) as lq_file:
        lq = pipeline.lq_image([lq_file.convert("RGB")], (SIZE, SIZE))
    plan = pipeline.plan(lq, RestoreSettings().tiles)
    cleaned = pipeline.clean(lq, plan)
    assert torch.equal(sample["lq"], lq.crop()[0])  # what the LQ branch's hint encoder gets
    assert torch.equal(sample["ldr"], cleaned[0] * 2 - 1)  # what the LDR branch gets
    with torch.no_grad():
        context = pipeline.encode_context(cleaned)
        semantic = pipeline.c.connector(sample["features"][None]).image_embeds
    assert torch.equal(torch.cat([pipeline.c.txt, semantic], dim=1), context)


def test_a_changed_dtype_or_weight_file_recomputes_the_cache_and_says_so(tiny_paths, tmp_path, caplog):
    from safetensors.torch import save_file

    pairs = find_pairs(write_folder_pairs(tmp_path / "plain", count=1))
    folder = tmp_path / "cache"
    caplog.set_level("INFO", logger="lucidflux")

    def build(pipeline) -> tuple[int, list[str]]:
        caplog.clear()
        path = build_cache(pipeline, pairs, folder)[0]
        return path.stat().st_mtime_ns, [
            r.getMessage() for r in caplog.records if "input cache" in r.getMessage()
        ]

    first, lines = build(fresh_pipeline(tiny_paths))
    assert lines == []  # new entries are computed, not "recomputed"
    assert build(fresh_pipeline(tiny_paths)) == (first, [])  # same inputs: kept, silently
    bf16 = LucidFluxPipeline(load_components(tiny_paths, CPU, torch.bfloat16), CPU, torch.bfloat16)
    second, lines = build(bf16)
    assert second != first and len(lines) == 1 and "dtype (1)" in lines[0] and "vae" not in lines[0]
    assert load_file(str(folder / "0000000.safetensors"))["ldr"].dtype == torch.bfloat16
    weights = load_file(str(tiny_paths.ae))
    name = next(iter(weights))
    weights[name] = weights[name] + 0.01  # another autoencoder file, same shapes
    save_file(weights, str(tmp_path / "ae.safetensors"))
    _, lines = build(fresh_pipeline(dataclasses.replace(tiny_paths, ae=tmp_path / "ae.safetensors")))
    assert len(lines) == 1 and "vae (1)" in lines[0]
    os.utime(pairs[0].lq, ns=(1, 1))  # the LQ file touched
    _, lines = build(fresh_pipeline(tiny_paths))
    assert lines == [
        f"input cache {folder}: 1 of 1 entries recomputed, their inputs changed: sources (1), vae (1)"
    ]


def test_the_lq_the_trainer_caches_is_the_lq_restore_builds(tiny_paths, tmp_path):
    """Same file, same condition: a manifest pair's ``lq`` (EXIF-rotated JPEG here) read and resized by
    the restore path, not its torch-bicubic ``lq_up``."""
    from lucidflux_cli.imageio.discovery import InputFile
    from lucidflux_cli.restore.batch import OutputOptions, restore_files

    pipeline = fresh_pipeline(tiny_paths)
    picture(SIZE, 3).save(tmp_path / "hq.png")
    small = picture(SIZE, 3).resize((SIZE // 4, SIZE // 4), Image.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90 degrees
    small.save(tmp_path / "lq.jpg", quality=90, exif=exif)
    as_tensor = torch.from_numpy(np.asarray(small, dtype=np.float32)).permute(2, 0, 1)[None]
    up = torch.nn.functional.interpolate(as_tensor, size=(SIZE, SIZE), mode="bicubic", align_corners=False)
    Image.fromarray(up[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()).save(tmp_path / "lq_up.png")
    pair = TrainingPair("p", tmp_path / "hq.png", tmp_path / "lq.jpg", tmp_path / "lq_up.png")
    cached = encode_pair(pipeline, pair)["lq"].numpy()

    built = []
    original = pipeline.lq_image
    pipeline.lq_image = lambda images, size: built.append(original(images, size)) or built[-1]
    restorer = lambda image, size, on_step: pipeline(image, size, RestoreSettings(steps=1))  # noqa: E731
    options = OutputOptions(out_dir=tmp_path / "out", size=(SIZE, SIZE), min_side=0)
    report = restore_files([InputFile(tmp_path / "lq.jpg", Path("lq.jpg"))], lambda: restorer, options, {})
    assert [r.status for r in report.results] == ["done"]
    assert np.array_equal(cached, built[0].pixels[0])
    assert not np.array_equal(cached, np.asarray(Image.open(tmp_path / "lq_up.png")))


# --- pixel loss, 8-bit AdamW, the memory prediction ----------------------------------------------


def test_pixel_loss_decodes_the_predicted_clean_latent_on_a_window(tiny_paths, samples):
    pipeline = fresh_pipeline(tiny_paths)
    prepare_trainable(pipeline.c)
    model = ConditionTrainer(pipeline, pixel_weight=0.5)
    batch = Batch(**{k: v[None] for k, v in CachedPairs(samples).sample(0).items()})
    noise = torch.randn(batch.latents.shape, generator=torch.Generator().manual_seed(6))
    draws = Draws(torch.tensor([0.4]), noise, pixel_windows=[(1, 2, 2)])
    losses = model(batch, draws)
    assert torch.equal(losses["loss"], losses["velocity"] + 0.5 * losses["pixel"])
    losses["loss"].backward()
    assert all(p.grad is None for p in pipeline.c.vae.parameters())  # frozen, yet gradients pass through it
    assert pipeline.c.dual_branch.ldr.controlnet_blocks[0].weight.grad.abs().sum() > 0
    # With the true velocity the decoded window is the HQ latents' own decoding.
    model.velocity = lambda tokens, s, b, h, w: sampling.pack_latents(
        objective.velocity_target(b.latents, noise)
    )
    with torch.no_grad():
        exact = model(batch, draws)["pixel"]
        decoded = objective.decode_for_loss(pipeline.c.vae, batch.latents[..., 1:3, 2:4])
        expected = (decoded - batch.hq[..., 8:24, 16:32]).abs().mean()
    assert torch.allclose(exact, expected, atol=1e-5)


def test_eight_bit_adamw_trains(tiny_paths, samples):
    run = trainer(tiny_paths, samples, optimizer="adamw-8bit", learning_rate=1e-3)
    before = trainable_tensors(run.pipeline)
    run.run(2)
    after = trainable_tensors(run.pipeline)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # bitsandbytes keeps tensors under 4096 elements in 32-bit; the larger ones are 8-bit.
    states = [s for s in run.optimizer.state.values() if "state1" in s]
    assert any(s["state1"].dtype == torch.uint8 for s in states)


@pytest.mark.slow
def test_training_memory_prediction_is_consistent(tiny_paths):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import training_memory

    rows = training_memory.predict([64, 128], tiny=True)
    pick = {(r["mode"], r["size"], r["optimiser"], r["checkpointing"]): r for r in rows}
    assert "| total GiB" in training_memory.table(rows)
    for size in (64, 128):
        for ckpt in ("on", "off"):
            for opt in ("adamw-32bit", "adamw-8bit"):
                assert (
                    pick["lora", size, opt, ckpt]["total_bytes"]
                    < pick["full", size, opt, ckpt]["total_bytes"]
                )
            eight, full = pick["full", size, "adamw-8bit", ckpt], pick["full", size, "adamw-32bit", ckpt]
            assert (
                eight["optimiser_bytes"] * 4 == full["optimiser_bytes"]
                and eight["total_bytes"] < full["total_bytes"]
            )
        for mode in ("full", "lora"):
            on, off = pick[mode, size, "adamw-32bit", "on"], pick[mode, size, "adamw-32bit", "off"]
            assert on["activations_bytes"] < off["activations_bytes"]
    assert (
        pick["full", 128, "adamw-32bit", "off"]["activations_bytes"]
        > pick["full", 64, "adamw-32bit", "off"]["activations_bytes"]
    )
    # Parameter counts are the real modules' (the tiny release loaded from disk, same choices applied).
    real = fresh_pipeline(tiny_paths)
    assert (
        sum(p.numel() for p in prepare_trainable(real.c))
        == pick["full", 64, "adamw-8bit", "on"]["trainable_params"]
    )
    real = fresh_pipeline(tiny_paths)
    lora = sum(p.numel() for p in prepare_trainable(real.c, LoraOptions(rank=16)))
    assert lora == pick["lora", 64, "adamw-8bit", "on"]["trainable_params"]


def test_from_a_pairs_folder_to_weights_restore_loads(tiny_paths, tmp_path):
    """The command's path end to end: pairs -> cache -> train from scratch -> step-N.pth -> restore."""
    pipeline = fresh_pipeline(tiny_paths)
    data = cached_pairs(pipeline, write_folder_pairs(tmp_path / "plain"), tmp_path / "run" / "cache")
    assert len(data) == 2
    scratch = LucidFluxPipeline(from_scratch(pipeline.c, seed=3), CPU, torch.float32)
    outcome = Trainer(scratch, data, TrainOptions(save_every=1, learning_rate=1e-3)).run(2, tmp_path / "run")
    assert [p.name for p in outcome.checkpoints] == ["step-1.state.pt", "step-2.state.pt"]
    restored = fresh_pipeline(tiny_paths, lucidflux=tmp_path / "run" / "step-2.pth")
    image = restored(picture(SIZE, 1), size=(SIZE, SIZE), settings=RestoreSettings(steps=2))
    assert image.shape == (SIZE, SIZE, 3) and np.isfinite(image).all()
