"""GPU benchmark: the restore pipeline on the full-size LucidFlux architecture with random weights.

Nothing is downloaded: every model is built from its configuration (FLUX.1-dev: 19 double +
38 single blocks, width 3072; two condition branches of 2 double blocks; SigLIP so400m
patch16-512; the FLUX VAE; DiffBIR's SwinIR) on the meta device, then materialised on the
device and filled with seeded random values. Random weights make the image meaningless but
the work identical, so the timings are those of real weights.

One process runs a list of cases, ``VARIANT:SIZE[@GIB]`` (``--cases``), changing the model in
place between them, one way only: eager -> compiled -> float8. Per case it reports the
first-image latency (including compilation), the steady-state seconds per image, the per-stage
split, the peak ``torch.cuda.max_memory_allocated`` and how often the out-of-memory retry
shrank the tiles; ``@GIB`` caps the process's GPU memory (a smaller card, simulated). A case
that cannot run here is recorded with its one-line error and the suite goes on::

    python benchmarks/gpu_benchmark.py --reference /path/to/LucidFlux --markdown table.md
    python benchmarks/gpu_benchmark.py --cases compiled:1024,tiled:4096 --jsonl results.jsonl
    python benchmarks/gpu_benchmark.py --tiny                           # CPU, tiny sizes: a smoke run

The ``reference`` case (needs ``--reference PATH``, a local checkout of W2GenAI-Lab/LucidFlux)
builds the reference's own backbone, condition branches and modulations, fills *them* with the
random weights, converts those same tensors into our modules with the product's loaders, times
the reference's ``denoise_lucidflux`` loop against our (eager) denoise stage on the same inputs
and noise, and measures their agreement (velocity and final latent, relative L2). Its modules
are freed before the next case, so they never count in our peaks. Every fp8 case reports the
float8 velocity's relative L2 from the bf16 velocity on the same latents and inputs (kept from
the first bf16 case of that size).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import importlib.util
import json
import logging
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lucidflux_cli.model import acceleration, tiling  # noqa: E402
from lucidflux_cli.model.config import LucidFluxConfig  # noqa: E402
from lucidflux_cli.model.loading import models  # noqa: E402
from lucidflux_cli.model.modules import DualConditionBranch, LayerAdaptiveModulation  # noqa: E402
from lucidflux_cli.model.pipeline import LucidFluxComponents, LucidFluxPipeline, RestoreSettings  # noqa: E402
from lucidflux_cli.model.removers import RemoverModel  # noqa: E402
from lucidflux_cli.model.tiling import TileOptions  # noqa: E402

FULL = LucidFluxConfig.full()
TINY = LucidFluxConfig.tiny()


# --- random models ---------------------------------------------------------------------------


def _build(factory, device: torch.device, dtype: torch.dtype, seed: int) -> nn.Module:
    """Construct on meta (no allocation, no init), materialise on ``device``, fill with random values.

    Modules with buffers computed at construction (SigLIP position ids, SwinIR attention masks;
    both small) are built on the device directly instead, keeping those buffers.
    """
    module = _construct(factory, device).to(dtype)
    if device.type == "meta":  # shapes only (benchmarks/memory_model.py)
        return module.eval().requires_grad_(False)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            if not tensor.is_floating_point():
                continue
            if tensor.ndim >= 2:  # weights: fan-in scaled so 57 blocks stay finite
                fan_in = math.prod(tensor.shape[1:])
                tensor.normal_(0.0, 0.5 / math.sqrt(fan_in), generator=generator)
            elif "norm" in name or name.endswith("scale"):
                tensor.fill_(1.0)
            else:
                tensor.normal_(0.0, 0.02, generator=generator)
    return module.eval().requires_grad_(False)


def _construct(factory, device: torch.device) -> nn.Module:
    try:
        with torch.device("meta"):
            module = factory()
        if not any(True for _ in module.buffers()):
            return module.to_empty(device=device)
    except RuntimeError:  # constructors that compute on tensors (SwinIR's drop-path schedule)
        pass
    if device.type == "meta":  # those need real values: build on the host (they are small)
        return factory().to(device)
    with torch.device(device):
        return factory()


def build_components(
    arch: LucidFluxConfig,
    device: torch.device,
    dtype: torch.dtype,
    backbone: nn.Module | None = None,
    branches: tuple | None = None,
) -> LucidFluxComponents:
    """Our components with random weights; ``backbone``/``branches`` (converted from the
    reference's modules) replace the random ones when given."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from diffusers.models.controlnets.controlnet_flux import FluxControlNetModel
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder
    from spandrel.architectures.SwinIR import SwinIR
    from transformers import SiglipVisionConfig, SiglipVisionModel

    hidden, context = arch.backbone.hidden, arch.backbone.context_dim
    branch = models.branch_config(arch.branch, arch.hint_channels)
    transformer = backbone or _build(
        lambda: FluxTransformer2DModel(**models.transformer_config(arch.backbone)), device, dtype, 1
    )
    if branches is None:
        lq, ldr, mod_lq, mod_ldr = (
            _build(lambda: FluxControlNetModel(**branch), device, dtype, 2),
            _build(lambda: FluxControlNetModel(**branch), device, dtype, 3),
            _build(lambda: LayerAdaptiveModulation(hidden), device, dtype, 4),
            _build(lambda: LayerAdaptiveModulation(hidden), device, dtype, 5),
        )
    else:
        lq, ldr, mod_lq, mod_ldr = branches
    vae = _build(lambda: AutoencoderKL(**models.vae_config(arch.vae)), device, torch.float32, 6)
    s = arch.siglip
    siglip = _build(
        lambda: SiglipVisionModel(
            SiglipVisionConfig(
                hidden_size=s.hidden,
                intermediate_size=s.intermediate,
                num_hidden_layers=s.layers,
                num_attention_heads=s.heads,
                image_size=s.image_size,
                patch_size=s.patch_size,
            )
        ),
        device,
        dtype,
        7,
    )
    connector = _build(
        lambda: ReduxImageEncoder(redux_dim=s.hidden, txt_in_features=context), device, dtype, 8
    )
    w = arch.swinir
    swinir = _build(
        lambda: SwinIR(
            img_size=w.img_size,
            embed_dim=w.embed_dim,
            depths=list(w.depths),
            num_heads=list(w.heads),
            window_size=w.window,
            mlp_ratio=w.mlp_ratio,
            upscale=w.unshuffle,
            upsampler="nearest+conv",
            resi_connection="1conv",
            start_unshuffle=w.unshuffle,
            img_range=1.0,
        ),
        device,
        torch.float32,
        9,
    )
    generator = torch.Generator().manual_seed(10)
    return LucidFluxComponents(
        transformer=transformer,
        vae=vae,
        dual_branch=DualConditionBranch(lq, ldr, mod_lq, mod_ldr, arch.residuals),
        connector=connector,
        siglip=siglip,
        remover=RemoverModel(run=swinir, multiple_of=64, name="swinir"),
        remover_multiple=64,
        txt=torch.randn(1, arch.prompt_tokens, context, generator=generator).to(dtype) * 0.5,
        vec=torch.randn(1, arch.backbone.vec_dim, generator=generator).to(dtype) * 0.5,
    )


# --- timing ------------------------------------------------------------------------------------

STAGES = {  # pipeline method -> stage name
    "clean": "clean",
    "encode_context": "encode",
    "denoise": "denoise",
    "decode": "decode",
    "color_fix": "colour fix",
}


class StageClock:
    """Wall time per stage (synchronised on CUDA); nested calls count once, in the outer stage."""

    def __init__(self, device: torch.device):
        self.device, self.seconds, self.depth = device, {}, 0

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def wrap(self, stage: str, function):
        def timed(*args, **kwargs):
            if self.depth:
                return function(*args, **kwargs)
            self.sync()
            started, self.depth = time.perf_counter(), 1
            try:
                return function(*args, **kwargs)
            finally:
                self.sync()
                self.depth = 0
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

        return timed


@contextlib.contextmanager
def stage_clock(pipeline: LucidFluxPipeline) -> StageClock:
    clock = StageClock(pipeline.device)
    for method, stage in STAGES.items():
        setattr(pipeline, method, clock.wrap(stage, getattr(pipeline, method)))
    try:
        yield clock
    finally:
        for method in STAGES:
            delattr(pipeline, method)


def measure(pipeline: LucidFluxPipeline, size: int, settings: RestoreSettings, images: int) -> dict:
    """First-image latency, then ``images`` steady-state images: mean seconds, stages, peak memory."""
    rng = np.random.default_rng(size)
    picture = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    cuda = pipeline.device.type == "cuda"
    started = time.perf_counter()
    pipeline(picture, size=(size, size), settings=settings)
    first = time.perf_counter() - started
    if cuda:
        torch.cuda.reset_peak_memory_stats(pipeline.device)
    with stage_clock(pipeline) as clock:
        started = time.perf_counter()
        for _ in range(images):
            pipeline(picture, size=(size, size), settings=settings)
        total = time.perf_counter() - started
    return {
        "size": size,
        "tiled": settings.tiles.size < size,
        "first_image_s": round(first, 3),
        "seconds_per_image": round(total / images, 3),
        "stages_s": {stage: round(seconds / images, 3) for stage, seconds in clock.seconds.items()},
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(pipeline.device) / 2**30, 2)
        if cuda
        else None,
    }


