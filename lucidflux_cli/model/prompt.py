"""Text conditioning: the released caption-free prompt embeddings, or a user prompt encoded with
FLUX's T5/CLIP."""

from __future__ import annotations

import gc
import hashlib
import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from lucidflux_cli import atomic
from lucidflux_cli.errors import CheckpointError, one_line

# The prompt the reference inference script passes; prompt_embeddings.pt holds its encoding.
DEFAULT_PROMPT = "restore this image into high-quality, clean, high-resolution result"

# Reference HFEmbedder lengths for flux-dev (schnell would use 256 for T5).
T5_MAX_LENGTH = 512
CLIP_MAX_LENGTH = 77

# Bump when the cached encoding changes for the same inputs.
_CACHE_VERSION = 1

# FLUX.1-dev (diffusers layout) subfolder -> what it must hold, for error messages.
_SUBFOLDERS = {
    "text_encoder": "the CLIP-L text encoder (CLIPTextModel: config.json + weights)",
    "tokenizer": "the CLIP tokenizer (vocab.json + merges.txt)",
    "text_encoder_2": "the T5-XXL encoder (T5EncoderModel: config.json + weights)",
    "tokenizer_2": "the T5 tokenizer (tokenizer.json or spiece.model)",
}


@dataclass(frozen=True)
class PromptEmbedding:
    txt: torch.Tensor  # (1, L, C) T5 hidden states, float32 on CPU
    vec: torch.Tensor  # (1, P) CLIP pooled output, float32 on CPU
    prompt: str


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')} tensor {tuple(value.shape)}"
    return type(value).__name__


