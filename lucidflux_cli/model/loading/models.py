"""Build each LucidFlux component from its released file(s), config inferred from the tensors."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch
from diffusers import AutoencoderKL, FluxTransformer2DModel
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from diffusers.models.controlnets.controlnet_flux import FluxControlNetModel
from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder
from torch import nn

from lucidflux_cli.errors import CheckpointError
from lucidflux_cli.model.config import VaeShape
from lucidflux_cli.model.loading import files
from lucidflux_cli.model.loading.files import StateDict
from lucidflux_cli.model.loading.flux_layout import (
    FluxShape,
    _linear,
    bfl_to_diffusers_transformer,
    convert_double_block,
    convert_embedders,
    count_blocks,
    double_block_layout,
    embedder_layout,
    flux_layout,
    infer_flux_shape,
)
from lucidflux_cli.model.modules import DualConditionBranch, LayerAdaptiveModulation

log = logging.getLogger(__name__)

LUCIDFLUX_PARTS = ("condition_lq", "condition_ldr", "modulation_lq", "modulation_ldr", "connector")
# Hint encoder: Sequential indices of its 8 convs (SiLU in between) -> diffusers names.
_HINT_CONVS = {0: "conv_in", **{2 * (i + 1): f"blocks.{i}" for i in range(6)}, 14: "conv_out"}


def _materialise(model: nn.Module, state: StateDict, path: Path, what: str, dtype: torch.dtype) -> nn.Module:
    """Load ``state`` into a meta-initialised ``model`` strictly, casting to ``dtype``."""
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    files.check_keys(path, what, set(state), set(model.state_dict()))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    files.check_shapes(path, what, state, expected)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False)


@contextlib.contextmanager
def _meta_init():
    # Build modules without allocating (12B random weights would cost minutes and 48 GB).
    with torch.device("meta"):
        yield


# --- FLUX transformer (backbone) -------------------------------------------------------


def load_flux_transformer(
    path: Path, dtype: torch.dtype, device: str | torch.device = "cpu"
) -> FluxTransformer2DModel:
    """Load FLUX.1-dev from a BFL single file (bf16 or fp8) or a diffusers folder/repo root.

    Tensors are read straight onto ``device`` and cast there, so host RAM never holds 12B twice.
    """
    path = Path(path)
    if path.is_dir():
        folder = path / "transformer" if (path / "transformer").is_dir() else path
        return _load_diffusers_model(
            FluxTransformer2DModel, folder, "FLUX transformer (diffusers)", dtype, device
        )
    state = files.upcast_float8(files.strip_prefixes(files.read_state_dict(path, device)), dtype)
    shape = infer_flux_shape(state, path)
    files.check_keys(path, "FLUX transformer (BFL)", set(state), set(flux_layout(shape)))
    files.check_shapes(path, "FLUX transformer (BFL)", state, flux_layout(shape))
    if shape.mlp_hidden != 4 * shape.hidden:
        raise CheckpointError(
            path, f"unsupported MLP width {shape.mlp_hidden} (FLUX uses 4 x {shape.hidden})"
        )
    with _meta_init():
        model = FluxTransformer2DModel(**transformer_config(shape))
    return _materialise(model, bfl_to_diffusers_transformer(state, shape), path, "FLUX transformer", dtype)


def transformer_config(s: FluxShape) -> dict:
    """``FluxTransformer2DModel`` arguments for a shape (also the condition branches' base)."""
    return dict(
        patch_size=1,
        in_channels=s.in_channels,
        num_layers=s.depth,
        num_single_layers=s.depth_single,
        attention_head_dim=s.head_dim,
        num_attention_heads=s.heads,
        joint_attention_dim=s.context_dim,
        pooled_projection_dim=s.vec_dim,
        guidance_embeds=s.guidance,
        axes_dims_rope=s.axes_dim,
    )


def _load_diffusers_model(
    cls, folder: Path, what: str, dtype: torch.dtype, device: str | torch.device = "cpu"
):
    config = files.read_json(folder / "config.json")
    init_args = {k: v for k, v in config.items() if not k.startswith("_")}
    state = files.read_diffusers_weights(folder, device)
    try:
        with _meta_init():
            model = cls.from_config(init_args)
    except (TypeError, ValueError) as error:
        raise CheckpointError(folder / "config.json", f"not a {what} config ({error})") from error
    return _materialise(model, state, folder, what, dtype)


# --- FLUX autoencoder -------------------------------------------------------------------


def load_flux_vae(path: Path, dtype: torch.dtype) -> AutoencoderKL:
    """Load the FLUX autoencoder from BFL ``ae.safetensors`` or a diffusers ``vae/`` folder."""
    path = Path(path)
    if path.is_dir():
        folder = path / "vae" if (path / "vae").is_dir() else path
        return _load_diffusers_model(AutoencoderKL, folder, "FLUX autoencoder (diffusers)", dtype)
    state = files.strip_prefixes(files.read_state_dict(path))
    config = _vae_config(state, path)
    with _meta_init():
        model = AutoencoderKL(**config)
    converted = convert_ldm_vae_checkpoint(state, config)
    # diffusers' converter skips keys it does not know; name them instead (strict loading).
    used = {t.data_ptr() for t in converted.values()}  # reshaped attention weights are views
    unexpected = sorted(k for k, v in state.items() if v.data_ptr() not in used)
    if unexpected:
        files.check_keys(path, "FLUX autoencoder (BFL)", set(unexpected), set())
    return _materialise(model, converted, path, "FLUX autoencoder", dtype)


def _vae_config(state: StateDict, path: Path) -> dict:
    try:
        levels = count_blocks(state, "encoder.down.")
        shape = VaeShape(
            channels=tuple(state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] for i in range(levels)),
            layers_per_block=count_blocks(state, "encoder.down.0.block."),
            latent_channels=state["decoder.conv_in.weight"].shape[1],
        )
        config = vae_config(
            shape, quant_conv="quant_conv.weight" in state, post_quant_conv="post_quant_conv.weight" in state
        )
        config.update(
            in_channels=state["encoder.conv_in.weight"].shape[1],
            out_channels=state["decoder.conv_out.weight"].shape[0],
        )
        return config
    except KeyError as error:
        raise CheckpointError(path, f"not a FLUX autoencoder (BFL layout): key {error} is missing") from error


