"""Tiny random weights written in the *released* on-disk formats of LucidFlux.

Every file mirrors the layout of the real release (see docs/reference-pipeline.md):

* ``flux1-dev.safetensors``   BFL key layout of the FLUX.1-dev transformer
* ``ae.safetensors``           BFL key layout of the FLUX autoencoder
* ``lucidflux.pth``            dict of the five LucidFlux state dicts
* ``prompt_embeddings.pt``     dict ``txt`` / ``vec`` / ``prompt``
* ``general_swinir_v1.ckpt``   DiffBIR SwinIR checkpoint (``state_dict`` with ``module.`` prefixes)
* ``siglip/``                  a transformers ``SiglipModel`` folder (text + vision towers)

plus the diffusers folder layout of FLUX.1-dev (``transformer/`` and ``vae/``) with the very
same tensor values, renamed by a mapping written here, independently of the product's converter.

Only the sizes are tiny; the product must infer every size from the weights. Values are
seeded and deterministic (float32). Every parameter is re-initialised, including the ones that
are zero-initialised in training (controlnet blocks, last hint conv, adaLN ...), so every path
of the pipeline contributes to the output. Buffers (SwinIR ``relative_position_index`` and
``attn_mask``) keep their computed values.

Init scheme (per tensor, keys visited in sorted order, one ``torch.Generator`` per file seeded
from ``seed`` and a fixed per-file offset):

* linear / conv weight: ``randn * gain / sqrt(fan_in)`` (gain 1 unless listed in ``_GAINS``:
  0.5 for every adaLN / modulation linear, 2.0 for the backbone ``txt_in`` and
  ``img_attn.proj`` so the SigLIP tokens visibly matter, 0.5 for the VAE ``decoder.conv_out``)
* bias: ``randn * 0.05``
* norm scale (RMSNorm ``.scale``, LayerNorm / GroupNorm ``weight``): ``1 + 0.1 * randn``
* norm bias: ``0.05 * randn``
* embeddings / free parameters: ``randn * 0.5`` (SwinIR relative position bias ``randn * 0.5``)

Tests import this module as ``from tiny_weights import ...``.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lucidflux_cli.model.config import LucidFluxConfig

PROMPT = "restore this image into high-quality, clean, high-resolution result"


_ARCH = LucidFluxConfig.tiny()  # the architecture's sizes; below, what only the file formats add


@dataclass(frozen=True)
class TinyConfig:
    # FLUX backbone (BFL FluxParams equivalent)
    hidden_size: int = _ARCH.backbone.hidden
    num_heads: int = _ARCH.backbone.heads
    axes_dim: tuple[int, int, int] = _ARCH.backbone.axes_dim
    theta: int = 10_000
    in_channels: int = _ARCH.backbone.in_channels
    vec_in_dim: int = _ARCH.backbone.vec_dim
    context_in_dim: int = _ARCH.backbone.context_dim
    mlp_ratio: float = _ARCH.backbone.mlp_hidden / _ARCH.backbone.hidden
    depth: int = _ARCH.backbone.depth
    depth_single_blocks: int = _ARCH.backbone.depth_single
    qkv_bias: bool = True
    guidance_embed: bool = _ARCH.backbone.guidance
    # condition branches
    condition_depth: int = _ARCH.branch_depth
    hint_channels: int = _ARCH.hint_channels
    # LucidFlux modulation
    modulation_dim: int = _ARCH.backbone.hidden
    # connector (diffusers ReduxImageEncoder)
    redux_dim: int = _ARCH.siglip.hidden
    txt_in_features: int = _ARCH.backbone.context_dim
    # prompt embeddings
    txt_len: int = _ARCH.prompt_tokens
    # SigLIP (vision tower is what the pipeline uses)
    siglip_hidden: int = _ARCH.siglip.hidden
    siglip_intermediate: int = _ARCH.siglip.intermediate
    siglip_layers: int = _ARCH.siglip.layers
    siglip_heads: int = _ARCH.siglip.heads
    siglip_image_size: int = _ARCH.siglip.image_size
    siglip_patch_size: int = _ARCH.siglip.patch_size
    siglip_text_vocab: int = 128
    siglip_text_max_positions: int = 16
    # autoencoder (BFL AutoEncoderParams equivalent)
    ae_resolution: int = 256
    ae_in_channels: int = 3
    ae_ch: int = _ARCH.vae.channels[0]
    ae_out_ch: int = 3
    ae_ch_mult: tuple[int, ...] = tuple(c // _ARCH.vae.channels[0] for c in _ARCH.vae.channels)
    ae_num_res_blocks: int = _ARCH.vae.layers_per_block
    ae_z_channels: int = _ARCH.vae.latent_channels
    ae_scale_factor: float = _ARCH.vae.scaling
    ae_shift_factor: float = _ARCH.vae.shift
    # SwinIR (DiffBIR layout, pixel-unshuffle variant)
    swinir_img_size: int = _ARCH.swinir.img_size
    swinir_embed_dim: int = _ARCH.swinir.embed_dim
    swinir_depths: tuple[int, ...] = _ARCH.swinir.depths
    swinir_num_heads: tuple[int, ...] = _ARCH.swinir.heads
    swinir_window_size: int = _ARCH.swinir.window
    swinir_mlp_ratio: float = _ARCH.swinir.mlp_ratio
    swinir_sf: int = 8
    swinir_unshuffle_scale: int = _ARCH.swinir.unshuffle
    swinir_num_feat: int = 64

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)


TINY = TinyConfig()


@dataclass(frozen=True)
class TinyRelease:
    flux: Path  # BFL single file  flux1-dev.safetensors
    ae: Path  # BFL  ae.safetensors
    lucidflux: Path  # lucidflux.pth (dict of 5 state dicts)
    prompt_embeddings: Path  # prompt_embeddings.pt
    swinir: Path  # general_swinir_v1.ckpt
    siglip: Path  # folder loadable by transformers SiglipVisionModel.from_pretrained


# Per-file generator offsets (seed * 1000 + offset) so that changing one file's layout does not
# change the values of the others.
_OFFSETS = {
    "flux": 1,
    "ae": 2,
    "condition_lq": 3,
    "condition_ldr": 4,
    "modulation_lq": 5,
    "modulation_ldr": 6,
    "connector": 7,
    "prompt": 8,
    "swinir": 9,
    "siglip": 10,
}

# Gains for linear / conv weights, matched on the key suffix (first match wins). Chosen so the
# tiny pipeline output is neither saturated nor constant and every branch visibly matters.
_GAINS: dict[str, list[tuple[str, float]]] = {
    "flux": [
        ("_mod.lin.weight", 0.5),
        ("modulation.lin.weight", 0.5),
        ("adaLN_modulation.1.weight", 0.5),
        ("final_layer.linear.weight", 1.0),
        ("txt_in.weight", 2.0),
        ("img_attn.proj.weight", 2.0),
    ],
    "condition": [
        ("_mod.lin.weight", 0.5),
        ("input_hint_block.14.weight", 1.0),
    ],
    "modulation": [("linear.weight", 0.5)],
    "ae": [("decoder.conv_out.weight", 0.5)],
    "swinir": [("conv_last.weight", 1.0)],
}


# --------------------------------------------------------------------------- key layouts


def _linear(prefix: str, out_f: int, in_f: int, bias: bool = True) -> list[tuple[str, tuple[int, ...]]]:
    keys = [(f"{prefix}.weight", (out_f, in_f))]
    if bias:
        keys.append((f"{prefix}.bias", (out_f,)))
    return keys


def _conv(prefix: str, out_c: int, in_c: int, k: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{prefix}.weight", (out_c, in_c, k, k)), (f"{prefix}.bias", (out_c,))]


def _mlp_embedder(prefix: str, in_dim: int, hidden: int) -> list[tuple[str, tuple[int, ...]]]:
    return _linear(f"{prefix}.in_layer", hidden, in_dim) + _linear(f"{prefix}.out_layer", hidden, hidden)


def _double_block(prefix: str, c: TinyConfig) -> list[tuple[str, tuple[int, ...]]]:
    h, mlp, hd = c.hidden_size, c.mlp_hidden, c.head_dim
    keys: list[tuple[str, tuple[int, ...]]] = []
    for s in ("img", "txt"):
        keys += _linear(f"{prefix}.{s}_mod.lin", 6 * h, h)
        keys += _linear(f"{prefix}.{s}_attn.qkv", 3 * h, h, bias=c.qkv_bias)
        keys += [
            (f"{prefix}.{s}_attn.norm.query_norm.scale", (hd,)),
            (f"{prefix}.{s}_attn.norm.key_norm.scale", (hd,)),
        ]
        keys += _linear(f"{prefix}.{s}_attn.proj", h, h)
        keys += _linear(f"{prefix}.{s}_mlp.0", mlp, h)
        keys += _linear(f"{prefix}.{s}_mlp.2", h, mlp)
    return keys


def _flux_stem(c: TinyConfig) -> list[tuple[str, tuple[int, ...]]]:
    h = c.hidden_size
    keys = _linear("img_in", h, c.in_channels)
    keys += _mlp_embedder("time_in", 256, h)
    keys += _mlp_embedder("vector_in", c.vec_in_dim, h)
    if c.guidance_embed:
        keys += _mlp_embedder("guidance_in", 256, h)
    keys += _linear("txt_in", h, c.context_in_dim)
    return keys


def flux_layout(c: TinyConfig = TINY) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of the BFL flux1-dev.safetensors layout."""
    h, mlp, hd = c.hidden_size, c.mlp_hidden, c.head_dim
    keys = _flux_stem(c)
    for i in range(c.depth):
        keys += _double_block(f"double_blocks.{i}", c)
    for i in range(c.depth_single_blocks):
        p = f"single_blocks.{i}"
        keys += _linear(f"{p}.linear1", 3 * h + mlp, h)
        keys += _linear(f"{p}.linear2", h, h + mlp)
        keys += [(f"{p}.norm.query_norm.scale", (hd,)), (f"{p}.norm.key_norm.scale", (hd,))]
        keys += _linear(f"{p}.modulation.lin", 3 * h, h)
    keys += _linear("final_layer.linear", c.in_channels, h)
    keys += _linear("final_layer.adaLN_modulation.1", 2 * h, h)
    return keys


