"""Checkpoints: the trained weights in the released layout, and the full state for an exact resume.

``step-N.pth``          the five parts as ``lucidflux.pth`` stores them (loads with ``--lucidflux``)
``step-N.safetensors``  the same tensors, flat keys ``<part>.<key>`` (see :func:`split_parts`)
``step-N.state.pt``     trainable tensors (LoRA unmerged), optimiser, scheduler, step, RNG states,
                        data position: everything :meth:`Trainer.resume` needs to continue bit for bit

Every file is written under a temporary name and renamed, so a kill mid-save leaves the
previous checkpoint intact. Everything reads back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from lucidflux_cli import atomic
from lucidflux_cli.model.loading.files import read_pickle
from lucidflux_cli.model.pipeline import LucidFluxComponents
from lucidflux_cli.training.released import released_parts
from lucidflux_cli.training.trainable import part_modules

StateDict = dict[str, torch.Tensor]


def merged_state(module: nn.Module) -> StateDict:
    """A module's state dict with any LoRA adapters merged into the base weights (peft naming removed)."""
    state = {}
    for key, value in module.state_dict().items():
        if ".lora_" not in key:
            state[key.replace(".base_layer.", ".")] = value.detach()
    for name, sub in module.named_modules():
        if hasattr(sub, "base_layer") and hasattr(sub, "get_delta_weight"):
            base = sub.base_layer.weight.detach()
            state[f"{name}.weight"] = base + sum(sub.get_delta_weight(a) for a in sub.active_adapters).to(
                base
            )
    return state


def released_weights(
    components: LucidFluxComponents, dtype: torch.dtype | None = None
) -> dict[str, StateDict]:
    """The five parts in the ``lucidflux.pth`` layout, cast to ``dtype`` (None: as trained)."""
    parts = {part: merged_state(module) for part, module in part_modules(components).items()}
    lq = components.dual_branch.lq
    out = released_parts(parts, depth=len(lq.transformer_blocks), guidance=lq.config.guidance_embeds)
    if dtype is not None:
        out = {
            p: {k: v.to(dtype) if v.is_floating_point() else v for k, v in s.items()} for p, s in out.items()
        }
    return {p: {k: v.detach().cpu().contiguous() for k, v in s.items()} for p, s in out.items()}


def flatten_parts(parts: dict[str, StateDict]) -> StateDict:
    return {f"{part}.{key}": value for part, state in parts.items() for key, value in state.items()}


def split_parts(flat: StateDict) -> dict[str, StateDict]:
    """Inverse of :func:`flatten_parts`: ``<part>.<key>`` -> {part: {key: tensor}} (what a loader needs)."""
    parts: dict[str, StateDict] = {}
    for name, value in flat.items():
        part, _, key = name.partition(".")
        parts.setdefault(part, {})[key] = value
    return parts


def export_weights(
    components: LucidFluxComponents, stem: Path, dtype: torch.dtype | None = torch.bfloat16
) -> tuple[Path, Path]:
    """Write ``stem.pth`` and ``stem.safetensors``; bf16 by default, the release's size."""
    parts = released_weights(components, dtype)
    pth, safetensors = Path(f"{stem}.pth"), Path(f"{stem}.safetensors")
    _atomic(pth, lambda tmp: torch.save(parts, tmp))
    _atomic(safetensors, lambda tmp: save_file(flatten_parts(parts), str(tmp), metadata={"format": "pt"}))
    return pth, safetensors


def rng_states() -> dict:
    """Every generator a training step could touch, in a form ``weights_only`` loading accepts."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_states(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: Path, state: dict) -> Path:
    _atomic(Path(path), lambda tmp: torch.save(state, tmp))
    return Path(path)


def load_state(path: Path) -> dict:
    """A ``step-N.state.pt`` (read with ``weights_only=True``: tensors and plain containers only)."""
    state = read_pickle(Path(path))
    if not isinstance(state, dict) or "step" not in state or "trainable" not in state:
        from lucidflux_cli.errors import CheckpointError

        raise CheckpointError(path, "not a lucidflux training state (no 'step'/'trainable')")
    return state


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as temporary:
        write(temporary)
