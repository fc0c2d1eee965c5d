"""The fast paths at tiny size on CPU: same output as the plain per-step path."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import weight_args
from per_step_reference import PerStepPipeline
from test_pipeline import photo

from lucidflux_cli.commands.main import main
from lucidflux_cli.model import acceleration, sampling
from lucidflux_cli.model.components import load_components
from lucidflux_cli.model.pipeline import LucidFluxPipeline, RestoreSettings
from lucidflux_cli.model.tiling import TileOptions

STEPS = 3


class Recording(LucidFluxPipeline):
    """The production pipeline, keeping every velocity it predicts."""

    def __init__(self, pipeline: LucidFluxPipeline):
        super().__init__(pipeline.c, pipeline.device, pipeline.dtype)
        self.velocities: list[torch.Tensor] = []

    def velocity(self, latents, t_curr, fixed):
        out = super().velocity(latents, t_curr, fixed)
        self.velocities.append(out)
        return out


class RecordingReference(PerStepPipeline):
    def __init__(self, pipeline: LucidFluxPipeline):
        super().__init__(pipeline)
        self.velocities: list[torch.Tensor] = []

    def velocity(self, latents, t_curr, fixed):
        out = super().velocity(latents, t_curr, fixed)
        self.velocities.append(out)
        return out


def _max_diff(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> float:
    assert len(ours) == len(theirs) and ours
    return max(float((a - b).abs().max()) for a, b in zip(ours, theirs, strict=True))


def _stages(pipeline, width: int, height: int, options: TileOptions | None = None, seed: int = 3):
    """The denoise stage's inputs: (LQ image, plan, cleaned image, context)."""
    lq = pipeline.lq_image([photo(width, height, seed=seed)], (width, height))
    plan = pipeline.plan(lq, options or TileOptions())
    cleaned = pipeline.clean(lq, plan)
    return lq, plan, cleaned, pipeline.encode_context(cleaned[..., :height, :width])


def test_prepared_step_equals_per_step_diffusers_path_untiled(tiny_pipeline):
    ours, theirs = Recording(tiny_pipeline), RecordingReference(tiny_pipeline)
    lq, plan, cleaned, context = _stages(tiny_pipeline, 80, 48)
    settings = RestoreSettings(steps=STEPS, seed=5)
    fast = ours.denoise(lq, cleaned, context, settings, plan)
    slow = theirs.denoise(lq, cleaned, context, settings, plan)
    assert len(ours.velocities) == STEPS
    # Same modules, same operations in the same order: equal to the last bit.
    assert _max_diff(ours.velocities, theirs.velocities) == 0.0
    assert torch.equal(fast, slow)


def test_prepared_residuals_equal_per_step_residuals(tiny_pipeline):
    pipe, theirs = tiny_pipeline, RecordingReference(tiny_pipeline)
    lq, plan, cleaned, context = _stages(pipe, 64, 64)
    ldr = (cleaned * 2.0 - 1.0).to(pipe.dtype)
    settings = RestoreSettings(steps=STEPS, seed=5)
    theirs.denoise(lq, cleaned, context, settings, plan)
    img_ids = sampling.image_positions(64, 64)
    fixed = pipe.step_inputs(context, settings.guidance, img_ids, pipe.c.dual_branch.hints(lq.crop(), ldr))
    latents = sampling.pack_latents(sampling.make_noise(64, 64, 5, pipe.device, pipe.dtype))
    t = torch.full((1,), sampling.timesteps(STEPS, 64, 64)[0])
    ours = pipe.c.dual_branch(latents, t, fixed.branch_text, fixed.branch_rope, fixed.hints)
    assert len(ours) == len(theirs.residuals[0]) == pipe.c.dual_branch.num_backbone_blocks
    assert _max_diff(ours, theirs.residuals[0]) == 0.0


TILED = {
    "local positions, 2 tiles per call": TileOptions(size=64, overlap=16, batch=2),
    "global positions": TileOptions(size=64, overlap=16, positions="global"),
    "per-tile SigLIP tokens, 3 per call": TileOptions(size=64, overlap=16, batch=3, semantic="tile"),
}


@pytest.mark.slow
@pytest.mark.parametrize("options", TILED.values(), ids=TILED.keys())
def test_prepared_step_equals_per_step_diffusers_path_tiled(tiny_pipeline, options):
    ours, theirs = Recording(tiny_pipeline), RecordingReference(tiny_pipeline)
    width, height = 112, 96  # 2 x 2 tiles of 64 px: with 3 per call, a full and a partial batch
    lq, plan, cleaned, context = _stages(tiny_pipeline, width, height, options, seed=4)
    settings = RestoreSettings(steps=2, seed=6, tiles=options)
    fast = ours.denoise(lq, cleaned, context, settings, plan)
    slow = theirs.denoise(lq, cleaned, context, settings, plan)
    assert len(ours.velocities) == len(theirs.velocities) > 2  # several calls per step
    assert _max_diff(ours.velocities, theirs.velocities) <= 1e-6
    assert float((fast - slow).abs().max()) <= 1e-6