def condition_layout(c: TinyConfig = TINY) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of one LucidFlux single condition branch (BFL-style names)."""
    h = c.hidden_size
    keys = _flux_stem(c)
    for i in range(c.condition_depth):
        keys += _double_block(f"double_blocks.{i}", c)
    for i in range(c.condition_depth):
        keys += _linear(f"controlnet_blocks.{i}", h, h)
    keys += _linear("pos_embed_input", h, c.in_channels)
    ch = c.hint_channels
    for j in range(8):
        keys += _conv(f"input_hint_block.{2 * j}", ch, 3 if j == 0 else ch, 3)
    return keys


def modulation_layout(c: TinyConfig = TINY) -> list[tuple[str, tuple[int, ...]]]:
    d = c.modulation_dim
    keys = _linear("linear", 2 * d, d)
    for emb in ("timestep_embedder", "control_index_embedder"):
        keys += _linear(f"{emb}.linear_1", d, 256) + _linear(f"{emb}.linear_2", d, d)
    return keys


def connector_layout(c: TinyConfig = TINY) -> list[tuple[str, tuple[int, ...]]]:
    return _linear("redux_up", 3 * c.txt_in_features, c.redux_dim) + _linear(
        "redux_down", c.txt_in_features, 3 * c.txt_in_features
    )


def _resnet(prefix: str, cin: int, cout: int) -> list[tuple[str, tuple[int, ...]]]:
    keys = [(f"{prefix}.norm1.weight", (cin,)), (f"{prefix}.norm1.bias", (cin,))]
    keys += _conv(f"{prefix}.conv1", cout, cin, 3)
    keys += [(f"{prefix}.norm2.weight", (cout,)), (f"{prefix}.norm2.bias", (cout,))]
    keys += _conv(f"{prefix}.conv2", cout, cout, 3)
    if cin != cout:
        keys += _conv(f"{prefix}.nin_shortcut", cout, cin, 1)
    return keys


def _ae_mid(prefix: str, ch: int) -> list[tuple[str, tuple[int, ...]]]:
    keys = _resnet(f"{prefix}.mid.block_1", ch, ch)
    keys += [(f"{prefix}.mid.attn_1.norm.weight", (ch,)), (f"{prefix}.mid.attn_1.norm.bias", (ch,))]
    for n in ("q", "k", "v", "proj_out"):
        keys += _conv(f"{prefix}.mid.attn_1.{n}", ch, ch, 1)
    keys += _resnet(f"{prefix}.mid.block_2", ch, ch)
    return keys


def ae_layout(c: TinyConfig = TINY) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of the BFL ae.safetensors layout."""
    ch, mult, nrb = c.ae_ch, c.ae_ch_mult, c.ae_num_res_blocks
    n = len(mult)
    keys = _conv("encoder.conv_in", ch, c.ae_in_channels, 3)
    in_mult = (1,) + tuple(mult)
    block_in = ch
    for i in range(n):
        block_in = ch * in_mult[i]
        block_out = ch * mult[i]
        for j in range(nrb):
            keys += _resnet(f"encoder.down.{i}.block.{j}", block_in, block_out)
            block_in = block_out
        if i != n - 1:
            keys += _conv(f"encoder.down.{i}.downsample.conv", block_in, block_in, 3)
    keys += _ae_mid("encoder", block_in)
    keys += [("encoder.norm_out.weight", (block_in,)), ("encoder.norm_out.bias", (block_in,))]
    keys += _conv("encoder.conv_out", 2 * c.ae_z_channels, block_in, 3)

    block_in = ch * mult[-1]
    keys += _conv("decoder.conv_in", block_in, c.ae_z_channels, 3)
    keys += _ae_mid("decoder", block_in)
    for i in reversed(range(n)):
        block_out = ch * mult[i]
        for j in range(nrb + 1):
            keys += _resnet(f"decoder.up.{i}.block.{j}", block_in, block_out)
            block_in = block_out
        if i != 0:
            keys += _conv(f"decoder.up.{i}.upsample.conv", block_in, block_in, 3)
    keys += [("decoder.norm_out.weight", (block_in,)), ("decoder.norm_out.bias", (block_in,))]
    keys += _conv("decoder.conv_out", c.ae_out_ch, block_in, 3)
    return keys


