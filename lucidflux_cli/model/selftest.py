"""A seconds-long self-test: the real pipeline classes, tiny and randomly initialised, in memory.

Nothing is read from disk or downloaded. Every component is the class ``load_components``
builds (diffusers FLUX transformer and ControlNets, LucidFlux modulation, Redux connector,
SigLIP vision tower, FLUX autoencoder, SwinIR through spandrel), so a pass means torch,
diffusers, transformers and spandrel work together on that device, in the dtype ``restore``
would use there. It says nothing about the real weights or whether they fit in memory.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from lucidflux_cli.errors import one_line
from lucidflux_cli.model.config import LucidFluxConfig
from lucidflux_cli.model.pipeline import LucidFluxComponents, LucidFluxPipeline, RestoreSettings

IMAGE_SIZE = 64  # smallest input that passes every stage unpadded (SwinIR works on multiples of 64)
STEPS = 2
SEED = 0


@dataclass(frozen=True)
class SelfTestResult:
    device: str
    dtype: str
    ok: bool
    seconds: float  # build + run
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def devices() -> list[str]:
    """Every device ``restore --device`` can use here: cpu and each cuda:N."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return found


def run(device: str, dtype: torch.dtype | None = None) -> SelfTestResult:
    """Build the tiny pipeline on ``device`` and restore one small image; never raises."""
    from lucidflux_cli.devices import resolve_dtype

    target = torch.device(device)
    dtype = dtype or resolve_dtype("auto", target)
    started = time.perf_counter()
    try:
        with _quiet(), _threads(1 if target.type == "cpu" else None):
            pipeline = LucidFluxPipeline(build_components(target, dtype), target, dtype)
            restored = pipeline(_test_image(), settings=RestoreSettings(steps=STEPS, seed=SEED))
        if target.type == "cuda":
            torch.cuda.synchronize(target)
        _check_output(restored)
    except Exception as error:  # noqa: BLE001 - any failure is the answer, reported in one line
        return SelfTestResult(
            device, _dtype_name(dtype), False, time.perf_counter() - started, one_line(error)
        )
    return SelfTestResult(device, _dtype_name(dtype), True, time.perf_counter() - started)


def build_components(
    device: torch.device, dtype: torch.dtype, config: LucidFluxConfig | None = None
) -> LucidFluxComponents:
    """Random components of ``config`` (default: the tiny test size) placed as ``load_components``
    places them (VAE, SwinIR in float32)."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from diffusers.models.controlnets.controlnet_flux import FluxControlNetModel
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder

    from lucidflux_cli.model.loading.models import branch_config, transformer_config, vae_config
    from lucidflux_cli.model.modules import DualConditionBranch, LayerAdaptiveModulation

    config = config or LucidFluxConfig.tiny()
    backbone = config.backbone
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        torch.manual_seed(SEED)
        transformer = FluxTransformer2DModel(**transformer_config(backbone))
        lq, ldr = (
            _condition_branch(FluxControlNetModel(**branch_config(config.branch, config.hint_channels)))
            for _ in range(2)
        )
        dual = DualConditionBranch(
            lq=lq,
            ldr=ldr,
            modulation_lq=LayerAdaptiveModulation(dim=backbone.hidden),
            modulation_ldr=LayerAdaptiveModulation(dim=backbone.hidden),
            num_backbone_blocks=config.residuals,
        )
        connector = ReduxImageEncoder(redux_dim=config.siglip.hidden, txt_in_features=backbone.context_dim)
        siglip = _siglip(config)
        vae = AutoencoderKL(**vae_config(config.vae))
        remover = _swinir(config, device)
        txt = torch.randn(1, config.prompt_tokens, backbone.context_dim)
        vec = torch.randn(1, backbone.vec_dim)
    return LucidFluxComponents(
        transformer=_ready(transformer, device, dtype),
        vae=_ready(vae, device, torch.float32),
        dual_branch=_ready(dual, device, dtype),
        connector=_ready(connector, device, dtype),
        siglip=_ready(siglip, device, dtype),
        remover=remover,
        remover_multiple=remover.multiple_of,
        txt=txt,
        vec=vec,
    )


# --- tiny components ----------------------------------------------------------------------


def _condition_branch(model: torch.nn.Module) -> torch.nn.Module:
    # diffusers zero-initialises the output projections; give them values for the residuals
    # to reach the backbone.
    with torch.no_grad():
        for block in model.controlnet_blocks:
            torch.nn.init.normal_(block.weight, std=0.02)
    return model


def _siglip(config: LucidFluxConfig):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    s = config.siglip
    return SiglipVisionModel(
        SiglipVisionConfig(
            hidden_size=s.hidden,
            intermediate_size=s.intermediate,
            num_hidden_layers=s.layers,
            num_attention_heads=s.heads,
            image_size=s.image_size,
            patch_size=s.patch_size,
        )
    )


def _swinir(config: LucidFluxConfig, device: torch.device):
    """DiffBIR's pixel-unshuffle SwinIR through spandrel's detection, wrapped as the swinir remover does."""
    from spandrel import ModelLoader
    from spandrel.architectures.SwinIR import SwinIR

    from lucidflux_cli.model.removers import RemoverModel

    s = config.swinir
    model = SwinIR(
        img_size=s.img_size,
        patch_size=1,
        in_chans=3,
        embed_dim=s.embed_dim,
        depths=list(s.depths),
        num_heads=list(s.heads),
        window_size=s.window,
        mlp_ratio=s.mlp_ratio,
        upscale=s.unshuffle,
        img_range=1.0,
        upsampler="nearest+conv",
        resi_connection="1conv",
        start_unshuffle=s.unshuffle,
    )
    # DiffBIR checkpoints name the conv after the unshuffle ``conv_first.1``; spandrel detects the
    # variant by it.
    state = {
        k.replace("conv_first.", "conv_first.1.", 1) if k.startswith("conv_first.") else k: v
        for k, v in model.state_dict().items()
    }
    descriptor = ModelLoader().load_from_state_dict(state)
    if descriptor.architecture.id != "SwinIR":
        raise RuntimeError(f"spandrel detected {descriptor.architecture.id}, not SwinIR")
    descriptor = descriptor.to(device).eval()  # float32, as the reference
    return RemoverModel(run=descriptor, multiple_of=descriptor.size_requirements.multiple_of, name="swinir")


# --- helpers ------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet():
    """Hide the libraries' deprecation and dtype-cast notices: they are about them, not this machine."""
    loggers = [logging.getLogger(name) for name in ("diffusers", "transformers")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


@contextlib.contextmanager
def _threads(count: int | None):
    """Run with ``count`` torch threads: tensors this small only lose time to thread hand-offs
    (seconds instead of a tenth of one on a busy machine)."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _ready(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    return module.to(device=device, dtype=dtype).eval().requires_grad_(False)


def _test_image() -> Image.Image:
    """A noisy gradient, 8-bit RGB."""
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    rng = np.random.default_rng(SEED)
    base = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1) + rng.normal(0, 8, (IMAGE_SIZE, IMAGE_SIZE, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), mode="RGB")


def _check_output(restored: np.ndarray) -> None:
    if restored.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise RuntimeError(f"output has shape {restored.shape}, expected {(IMAGE_SIZE, IMAGE_SIZE, 3)}")
    if not np.isfinite(restored).all():
        raise RuntimeError("output contains NaN or infinite values")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
