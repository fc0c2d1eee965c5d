"""Which weights learn: the condition side (five ``lucidflux.pth`` parts); everything else frozen.

FLUX.1-dev, its VAE, SigLIP, the degradation remover and the prompt embedding stay as released;
``condition_lq``, ``condition_ldr``, ``modulation_lq``, ``modulation_ldr`` and ``connector``
train, either fully or (``lora``) through low-rank adapters on the branches' double blocks.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import torch
from diffusers.models.controlnets.controlnet_flux import FluxControlNetModel
from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder
from torch import nn

from lucidflux_cli.model.config import FluxShape
from lucidflux_cli.model.loading.models import LUCIDFLUX_PARTS, branch_config
from lucidflux_cli.model.modules import DualConditionBranch, LayerAdaptiveModulation
from lucidflux_cli.model.pipeline import LucidFluxComponents
from lucidflux_cli.training.options import LORA_TARGETS, LoraOptions  # noqa: F401 (re-exported)

# diffusers' names of the attention and MLP linears of a Flux double block (image and text streams).
# Branch submodules that stay fully trainable under LoRA: small, and new relative to FLUX.
_BRANCH_HEADS = ("controlnet_blocks", "controlnet_x_embedder", "input_hint_block")


def part_modules(components: LucidFluxComponents) -> dict[str, nn.Module]:
    """The five trainable parts by their ``lucidflux.pth`` key."""
    dual = components.dual_branch
    modules = {
        "condition_lq": dual.lq,
        "condition_ldr": dual.ldr,
        "modulation_lq": dual.modulation_lq,
        "modulation_ldr": dual.modulation_ldr,
        "connector": components.connector,
    }
    assert tuple(modules) == LUCIDFLUX_PARTS
    return modules


def frozen_modules(components: LucidFluxComponents) -> dict[str, nn.Module]:
    """What never learns (the remover when it is a torch module: plugins may be plain callables)."""
    frozen = {"transformer": components.transformer, "vae": components.vae, "siglip": components.siglip}
    run = getattr(components.remover, "run", components.remover)
    if isinstance(run, nn.Module):
        frozen["remover"] = run
    return frozen


def prepare_trainable(
    components: LucidFluxComponents, lora: LoraOptions | None = None, dtype: torch.dtype = torch.float32
) -> list[nn.Parameter]:
    """Freeze the frozen side, make the condition side trainable (in ``dtype``); return what trains.

    Trainable weights are kept in float32 (the optimiser's master copy) even when the frozen
    side runs in bf16: 2e-5 updates vanish in bf16's 8-bit mantissa.
    """
    for module in frozen_modules(components).values():
        module.requires_grad_(False).eval()
    for tensor in (components.txt, components.vec):
        tensor.requires_grad_(False)
    parts = part_modules(components)
    for module in parts.values():
        _cast(module, dtype)
        module.requires_grad_(True).train()
    if lora is not None:
        for name in ("condition_lq", "condition_ldr"):
            _add_lora(parts[name], lora)
    return [p for module in parts.values() for p in module.parameters() if p.requires_grad]


def _cast(module: nn.Module, dtype: torch.dtype) -> None:
    if all(p.dtype == dtype for p in module.parameters()):
        return
    # diffusers warns on every ModelMixin.to(dtype) about modules it would keep in float32; these
    # have none (the list it prints is empty), and the warning would repeat per part per run.
    diffusers_log = logging.getLogger("diffusers.models.modeling_utils")
    level = diffusers_log.level
    diffusers_log.setLevel(logging.ERROR)
    try:
        module.to(dtype)
    finally:
        diffusers_log.setLevel(level)


def _add_lora(branch: nn.Module, options: LoraOptions) -> None:
    """Adapters on the double blocks' linears; the base weights freeze, the branch heads keep learning."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha or options.rank,
        target_modules=list(options.targets),
        init_lora_weights=True,
    )
    inject_adapter_in_model(config, branch)
    for name, parameter in branch.named_parameters():
        parameter.requires_grad_("lora_" in name or name.startswith(_BRANCH_HEADS))


def trainable_state(components: LucidFluxComponents) -> dict[str, dict[str, torch.Tensor]]:
    """Every trainable tensor by part (LoRA adapters included, unmerged): what a resume needs."""
    return {
        part: {k: p.detach() for k, p in module.named_parameters() if p.requires_grad}
        for part, module in part_modules(components).items()
    }