# --------------------------------------------------------------------------- init


def _gain(table: str, key: str) -> float:
    for suffix, g in _GAINS.get(table, []):
        if key.endswith(suffix):
            return g
    return 1.0


def _kind(key: str, shape: tuple[int, ...], norm_names: Iterable[str] = ()) -> str:
    if key.endswith(".scale"):
        return "norm"
    stem = key.rsplit(".", 1)[0]
    if stem in norm_names or any(stem.endswith(n) for n in (".norm1", ".norm2", ".norm", "norm_out")):
        return "norm" if key.endswith(".weight") else "norm_bias"
    if key.endswith(".bias") or key.endswith("_bias"):
        return "bias"
    if len(shape) >= 2:
        return "weight"
    return "free"


def _init(gen: torch.Generator, kind: str, shape: tuple[int, ...], gain: float) -> torch.Tensor:
    x = torch.randn(shape, generator=gen, dtype=torch.float32)
    if kind == "weight":
        fan_in = math.prod(shape[1:])
        return x * (gain / math.sqrt(fan_in))
    if kind == "bias":
        return x * 0.05
    if kind == "norm":
        return 1.0 + 0.1 * x
    if kind == "norm_bias":
        return x * 0.05
    return x * 0.5


def _make(
    layout: list[tuple[str, tuple[int, ...]]], seed: int, name: str, table: str
) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed * 1000 + _OFFSETS[name])
    shapes = dict(layout)
    assert len(shapes) == len(layout), f"duplicate keys in {name} layout"
    out: dict[str, torch.Tensor] = {}
    for key in sorted(shapes):
        shape = shapes[key]
        out[key] = _init(gen, _kind(key, shape), shape, _gain(table, key))
    # keep the layout's (release-like) order in the written file
    return {k: out[k] for k, _ in layout}


