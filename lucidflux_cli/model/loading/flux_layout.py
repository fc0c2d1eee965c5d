"""The BFL (black-forest-labs/flux) key layout, and its translation to diffusers' Flux classes.

FLUX.1-dev ships as a BFL single file (``flux1-dev.safetensors``) and as a diffusers folder;
LucidFlux's condition branches use BFL names too. diffusers' own converter hard-codes the
12B hidden size, so this one reads every size off the tensors instead.
"""

from __future__ import annotations

import torch

from lucidflux_cli.errors import CheckpointError
from lucidflux_cli.model.config import FluxShape

__all__ = ["FluxShape"]  # re-exported: loaders take shapes from here

StateDict = dict[str, torch.Tensor]
Layout = dict[str, tuple[int, ...]]


def count_blocks(state: StateDict, prefix: str) -> int:
    indices = {int(k[len(prefix) :].split(".", 1)[0]) for k in state if k.startswith(prefix)}
    return max(indices) + 1 if indices else 0


def infer_flux_shape(state: StateDict, path: object) -> FluxShape:
    try:
        hidden, in_channels = state["img_in.weight"].shape
        head_dim = state["double_blocks.0.img_attn.norm.query_norm.scale"].shape[0]
        return FluxShape(
            hidden=hidden,
            in_channels=in_channels,
            context_dim=state["txt_in.weight"].shape[1],
            vec_dim=state["vector_in.in_layer.weight"].shape[1],
            head_dim=head_dim,
            mlp_hidden=state["double_blocks.0.img_mlp.0.weight"].shape[0],
            depth=count_blocks(state, "double_blocks."),
            depth_single=count_blocks(state, "single_blocks."),
            guidance="guidance_in.in_layer.weight" in state,
        )
    except KeyError as error:
        raise CheckpointError(path, f"not a Flux (BFL layout) checkpoint: key {error} is missing") from error


def _linear(key: str, out_dim: int, in_dim: int, bias: bool = True) -> Layout:
    layout: Layout = {f"{key}.weight": (out_dim, in_dim)}
    if bias:
        layout[f"{key}.bias"] = (out_dim,)
    return layout


def _mlp_embedder(key: str, in_dim: int, hidden: int) -> Layout:
    return {**_linear(f"{key}.in_layer", hidden, in_dim), **_linear(f"{key}.out_layer", hidden, hidden)}


def embedder_layout(s: FluxShape) -> Layout:
    layout = {
        **_linear("img_in", s.hidden, s.in_channels),
        **_mlp_embedder("time_in", 256, s.hidden),
        **_mlp_embedder("vector_in", s.vec_dim, s.hidden),
        **_linear("txt_in", s.hidden, s.context_dim),
    }
    if s.guidance:
        layout.update(_mlp_embedder("guidance_in", 256, s.hidden))
    return layout


def double_block_layout(key: str, s: FluxShape) -> Layout:
    layout: Layout = {}
    for stream in ("img", "txt"):
        layout.update(_linear(f"{key}.{stream}_mod.lin", 6 * s.hidden, s.hidden))
        layout.update(_linear(f"{key}.{stream}_attn.qkv", 3 * s.hidden, s.hidden))
        layout[f"{key}.{stream}_attn.norm.query_norm.scale"] = (s.head_dim,)
        layout[f"{key}.{stream}_attn.norm.key_norm.scale"] = (s.head_dim,)
        layout.update(_linear(f"{key}.{stream}_attn.proj", s.hidden, s.hidden))
        layout.update(_linear(f"{key}.{stream}_mlp.0", s.mlp_hidden, s.hidden))
        layout.update(_linear(f"{key}.{stream}_mlp.2", s.hidden, s.mlp_hidden))
    return layout


def single_block_layout(key: str, s: FluxShape) -> Layout:
    return {
        **_linear(f"{key}.linear1", 3 * s.hidden + s.mlp_hidden, s.hidden),
        **_linear(f"{key}.linear2", s.hidden, s.hidden + s.mlp_hidden),
        f"{key}.norm.query_norm.scale": (s.head_dim,),
        f"{key}.norm.key_norm.scale": (s.head_dim,),
        **_linear(f"{key}.modulation.lin", 3 * s.hidden, s.hidden),
    }


def flux_layout(s: FluxShape) -> Layout:
    """Every key (and shape) of a BFL-layout FLUX transformer."""
    layout = embedder_layout(s)
    for i in range(s.depth):
        layout.update(double_block_layout(f"double_blocks.{i}", s))
    for i in range(s.depth_single):
        layout.update(single_block_layout(f"single_blocks.{i}", s))
    layout.update(_linear("final_layer.linear", s.in_channels, s.hidden))
    layout.update(_linear("final_layer.adaLN_modulation.1", 2 * s.hidden, s.hidden))
    return layout