# --- lucidflux.pth: condition branches, modulations, connector ---------------------------


def read_lucidflux(path: Path) -> dict[str, StateDict]:
    """Split ``lucidflux.pth`` into its five state dicts, naming any missing or extra part. A
    ``.safetensors`` file (what ``lucidflux train`` also writes) is flat: ``<part>.<key>``."""
    if path.suffix == ".safetensors":
        obj: dict = {}
        for name, tensor in files.read_safetensors(path).items():
            part, _, key = name.partition(".")
            obj.setdefault(part, {})[key] = tensor
    else:
        obj = files.read_pickle(path)
    if not isinstance(obj, dict):
        raise CheckpointError(path, "expected a dict of the five LucidFlux parts")
    files.check_keys(path, "lucidflux.pth (parts)", set(obj), set(LUCIDFLUX_PARTS))
    for part in LUCIDFLUX_PARTS:
        if not isinstance(obj[part], dict):
            raise CheckpointError(path, f"part '{part}' is not a state dict")
    return {part: files.strip_prefixes(obj[part]) for part in LUCIDFLUX_PARTS}


def condition_branch_layout(s: FluxShape) -> dict[str, tuple[int, ...]]:
    layout = embedder_layout(s)
    for i in range(s.depth):
        layout.update(double_block_layout(f"double_blocks.{i}", s))
        layout.update(_linear(f"controlnet_blocks.{i}", s.hidden, s.hidden))
    layout.update(_linear("pos_embed_input", s.hidden, s.in_channels))
    for index in _HINT_CONVS:
        in_ch = 3 if index == 0 else 16
        layout[f"input_hint_block.{index}.weight"] = (16, in_ch, 3, 3)
        layout[f"input_hint_block.{index}.bias"] = (16,)
    return layout


def load_condition_branch(state: StateDict, path: Path, part: str, dtype: torch.dtype) -> FluxControlNetModel:
    """One single condition branch: diffusers' Flux ControlNet with a pixel-space hint encoder."""
    what = f"lucidflux.pth '{part}'"
    shape = infer_flux_shape(state, f"{path} [{part}]")
    layout = condition_branch_layout(shape)
    files.check_keys(path, what, set(state), set(layout))
    files.check_shapes(path, what, state, layout)
    out: StateDict = {}
    convert_embedders(state, out)
    for i in range(shape.depth):
        convert_double_block(state, out, f"double_blocks.{i}", f"transformer_blocks.{i}", shape.hidden)
        for suffix in ("weight", "bias"):
            out[f"controlnet_blocks.{i}.{suffix}"] = state[f"controlnet_blocks.{i}.{suffix}"]
    for suffix in ("weight", "bias"):
        out[f"controlnet_x_embedder.{suffix}"] = state[f"pos_embed_input.{suffix}"]
        for index, name in _HINT_CONVS.items():
            out[f"input_hint_block.{name}.{suffix}"] = state[f"input_hint_block.{index}.{suffix}"]
    with _meta_init():
        # patch_size=2 makes diffusers pack the (16, H/8, W/8) hint 2x2 like the latent.
        model = FluxControlNetModel(**branch_config(shape))
    return _materialise(model, out, path, what, dtype)


