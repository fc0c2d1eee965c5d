"""``--shard-model``: one copy of the model spread over several GPUs (for GPUs too small for it)."""

from __future__ import annotations


def check_devices(devices: list[str]) -> None:
    """Usage errors: sharding needs at least one listed CUDA device and no CPU."""
    if not devices:
        raise ValueError("--shard-model needs --devices with the GPUs to spread the model over, e.g. cuda:0,cuda:1")
    if any(not device.startswith("cuda:") for device in devices):
        raise ValueError("--shard-model places the model over GPUs only; for CPU runs leave it out")
    if len(set(devices)) != len(devices):
        raise ValueError("--shard-model: list each GPU once")