def load_prompt_embeddings(path: Path) -> PromptEmbedding:
    """Load and validate a ``prompt_embeddings.pt`` dict: ``txt`` (1, L, C), ``vec`` (1, P),
    optional ``prompt``."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(path, "prompt embeddings file not found") from None
    except pickle.UnpicklingError as e:
        # weights_only refuses arbitrary Python objects; name the offending global when torch reports it.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            path, f"refused to load: the file holds Python objects other than tensors{what}"
        ) from e
    except (OSError, RuntimeError, EOFError, KeyError, ValueError) as e:
        raise CheckpointError(path, f"unreadable or truncated prompt embeddings file ({one_line(e)})") from e

    expected = "expected {'txt': (1, L, C) tensor, 'vec': (1, P) tensor, 'prompt': str (optional)}"
    if not isinstance(data, dict):
        raise CheckpointError(path, f"{expected}, got {_describe(data)}")
    got = "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in data.items()) + "}"
    keys = set(data)
    problems = []
    if missing := sorted({"txt", "vec"} - keys):
        problems.append("missing " + ", ".join(map(repr, missing)))
    if extra := sorted(map(str, keys - {"txt", "vec", "prompt"})):
        problems.append("unexpected " + ", ".join(map(repr, extra)))
    for key, ndim in (("txt", 3), ("vec", 2)):
        value = data.get(key)
        if value is None:
            continue
        if not (isinstance(value, torch.Tensor) and value.is_floating_point()):
            problems.append(f"{key!r} is not a float tensor")
        elif value.ndim != ndim or value.shape[0] != 1:
            problems.append(f"{key!r} must be {ndim}-D with batch 1")
        elif not torch.isfinite(value).all():
            problems.append(f"{key!r} has NaN/inf values")
    if "prompt" in data and not isinstance(data["prompt"], str):
        problems.append("'prompt' is not a str")
    if problems:
        raise CheckpointError(path, f"{'; '.join(problems)}: {expected}, got {got}")
    return PromptEmbedding(txt=data["txt"].float(), vec=data["vec"].float(), prompt=data.get("prompt", ""))


def _check_flux_dir(flux_dir: Path) -> None:
    for name, what in _SUBFOLDERS.items():
        if not (flux_dir / name).is_dir():
            raise CheckpointError(
                flux_dir / name, f"missing folder; expected {what} from the FLUX.1-dev repository"
            )


def _load_pretrained(cls: Any, folder: Path, **kwargs: Any) -> Any:
    try:
        return cls.from_pretrained(folder, local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError, SafetensorError) as e:
        raise CheckpointError(folder, f"cannot load {cls.__name__} ({one_line(e)})") from e


def load_clip(flux_dir: Path, *, device: torch.device, dtype: torch.dtype) -> tuple[Any, torch.nn.Module]:
    """CLIP-L tokenizer and text encoder from a FLUX.1-dev folder, eval mode, on ``device``."""
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = _load_pretrained(CLIPTokenizer, flux_dir / "tokenizer")
    model = _load_pretrained(CLIPTextModel, flux_dir / "text_encoder", dtype=dtype, device_map=device)
    return tokenizer, model.eval().requires_grad_(False)


def load_t5(flux_dir: Path, *, device: torch.device, dtype: torch.dtype) -> tuple[Any, torch.nn.Module]:
    """T5 tokenizer and encoder from a FLUX.1-dev folder, eval mode, on ``device``."""
    from transformers import T5EncoderModel, T5TokenizerFast

    tokenizer = _load_pretrained(T5TokenizerFast, flux_dir / "tokenizer_2")
    model = _load_pretrained(T5EncoderModel, flux_dir / "text_encoder_2", dtype=dtype, device_map=device)
    return tokenizer, model.eval().requires_grad_(False)


@torch.no_grad()
def embed_text(
    tokenizer: Any, model: torch.nn.Module, prompt: str, *, max_length: int, output_key: str
) -> torch.Tensor:
    """Encode one prompt exactly as the reference HFEmbedder: pad to max_length, no attention mask."""
    tokens = tokenizer(
        [prompt],
        truncation=True,
        max_length=max_length,
        padding="max_length",
        return_tensors="pt",
    )
    device = next(model.parameters()).device
    out = model(input_ids=tokens["input_ids"].to(device), attention_mask=None, output_hidden_states=False)
    return out[output_key].float().cpu()


def _free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _encoder_fingerprint(flux_dir: Path) -> list:
    # Stat the weights (hashing ~10 GB of T5 on every run would cost more than encoding) and read configs.
    fingerprint: list = []
    for name in _SUBFOLDERS:
        for file in sorted((flux_dir / name).iterdir()):
            if file.name == "config.json":
                fingerprint.append([name, file.name, file.read_text(encoding="utf-8")])
            elif file.is_file():
                st = file.stat()
                fingerprint.append([name, file.name, st.st_size, st.st_mtime_ns])
    return fingerprint


def _cache_key(prompt: str, flux_dir: Path, dtype: torch.dtype) -> str:
    payload = {
        "version": _CACHE_VERSION,
        "prompt": prompt,
        "t5_max_length": T5_MAX_LENGTH,
        "clip_max_length": CLIP_MAX_LENGTH,
        "dtype": str(dtype),
        "encoders": _encoder_fingerprint(flux_dir),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def _read_cache(path: Path, prompt: str) -> PromptEmbedding | None:
    # The cache is derived data: anything unreadable or inconsistent is a miss, and gets rewritten.
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            if (f.metadata() or {}).get("prompt") != prompt or set(f.keys()) != {"txt", "vec"}:
                return None
            return PromptEmbedding(txt=f.get_tensor("txt"), vec=f.get_tensor("vec"), prompt=prompt)
    except (OSError, SafetensorError):
        return None


def _write_cache(path: Path, embedding: PromptEmbedding) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic, so a crash or a concurrent run never sees a half-written file.
    tensors = {"txt": embedding.txt.contiguous(), "vec": embedding.vec.contiguous()}
    with atomic.atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata={"prompt": embedding.prompt})


def encode_prompt(
    prompt: str,
    flux_dir: Path,
    *,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    cache_dir: Path | None = None,
) -> PromptEmbedding:
    """Encode ``prompt`` with FLUX.1-dev's CLIP-L and T5-XXL; returns CPU float32 ``txt`` and ``vec``.

    With ``cache_dir``, a previous encoding of the same prompt by the same encoder files is reused
    without loading the encoders.
    """
    flux_dir = Path(flux_dir)
    device = torch.device(device)
    _check_flux_dir(flux_dir)

    cache_path = None
    if cache_dir is not None:
        cache_path = Path(cache_dir) / f"prompt-{_cache_key(prompt, flux_dir, dtype)}.safetensors"
        if (cached := _read_cache(cache_path, prompt)) is not None:
            return cached

    # One encoder resident at a time: T5-XXL alone is ~9.5 GB in bf16.
    tokenizer, model = load_clip(flux_dir, device=device, dtype=dtype)
    vec = embed_text(tokenizer, model, prompt, max_length=CLIP_MAX_LENGTH, output_key="pooler_output")
    del tokenizer, model
    _free_memory(device)

    tokenizer, model = load_t5(flux_dir, device=device, dtype=dtype)
    txt = embed_text(tokenizer, model, prompt, max_length=T5_MAX_LENGTH, output_key="last_hidden_state")
    del tokenizer, model
    _free_memory(device)

    embedding = PromptEmbedding(txt=txt, vec=vec, prompt=prompt)
    if cache_path is not None:
        _write_cache(cache_path, embedding)
    return embedding