# --- the reference ----------------------------------------------------------------------------


def load_reference(path: Path, arch: LucidFluxConfig, device: torch.device, dtype: torch.dtype):
    """The reference's backbone, branches and modulations (its own classes) with random weights."""
    sys.path.insert(0, str(path))
    from src.flux.condition import SingleConditionBranch
    from src.flux.model import Flux, FluxParams

    spec = importlib.util.spec_from_file_location("lucidflux_reference_inference", path / "inference.py")
    inference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(inference)
    b = arch.backbone
    params = FluxParams(
        in_channels=b.in_channels,
        vec_in_dim=b.vec_dim,
        context_in_dim=b.context_dim,
        hidden_size=b.hidden,
        mlp_ratio=b.mlp_hidden / b.hidden,
        num_heads=b.heads,
        depth=b.depth,
        depth_single_blocks=b.depth_single,
        axes_dim=list(b.axes_dim),
        theta=10_000,
        qkv_bias=True,
        guidance_embed=b.guidance,
    )
    model = _build(lambda: Flux(params), device, dtype, 1)
    lq = _build(lambda: SingleConditionBranch(params), device, dtype, 2)
    ldr = _build(lambda: SingleConditionBranch(params), device, dtype, 3)
    mod_lq = _build(lambda: inference.Modulation(dim=b.hidden), device, dtype, 4)
    mod_ldr = _build(lambda: inference.Modulation(dim=b.hidden), device, dtype, 5)
    return model, inference.DualConditionBranch(lq, ldr, mod_lq, mod_ldr)