def test_tiles_share_text_and_positions_and_keep_only_small_hints(tiny_pipeline):
    options = TileOptions(size=64, overlap=16)
    width, height = 112, 96
    lq, plan, cleaned, context = _stages(tiny_pipeline, width, height, options, seed=0)
    boxes = plan.denoise.boxes()
    calls = [[(0, i)] for i in range(len(boxes))]
    fixed = tiny_pipeline._step_inputs_per_call(
        calls, boxes, lq, cleaned, context, dataclasses.replace(RestoreSettings(), tiles=options), plan
    )
    assert len(fixed) == 4
    assert all(
        f.backbone_text is fixed[0].backbone_text and f.branch_rope is fixed[0].branch_rope for f in fixed
    )
    assert fixed[0].hints[0].shape[-1] == 64  # 16 hint channels x 2 x 2, not the model width


# --- --compile ---------------------------------------------------------------------------


def test_compile_auto_is_off_on_cpu_and_on_for_cuda():
    assert acceleration.resolve_compile("auto", torch.device("cpu")) is False
    assert acceleration.resolve_compile("auto", torch.device("cuda")) is True
    assert acceleration.resolve_compile("auto", torch.device("cuda"), offload="sequential") is False
    assert acceleration.resolve_compile("on", torch.device("cpu")) is True
    with pytest.raises(ValueError, match="--compile"):
        acceleration.resolve_compile("sometimes", torch.device("cpu"))


def test_compiling_puts_inductors_cache_under_the_tool_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    blocks = [torch.nn.Linear(2, 2) for _ in range(5)]
    components = SimpleNamespace(
        transformer=SimpleNamespace(transformer_blocks=blocks[:2], single_transformer_blocks=blocks[2:3]),
        dual_branch=SimpleNamespace(
            lq=SimpleNamespace(transformer_blocks=blocks[3:4]),
            ldr=SimpleNamespace(transformer_blocks=blocks[4:]),
        ),
        vae=None,
        siglip=None,
        connector=None,
    )
    assert acceleration.apply(components, device=torch.device("cpu"), compile_mode="on", cache_dir=tmp_path)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "torch-compile")
    assert (tmp_path / "torch-compile").is_dir()
    assert all(block._compiled_call_impl is not None for block in blocks)  # every repeated block, regionally
    # Without --cache-dir: beside the weights, in huggingface_hub's cache.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert acceleration.compile_cache_dir() == tmp_path / "hub" / "torch-compile"


def test_compile_cache_replaces_torchs_default_but_not_the_users_choice(tmp_path, monkeypatch):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    ours = tmp_path / "torch-compile"
    # Importing diffusers/transformers has torch write its default into the variable: replaced.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    acceleration.use_compile_cache(ours)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(ours) and ours.is_dir()
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    acceleration.use_compile_cache(ours)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(ours)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    acceleration.use_compile_cache(ours)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")


@pytest.mark.slow
def test_regional_compile_wraps_every_block_and_keeps_the_output(tiny_paths, tmp_path, monkeypatch):
    # A pipeline of its own: compiling changes the modules in place.
    components = load_components(tiny_paths, torch.device("cpu"), torch.float32)
    pipeline = LucidFluxPipeline(components, torch.device("cpu"), torch.float32)
    settings = RestoreSettings(steps=2, seed=7)
    before = pipeline(photo(64, 48), size=(64, 48), settings=settings)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    count = acceleration.compile_blocks(components, tmp_path / "torch-compile", backend="eager")
    assert count == 19 + 2 + 2 + 2  # tiny backbone: 19 double + 2 single; two blocks per branch
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "torch-compile")
    assert all(block._compiled_call_impl is not None for block in acceleration.repeated_blocks(components))
    after = pipeline(photo(64, 48), size=(64, 48), settings=settings)
    assert np.abs(after - before).max() <= 1e-6


# --- --precision fp8 -------------------------------------------------------------------------


def test_fp8_on_cpu_is_a_one_line_usage_error(tmp_path, tiny_release):
    result = CliRunner().invoke(
        main,
        [
            "restore",
            str(tmp_path),
            "-o",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--precision",
            "fp8",
            *weight_args(tiny_release),
        ],
    )
    assert result.exit_code == 2
    message = [line for line in result.output.splitlines() if "fp8" in line]
    assert len(message) == 1 and "NVIDIA GPU" in message[0] and "--precision bf16" in message[0]


