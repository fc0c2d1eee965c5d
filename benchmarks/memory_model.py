"""Device memory of the full-size pipeline, computed on the CPU without allocating it.

The full-size architecture (the GPU benchmark's) is built on the ``meta`` device, so no weight is
allocated, and each stage of an untiled restore runs on meta tensors under a dispatch mode that
adds up the bytes of every tensor alive: shapes and dtypes are exact, values do not exist.
Attention is counted as the fused kernels count it (output and log-sum-exp, no score matrix), as
PyTorch's SDPA runs on a GPU. Not counted: the CUDA context, cuBLAS/cuDNN workspaces, and the
caching allocator's rounding and fragmentation (typically 5-15% over ``max_memory_allocated``).

    python benchmarks/memory_model.py --sizes 1024,1536,2048 [--json model.json]

Per size it prints the weights kept on the device, each stage's activation peak (tensors alive
from earlier stages included, as the pipeline holds them) and the resulting peak, next to
``tiling.estimated_peak_gib`` (what ``--tile-size auto`` assumes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import weakref
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_benchmark import FULL, TINY, build_components  # noqa: E402

from lucidflux_cli.model import acceleration, sampling, tiling  # noqa: E402
from lucidflux_cli.model.colorfix import wavelet_color_fix  # noqa: E402
from lucidflux_cli.model.pipeline import LucidFluxPipeline  # noqa: E402

GIB = 2**30
META = torch.device("meta")


class LiveBytes(TorchDispatchMode):
    """Bytes of the meta storages alive, and their peak, over the ops run under this mode.

    A storage is counted when an op allocates it and released when the last tensor that
    uses it (views included) is gone; storages made before the mode (weights) never count.
    """

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.holders: dict[int, list[int]] = {}  # storage -> [tensors using it, bytes]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        aliases = any(ret.alias_info is not None for ret in func._schema.returns)  # views, in-place ops
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and tensor.device.type == "meta":
                self._hold(tensor, new=not aliases)
        return out

    def _hold(self, tensor: torch.Tensor, new: bool) -> None:
        key = tensor.untyped_storage()._cdata
        holders = self.holders.get(key)
        if holders is None:
            if not new:
                return  # a view of something made before the mode
            holders = self.holders[key] = [0, tensor.untyped_storage().nbytes()]
            self.live += holders[1]
            self.peak = max(self.peak, self.live)
        holders[0] += 1
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        holders = self.holders[key]
        holders[0] -= 1
        if holders[0] == 0:
            self.live -= holders[1]
            del self.holders[key]

    def restart_peak(self) -> None:
        self.peak = self.live


def fused_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
    """What flash / memory-efficient SDPA allocates: the output and a float32 log-sum-exp."""
    out = query.new_empty(*query.shape[:-1], value.shape[-1])
    lse = query.new_empty(query.shape[:-1], dtype=torch.float32)
    del lse
    return out


@contextlib.contextmanager
def fused_attention_everywhere():
    original = torch.nn.functional.scaled_dot_product_attention
    torch.nn.functional.scaled_dot_product_attention = fused_attention
    try:
        yield
    finally:
        torch.nn.functional.scaled_dot_product_attention = original


def weight_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def resident_bytes(components, precision: str = "bf16") -> dict[str, int]:
    """Weights on the device while denoising, per component (float8: one byte per weight of the
    blocks' Linear layers, as acceleration.quantize_fp8 does, plus a float32 scale per row)."""
    sizes = {
        "backbone": weight_bytes(components.transformer),
        "condition branches": weight_bytes(components.dual_branch),
        "siglip + connector": weight_bytes(components.siglip) + weight_bytes(components.connector),
        "vae": weight_bytes(components.vae),
        "swinir": weight_bytes(components.remover.run),
    }
    if precision == "fp8":
        for part, model in (
            ("backbone", components.transformer),
            ("condition branches", components.dual_branch),
        ):
            for name, module in model.named_modules():
                if acceleration._fp8_target(module, name):
                    weight = module.weight
                    sizes[part] -= weight.numel() * (weight.element_size() - 1) - weight.shape[0] * 4
    return sizes


@torch.no_grad()
def stage_peaks(pipeline: LucidFluxPipeline, size: int) -> dict[str, int]:
    """Activation peak of each stage of an untiled ``size`` x ``size`` restore, in bytes."""
    c, dtype, peaks = pipeline.c, pipeline.dtype, {}
    tracker = LiveBytes()

    @contextlib.contextmanager
    def stage(name: str):
        tracker.restart_peak()
        yield
        peaks[name] = tracker.peak

    with fused_attention_everywhere(), tracker:
        lq = torch.empty(1, 3, size, size, device=META, dtype=dtype)
        with stage("clean"):
            cleaned = pipeline.remove(((lq.float() + 1) / 2).clamp(0, 1))
        with stage("encode"):
            pixels = torch.empty(
                1,
                3,
                c.siglip.config.image_size,
                c.siglip.config.image_size,
                device=META,
                dtype=c.siglip.dtype,
            )
            tokens = c.connector(c.siglip(pixel_values=pixels).last_hidden_state.to(dtype)).image_embeds
            context = torch.cat([c.txt.to(META, dtype), tokens.to(dtype)], dim=1)
            del pixels, tokens
        with stage("denoise"):
            latents = sampling.pack_latents(
                torch.empty(1, 16, size // 8, size // 8, device=META, dtype=dtype)
            )
            fixed = pipeline.step_inputs(
                context,
                4.0,
                sampling.image_positions(size, size, META),
                c.dual_branch.hints(lq, (cleaned * 2 - 1).to(dtype)),
            )
            latents = latents + 0.05 * pipeline.velocity(latents, 1.0, fixed)
            del fixed
        del lq, context
        with stage("decode"):
            decoded = pipeline.decode_latents(sampling.unpack_latents(latents, size, size))
            del latents
        with stage("colour fix"):
            restored = wavelet_color_fix(decoded, cleaned)
            del decoded, cleaned, restored
    return peaks


def build(tiny: bool = False) -> LucidFluxPipeline:
    components = build_components(TINY if tiny else FULL, META, torch.bfloat16)
    return LucidFluxPipeline(components, META, torch.bfloat16)


def model(sizes: list[int], tiny: bool = False) -> dict:
    pipeline = build(tiny)
    gib = lambda count: round(count / GIB, 2)  # noqa: E731
    resident = {p: resident_bytes(pipeline.c, p) for p in ("bf16", "fp8")}
    report = {
        "resident_gib": {p: {k: gib(v) for k, v in sizes.items()} for p, sizes in resident.items()},
        "sizes": [],
    }
    for size in sizes:
        stages = stage_peaks(pipeline, size)
        row = {"size": size, "stage_peaks_gib": {name: gib(peak) for name, peak in stages.items()}}
        for precision, weights in resident.items():
            row[f"peak_gib_{precision}"] = gib(sum(weights.values()) + max(stages.values()))
            row[f"assumed_gib_{precision}"] = round(tiling.estimated_peak_gib(size, size, precision), 2)
        report["sizes"].append(row)
        print(json.dumps(row), flush=True)
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="512,1024,1536,2048", help="square processing sizes, comma-separated"
    )
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--tiny", action="store_true", help="the tiny architecture (a smoke run)")
    args = parser.parse_args(argv)
    report = model([int(size) for size in args.sizes.split(",")], args.tiny)
    print(json.dumps({"resident_gib": report["resident_gib"]}))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
