"""GPU speed and memory options: ``--compile``, ``--precision`` and ``--offload``.

Each is a small function or class the pipeline builder applies to loaded components; on a CPU
device the GPU-only ones do nothing (and say so once).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from lucidflux_cli.model.config import COMPILE_MODES as COMPILE_MODES  # re-exported: the engine's API
from lucidflux_cli.model.config import OFFLOAD_MODES as OFFLOAD_MODES
from lucidflux_cli.model.config import PRECISIONS as PRECISIONS

log = logging.getLogger(__name__)

FP8_CAPABILITY = (8, 9)  # Ada and Hopper have float8 tensor cores


# --- torch.compile ----------------------------------------------------------------------


def resolve_compile(mode: str, device: torch.device, offload: str = "none") -> bool:
    """``auto``: on for CUDA (the compile is cached on disk, so only the first run pays it)."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    if mode == "auto":
        # accelerate's per-module hooks in sequential offload break the compiled graphs.
        return device.type == "cuda" and offload != "sequential"
    return mode == "on"


def compile_cache_dir(cache_dir: Path | str | None = None) -> Path:
    """Persistent inductor cache under the tool's cache folder, shared by every run (cron jobs)."""
    from lucidflux_cli.weights import cache_root

    return cache_root(cache_dir) / "torch-compile"


def repeated_blocks(components) -> list[nn.Module]:
    """The transformer blocks of the backbone and both branches: all the time is spent there."""
    transformer, dual = components.transformer, components.dual_branch
    return [
        *transformer.transformer_blocks,
        *transformer.single_transformer_blocks,
        *dual.lq.transformer_blocks,
        *dual.ldr.transformer_blocks,
    ]


def compile_blocks(components, cache_dir: Path | None = None, backend: str = "inductor") -> int:
    """Regional compilation: each repeated block is compiled in place (blocks of one kind share
    one graph, so 57 backbone blocks compile about as fast as two). Returns the block count."""
    if cache_dir is not None:
        use_compile_cache(cache_dir)
    blocks = repeated_blocks(components)
    for block in blocks:
        block.compile(backend=backend)
    log.info(
        "compiling %d transformer blocks (%s); cache %s",
        len(blocks),
        backend,
        os.environ.get("TORCHINDUCTOR_CACHE_DIR", "default"),
    )
    return len(blocks)


def use_compile_cache(cache_dir: Path) -> None:
    """Keep inductor's on-disk caches (FX graphs, AOT autograd, kernels; on by default) in
    ``cache_dir``, unless the user chose a folder with TORCHINDUCTOR_CACHE_DIR.

    Inductor reads that variable whenever it looks for its cache, but importing diffusers or
    transformers already makes torch resolve its default (/tmp/torchinductor_<user>) and write it
    into the variable, so an unset variable is not the test: torch's own default is replaced,
    any other value is the user's and kept.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current is None or _is_torch_default_cache(current):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir)


def _is_torch_default_cache(path: str) -> bool:
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:  # another torch layout: treat the value as the user's
        return False
    return os.path.abspath(path) == os.path.abspath(default_cache_dir())


def timed_first_call(function: Callable, what: str) -> Callable:
    """Log how long the first call took (it includes compilation and warm-up)."""
    done = False

    def wrapper(*args, **kwargs):
        nonlocal done
        if done:
            return function(*args, **kwargs)
        started = time.monotonic()
        result = function(*args, **kwargs)
        done = True
        log.info("first image: %.1f s (%s)", time.monotonic() - started, what)
        return result

    return wrapper


# --- float8 -------------------------------------------------------------------------------


def fp8_problem(device: torch.device) -> str | None:
    """Why ``--precision fp8`` cannot run here (one line), or None."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return "--precision fp8 needs an NVIDIA GPU with float8 support (Ada or Hopper); use --precision bf16"
    capability = torch.cuda.get_device_capability(device)
    if capability < FP8_CAPABILITY:
        return (
            f"--precision fp8 needs compute capability {FP8_CAPABILITY[0]}.{FP8_CAPABILITY[1]} or newer "
            f"(Ada or Hopper); this GPU has {capability[0]}.{capability[1]}; use --precision bf16"
        )
    try:
        import torchao  # noqa: F401
    except ImportError:
        return "--precision fp8 needs torchao: pip install 'lucidflux-cli[fp8]'"
    return None


