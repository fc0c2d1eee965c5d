"""Which torch device and dtype a run uses: the one device resolver of every command
(``--device``, ``--devices``, torchrun ranks). Light: torch only, no model code."""

from __future__ import annotations

import functools

import torch


def parse_device(name: str) -> torch.device:
    """``--device`` text as a torch device (``auto`` is not resolved); ValueError in one line."""
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"invalid --device {name!r}: expected auto, cpu, cuda or cuda:N") from error


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else the CPU; ValueError (one line) for what cannot run here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = parse_device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name} requested but CUDA is not available")
    return device


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on CUDA (as the reference), float32 on CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return _DTYPES[name]


def parse_devices(spec: str, cuda_count: int | None = None) -> list[str]:
    """``all`` | ``cuda:0,cuda:1`` | ``cpu,cpu`` -> canonical device names (repeats allowed).

    Raises ValueError with a one-line message. ``cuda_count`` defaults to the visible GPUs.
    """
    count = torch.cuda.device_count() if cuda_count is None else cuda_count
    text = spec.strip()
    if text == "all":
        if count == 0:
            raise ValueError(
                "--devices all: no CUDA device is visible; list devices instead, e.g. --devices cpu,cpu"
            )
        return [f"cuda:{index}" for index in range(count)]
    names = [part.strip() for part in text.split(",")]
    if not text or not all(names):
        raise ValueError(
            f"--devices {spec!r}: expected 'all' or a comma-separated list such as cuda:0,cuda:1 or cpu,cpu"
        )
    return [_device_name(name, count) for name in names]


def _device_name(name: str, cuda_count: int) -> str:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--devices: {name!r} is not a device (use cpu or cuda:N)") from None
    if device.type == "cpu":
        return "cpu"
    if device.type != "cuda":
        raise ValueError(f"--devices: {name!r}: only cpu and cuda:N are supported")
    if device.index is None:
        raise ValueError(f"--devices: {name!r}: name the GPU (cuda:0) or use --devices all")
    if device.index >= cuda_count:
        raise ValueError(f"--devices: {name} does not exist ({cuda_count} CUDA device(s) visible)")
    return f"cuda:{device.index}"


@functools.cache
def device_memory_gib(name: str) -> float | None:
    """Total memory of the CUDA device ``name`` (``auto``: the first GPU) in GiB; None for a CPU."""
    try:
        device = resolve_device(name)
    except (ValueError, RuntimeError):
        return None  # validation reports a bad --device
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(device).total_memory / 2**30


def rank_device(requested: str, local_rank: int, cuda_available: bool) -> str:
    """``auto``/``cuda``: this rank's GPU (cuda:LOCAL_RANK), or cpu without CUDA; else as asked."""
    if requested == "auto":
        return f"cuda:{local_rank}" if cuda_available else "cpu"
    if requested == "cuda":
        return f"cuda:{local_rank}"
    return requested
