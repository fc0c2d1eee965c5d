"""Trained parts -> the released ``lucidflux.pth`` key layout, by inverting the loader itself.

The loader (model/loading/models.py) renames the BFL-style keys of a condition branch to
diffusers' and splits fused qkv rows. Rather than restating that mapping backwards, this module
runs the loader once on a small probe whose every element holds its own index, reads where each
element landed, and inverts that: the export can never drift from what the loader reads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from lucidflux_cli.model.config import FluxShape
from lucidflux_cli.model.loading.models import condition_branch_layout, load_condition_branch

StateDict = dict[str, torch.Tensor]
# Small enough to build in milliseconds, with every structural feature of a real branch.
_PROBE_HEAD = 8


@dataclass(frozen=True)
class RowSlice:
    """Diffusers tensor = rows [start, stop) of a BFL tensor, as fractions of its first dimension."""

    source: str
    start: float
    stop: float


@functools.lru_cache(maxsize=8)
def _branch_map(depth: int, guidance: bool) -> dict[str, RowSlice]:
    """diffusers key -> where its rows come from in the BFL layout, read off the loader."""
    shape = FluxShape(
        hidden=2 * _PROBE_HEAD,
        in_channels=64,
        context_dim=4,
        vec_dim=4,
        head_dim=_PROBE_HEAD,
        mlp_hidden=8 * _PROBE_HEAD,
        depth=depth,
        depth_single=0,
        guidance=guidance,
    )
    probe, offsets, total = {}, {}, 0
    for key, dims in sorted(condition_branch_layout(shape).items()):
        count = int(torch.tensor(dims).prod())
        probe[key] = torch.arange(total, total + count, dtype=torch.float64).reshape(dims)
        offsets[key] = (total, dims)
        total += count
    model = load_condition_branch(probe, "<probe>", "probe", torch.float64)
    starts = sorted((first, key) for key, (first, _) in offsets.items())
    mapping = {}
    for key, tensor in model.state_dict().items():
        mapping[key] = _locate(key, tensor, offsets, starts)
    return mapping


def _locate(key: str, tensor: torch.Tensor, offsets: dict, starts: list) -> RowSlice:
    first = int(tensor.reshape(-1)[0])
    source = max((s for s in starts if s[0] <= first), key=lambda s: s[0])[1]
    origin, dims = offsets[source]
    row = int(torch.tensor(dims[1:]).prod()) if len(dims) > 1 else 1
    start = (first - origin) // row
    expected = torch.arange(first, first + tensor.numel(), dtype=torch.float64).reshape(tensor.shape)
    if not torch.equal(tensor, expected) or (first - origin) % row:
        raise RuntimeError(f"loader maps {key} in a way the exporter cannot invert (not a block of rows)")
    return RowSlice(source, start / dims[0], (start + tensor.shape[0]) / dims[0])


def branch_to_released(state: StateDict, depth: int, guidance: bool) -> StateDict:
    """A condition branch's diffusers state dict -> its BFL-style ``lucidflux.pth`` entry."""
    mapping = _branch_map(depth, guidance)
    if set(state) != set(mapping):
        missing, extra = sorted(set(mapping) - set(state)), sorted(set(state) - set(mapping))
        raise ValueError(
            f"not a condition branch of depth {depth}: missing {missing[:4]}, unexpected {extra[:4]}"
        )
    pieces: dict[str, list[tuple[float, torch.Tensor]]] = {}
    for key, where in mapping.items():
        pieces.setdefault(where.source, []).append((where.start, state[key]))
    out = {}
    for source, parts in pieces.items():
        tensors = [t for _, t in sorted(parts, key=lambda p: p[0])]
        out[source] = tensors[0].clone() if len(tensors) == 1 else torch.cat(tensors, dim=0)
    return out


def released_parts(parts: dict[str, StateDict], depth: int, guidance: bool) -> dict[str, StateDict]:
    """The five parts' merged state dicts -> the released ``lucidflux.pth`` dict."""
    out = {}
    for part, state in parts.items():
        # Modulations and the connector already have the released names (the loader reads them as they are).
        out[part] = (
            branch_to_released(state, depth, guidance) if part.startswith("condition_") else dict(state)
        )
    return out