def flux_state_dict(seed: int = 0, c: TinyConfig = TINY) -> dict[str, torch.Tensor]:
    return _make(flux_layout(c), seed, "flux", "flux")


def ae_state_dict(seed: int = 0, c: TinyConfig = TINY) -> dict[str, torch.Tensor]:
    return _make(ae_layout(c), seed, "ae", "ae")


def lucidflux_state_dicts(seed: int = 0, c: TinyConfig = TINY) -> dict[str, dict[str, torch.Tensor]]:
    return {
        "condition_lq": _make(condition_layout(c), seed, "condition_lq", "condition"),
        "condition_ldr": _make(condition_layout(c), seed, "condition_ldr", "condition"),
        "modulation_lq": _make(modulation_layout(c), seed, "modulation_lq", "modulation"),
        "modulation_ldr": _make(modulation_layout(c), seed, "modulation_ldr", "modulation"),
        "connector": _make(connector_layout(c), seed, "connector", "connector"),
    }


def prompt_embeddings(seed: int = 0, c: TinyConfig = TINY) -> dict:
    gen = torch.Generator().manual_seed(seed * 1000 + _OFFSETS["prompt"])
    txt = torch.randn((1, c.txt_len, c.context_in_dim), generator=gen) * 0.5
    vec = torch.randn((1, c.vec_in_dim), generator=gen)
    return {"txt": txt, "vec": vec, "prompt": PROMPT}