# --- BFL -> diffusers ----------------------------------------------------------------

_EMBEDDER_NAMES = {
    "img_in": "x_embedder",
    "txt_in": "context_embedder",
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
}

_DOUBLE_BLOCK_NAMES = {
    "img_mod.lin": "norm1.linear",
    "txt_mod.lin": "norm1_context.linear",
    "img_attn.norm.query_norm.scale": "attn.norm_q.weight",
    "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
    "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight",
    "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight",
    "img_attn.proj": "attn.to_out.0",
    "txt_attn.proj": "attn.to_add_out",
    "img_mlp.0": "ff.net.0.proj",
    "img_mlp.2": "ff.net.2",
    "txt_mlp.0": "ff_context.net.0.proj",
    "txt_mlp.2": "ff_context.net.2",
}

_SINGLE_BLOCK_NAMES = {
    "linear2": "proj_out",
    "modulation.lin": "norm.linear",
    "norm.query_norm.scale": "attn.norm_q.weight",
    "norm.key_norm.scale": "attn.norm_k.weight",
}


def _rename_linear_or_param(state: StateDict, out: StateDict, src: str, dst: str) -> None:
    if src in state:  # a bare parameter (norm scales)
        out[dst] = state[src]
        return
    for suffix in ("weight", "bias"):
        if f"{src}.{suffix}" in state:
            out[f"{dst}.{suffix}"] = state[f"{src}.{suffix}"]


def _split_rows(state: StateDict, out: StateDict, src: str, dsts: list[str], sizes: list[int]) -> None:
    for suffix in ("weight", "bias"):
        for name, part in zip(dsts, torch.split(state[f"{src}.{suffix}"], sizes, dim=0), strict=True):
            out[f"{name}.{suffix}"] = part


def convert_embedders(state: StateDict, out: StateDict) -> None:
    for src, dst in _EMBEDDER_NAMES.items():
        _rename_linear_or_param(state, out, src, dst)


def convert_double_block(state: StateDict, out: StateDict, src: str, dst: str, hidden: int) -> None:
    for name, new in _DOUBLE_BLOCK_NAMES.items():
        _rename_linear_or_param(state, out, f"{src}.{name}", f"{dst}.{new}")
    thirds = [hidden] * 3
    _split_rows(state, out, f"{src}.img_attn.qkv", [f"{dst}.attn.to_{x}" for x in "qkv"], thirds)
    names = [f"{dst}.attn.add_{x}_proj" for x in "qkv"]
    _split_rows(state, out, f"{src}.txt_attn.qkv", names, thirds)


def convert_single_block(state: StateDict, out: StateDict, src: str, dst: str, s: FluxShape) -> None:
    for name, new in _SINGLE_BLOCK_NAMES.items():
        _rename_linear_or_param(state, out, f"{src}.{name}", f"{dst}.{new}")
    names = [f"{dst}.attn.to_q", f"{dst}.attn.to_k", f"{dst}.attn.to_v", f"{dst}.proj_mlp"]
    _split_rows(state, out, f"{src}.linear1", names, [s.hidden] * 3 + [s.mlp_hidden])


def _swap_shift_scale(weight: torch.Tensor) -> torch.Tensor:
    # BFL's final adaLN emits (shift, scale); diffusers' AdaLayerNormContinuous expects (scale, shift).
    shift, scale = weight.chunk(2, dim=0)
    return torch.cat([scale, shift], dim=0)


def bfl_to_diffusers_transformer(state: StateDict, s: FluxShape) -> StateDict:
    """Rename a (validated) BFL FLUX state dict to ``FluxTransformer2DModel`` keys."""
    out: StateDict = {}
    convert_embedders(state, out)
    for i in range(s.depth):
        convert_double_block(state, out, f"double_blocks.{i}", f"transformer_blocks.{i}", s.hidden)
    for i in range(s.depth_single):
        convert_single_block(state, out, f"single_blocks.{i}", f"single_transformer_blocks.{i}", s)
    _rename_linear_or_param(state, out, "final_layer.linear", "proj_out")
    for suffix in ("weight", "bias"):
        out[f"norm_out.linear.{suffix}"] = _swap_shift_scale(
            state[f"final_layer.adaLN_modulation.1.{suffix}"]
        )
    return out
