"""Tiny but real CLIP-L / T5 text encoders in FLUX.1-dev's diffusers layout, written offline for tests."""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from tokenizers import pre_tokenizers
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)

CLIP_HIDDEN = 16
T5_HIDDEN = 32

_WORDS = ["restore", "this", "image", "into", "high", "quality", "clean", "result", "photo", "old"]


def _write_clip_tokenizer(folder: Path) -> CLIPTokenizer:
    # FLUX.1-dev ships tokenizer/ as vocab.json + merges.txt only (no tokenizer.json), so write those.
    # Byte-level BPE needs every byte symbol, alone and as a word end, so any text tokenizes without <unk>.
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet + [s + "</w>" for s in alphabet])}
    merges = [
        "r e",
        "re s",
        "res t",
        "o r",
        "or e</w>",
        "i m",
        "a g",
        "ag e</w>",
        "t h",
        "th is</w>",
        "i s</w>",
    ]
    for merge in merges:
        vocab.setdefault(merge.replace(" ", ""), len(vocab))
    # As in CLIP-L, the specials come last, so <|endoftext|> is the largest id.
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return CLIPTokenizer.from_pretrained(folder)


def _write_t5_tokenizer(folder: Path) -> T5TokenizerFast:
    # A hand-made Unigram vocabulary: single characters cover any ASCII text, a few whole words make
    # the segmentation non-trivial. save_pretrained writes tokenizer.json, which loads without sentencepiece.
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -5.0) for c in string.ascii_letters + string.digits + string.punctuation]
    pieces += [("▁" + c, -4.5) for c in string.ascii_lowercase]
    pieces += [("▁" + w, -3.0) for w in _WORDS]
    tokenizer = T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=512)
    tokenizer.save_pretrained(folder)
    return T5TokenizerFast.from_pretrained(folder)


def write_tiny_text_encoders(flux_dir: Path) -> Path:
    """Write text_encoder/, tokenizer/, text_encoder_2/, tokenizer_2/ under ``flux_dir``; returns
    ``flux_dir``."""
    flux_dir = Path(flux_dir)
    clip_tokenizer = _write_clip_tokenizer(flux_dir / "tokenizer")
    t5_tokenizer = _write_t5_tokenizer(flux_dir / "tokenizer_2")

    torch.manual_seed(0)
    clip_config = CLIPTextConfig(
        vocab_size=len(clip_tokenizer),
        hidden_size=CLIP_HIDDEN,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=clip_tokenizer.bos_token_id,
        eos_token_id=clip_tokenizer.eos_token_id,
        pad_token_id=clip_tokenizer.pad_token_id,
    )
    CLIPTextModel(clip_config).eval().save_pretrained(flux_dir / "text_encoder")

    t5_config = T5Config(
        vocab_size=len(t5_tokenizer),
        d_model=T5_HIDDEN,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_heads=2,
        feed_forward_proj="gated-gelu",  # T5 v1.1, like FLUX's T5-XXL
        is_encoder_decoder=False,
        use_cache=False,
    )
    T5EncoderModel(t5_config).eval().save_pretrained(flux_dir / "text_encoder_2")
    return flux_dir