def load_trainable_state(components: LucidFluxComponents, state: dict[str, dict[str, torch.Tensor]]) -> None:
    """Inverse of :func:`trainable_state` (in place, same architecture and LoRA setting)."""
    for part, module in part_modules(components).items():
        params = dict(module.named_parameters())
        expected = {k for k, p in params.items() if p.requires_grad}
        if set(state[part]) != expected:
            missing, extra = sorted(expected - set(state[part])), sorted(set(state[part]) - expected)
            raise ValueError(
                f"training state does not match '{part}': missing {missing[:4]}, unexpected {extra[:4]}"
            )
        with torch.no_grad():
            for key, value in state[part].items():
                params[key].copy_(value)


# --- from scratch ---------------------------------------------------------------------------


def from_scratch(
    components: LucidFluxComponents, seed: int = 0, branch_depth: int = 2
) -> LucidFluxComponents:
    """New condition parts that add exactly nothing at step 0, on the frozen side of ``components``.

    Each branch copies FLUX's embedders and first ``branch_depth`` double blocks (ControlNet's
    start: the branch begins by computing what the backbone computes); its output heads and the
    hint encoder's last conv are zero (diffusers' initialisation), and the modulations' shift/scale
    layer is zero, so every residual is ``LayerNorm(0) * 1 + 0 = 0``. The connector starts from
    diffusers' default initialisation.
    """
    transformer = components.transformer
    device, dtype = transformer.x_embedder.weight.device, transformer.x_embedder.weight.dtype
    # Module initialisers draw from the global generator: seed it for this, and leave it as it was.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.device(device):
        torch.manual_seed(seed)
        branches = [_branch_from_backbone(transformer, branch_depth) for _ in range(2)]
        hidden = transformer.config.num_attention_heads * transformer.config.attention_head_dim
        modulations = [_zero_modulation(hidden) for _ in range(2)]
        siglip_width = components.siglip.config.hidden_size
        connector = ReduxImageEncoder(
            redux_dim=siglip_width, txt_in_features=transformer.config.joint_attention_dim
        )
    dual = DualConditionBranch(
        *branches, *modulations, num_backbone_blocks=len(transformer.transformer_blocks)
    )
    _cast(dual, dtype)
    _cast(connector, dtype)
    return replace(components, dual_branch=dual, connector=connector)


def _branch_from_backbone(transformer: nn.Module, depth: int) -> FluxControlNetModel:
    config = transformer.config
    branch = FluxControlNetModel(**{**branch_config(_shape(config)), "num_layers": depth})
    backbone = transformer.state_dict()
    own = branch.state_dict()
    # Every branch weight but the heads comes from the backbone (ControlNet's start); the heads
    # keep their fresh values. Loaded strictly, so a key that fits nowhere is named, not skipped.
    lacking = [k for k in own if not k.startswith(_BRANCH_HEADS) and k not in backbone]
    if lacking:
        raise ValueError(f"backbone lacks branch weights {lacking[:4]}")
    branch.load_state_dict(
        {k: backbone[k] if not k.startswith(_BRANCH_HEADS) else v for k, v in own.items()}, strict=True
    )
    for (
        head
    ) in branch.controlnet_blocks:  # already zero in diffusers; made explicit because it is the contract
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
    nn.init.zeros_(branch.input_hint_block.conv_out.weight)
    nn.init.zeros_(branch.input_hint_block.conv_out.bias)
    return branch


def _zero_modulation(hidden: int) -> LayerAdaptiveModulation:
    modulation = LayerAdaptiveModulation(dim=hidden)
    nn.init.zeros_(modulation.linear.weight)
    nn.init.zeros_(modulation.linear.bias)
    return modulation


def _shape(config) -> FluxShape:
    """The backbone's FluxShape from a diffusers config (what branch_config takes)."""
    head = config.attention_head_dim
    hidden = config.num_attention_heads * head
    return FluxShape(
        hidden=hidden,
        in_channels=config.in_channels,
        context_dim=config.joint_attention_dim,
        vec_dim=config.pooled_projection_dim,
        head_dim=head,
        mlp_hidden=4 * hidden,
        depth=config.num_layers,
        depth_single=0,
        guidance=config.guidance_embeds,
    )