def _swinir_model(cls, c: TinyConfig):
    return cls(
        img_size=c.swinir_img_size,
        patch_size=1,
        in_chans=3,
        embed_dim=c.swinir_embed_dim,
        depths=list(c.swinir_depths),
        num_heads=list(c.swinir_num_heads),
        window_size=c.swinir_window_size,
        mlp_ratio=c.swinir_mlp_ratio,
        upscale=c.swinir_sf,
        img_range=1.0,
        upsampler="nearest+conv",
        resi_connection="1conv",
        start_unshuffle=c.swinir_unshuffle_scale,
    )


def swinir_state_dict(seed: int = 0, c: TinyConfig = TINY) -> dict[str, torch.Tensor]:
    """DiffBIR SwinIR layout (``conv_first.1.*`` = pixel-unshuffle variant), without ``module.``."""
    from spandrel.architectures.SwinIR import SwinIR  # spandrel's own arch class

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.meshgrid indexing warning inside the arch
        model = _swinir_model(SwinIR, c)
    norm_names = {n for n, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    params = dict(model.named_parameters())
    sd = model.state_dict()
    gen = torch.Generator().manual_seed(seed * 1000 + _OFFSETS["swinir"])
    new: dict[str, torch.Tensor] = {}
    for key in sorted(sd):
        t = sd[key]
        if key not in params:  # buffers: relative_position_index, attn_mask
            new[key] = t.detach().clone().contiguous()
            continue
        shape = tuple(t.shape)
        kind = "free" if key.endswith("relative_position_bias_table") else _kind(key, shape, norm_names)
        new[key] = _init(gen, kind, shape, _gain("swinir", key))
    out: dict[str, torch.Tensor] = {}
    for key in sd:
        name = key.replace("conv_first.", "conv_first.1.") if key.startswith("conv_first.") else key
        out[name] = new[key]
    return out


def _siglip_config(c: TinyConfig):
    from transformers import SiglipConfig

    vision = {
        "hidden_size": c.siglip_hidden,
        "intermediate_size": c.siglip_intermediate,
        "num_hidden_layers": c.siglip_layers,
        "num_attention_heads": c.siglip_heads,
        "image_size": c.siglip_image_size,
        "patch_size": c.siglip_patch_size,
        "num_channels": 3,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
    }
    text = {
        "vocab_size": c.siglip_text_vocab,
        "hidden_size": c.siglip_hidden,
        "intermediate_size": c.siglip_intermediate,
        "num_hidden_layers": c.siglip_layers,
        "num_attention_heads": c.siglip_heads,
        "max_position_embeddings": c.siglip_text_max_positions,
        "pad_token_id": 1,
        "bos_token_id": 2,
        "eos_token_id": 3,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
    }
    return SiglipConfig(text_config=text, vision_config=vision)


def write_siglip(folder: Path, seed: int = 0, c: TinyConfig = TINY) -> Path:
    from transformers import SiglipModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = SiglipModel(_siglip_config(c))
    modules = dict(model.named_modules())
    gen = torch.Generator().manual_seed(seed * 1000 + _OFFSETS["siglip"])
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key in sorted(params):
            p = params[key]
            owner = modules.get(key.rsplit(".", 1)[0]) if "." in key else model
            shape = tuple(p.shape)
            if isinstance(owner, torch.nn.LayerNorm):
                kind = "norm" if key.endswith(".weight") else "norm_bias"
            elif (
                isinstance(owner, torch.nn.Embedding)
                or key.endswith("logit_scale")
                or key.endswith("logit_bias")
            ):
                kind = "free"
            elif key.endswith("bias"):
                kind = "bias"
            elif len(shape) >= 2 and key != "vision_model.head.probe":
                kind = "weight"
            else:
                kind = "free"
            p.copy_(_init(gen, kind, shape, 1.0))
    model.save_pretrained(folder, safe_serialization=True)
    preproc = {
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "SiglipImageProcessor",
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "rescale_factor": 1 / 255,
        "size": {"height": c.siglip_image_size, "width": c.siglip_image_size},
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preproc, indent=2) + "\n")
    return folder