def branch_config(s: FluxShape, hint_channels: int = 16) -> dict:
    """``FluxControlNetModel`` arguments of one condition branch (double blocks only)."""
    # patch_size=2 makes diffusers pack the (16, H/8, W/8) hint 2x2 like the latent.
    return {
        **transformer_config(s),
        "patch_size": 2,
        "num_single_layers": 0,
        "conditioning_embedding_channels": hint_channels,
    }


def vae_config(v: VaeShape, *, quant_conv: bool = False, post_quant_conv: bool = False) -> dict:
    """``AutoencoderKL`` arguments of a FLUX autoencoder shape."""
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * len(v.channels),
        up_block_types=["UpDecoderBlock2D"] * len(v.channels),
        block_out_channels=list(v.channels),
        layers_per_block=v.layers_per_block,
        latent_channels=v.latent_channels,
        norm_num_groups=v.norm_groups,
        scaling_factor=v.scaling,
        shift_factor=v.shift,
        use_quant_conv=quant_conv,
        use_post_quant_conv=post_quant_conv,
    )


def load_modulation(state: StateDict, path: Path, part: str, dtype: torch.dtype) -> LayerAdaptiveModulation:
    try:
        dim = state["linear.weight"].shape[1]
    except KeyError as error:
        raise CheckpointError(path, f"lucidflux.pth '{part}': key {error} is missing") from error
    with _meta_init():
        model = LayerAdaptiveModulation(dim=dim)
    return _materialise(model, state, path, f"lucidflux.pth '{part}'", dtype)


def load_connector(state: StateDict, path: Path, dtype: torch.dtype) -> ReduxImageEncoder:
    try:
        redux_dim = state["redux_up.weight"].shape[1]
        txt_dim = state["redux_down.weight"].shape[0]
    except KeyError as error:
        raise CheckpointError(path, f"lucidflux.pth 'connector': key {error} is missing") from error
    with _meta_init():
        model = ReduxImageEncoder(redux_dim=redux_dim, txt_in_features=txt_dim)
    return _materialise(model, state, path, "lucidflux.pth 'connector'", dtype)


def load_dual_branch(
    path: Path, num_backbone_blocks: int, dtype: torch.dtype
) -> tuple[DualConditionBranch, nn.Module]:
    """The dual condition branch and the SigLIP->text connector from ``lucidflux.pth``."""
    parts = read_lucidflux(Path(path))
    dual = DualConditionBranch(
        lq=load_condition_branch(parts["condition_lq"], path, "condition_lq", dtype),
        ldr=load_condition_branch(parts["condition_ldr"], path, "condition_ldr", dtype),
        modulation_lq=load_modulation(parts["modulation_lq"], path, "modulation_lq", dtype),
        modulation_ldr=load_modulation(parts["modulation_ldr"], path, "modulation_ldr", dtype),
        num_backbone_blocks=num_backbone_blocks,
    )
    return dual, load_connector(parts["connector"], path, dtype)


# --- SwinIR (DiffBIR) and SigLIP ----------------------------------------------------------


def load_swinir(path: Path):
    """DiffBIR's SwinIR through spandrel, which detects the variant from the state dict.

    Always float32: the reference runs SwinIR in float32 whatever the diffusion dtype.
    """
    from spandrel import ModelLoader

    state = files.strip_prefixes(files.read_state_dict(path))
    try:
        descriptor = ModelLoader().load_from_state_dict(state)
    except Exception as error:  # spandrel raises UnsupportedModelError or load errors
        raise CheckpointError(
            path, f"not a SwinIR checkpoint spandrel can load ({files._first_line(error)})"
        ) from error
    if descriptor.architecture.id != "SwinIR":
        raise CheckpointError(path, f"expected a SwinIR checkpoint, found {descriptor.architecture.id}")
    return descriptor.eval()


def load_siglip(folder: Path, dtype: torch.dtype):
    """SigLIP vision tower; the text tower of a full SigLIP folder is ignored."""
    from transformers import SiglipVisionModel
    from transformers.utils import logging as hf_logging

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise CheckpointError(folder, "not a SigLIP folder (no config.json)")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report lists the (expected) unused text tower
    hf_logging.disable_progress_bar()
    try:
        model, info = SiglipVisionModel.from_pretrained(
            folder, dtype=dtype, output_loading_info=True, local_files_only=True
        )
    except (OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(folder, f"cannot load SigLIP ({files._first_line(error)})") from error
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    missing = sorted(info.get("missing_keys", []))
    mismatched = info.get("mismatched_keys", [])
    if missing or mismatched:
        names = missing[:6] + [str(m[0]) for m in mismatched[:3]]
        raise CheckpointError(
            folder, f"SigLIP weights incomplete: {len(missing) + len(mismatched)} key(s) {names}"
        )
    return model.eval().requires_grad_(False)