def ours_from_reference(model: nn.Module, dual: nn.Module, dtype: torch.dtype):
    """The very same tensors in our modules, through the product's BFL converters."""
    from diffusers import FluxTransformer2DModel

    from lucidflux_cli.model.loading.flux_layout import bfl_to_diffusers_transformer, infer_flux_shape

    state = dict(model.state_dict())
    shape = infer_flux_shape(state, "reference backbone")
    with torch.device("meta"):
        transformer = FluxTransformer2DModel(**models.transformer_config(shape))
    converted = bfl_to_diffusers_transformer(state, shape)
    del state
    transformer.load_state_dict(converted, strict=True, assign=True)
    branches = tuple(
        models.load_condition_branch(dict(b.state_dict()), Path("reference"), part, dtype)
        for b, part in ((dual.lq, "condition_lq"), (dual.ldr, "condition_ldr"))
    )
    mods = tuple(
        models.load_modulation(dict(m.state_dict()), Path("reference"), part, dtype)
        for m, part in ((dual.modulation_lq, "modulation_lq"), (dual.modulation_ldr, "modulation_ldr"))
    )
    return transformer.eval().requires_grad_(False), (*branches, *mods)


def denoise_inputs(pipeline: LucidFluxPipeline, size: int) -> tuple:
    """Seeded random LQ and cleaned images at ``size``, their SigLIP context and the one-tile plan
    (the arguments of ``pipeline.denoise`` but the settings, in order)."""
    rng = np.random.default_rng(size)
    lq = pipeline.lq_image([rng.integers(0, 256, (size, size, 3), dtype=np.uint8)], (size, size))
    cleaned = torch.from_numpy(rng.random((1, 3, size, size), dtype=np.float32))
    plan = pipeline.plan(lq, TileOptions(size=max(4 * tiling.TOKEN, -(-size // tiling.TOKEN) * tiling.TOKEN)))
    return lq, cleaned, pipeline.encode_context(cleaned), plan


def relative_l2(value: torch.Tensor, target: torch.Tensor) -> float:
    target = target.float()
    return float((value.float() - target).norm() / target.norm().clamp_min(1e-12))


def compare_with_reference(
    path: Path, model, dual, pipeline: LucidFluxPipeline, size: int, steps: int, repeats: int
) -> dict:
    """The reference's ``denoise_lucidflux`` against our denoise stage: same weights, inputs and
    noise, untiled. Times both (after a warm-up each) and measures how far apart they end up:
    the first step's velocity and the final latent, relative L2 (float32 on the CPU: ~1e-6;
    bf16: rounding noise)."""
    sys.path.insert(0, str(path))
    from src.flux.sampling import denoise_lucidflux

    from lucidflux_cli.model import sampling

    device, dtype, c = pipeline.device, pipeline.dtype, pipeline.c
    lq_image, cleaned, context, plan = denoise_inputs(pipeline, size)
    lq, cleaned = lq_image.crop(), cleaned.to(device)
    noise = sampling.pack_latents(sampling.make_noise(size, size, 0, device, dtype))
    img_ids = sampling.image_positions(size, size, device)[None].to(dtype)
    txt = c.txt.to(device, dtype)
    zeros = lambda length: torch.zeros(1, length, 3, device=device, dtype=dtype)  # noqa: E731
    settings = RestoreSettings(steps=steps, seed=0)

    def theirs(times=None):
        return denoise_lucidflux(
            model,
            dual_condition_model=dual,
            img=noise,
            img_ids=img_ids,
            txt=txt,
            txt_ids=zeros(txt.shape[1]),
            siglip_txt=context,
            siglip_txt_ids=zeros(context.shape[1]),
            vec=c.vec.to(device, dtype),
            timesteps=times or sampling.timesteps(steps, size, size),
            guidance=4.0,
            condition_cond_lq=lq,
            condition_cond_ldr=(cleaned * 2 - 1).to(dtype),
        )

    def ours():
        return sampling.pack_latents(pipeline.denoise(lq_image, cleaned, context, settings, plan))

    def their_velocity(latents, t_curr):  # the body of the reference's loop, one step
        t = torch.full((1,), t_curr, device=device, dtype=dtype)
        guidance = torch.full((1,), 4.0, device=device, dtype=dtype)
        residuals = dual(
            img=latents,
            img_ids=img_ids,
            condition_cond_lq=lq,
            condition_cond_ldr=(cleaned * 2 - 1).to(dtype),
            txt=txt,
            txt_ids=zeros(txt.shape[1]),
            y=c.vec.to(device, dtype),
            timesteps=t,
            guidance=guidance,
        )
        return model(
            img=latents,
            img_ids=img_ids,
            txt=context,
            txt_ids=zeros(context.shape[1]),
            y=c.vec.to(device, dtype),
            timesteps=t,
            guidance=guidance,
            block_controlnet_hidden_states=list(residuals),
        )

    result = {}
    with torch.no_grad():
        for name, function in (("reference", theirs), ("ours", ours)):
            final = function()  # warm-up
            clock = StageClock(device)
            timed = clock.wrap("denoise", function)
            for _ in range(repeats):
                final = timed()
            result[f"{name}_denoise_s"] = round(clock.seconds["denoise"] / repeats, 3)
            result[f"_{name}_final"] = final
        fixed = pipeline.step_inputs(
            context,
            4.0,
            sampling.image_positions(size, size, device),
            c.dual_branch.hints(lq, (cleaned * 2 - 1).to(dtype)),
        )
        times = sampling.timesteps(steps, size, size)
        result["velocity_rel_l2"] = round(
            max(
                relative_l2(pipeline.velocity(noise, t, fixed), their_velocity(noise, t))
                for t in (times[0], times[steps // 2])
            ),
            7,
        )
    result["final_latent_rel_l2"] = round(
        relative_l2(result.pop("_ours_final"), result.pop("_reference_final")), 7
    )
    result["ours_over_reference_denoise"] = round(result["ours_denoise_s"] / result["reference_denoise_s"], 3)
    return result


# --- the suite: one process, cases in order -------------------------------------------------------


# Each case is VARIANT:SIZE[@CAP_GIB]. The model is changed in place as the cases go, one way only
# (eager -> compiled -> float8), so the cases must come in that order; the reference comes first
# (its modules are freed before our own figures are taken, so they do not count in our peaks).
@dataclass(frozen=True)
class Variant:
    stage: int  # place in the one-way order of in-place changes
    compiled: bool = True
    precision: str = "bf16"
    offload: str = "none"
    tiled: bool = False


VARIANTS = {
    "reference": Variant(0, compiled=False),
    "eager": Variant(0, compiled=False),
    "compiled": Variant(1),
    "tiled": Variant(1, tiled=True),
    "offload": Variant(1, offload="model"),
    "fp8": Variant(2, precision="fp8"),
    "fp8-tiled": Variant(2, precision="fp8", tiled=True),
    "fp8-offload": Variant(2, precision="fp8", offload="model"),
}
DEFAULT_CASES = (
    "reference:1024,eager:1024,compiled:512,compiled:1024,compiled:2048,tiled:2048,tiled:4096,"
    "offload:1024,fp8:1024,fp8-offload:1024@16"
)
TINY_CASES = "reference:64,eager:64,compiled:64,tiled:128,offload:64,fp8:64,fp8-offload:64"


@dataclass(frozen=True)
class Case:
    variant: str
    size: int
    cap_gib: float | None = None  # simulated smaller GPU (torch.cuda.set_per_process_memory_fraction)

    @property
    def label(self) -> str:
        return f"{self.variant}:{self.size}" + (f"@{self.cap_gib:g}" if self.cap_gib else "")

    @property
    def mode(self) -> Variant:
        return VARIANTS[self.variant]


def parse_cases(text: str) -> list[Case]:
    cases = []
    for token in filter(None, (part.strip() for part in text.split(","))):
        variant, _, rest = token.partition(":")
        size, _, cap = rest.partition("@")
        if variant not in VARIANTS or not size.isdigit():
            raise SystemExit(
                f"gpu_benchmark: bad case {token!r}: VARIANT:SIZE[@GIB], VARIANT one of {', '.join(VARIANTS)}"
            )
        case = Case(variant, int(size), float(cap) if cap else None)
        if cases and case.mode.stage < cases[-1].mode.stage:
            raise SystemExit(
                f"gpu_benchmark: case {token!r} after {cases[-1].label}: the model only changes "
                "one way (reference/eager, then compiled, then fp8)"
            )
        cases.append(case)
    return cases


@contextlib.contextmanager
def memory_cap(device: torch.device, gib: float | None):
    """Simulate a GPU of ``gib`` GiB: the caching allocator refuses to hold more."""
    if gib is None or device.type != "cuda":
        yield
        return
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, gib * 2**30 / total), device)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)


def compile_cache_counts() -> dict[str, int]:
    from torch._dynamo.utils import counters

    return {
        "hits": counters["inductor"]["fxgraph_cache_hit"],
        "misses": counters["inductor"]["fxgraph_cache_miss"],
    }


class OutOfMemoryRetries(logging.Handler):
    """Counts the pipeline's "out of device memory ... retrying" warnings during a case."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "out of device memory" in record.getMessage()


class Suite:
    """Runs the cases on one set of components, changing them in place between cases."""

    def __init__(
        self,
        args: argparse.Namespace,
        components: LucidFluxComponents,
        device: torch.device,
        dtype: torch.dtype,
        reference: tuple | None,
    ):
        self.args, self.components, self.device, self.dtype = args, components, device, dtype
        self.reference = reference
        self.compiled, self.precision, self.offload = False, "bf16", "none"
        self.pipeline = LucidFluxPipeline(components, device, dtype, acceleration.Placement("none", device))
        self.reference_denoise_s: dict[int, float] = {}  # size -> the reference's denoise seconds
        self.bf16_velocities: dict[
            int, list
        ] = {}  # size -> [(latents, t, fixed, velocity)] for the fp8 drift

    def run(self, case: Case) -> dict:
        if case.variant == "reference":
            return self._reference(case)
        self._free_reference()
        self._prepare(case)
        mode = case.mode
        tiles = self._tiles(case)
        result = self._measure(case, RestoreSettings(steps=self.args.steps, tiles=tiles))
        side = min(case.size, tiles.size)
        result["tile_size"] = tiles.size
        result["estimated_peak_gib"] = round(
            tiling.estimated_peak_gib(side, side, mode.precision, mode.offload), 1
        )
        if case.size in self.reference_denoise_s and not mode.tiled:
            theirs = self.reference_denoise_s[case.size]
            result["reference_denoise_s"] = theirs
            result["ours_over_reference_denoise"] = round(result["stages_s"]["denoise"] / theirs, 3)
        if mode.precision == "bf16" and not mode.tiled and mode.offload == "none":
            self._keep_velocities(case.size)
        if mode.precision == "fp8" and not mode.tiled:
            result.update(self._fp8_drift(case.size))
        return result

    def _tiles(self, case: Case) -> TileOptions:
        """One tile for untiled cases; for tiled ones --tile-size, or what --tile-size auto picks
        for this size on this GPU in this case's mode."""
        if not case.mode.tiled:
            return TileOptions(size=max(case.size, 64), batch=self.args.tile_batch)
        if self.args.tile_size or self.device.type != "cuda":
            return TileOptions(size=self.args.tile_size or 64, batch=self.args.tile_batch)
        gib = torch.cuda.get_device_properties(self.device).total_memory / 2**30
        largest = tiling.auto_tile_size(gib, case.mode.precision, case.mode.offload)
        return tiling.auto_tiles(case.size, case.size, largest, batch=self.args.tile_batch)

    def _measure(self, case: Case, settings: RestoreSettings) -> dict:
        """The timings and peak, plus the out-of-memory retries and compile-cache use they include."""
        retries = OutOfMemoryRetries()
        logging.getLogger("lucidflux_cli").addHandler(retries)
        before = compile_cache_counts()
        try:
            with memory_cap(self.device, case.cap_gib):
                result = measure(self.pipeline, case.size, settings, self.args.images)
        finally:
            logging.getLogger("lucidflux_cli").removeHandler(retries)
        result["out_of_memory_retries"] = retries.count
        if case.mode.compiled:  # graphs compiled afresh (miss) or loaded from the on-disk cache (hit)
            result["compile_cache"] = {k: v - before[k] for k, v in compile_cache_counts().items()}
        return result

    # -- the model's state --------------------------------------------------------------------

    def _prepare(self, case: Case) -> None:
        if case.mode.precision == "fp8" and self.precision != "fp8":
            self._place("none")  # quantize on the device
            problem = acceleration.fp8_problem(self.device)
            if problem:
                raise CaseError(problem)
            acceleration.quantize_fp8(self.components)
            torch._dynamo.reset()  # trace the float8 blocks afresh, as a run with --precision fp8 does
            self.precision = "fp8"
        if case.mode.compiled and not self.compiled:
            acceleration.compile_blocks(
                self.components,
                acceleration.compile_cache_dir(self.args.cache_dir),
                backend=self.args.compile_backend,
            )
            self.compiled = True
        self._place(case.mode.offload)

    def _place(self, mode: str) -> None:
        if mode == self.offload:
            return
        placement = acceleration.Placement(mode, self.device)
        c = self.components
        for module in (c.transformer, c.dual_branch, c.vae, c.siglip, c.connector):
            module.to(placement.load_device)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.pipeline = LucidFluxPipeline(c, self.device, self.dtype, placement)
        self.offload = mode

    # -- the reference and the float8 drift -------------------------------------------------------

    def _reference(self, case: Case) -> dict:
        if self.reference is None:
            raise CaseError("no --reference PATH given")
        result = compare_with_reference(
            self.args.reference, *self.reference, self.pipeline, case.size, self.args.steps, self.args.images
        )
        self.reference_denoise_s[case.size] = result["reference_denoise_s"]
        return {"size": case.size, "tiled": False, **result}

    def _free_reference(self) -> None:
        if self.reference is not None:
            self.reference = None
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    @torch.no_grad()
    def _keep_velocities(self, size: int) -> None:
        """bf16 velocities at a few points of one trajectory, to compare float8 against later."""
        if size in self.bf16_velocities:
            return
        kept, original = [], self.pipeline.velocity
        wanted = {0, self.args.steps // 2, self.args.steps - 1}

        def recording(latents, t_curr, fixed):
            velocity = original(latents, t_curr, fixed)
            if recording.step in wanted:
                kept.append((latents.clone(), t_curr, fixed, velocity.clone()))
            recording.step += 1
            return velocity

        recording.step = 0
        self.pipeline.velocity = recording
        try:
            lq, cleaned, context, plan = denoise_inputs(self.pipeline, size)
            self.pipeline.denoise(lq, cleaned, context, RestoreSettings(steps=self.args.steps), plan)
        finally:
            del self.pipeline.velocity
        self.bf16_velocities[size] = kept

    @torch.no_grad()
    def _fp8_drift(self, size: int) -> dict:
        """Float8 velocity against bf16 on the same latents and inputs: relative L2 per kept step."""
        kept = self.bf16_velocities.get(size)
        if not kept:
            return {"velocity_rel_l2_vs_bf16": None}
        drift = [
            relative_l2(self.pipeline.velocity(latents, t, fixed), velocity)
            for latents, t, fixed, velocity in kept
        ]
        return {
            "velocity_rel_l2_vs_bf16": round(max(drift), 5),
            "velocity_rel_l2_vs_bf16_steps": [round(d, 5) for d in drift],
        }


class CaseError(Exception):
    """A case that cannot run here (recorded, the suite goes on)."""


# --- main ---------------------------------------------------------------------------------------


def environment(device: torch.device) -> dict:
    info = {
        "date": dt.date.today().isoformat(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
        with contextlib.suppress(Exception):
            import subprocess

            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases",
        default=DEFAULT_CASES,
        help=f"VARIANT:SIZE[@GIB] in order, comma-separated; variants: {', '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--tile-size", type=int, help="tile side of the tiled cases (default: what --tile-size auto picks)"
    )
    parser.add_argument("--tile-batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--images", type=int, default=2, help="steady-state images per case, after the first")
    parser.add_argument(
        "--compile-backend", default="inductor", help="torch.compile backend of the compiled cases"
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="compile cache parent (default: the tool's cache folder)"
    )
    parser.add_argument(
        "--reference", type=Path, help="local checkout of W2GenAI-Lab/LucidFlux (reference cases)"
    )
    parser.add_argument(
        "--budget-s", type=float, help="skip the remaining cases once this many seconds have passed"
    )
    parser.add_argument("--json", type=Path, help="write the whole report here at the end")
    parser.add_argument("--jsonl", type=Path, help="append each case's result here as soon as it is measured")
    parser.add_argument(
        "--markdown", type=Path, help="write the results table (docs/performance.md format) here"
    )
    parser.add_argument(
        "--tiny", action="store_true", help="tiny architecture on the CPU (a smoke run, not a benchmark)"
    )
    args = parser.parse_args(argv)
    if args.tiny:  # tiny defaults for whatever was not given
        for name, value in (("cases", TINY_CASES), ("tile_size", 64), ("steps", 2)):
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    args.cases = parse_cases(args.cases)
    return args


def append_line(path: Path | None, record: dict) -> None:
    """One JSON line, on disk at once: a run cut short by a timeout keeps what it measured."""
    print(json.dumps(record), flush=True)
    if path is not None:
        with path.open("a") as stream:
            stream.write(json.dumps(record) + "\n")
            stream.flush()
            os.fsync(stream.fileno())


def markdown_table(report: dict) -> str:
    """The results as the table in docs/performance.md, with the run's date, GPU and command above it."""
    stages = ("clean", "encode", "denoise", "decode", "colour fix")
    header = [
        "case",
        "size",
        "first image (s)",
        "s/image",
        *stages,
        "peak GiB",
        "denoise vs reference",
        "notes",
    ]
    rows = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    show = lambda value: "-" if value is None else str(value)  # noqa: E731
    for r in report["results"]:
        notes = [
            f"{key} {r[key]}"
            for key in (
                "velocity_rel_l2",
                "final_latent_rel_l2",
                "velocity_rel_l2_vs_bf16",
                "compile_cache",
                "tile_size",
                "estimated_peak_gib",
                "error",
                "skipped",
            )
            if r.get(key) is not None
        ]
        if r.get("out_of_memory_retries"):
            notes.append(f"{r['out_of_memory_retries']} out-of-memory retries with smaller tiles")
        if "reference_denoise_s" in r and "ours_denoise_s" in r:
            notes.insert(
                0, f"denoise: reference {r['reference_denoise_s']} s, ours (eager) {r['ours_denoise_s']} s"
            )
        stage_times = r.get("stages_s", {})
        cells = [
            r["case"],
            f"{r['size']}{' tiled' if r.get('tiled') else ''}",
            show(r.get("first_image_s")),
            show(r.get("seconds_per_image")),
            *(show(stage_times.get(stage)) for stage in stages),
            show(r.get("peak_memory_gib")),
            show(r.get("ours_over_reference_denoise")),
            "; ".join(notes),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    head = ", ".join(f"{key}: {report.get(key, '-')}" for key in ("date", "gpu", "driver", "torch", "cuda"))
    return f"{head}; {report['steps']} steps.\nCommand: `{report['command']}`\n\n" + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> dict:
    started = time.monotonic()
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if device.type != "cuda" and not args.tiny:
        sys.exit("gpu_benchmark: no CUDA device; use --tiny for a CPU smoke run")
    arch, dtype = (TINY, torch.float32) if args.tiny else (FULL, torch.bfloat16)
    torch.backends.cuda.matmul.allow_tf32 = True
    reference = None
    if args.reference and any(case.variant == "reference" for case in args.cases):
        reference = load_reference(args.reference, arch, device, dtype)
        backbone, branches = ours_from_reference(*reference, dtype)
        components = build_components(arch, device, dtype, backbone, branches)
    else:
        components = build_components(arch, device, dtype)
    report = {
        **environment(device),
        "architecture": "tiny" if args.tiny else "full",
        "steps": args.steps,
        "options": {k: str(v) for k, v in vars(args).items()},
        "results": [],
    }
    suite = Suite(args, components, device, dtype, reference)
    del reference, components
    for case in args.cases:
        record = {"case": case.label}
        if args.budget_s is not None and time.monotonic() - started > args.budget_s:
            record.update(size=case.size, skipped="time budget spent")
        else:
            try:
                record.update(suite.run(case))
            except (CaseError, torch.cuda.OutOfMemoryError, RuntimeError, ValueError, ImportError) as error:
                record.update(
                    size=case.size, error=f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                )
            if device.type == "cuda":
                torch.cuda.empty_cache()
        report["results"].append(record)
        append_line(args.jsonl, record)
        if args.markdown:  # rewritten after every case, like the JSON lines
            args.markdown.write_text(markdown_table(report))
    report["total_s"] = round(time.monotonic() - started, 1)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
