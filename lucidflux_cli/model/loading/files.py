"""Low-level readers for weight files: safetensors (single or sharded) and pickles (safely)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from lucidflux_cli.errors import CheckpointError

StateDict = dict[str, torch.Tensor]

# Community single files (ComfyUI) wrap the transformer in this prefix.
_WRAPPER_PREFIXES = ("model.diffusion_model.",)


def read_safetensors(path: Path, device: str | torch.device = "cpu") -> StateDict:
    """Read a .safetensors file onto ``device`` (straight to the GPU spares host RAM for 12B)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "file not found")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(path, f"not a readable safetensors file ({_first_line(error)})") from error


def read_pickle(path: Path) -> object:
    """Read a .pth/.ckpt/.pt file with ``weights_only=True``: tensors and plain containers only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "file not found")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or unsafe pickles
        raise CheckpointError(path, f"not a readable torch checkpoint ({_first_line(error)})") from error


def read_state_dict(path: Path, device: str | torch.device = "cpu") -> StateDict:
    """Read a flat state dict from a safetensors file or a pickle (unwrapping ``state_dict``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path, device)
    obj = read_pickle(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(path, "expected a dict of tensors (a state dict)")
    return obj


def read_diffusers_weights(folder: Path, device: str | torch.device = "cpu") -> StateDict:
    """Read ``diffusion_pytorch_model.safetensors`` or its sharded form from a diffusers model folder."""
    folder = Path(folder)
    single = folder / "diffusion_pytorch_model.safetensors"
    if single.is_file():
        return read_safetensors(single, device)
    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    if not index.is_file():
        raise CheckpointError(
            folder, "no diffusion_pytorch_model.safetensors (or its .index.json) in this folder"
        )
    try:
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(index, f"unreadable shard index ({_first_line(error)})") from error
    state: StateDict = {}
    for shard in shards:
        state.update(read_safetensors(folder / shard, device))
    return state


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise CheckpointError(path, "file not found") from error
    except (OSError, ValueError) as error:
        raise CheckpointError(path, f"unreadable JSON ({_first_line(error)})") from error


def strip_prefixes(
    state: StateDict, prefixes: tuple[str, ...] = ("module.", *_WRAPPER_PREFIXES)
) -> StateDict:
    """Drop wrapper prefixes (DataParallel's ``module.``, ComfyUI's ``model.diffusion_model.``)."""
    out = {}
    for key, value in state.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        out[key] = value
    return out


def upcast_float8(state: StateDict, dtype: torch.dtype) -> StateDict:
    """Upcast fp8 tensors (community fp8 single files); apply ``scale_weight`` where present.

    ComfyUI's "scaled fp8" files store ``<layer>.scale_weight`` next to each fp8 weight; the
    real weight is ``weight * scale_weight``. Plain fp8 files have no scales.
    """
    fp8 = {torch.float8_e4m3fn, torch.float8_e5m2}
    out: StateDict = {}
    for key, value in state.items():
        if key.endswith(".scale_weight") or key.endswith(".scale_input") or key == "scaled_fp8":
            continue
        if value.dtype in fp8:
            value = value.to(dtype)
            scale = state.get(key[: -len("weight")] + "scale_weight") if key.endswith(".weight") else None
            if scale is not None:
                value = value * scale.to(dtype)
        out[key] = value
    return out


def check_keys(path: Path, what: str, found: set[str], expected: set[str], limit: int = 6) -> None:
    """Raise a CheckpointError naming missing and unexpected keys (strict loading)."""
    missing = sorted(expected - found)
    unexpected = sorted(found - expected)
    if not missing and not unexpected:
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) {_preview(missing, limit)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) {_preview(unexpected, limit)}")
    raise CheckpointError(path, f"does not match the {what} layout: " + "; ".join(parts))


def check_shapes(path: Path, what: str, state: StateDict, expected: dict[str, tuple[int, ...]]) -> None:
    wrong = [
        f"{key} {tuple(state[key].shape)} != {shape}"
        for key, shape in expected.items()
        if key in state and tuple(state[key].shape) != tuple(shape)
    ]
    if wrong:
        raise CheckpointError(path, f"{what}: wrong tensor shape(s): {_preview(wrong, 4)}")


def _preview(items: list[str], limit: int) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}]"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