def quantize_fp8(components) -> int:
    """Float8 dynamic activation + weight quantization (per row) of the Linear layers in the
    transformer blocks of the backbone and of both condition branches.

    Embedders, output head, hint encoders and modulations stay bf16: they are small and the
    most sensitive. The branches' blocks are included for memory, not speed (2.9 -> 1.65 GiB; with
    ``--offload model`` the denoise stage holds backbone and branches together).
    Returns the number of quantized layers.
    """
    from torchao.quantization import quantize_

    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow

        config = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
    except ImportError:  # torchao < 0.9
        from torchao.quantization import PerRow, float8_dynamic_activation_float8_weight

        config = float8_dynamic_activation_float8_weight(granularity=PerRow())
    count = 0
    for model in (components.transformer, components.dual_branch):
        count += sum(_fp8_target(module, name) for name, module in model.named_modules())
        quantize_(model, config, filter_fn=_fp8_target)
    log.info("float8: %d Linear layers of the backbone and condition branch blocks quantized", count)
    return count


def _fp8_target(module: nn.Module, name: str) -> bool:
    return isinstance(module, nn.Linear) and "transformer_blocks." in name


# --- offload --------------------------------------------------------------------------------


class Placement:
    """Where the big components live between stages.

    ``none``: everything stays on the device. ``model``: every component waits on the host and
    is moved to the device only while its stage runs (backbone and branches while denoising,
    VAE while decoding, SigLIP and connector while encoding): peak device memory is the largest
    stage, at the price of one host<->device copy per stage and image. ``sequential``:
    accelerate's ``cpu_offload`` streams each submodule's weights in as it runs (smallest
    memory, slowest). The degradation remover is a plugin's own object and stays on the device.
    On a CPU device all modes are the same.
    """

    def __init__(self, mode: str, device: torch.device):
        if mode not in OFFLOAD_MODES:
            raise ValueError(f"--offload must be one of {', '.join(OFFLOAD_MODES)}, got {mode!r}")
        self.device = torch.device(device)
        self.mode = mode if self.device.type != "cpu" else "none"
        if mode != "none" and self.mode == "none":
            log.info("--offload %s has no effect on the CPU", mode)

    @property
    def load_device(self) -> torch.device:
        """Where components are loaded: the host when they are offloaded."""
        return torch.device("cpu") if self.mode != "none" else self.device

    def setup(self, modules: list[nn.Module]) -> None:
        """Apply the mode to freshly loaded ``modules`` (on :attr:`load_device`)."""
        if self.mode == "sequential":
            from accelerate import cpu_offload

            for module in modules:
                cpu_offload(module, execution_device=self.device)

    @contextlib.contextmanager
    def stage(self, *modules: nn.Module) -> Iterator[None]:
        """``modules`` on the device for the duration of one stage (``model`` mode)."""
        if self.mode != "model":
            yield
            return
        for module in modules:
            module.to(self.device)
        try:
            yield
        finally:
            for module in modules:
                module.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()


def apply(
    components,
    *,
    device: torch.device,
    precision: str = "bf16",
    compile_mode: str = "auto",
    placement: Placement | None = None,
    cache_dir: Path | str | None = None,
) -> bool:
    """Apply ``--precision``, ``--offload`` and ``--compile`` to loaded components, in that order
    (quantize before compiling so the float8 kernels are what gets compiled). Returns whether
    the blocks are compiled."""
    placement = placement or Placement("none", device)
    if precision == "fp8":
        problem = fp8_problem(device)
        if problem:
            raise ValueError(problem)
        quantize_fp8(components)
    placement.setup(
        [
            components.transformer,
            components.dual_branch,
            components.vae,
            components.siglip,
            components.connector,
        ]
    )
    compiled = resolve_compile(compile_mode, device, placement.mode)
    if compiled:
        compile_blocks(components, compile_cache_dir(cache_dir))
    return compiled
