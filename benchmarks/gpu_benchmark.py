"""GPU benchmark: the restore pipeline on the full-size LucidFlux architecture with random weights.

Nothing is downloaded: every model is built from its configuration (FLUX.1-dev: 19 double +
38 single blocks, width 3072; two condition branches of 2 double blocks; SigLIP so400m
patch16-512; the FLUX VAE; DiffBIR's SwinIR) on the meta device, then materialised on the
device and filled with seeded random values. Random weights make the image meaningless but
the work identical, so the timings are those of real weights.

Per size it reports the first-image latency (including compilation), the steady-state seconds
per image, the per-stage split and the peak ``torch.cuda.max_memory_allocated``::

    python benchmarks/gpu_benchmark.py --sizes 512,1024,2048,4096 --steps 20 --json perf.json
    python benchmarks/gpu_benchmark.py --reference /path/to/LucidFlux   # + the reference's loop, ratios
    python benchmarks/gpu_benchmark.py --tiny                           # CPU, tiny sizes: a smoke run

``--reference PATH`` (a local checkout of W2GenAI-Lab/LucidFlux) builds the reference's own
backbone, condition branches and modulations, fills *them* with the random weights, converts
those same tensors into our modules with the product's loaders, and times the reference's
``denoise_lucidflux`` loop against our denoise stage on the same inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import math
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

from lucidflux_cli import acceleration  # noqa: E402
from lucidflux_cli import pipeline as pipeline_module
from lucidflux_cli.models import DualConditionBranch, LayerAdaptiveModulation  # noqa: E402
from lucidflux_cli.pipeline import LucidFluxComponents, LucidFluxPipeline, RestoreSettings  # noqa: E402
from lucidflux_cli.removers import RemoverModel  # noqa: E402
from lucidflux_cli.tiling import TileOptions  # noqa: E402


@dataclass(frozen=True)
class Architecture:
    hidden: int = 3072
    heads: int = 24
    axes: tuple[int, int, int] = (16, 56, 56)
    depth: int = 19
    single: int = 38
    branch_depth: int = 2
    context: int = 4096  # T5 width
    vec: int = 768  # CLIP pooled width
    txt_len: int = 512
    siglip: dict = None  # SiglipVisionConfig arguments
    vae_channels: tuple[int, ...] = (128, 256, 512, 512)
    vae_layers: int = 2
    swinir: dict = None  # spandrel SwinIR arguments


FULL = Architecture(
    siglip=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                image_size=512, patch_size=16),
    swinir=dict(img_size=64, embed_dim=180, depths=[6] * 8, num_heads=[6] * 8, window_size=8, mlp_ratio=2.0),
)
TINY = Architecture(
    hidden=64, heads=2, axes=(4, 14, 14), depth=3, single=2, context=32, vec=16, txt_len=16,
    siglip=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                image_size=64, patch_size=16),
    vae_channels=(32, 32, 32, 32), vae_layers=1,
    swinir=dict(img_size=64, embed_dim=16, depths=[2], num_heads=[2], window_size=8, mlp_ratio=2.0),
)


# --- random models ---------------------------------------------------------------------------


def _build(factory, device: torch.device, dtype: torch.dtype, seed: int) -> nn.Module:
    """Construct on meta (no allocation, no init), materialise on ``device``, fill with random values.

    Modules with buffers computed at construction (SigLIP position ids, SwinIR attention masks;
    both small) are built on the device directly instead, keeping those buffers.
    """
    module = _construct(factory, device).to(dtype)
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
    with torch.device(device):
        return factory()


def flux_config(arch: Architecture) -> dict:
    return dict(patch_size=1, in_channels=64, num_layers=arch.depth, num_single_layers=arch.single,
                attention_head_dim=arch.hidden // arch.heads, num_attention_heads=arch.heads,
                joint_attention_dim=arch.context, pooled_projection_dim=arch.vec, guidance_embeds=True,
                axes_dims_rope=arch.axes)


def build_components(arch: Architecture, device: torch.device, dtype: torch.dtype,
                     backbone: nn.Module | None = None, branches: tuple | None = None) -> LucidFluxComponents:
    """Our components with random weights; ``backbone``/``branches`` (converted from the
    reference's modules) replace the random ones when given."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from diffusers.models.controlnets.controlnet_flux import FluxControlNetModel
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder
    from spandrel.architectures.SwinIR import SwinIR
    from transformers import SiglipVisionConfig, SiglipVisionModel

    branch_config = {**flux_config(arch), "num_layers": arch.branch_depth, "num_single_layers": 0, "patch_size": 2}
    transformer = backbone or _build(lambda: FluxTransformer2DModel(**flux_config(arch)), device, dtype, 1)
    if branches is None:
        lq, ldr, mod_lq, mod_ldr = (
            _build(lambda: FluxControlNetModel(**branch_config, conditioning_embedding_channels=16), device, dtype, 2),
            _build(lambda: FluxControlNetModel(**branch_config, conditioning_embedding_channels=16), device, dtype, 3),
            _build(lambda: LayerAdaptiveModulation(arch.hidden), device, dtype, 4),
            _build(lambda: LayerAdaptiveModulation(arch.hidden), device, dtype, 5),
        )
    else:
        lq, ldr, mod_lq, mod_ldr = branches
    vae = _build(lambda: AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * len(arch.vae_channels),
        up_block_types=["UpDecoderBlock2D"] * len(arch.vae_channels), block_out_channels=list(arch.vae_channels),
        layers_per_block=arch.vae_layers, latent_channels=16, norm_num_groups=32, scaling_factor=0.3611,
        shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False), device, torch.float32, 6)
    siglip = _build(lambda: SiglipVisionModel(SiglipVisionConfig(**arch.siglip)), device, dtype, 7)
    connector = _build(lambda: ReduxImageEncoder(redux_dim=arch.siglip["hidden_size"], txt_in_features=arch.context),
                       device, dtype, 8)
    swinir = _build(lambda: SwinIR(**arch.swinir, upscale=8, upsampler="nearest+conv", resi_connection="1conv",
                                   start_unshuffle=8, img_range=1.0), device, torch.float32, 9)
    generator = torch.Generator().manual_seed(10)
    return LucidFluxComponents(
        transformer=transformer, vae=vae,
        dual_branch=DualConditionBranch(lq, ldr, mod_lq, mod_ldr, arch.depth),
        connector=connector, siglip=siglip,
        remover=RemoverModel(run=swinir, multiple_of=64, name="swinir"), remover_multiple=64,
        txt=torch.randn(1, arch.txt_len, arch.context, generator=generator).to(dtype) * 0.5,
        vec=torch.randn(1, arch.vec, generator=generator).to(dtype) * 0.5,
    )


