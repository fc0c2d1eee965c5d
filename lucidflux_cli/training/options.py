"""What a training run is told, without torch (``lucidflux train --help`` reads these defaults).

The defaults are the LucidFlux report's recipe: AdamW, lr 2e-5, weight decay 0.01.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TIMESTEP_SAMPLERS = ("logit-normal", "uniform", "clamped-uniform")


@dataclass(frozen=True)
class TimestepOptions:
    """``sampler``: one of TIMESTEP_SAMPLERS. ``mean``/``std``: logit-normal's. ``epsilon``:
    clamped-uniform's overshoot (FluxIR: 0.05). ``shift``: apply the FLUX resolution shift."""

    sampler: str = "logit-normal"
    mean: float = 0.0
    std: float = 1.0
    epsilon: float = 0.05
    shift: bool = True

    def __post_init__(self) -> None:
        if self.sampler not in TIMESTEP_SAMPLERS:
            raise ValueError(
                f"unknown timestep sampler {self.sampler!r}; choose one of {', '.join(TIMESTEP_SAMPLERS)}"
            )
        if self.std <= 0 or self.epsilon < 0:
            raise ValueError("timestep std must be > 0 and epsilon >= 0")


LORA_TARGETS = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "add_q_proj",
    "add_k_proj",
    "add_v_proj",
    "to_add_out",
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
)


@dataclass(frozen=True)
class LoraOptions:
    rank: int = 16
    alpha: float | None = None  # None: equal to rank (scale 1)
    targets: tuple[str, ...] = LORA_TARGETS


OPTIMIZERS = ("adamw", "adamw-8bit")


@dataclass(frozen=True)
class TrainOptions:
    """Defaults: the LucidFlux report's recipe (AdamW, lr 2e-5, weight decay 0.01)."""

    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    batch_size: int = 1  # images per process and micro-batch
    accumulation: int = 1  # micro-batches per optimiser step
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0
    optimizer: str = "adamw"  # or "adamw-8bit" (bitsandbytes)
    timesteps: TimestepOptions = field(default_factory=TimestepOptions)
    pixel_loss: float = 0.0  # weight of the pixel-space L1 (FluxIR: 1.0)
    pixel_crop: int = 256  # side in pixels of the decoded window (bounds the VAE's memory)
    crop: int | None = None  # random square training crop in pixels (multiple of 16); None: whole images
    guidance: float = 4.0  # FLUX-dev guidance embedding, as at inference
    gradient_checkpointing: bool = False
    lora: LoraOptions | None = None
    save_every: int = 0  # steps; 0: only at the end and on SIGTERM/SIGINT
    seed: int = 0
    export_dtype: str = "bfloat16"  # dtype of step-N.pth / .safetensors

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.crop is not None and self.crop % 16:
            raise ValueError(f"crop {self.crop} is not a multiple of 16")
        if self.pixel_crop < 16 or self.pixel_crop % 8:
            raise ValueError(f"pixel crop {self.pixel_crop} must be a multiple of 8 and at least 16")
        if self.batch_size < 1 or self.accumulation < 1:
            raise ValueError("batch size and accumulation must be >= 1")