# --------------------------------------------------------------------------- writers


def write_tiny_release(root: Path, seed: int = 0) -> TinyRelease:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rel = TinyRelease(
        flux=root / "flux1-dev.safetensors",
        ae=root / "ae.safetensors",
        lucidflux=root / "lucidflux.pth",
        prompt_embeddings=root / "prompt_embeddings.pt",
        swinir=root / "general_swinir_v1.ckpt",
        siglip=root / "siglip",
    )
    save_file(flux_state_dict(seed), str(rel.flux), metadata={"format": "pt"})
    save_file(ae_state_dict(seed), str(rel.ae), metadata={"format": "pt"})
    torch.save(lucidflux_state_dicts(seed), rel.lucidflux)
    torch.save(prompt_embeddings(seed), rel.prompt_embeddings)
    torch.save({"state_dict": {"module." + k: v for k, v in swinir_state_dict(seed).items()}}, rel.swinir)
    write_siglip(rel.siglip, seed)
    return rel


# ----- BFL -> diffusers renaming (written here, independent of the product's converter)


def bfl_flux_to_diffusers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a BFL flux state dict to diffusers ``FluxTransformer2DModel`` keys (any size)."""
    h = sd["img_in.weight"].shape[0]
    out: dict[str, torch.Tensor] = {}
    simple = {
        "img_in": "x_embedder",
        "txt_in": "context_embedder",
        "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
        "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
        "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
        "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
        "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
        "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
        "final_layer.linear": "proj_out",
    }
    double = {
        "img_mod.lin": "norm1.linear",
        "txt_mod.lin": "norm1_context.linear",
        "img_attn.proj": "attn.to_out.0",
        "txt_attn.proj": "attn.to_add_out",
        "img_mlp.0": "ff.net.0.proj",
        "img_mlp.2": "ff.net.2",
        "txt_mlp.0": "ff_context.net.0.proj",
        "txt_mlp.2": "ff_context.net.2",
        "img_attn.norm.query_norm.scale": "attn.norm_q.weight",
        "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
        "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight",
        "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight",
    }
    single = {
        "linear2": "proj_out",
        "modulation.lin": "norm.linear",
        "norm.query_norm.scale": "attn.norm_q.weight",
        "norm.key_norm.scale": "attn.norm_k.weight",
    }
    for key, t in sd.items():
        stem, _, leaf = key.rpartition(".")
        if stem in simple:
            out[f"{simple[stem]}.{leaf}"] = t
        elif stem == "final_layer.adaLN_modulation.1":
            shift, scale = t.chunk(2, dim=0)  # BFL: (shift, scale); diffusers: (scale, shift)
            out[f"norm_out.linear.{leaf}"] = torch.cat([scale, shift], dim=0)
        elif key.startswith("double_blocks."):
            _, idx, rest = key.split(".", 2)
            p = f"transformer_blocks.{idx}"
            rstem, _, rleaf = rest.rpartition(".")
            if rest in double:
                out[f"{p}.{double[rest]}"] = t
            elif rstem in double:
                out[f"{p}.{double[rstem]}.{rleaf}"] = t
            elif rstem in ("img_attn.qkv", "txt_attn.qkv"):
                names = (
                    ("to_q", "to_k", "to_v")
                    if rstem.startswith("img")
                    else ("add_q_proj", "add_k_proj", "add_v_proj")
                )
                for n, part in zip(names, t.chunk(3, dim=0), strict=True):
                    out[f"{p}.attn.{n}.{rleaf}"] = part.contiguous()
            else:
                raise KeyError(key)
        elif key.startswith("single_blocks."):
            _, idx, rest = key.split(".", 2)
            p = f"single_transformer_blocks.{idx}"
            rstem, _, rleaf = rest.rpartition(".")
            if rest in single:
                out[f"{p}.{single[rest]}"] = t
            elif rstem in single:
                out[f"{p}.{single[rstem]}.{rleaf}"] = t
            elif rstem == "linear1":
                mlp = t.shape[0] - 3 * h
                q, k, v, m = torch.split(t, [h, h, h, mlp], dim=0)
                for n, part in (("attn.to_q", q), ("attn.to_k", k), ("attn.to_v", v), ("proj_mlp", m)):
                    out[f"{p}.{n}.{rleaf}"] = part.contiguous()
            else:
                raise KeyError(key)
        else:
            raise KeyError(key)
    return out


def bfl_ae_to_diffusers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a BFL autoencoder state dict to diffusers ``AutoencoderKL`` keys."""
    n_up = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("decoder.up."))
    out: dict[str, torch.Tensor] = {}
    attn = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
    for key, t in sd.items():
        part, rest = key.split(".", 1)
        if rest.startswith("down."):
            _, i, kind, rest2 = rest.split(".", 3)
            if kind == "block":
                j, tail = rest2.split(".", 1)
                tail = tail.replace("nin_shortcut", "conv_shortcut")
                name = f"down_blocks.{i}.resnets.{j}.{tail}"
            else:  # downsample.conv.*
                name = f"down_blocks.{i}.downsamplers.0.{rest2}"
        elif rest.startswith("up."):
            _, i, kind, rest2 = rest.split(".", 3)
            bi = n_up - 1 - int(i)
            if kind == "block":
                j, tail = rest2.split(".", 1)
                tail = tail.replace("nin_shortcut", "conv_shortcut")
                name = f"up_blocks.{bi}.resnets.{j}.{tail}"
            else:  # upsample.conv.*
                name = f"up_blocks.{bi}.upsamplers.0.{rest2}"
        elif rest.startswith("mid.block_"):
            _, blk, tail = rest.split(".", 2)
            name = f"mid_block.resnets.{int(blk[-1]) - 1}.{tail}"
        elif rest.startswith("mid.attn_1."):
            _, _, sub, leaf = rest.split(".", 3)
            name = f"mid_block.attentions.0.{attn[sub]}.{leaf}"
            if sub != "norm" and leaf == "weight":
                t = t.reshape(t.shape[0], t.shape[1])  # 1x1 conv -> linear
        elif rest.startswith("norm_out."):
            name = "conv_norm_out." + rest.split(".", 1)[1]
        else:  # conv_in / conv_out
            name = rest
        out[f"{part}.{name}"] = t
    return out