# --- timing ------------------------------------------------------------------------------------

STAGES = {  # pipeline method or module function -> stage name
    "clean": "clean", "clean_tiled": "clean", "encode_context": "encode", "denoise": "denoise",
    "denoise_tiled": "denoise", "decode": "decode", "decode_tiled": "decode",
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
    originals = {name: getattr(pipeline_module, name) for name in ("wavelet_color_fix", "color_fix_tiled")}
    for name, function in originals.items():
        setattr(pipeline_module, name, clock.wrap("colour fix", function))
    try:
        yield clock
    finally:
        for name, function in originals.items():
            setattr(pipeline_module, name, function)
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
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(pipeline.device) / 2**30, 2) if cuda else None,
    }


# --- the reference ----------------------------------------------------------------------------


def load_reference(path: Path, arch: Architecture, device: torch.device, dtype: torch.dtype):
    """The reference's backbone, branches and modulations (its own classes) with random weights."""
    sys.path.insert(0, str(path))
    from src.flux.condition import SingleConditionBranch
    from src.flux.model import Flux, FluxParams

    spec = importlib.util.spec_from_file_location("lucidflux_reference_inference", path / "inference.py")
    inference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(inference)
    params = FluxParams(in_channels=64, vec_in_dim=arch.vec, context_in_dim=arch.context, hidden_size=arch.hidden,
                        mlp_ratio=4.0, num_heads=arch.heads, depth=arch.depth, depth_single_blocks=arch.single,
                        axes_dim=list(arch.axes), theta=10_000, qkv_bias=True, guidance_embed=True)
    model = _build(lambda: Flux(params), device, dtype, 1)
    lq = _build(lambda: SingleConditionBranch(params), device, dtype, 2)
    ldr = _build(lambda: SingleConditionBranch(params), device, dtype, 3)
    mod_lq = _build(lambda: inference.Modulation(dim=arch.hidden), device, dtype, 4)
    mod_ldr = _build(lambda: inference.Modulation(dim=arch.hidden), device, dtype, 5)
    return model, inference.DualConditionBranch(lq, ldr, mod_lq, mod_ldr)


def ours_from_reference(model: nn.Module, dual: nn.Module, dtype: torch.dtype):
    """The very same tensors in our modules, through the product's BFL converters."""
    from diffusers import FluxTransformer2DModel

    from lucidflux_cli.loading import models
    from lucidflux_cli.loading.flux_layout import bfl_to_diffusers_transformer, infer_flux_shape

    state = dict(model.state_dict())
    shape = infer_flux_shape(state, "reference backbone")
    with torch.device("meta"):
        transformer = FluxTransformer2DModel(**models._transformer_config(shape))
    converted = bfl_to_diffusers_transformer(state, shape)
    del state
    transformer.load_state_dict(converted, strict=True, assign=True)
    branches = tuple(models.load_condition_branch(dict(b.state_dict()), Path("reference"), part, dtype)
                     for b, part in ((dual.lq, "condition_lq"), (dual.ldr, "condition_ldr")))
    mods = tuple(models.load_modulation(dict(m.state_dict()), Path("reference"), part, dtype)
                 for m, part in ((dual.modulation_lq, "modulation_lq"), (dual.modulation_ldr, "modulation_ldr")))
    return transformer.eval().requires_grad_(False), (*branches, *mods)


