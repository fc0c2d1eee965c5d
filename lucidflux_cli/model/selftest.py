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
    from lucidflux_cli.model.devices import resolve_dtype

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
        return SelfTestResult(device, _dtype_name(dtype), False, time.perf_counter() - started, one_line(error))
    return SelfTestResult(device, _dtype_name(dtype), True, time.perf_counter() - started)


def build_components(device: torch.device, dtype: torch.dtype) -> LucidFluxComponents:
    """Tiny random components placed as ``load_components`` places them (VAE, SwinIR in float32)."""
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder

    from lucidflux_cli.model.loading.flux_layout import FluxShape
    from lucidflux_cli.model.modules import DualConditionBranch, LayerAdaptiveModulation

    backbone = FluxShape(hidden=64, in_channels=64, context_dim=32, vec_dim=16, head_dim=32, mlp_hidden=256,
                         depth=3, depth_single=1, guidance=True)
    branch = FluxShape(**{**backbone.__dict__, "depth": 2})
    siglip_hidden = 32
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        torch.manual_seed(SEED)
        transformer = _transformer(backbone)
        dual = DualConditionBranch(
            lq=_condition_branch(branch),
            ldr=_condition_branch(branch),
            modulation_lq=LayerAdaptiveModulation(dim=backbone.hidden),
            modulation_ldr=LayerAdaptiveModulation(dim=backbone.hidden),
            num_backbone_blocks=backbone.depth,
        )
        connector = ReduxImageEncoder(redux_dim=siglip_hidden, txt_in_features=backbone.context_dim)
        siglip = _siglip(siglip_hidden)
        vae = _vae()
        remover = _swinir(device)
        txt = torch.randn(1, 8, backbone.context_dim)
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


def _transformer(shape):
    from diffusers import FluxTransformer2DModel

    from lucidflux_cli.model.loading.models import _transformer_config

    return FluxTransformer2DModel(**_transformer_config(shape))


def _condition_branch(shape):
    from diffusers.models.controlnets.controlnet_flux import FluxControlNetModel

    from lucidflux_cli.model.loading.models import _transformer_config

    # The arguments load_condition_branch uses; diffusers zero-initialises the output
    # projections, so give them values for the residuals to reach the backbone.
    model = FluxControlNetModel(**{**_transformer_config(shape), "patch_size": 2, "num_single_layers": 0},
                                conditioning_embedding_channels=16)
    with torch.no_grad():
        for block in model.controlnet_blocks:
            torch.nn.init.normal_(block.weight, std=0.02)
    return model


def _siglip(hidden: int):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    # 64 px / 16 px patches = 16 image tokens; the pipeline takes whatever count SigLIP gives.
    config = SiglipVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                                num_attention_heads=2, image_size=64, patch_size=16)
    return SiglipVisionModel(config)


def _vae():
    from diffusers import AutoencoderKL

    from lucidflux_cli.model.loading.models import FLUX_VAE_SCALING, FLUX_VAE_SHIFT

    # Four levels: the same 8x downsampling and 16 latent channels as the FLUX autoencoder.
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[8] * 4, layers_per_block=1,
        latent_channels=16, norm_num_groups=4, scaling_factor=FLUX_VAE_SCALING, shift_factor=FLUX_VAE_SHIFT,
        use_quant_conv=False, use_post_quant_conv=False,
    )


def _swinir(device: torch.device):
    """DiffBIR's pixel-unshuffle SwinIR through spandrel's detection, wrapped as the swinir remover does."""
    from spandrel import ModelLoader
    from spandrel.architectures.SwinIR import SwinIR

    from lucidflux_cli.model.removers import RemoverModel

    model = SwinIR(img_size=64, patch_size=1, in_chans=3, embed_dim=16, depths=[2], num_heads=[2], window_size=8,
                   mlp_ratio=2.0, upscale=8, img_range=1.0, upsampler="nearest+conv", resi_connection="1conv",
                   start_unshuffle=8)
    # DiffBIR checkpoints name the conv after the unshuffle ``conv_first.1``; spandrel detects the variant by it.
    state = {k.replace("conv_first.", "conv_first.1.", 1) if k.startswith("conv_first.") else k: v
             for k, v in model.state_dict().items()}
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


