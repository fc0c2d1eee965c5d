"""Predicted device memory of `lucidflux train` per GPU, computed on the CPU without allocating it.

The full-size architecture is built on the ``meta`` device (benchmarks/memory_model.py's helpers).
Weights, gradients and optimiser states are counted from the real modules' parameters after
lucidflux_cli.training.trainable has chosen what trains (full or LoRA); activations are measured
by running one training forward on meta tensors under memory_model.LiveBytes, which keeps
counting every tensor autograd saves for the backward pass. With gradient checkpointing the
forward keeps only block inputs; the backward then recomputes one block at a time, so the
largest block's own saved activations are added back.

    python benchmarks/training_memory.py [--sizes 512,1024] [--batch 1] [--lora-rank 16] [--json out.json]

Assumptions, all of them lucidflux_cli.training's defaults: frozen backbone in bf16 (activations
in bf16 under autocast), trainable weights kept in float32, gradients float32, AdamW two states
per weight (4 bytes each, or 1 byte each with bitsandbytes' 8-bit AdamW), frozen inputs cached
(SigLIP, SwinIR and the VAE are not on the device; the pixel loss would add the VAE decoder).
Attention is counted as fused kernels train: q, k, v, output and log-sum-exp saved, no score
matrix. Not counted: CUDA context, allocator fragmentation, kernel workspaces (as memory_model.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import memory_model  # noqa: E402

from lucidflux_cli.model.sampling import image_positions  # noqa: E402
from lucidflux_cli.training.step import Batch, ConditionTrainer, Draws, enable_gradient_checkpointing  # noqa: E402
from lucidflux_cli.training.trainable import LoraOptions, prepare_trainable  # noqa: E402

GIB = 2**30
META = torch.device("meta")
ADAM_BYTES = {"adamw-32bit": 8, "adamw-8bit": 2}  # two moments per trained weight


class _FusedAttention(torch.autograd.Function):
    """Flash / memory-efficient SDPA as training sees it: the output plus a float32 log-sum-exp,
    and q, k, v, output and log-sum-exp kept for the backward (never the score matrix).
    memory_model.fused_attention has no autograd graph, which would hide everything attention saves."""

    @staticmethod
    def forward(ctx, query, key, value):
        out = query.new_empty(*query.shape[:-1], value.shape[-1])
        lse = query.new_empty(query.shape[:-1], dtype=torch.float32)
        ctx.save_for_backward(query, key, value, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad):
        query, key, value, _, _ = ctx.saved_tensors
        return torch.empty_like(query), torch.empty_like(key), torch.empty_like(value)


@contextlib.contextmanager
def training_attention():
    original = torch.nn.functional.scaled_dot_product_attention
    torch.nn.functional.scaled_dot_product_attention = lambda query, key, value, *args, **kwargs: (
        _FusedAttention.apply(query, key, value)
    )
    try:
        yield
    finally:
        torch.nn.functional.scaled_dot_product_attention = original


def build(mode: str, rank: int, tiny: bool = False):
    """The meta pipeline with the training choice applied; trainable parts stay bf16 on meta so the
    forward runs (their float32 master copy is counted, not allocated)."""
    pipeline = memory_model.build(tiny)
    lora = LoraOptions(rank=rank) if mode == "lora" else None
    params = prepare_trainable(pipeline.c, lora, dtype=torch.bfloat16)
    return pipeline, params


def parameter_bytes(pipeline, params: list[torch.nn.Parameter]) -> dict[str, int]:
    trained = sum(p.numel() for p in params)
    parts = sum(p.numel() for m in (pipeline.c.dual_branch, pipeline.c.connector) for p in m.parameters())
    return {
        "trainable_params": trained,
        "frozen backbone (bf16)": memory_model.weight_bytes(pipeline.c.transformer),
        "condition parts (fp32)": 4 * parts,
        "gradients (fp32)": 4 * trained,
        **{f"optimiser {name}": per * trained for name, per in ADAM_BYTES.items()},
    }


def _batch(pipeline, size: int, batch: int) -> tuple[Batch, Draws]:
    c, dtype = pipeline.c, torch.bfloat16
    tokens = (c.siglip.config.image_size // c.siglip.config.patch_size) ** 2
    latents = torch.empty(batch, 16, size // 8, size // 8, device=META, dtype=dtype)
    pixels = torch.empty(batch, 3, size, size, device=META, dtype=dtype)
    features = torch.empty(batch, tokens, c.siglip.config.hidden_size, device=META, dtype=dtype)
    return Batch(latents, pixels, pixels, features), Draws(
        torch.empty(batch, device=META), torch.empty_like(latents)
    )


def activation_bytes(pipeline, size: int, batch: int) -> int:
    """Peak bytes of one training forward (what autograd keeps for the backward, plus transients)."""
    model = ConditionTrainer(pipeline)
    inputs = _batch(pipeline, size, batch)
    tracker = memory_model.LiveBytes()
    with training_attention(), tracker:
        loss = model(*inputs)["loss"]
        del loss
    return tracker.peak


def block_recompute_bytes(pipeline, size: int, batch: int) -> int:
    """Saved activations of the largest block (a backbone double block), re-created during backward."""
    block = pipeline.c.transformer.transformer_blocks[0]
    hidden = (
        pipeline.c.transformer.config.num_attention_heads * pipeline.c.transformer.config.attention_head_dim
    )
    image, text = (size // 16) ** 2, pipeline.c.txt.shape[1] + 1024
    tracker = memory_model.LiveBytes()
    with training_attention(), tracker:
        x = torch.empty(batch, image, hidden, device=META, dtype=torch.bfloat16, requires_grad=True)
        context = torch.empty(batch, text, hidden, device=META, dtype=torch.bfloat16)
        temb = torch.empty(batch, hidden, device=META, dtype=torch.bfloat16)
        rope = pipeline.c.transformer.pos_embed(
            torch.cat([torch.zeros(text, 3, device=META), image_positions(size, size, META)])
        )
        out = block(hidden_states=x, encoder_hidden_states=context, temb=temb, image_rotary_emb=rope)
        del out
    return tracker.peak


def predict(sizes: list[int], batch: int = 1, rank: int = 16, tiny: bool = False) -> list[dict]:
    rows = []
    for mode in ("full", "lora"):
        pipeline, params = build(mode, rank, tiny)
        counts = parameter_bytes(pipeline, params)
        plain = {size: activation_bytes(pipeline, size, batch) for size in sizes}
        enable_gradient_checkpointing(pipeline)
        for size in sizes:
            checkpointed = activation_bytes(pipeline, size, batch) + block_recompute_bytes(
                pipeline, size, batch
            )
            weights = (
                counts["frozen backbone (bf16)"]
                + counts["condition parts (fp32)"]
                + counts["gradients (fp32)"]
            )
            for optimiser, per in ADAM_BYTES.items():
                for ckpt, activations in (("off", plain[size]), ("on", checkpointed)):
                    state = per * counts["trainable_params"]
                    rows.append(
                        {
                            "mode": mode,
                            "size": size,
                            "batch": batch,
                            "optimiser": optimiser,
                            "checkpointing": ckpt,
                            "trainable_params": counts["trainable_params"],
                            "weights_bytes": weights,
                            "optimiser_bytes": state,
                            "activations_bytes": activations,
                            "total_bytes": weights + state + activations,
                        }
                    )
    return rows


def table(rows: list[dict]) -> str:
    """A Markdown table; bytes shown in GiB."""
    header = (
        "mode",
        "size",
        "optimiser",
        "checkpointing",
        "trainable_params",
        "weights",
        "optimiser",
        "activations",
        "total",
    )
    lines = [
        " | ".join(header[:5]) + " | " + " | ".join(f"{h} GiB" for h in header[5:]),
        " | ".join("---" for _ in header),
    ]
    for row in rows:
        cells = [
            row["mode"],
            row["size"],
            row["optimiser"],
            row["checkpointing"],
            f"{row['trainable_params']:,}",
        ]
        cells += [
            f"{row[name + '_bytes'] / GIB:.2f}" for name in ("weights", "optimiser", "activations", "total")
        ]
        lines.append(" | ".join(str(c) for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="512,1024", help="square training crops, comma-separated")
    parser.add_argument("--batch", type=int, default=1, help="images per GPU and micro-batch")
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--tiny", action="store_true", help="the tiny architecture (a smoke run)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    rows = predict([int(s) for s in args.sizes.split(",")], args.batch, args.lora_rank, args.tiny)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