def write_tiny_diffusers_flux(root: Path, seed: int = 0) -> Path:
    """FLUX.1-dev diffusers layout (``transformer/``, ``vae/``) with write_tiny_release's values."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    c = TINY
    root = Path(root)
    tr = FluxTransformer2DModel(
        patch_size=1,
        in_channels=c.in_channels,
        out_channels=None,
        num_layers=c.depth,
        num_single_layers=c.depth_single_blocks,
        attention_head_dim=c.head_dim,
        num_attention_heads=c.num_heads,
        joint_attention_dim=c.context_in_dim,
        pooled_projection_dim=c.vec_in_dim,
        guidance_embeds=c.guidance_embed,
        axes_dims_rope=tuple(c.axes_dim),
    )
    tr.load_state_dict(bfl_flux_to_diffusers(flux_state_dict(seed)), strict=True)
    tr.save_pretrained(root / "transformer", safe_serialization=True)

    n = len(c.ae_ch_mult)
    vae = AutoencoderKL(
        in_channels=c.ae_in_channels,
        out_channels=c.ae_out_ch,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(c.ae_ch * m for m in c.ae_ch_mult),
        layers_per_block=c.ae_num_res_blocks,
        act_fn="silu",
        latent_channels=c.ae_z_channels,
        norm_num_groups=32,
        sample_size=1024,
        scaling_factor=c.ae_scale_factor,
        shift_factor=c.ae_shift_factor,
        use_quant_conv=False,
        use_post_quant_conv=False,
        force_upcast=True,
        mid_block_add_attention=True,
    )
    vae.load_state_dict(bfl_ae_to_diffusers(ae_state_dict(seed)), strict=True)
    vae.save_pretrained(root / "vae", safe_serialization=True)
    return root


# --------------------------------------------------------------------------- digests


def tensors_sha256(tensors: dict) -> str:
    """sha256 over (key, dtype, shape, bytes) of every tensor, keys sorted; strings hashed as utf-8.

    Nested dicts are flattened with '/' (lucidflux.pth). Independent of file container bytes.
    """
    flat: dict[str, object] = {}

    def walk(prefix: str, d: dict) -> None:
        for k, v in d.items():
            name = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(name + "/", v)
            else:
                flat[name] = v

    walk("", tensors)
    h = hashlib.sha256()
    for k in sorted(flat):
        v = flat[k]
        h.update(k.encode())
        if isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(repr(v).encode())
    return h.hexdigest()


def release_digests(rel: TinyRelease) -> dict[str, str]:
    """Tensor digests of every file of a tiny release (see tensors_sha256)."""
    return {
        "flux": tensors_sha256(load_file(str(rel.flux))),
        "ae": tensors_sha256(load_file(str(rel.ae))),
        "lucidflux": tensors_sha256(torch.load(rel.lucidflux, map_location="cpu", weights_only=True)),
        "prompt_embeddings": tensors_sha256(
            torch.load(rel.prompt_embeddings, map_location="cpu", weights_only=True)
        ),
        "swinir": tensors_sha256(torch.load(rel.swinir, map_location="cpu", weights_only=True)),
        "siglip": tensors_sha256(load_file(str(rel.siglip / "model.safetensors"))),
    }