def time_reference_denoise(path: Path, model, dual, pipeline: LucidFluxPipeline, size: int, steps: int,
                           repeats: int) -> tuple[float, float]:
    """(theirs, ours) seconds of the denoise stage alone, same inputs, untiled."""
    sys.path.insert(0, str(path))
    from src.flux.sampling import denoise_lucidflux

    from lucidflux_cli import sampling

    device, dtype, c = pipeline.device, pipeline.dtype, pipeline.c
    generator = torch.Generator().manual_seed(size)
    lq = (torch.rand(1, 3, size, size, generator=generator) * 2 - 1).to(device, dtype)
    cleaned = torch.rand(1, 3, size, size, generator=generator).to(device)
    context = pipeline.encode_context(cleaned)
    noise = sampling.pack_latents(sampling.make_noise(size, size, 0, device, dtype))
    img_ids = sampling.image_positions(size, size, device)[None].to(dtype)
    txt = c.txt.to(device, dtype)
    times = sampling.timesteps(steps, size, size)

    def theirs():
        denoise_lucidflux(model, dual_condition_model=dual, img=noise, img_ids=img_ids, txt=txt,
                          txt_ids=torch.zeros(1, txt.shape[1], 3, device=device, dtype=dtype), siglip_txt=context,
                          siglip_txt_ids=torch.zeros(1, context.shape[1], 3, device=device, dtype=dtype),
                          vec=c.vec.to(device, dtype), timesteps=times, guidance=4.0, condition_cond_lq=lq,
                          condition_cond_ldr=(cleaned * 2 - 1).to(dtype))

    def ours():
        pipeline.denoise(lq, cleaned, context, RestoreSettings(steps=steps, seed=0))

    results = []
    for function in (theirs, ours):
        function()  # warm-up (and compile, for ours)
        clock = StageClock(device)
        timed = clock.wrap("denoise", function)
        for _ in range(repeats):
            timed()
        results.append(clock.seconds["denoise"] / repeats)
    return results[0], results[1]


# --- main ---------------------------------------------------------------------------------------


def environment(device: torch.device) -> dict:
    info = {"date": dt.date.today().isoformat(), "torch": torch.__version__, "python": platform.python_version(),
            "command": " ".join([Path(sys.executable).name, *sys.argv])}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        with contextlib.suppress(Exception):
            import subprocess

            info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True, check=True).stdout.strip()
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="512,1024,2048,4096", help="square sizes in px, comma-separated")
    parser.add_argument("--tiled-from", type=int, default=4096, help="sizes >= this run tiled (--tile-size tiles)")
    parser.add_argument("--tile-size", type=int, default=1024)
    parser.add_argument("--tile-batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--images", type=int, default=2, help="steady-state images per size, after the first")
    parser.add_argument("--compile", choices=acceleration.COMPILE_MODES, default="auto")
    parser.add_argument("--precision", choices=acceleration.PRECISIONS, default="bf16")
    parser.add_argument("--offload", choices=acceleration.OFFLOAD_MODES, default="none")
    parser.add_argument("--cache-dir", type=Path, help="compile cache parent (default: the tool's cache folder)")
    parser.add_argument("--reference", type=Path, help="local checkout of W2GenAI-Lab/LucidFlux: also time its loop")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--tiny", action="store_true", help="tiny architecture on the CPU (a smoke run, not a benchmark)")
    args = parser.parse_args(argv)
    if args.tiny:  # tiny defaults for whatever was not given
        for name, value in (("sizes", "64,128"), ("tiled_from", 128), ("tile_size", 64), ("steps", 2)):
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> dict:
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
    if args.reference:
        reference = load_reference(args.reference, arch, device, dtype)
        backbone, branches = ours_from_reference(*reference, dtype)
        components = build_components(arch, device, dtype, backbone, branches)
    else:
        components = build_components(arch, device, dtype)
    placement = acceleration.Placement(args.offload, device)
    compiled = acceleration.apply(components, device=device, precision=args.precision, compile_mode=args.compile,
                                  placement=placement, cache_dir=args.cache_dir)
    pipeline = LucidFluxPipeline(components, device, dtype, placement)
    report = {**environment(device), "architecture": "tiny" if args.tiny else "full", "compiled": compiled,
              "options": {k: str(v) for k, v in vars(args).items()}, "results": []}
    for size in (int(s) for s in args.sizes.split(",")):
        tiled = size >= args.tiled_from
        tiles = TileOptions(size=args.tile_size if tiled else max(size, 64), batch=args.tile_batch)
        result = measure(pipeline, size, RestoreSettings(steps=args.steps, tiles=tiles), args.images)
        if reference is not None and not tiled:
            theirs, ours = time_reference_denoise(args.reference, *reference, pipeline, size, args.steps, args.images)
            result["reference_denoise_s"], result["our_denoise_s"] = round(theirs, 3), round(ours, 3)
            result["ours_over_theirs"] = round(ours / theirs, 3)
        report["results"].append(result)
        print(json.dumps(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