@torch.no_grad()
def test_fp8_quantizes_the_block_linears_of_backbone_and_branches_only(tiny_paths, monkeypatch):
    """The layer choice and the quantized pipeline end to end, on the CPU: torchao refuses float8
    off Ada/Hopper, but its reference kernels run the very same Float8Tensor weights here."""
    pytest.importorskip("torchao")
    from torchao.quantization import Float8Tensor, quant_api

    monkeypatch.setattr(quant_api, "_check_hardware_support", lambda granularity: None)
    cpu = torch.device("cpu")
    components = load_components(tiny_paths, cpu, torch.bfloat16)
    pipeline = LucidFluxPipeline(components, cpu, torch.bfloat16)
    settings = RestoreSettings(steps=2, seed=7)
    before = pipeline(photo(64, 48), size=(64, 48), settings=settings)
    linears = {
        f"{part}.{name}": module
        for part, model in (("backbone", components.transformer), ("branches", components.dual_branch))
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    in_blocks = {
        name for name in linears if ".transformer_blocks." in name or ".single_transformer_blocks." in name
    }
    assert acceleration.quantize_fp8(components) == len(in_blocks) > 0
    for name, module in linears.items():
        assert isinstance(module.weight, Float8Tensor) == (name in in_blocks), name
    assert any("lq.transformer_blocks" in name for name in in_blocks)  # the branches' blocks too
    for kept in (
        "backbone.proj_out",
        "backbone.x_embedder",
        "backbone.context_embedder",
        "branches.lq.controlnet_blocks.0",
        "branches.ldr.controlnet_x_embedder",
    ):
        assert not isinstance(linears[kept].weight, Float8Tensor), kept  # embedders and heads stay bf16
    assert not any(
        isinstance(module.weight, Float8Tensor) for name, module in linears.items() if "modulation" in name
    )
    after = pipeline(photo(64, 48), size=(64, 48), settings=settings)
    assert after.shape == before.shape and np.isfinite(after).all()
    assert 0 < np.abs(after - before).mean() < 0.1  # float8 rounding, not a different picture


def test_fp8_without_torchao_says_how_to_install(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setitem(sys.modules, "torchao", None)  # import fails
    assert "pip install 'lucidflux-cli[fp8]'" in acceleration.fp8_problem(torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert "8.9 or newer" in acceleration.fp8_problem(torch.device("cuda"))


# --- --offload ---------------------------------------------------------------------------------


class _Spy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.moves: list[str] = []

    def to(self, device):
        self.moves.append(str(device))
        return self


def test_offload_has_no_effect_on_the_cpu(caplog):
    with caplog.at_level("INFO"):
        placement = acceleration.Placement("model", torch.device("cpu"))
    assert placement.mode == "none" and placement.load_device == torch.device("cpu")
    assert "no effect on the CPU" in caplog.text


class StagingPlacement(acceleration.Placement):
    """Records each stage's modules instead of moving them; ``staged`` is what a stage holds now."""

    def __init__(self):
        super().__init__("none", torch.device("cpu"))
        self.staged: set[int] = set()
        self.stages: list[set[int]] = []

    @contextlib.contextmanager
    def stage(self, *modules):
        outer, self.staged = self.staged, self.staged | {id(module) for module in modules}  # stages may nest
        self.stages.append({id(module) for module in modules})
        try:
            yield
        finally:
            self.staged = outer


def test_every_model_runs_inside_a_stage_that_brought_it_to_the_device(tiny_pipeline):
    """With --offload model a component is on the device only inside its stage: each model call must
    come from a stage that names that model (else it would run on host weights, or fail on a GPU)."""
    placement = StagingPlacement()
    c = tiny_pipeline.c
    offloaded = {
        "transformer": c.transformer,
        "dual_branch": c.dual_branch,
        "vae": c.vae,
        "siglip": c.siglip,
        "connector": c.connector,
    }
    used: set[str] = set()

    def guard(name, root):
        def check(module, args):
            used.add(name)
            assert id(root) in placement.staged, f"{name} ran outside its stage"

        return check

    handles = [
        module.register_forward_pre_hook(guard(name, root))
        for name, root in offloaded.items()
        for module in root.modules()
    ]
    try:
        pipeline = LucidFluxPipeline(c, tiny_pipeline.device, tiny_pipeline.dtype, placement)
        for options in (TileOptions(), TileOptions(size=64, overlap=16, semantic="tile")):  # one tile, tiles
            pipeline(photo(112, 96), size=(112, 96), settings=RestoreSettings(steps=1, tiles=options))
        with pytest.raises(AssertionError, match="vae ran outside its stage"):  # the guard bites
            c.vae.decode(torch.zeros(1, 16, 2, 2))
    finally:
        for handle in handles:
            handle.remove()
    assert used == set(offloaded)
    assert {id(c.transformer), id(c.dual_branch)} in placement.stages and {id(c.vae)} in placement.stages


def test_model_offload_moves_a_stage_in_and_back_out():
    placement = acceleration.Placement("none", torch.device("cpu"))
    placement.mode, placement.device = "model", torch.device("meta")  # pretend: a device that is not the host
    backbone, vae = _Spy(), _Spy()
    with placement.stage(backbone):
        assert backbone.moves == ["meta"] and vae.moves == []
    assert backbone.moves == ["meta", "cpu"]
    with pytest.raises(RuntimeError), placement.stage(vae):
        raise RuntimeError("out of memory")
    assert vae.moves == ["meta", "cpu"]  # back on the host even when the stage fails


def test_unknown_offload_mode_is_refused():
    with pytest.raises(ValueError, match="--offload"):
        acceleration.Placement("sometimes", torch.device("cpu"))
