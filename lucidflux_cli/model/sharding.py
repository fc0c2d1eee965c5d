"""``--shard-model``: one copy of the model spread over several GPUs (for GPUs too small for it).

The 12B backbone's blocks run one after another, so they are cut into contiguous runs, one per
GPU, balanced by parameter bytes (a pipeline split, no tensor parallelism): one image at a time
flows through the GPUs in turn. Everything small (condition branches, SigLIP, VAE, remover, the
backbone's embedders and output head) lives on the first GPU, which therefore gets fewer blocks.
accelerate's ``dispatch_model`` installs the hooks that move activations between GPUs; the one
thing it cannot see is the condition residual added to double block k inside the backbone's
forward, so :class:`ResidualRouter` hands residual k over on block k's GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

BLOCK_LISTS = ("transformer_blocks", "single_transformer_blocks")  # diffusers Flux, in execution order


def check_devices(devices: list[str]) -> None:
    """Usage errors: sharding needs the listed GPUs, each once, and no CPU."""
    if not devices:
        raise ValueError(
            "--shard-model needs --devices with the GPUs to spread the model over, e.g. cuda:0,cuda:1"
        )
    if any(not device.startswith("cuda:") for device in devices):
        raise ValueError("--shard-model places the model over GPUs only; for CPU runs leave it out")
    if len(set(devices)) != len(devices):
        raise ValueError("--shard-model: list each GPU once")


def plan_blocks(block_bytes: Sequence[int], head_bytes: int, devices: Sequence[str]) -> list[str]:
    """Device of each block (execution order), contiguous and balanced by bytes.

    ``head_bytes`` (what stays on the first device anyway) counts against the first device's
    share. A block goes to the device whose share holds the block's midpoint.
    """
    if not devices:
        raise ValueError("no devices to place the model on")
    total = head_bytes + sum(block_bytes)
    share = total / len(devices) if total else 1.0
    placement, before = [], head_bytes
    for size in block_bytes:
        index = min(len(devices) - 1, int((before + size / 2) // share))
        placement.append(devices[index])
        before += size
    return placement


def device_map(transformer: nn.Module, devices: Sequence[str], other_bytes: int = 0) -> dict[str, str]:
    """accelerate device map of the backbone: its blocks spread out, the rest on ``devices[0]``."""
    names = [f"{lst}.{i}" for lst in BLOCK_LISTS for i in range(len(getattr(transformer, lst)))]
    blocks = [transformer.get_submodule(name) for name in names]
    block_bytes = [module_bytes(block) for block in blocks]
    head = module_bytes(transformer) - sum(block_bytes) + other_bytes
    mapping = {name: devices[0] for name, _ in transformer.named_children() if name not in BLOCK_LISTS}
    mapping.update(zip(names, plan_blocks(block_bytes, head, devices), strict=True))
    return mapping


def module_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


class ResidualRouter(nn.Module):
    """Wraps the dual condition branch: residual k is moved to the GPU of backbone double block k."""

    def __init__(self, branch: nn.Module, targets: Sequence[torch.device]):
        super().__init__()
        self.branch = branch
        self.targets = list(targets)

    def forward(self, *args, **kwargs) -> list[torch.Tensor]:
        residuals = self.branch(*args, **kwargs)
        return [r.to(self.targets[min(k, len(self.targets) - 1)]) for k, r in enumerate(residuals)]

    # The once-per-image parts are the branch's own (their results stay on the first GPU).
    def embed_text(self, *args, **kwargs):
        return self.branch.embed_text(*args, **kwargs)

    def rope(self, *args, **kwargs):
        return self.branch.rope(*args, **kwargs)

    def hints(self, *args, **kwargs):
        return self.branch.hints(*args, **kwargs)


def shard(components, devices: Sequence[str]):
    """Move loaded components (on the CPU) onto ``devices`` as planned; returns them."""
    from accelerate import dispatch_model

    first = torch.device(devices[0])
    small = [components.vae, components.dual_branch, components.connector, components.siglip]
    mapping = device_map(components.transformer, devices, sum(module_bytes(m) for m in small))
    components.transformer = dispatch_model(components.transformer, device_map=mapping)
    for name in ("vae", "connector", "siglip"):
        setattr(components, name, getattr(components, name).to(first))
    doubles = len(components.transformer.transformer_blocks)
    targets = [torch.device(mapping[f"transformer_blocks.{k}"]) for k in range(doubles)]
    components.dual_branch = ResidualRouter(components.dual_branch.to(first), targets)
    return components
