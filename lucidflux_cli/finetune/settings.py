"""Settings of ``lucidflux train``: every option declared once, here; defaults from the library's
:class:`~lucidflux_cli.training.options.TrainOptions` (the paper's recipe), which
:meth:`TrainRequest.options` builds back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lucidflux_cli.runner.settings import DeviceSettings, LogSettings, setting
from lucidflux_cli.training.options import (
    OPTIMIZERS,
    TIMESTEP_SAMPLERS,
    LoraOptions,
    TimestepOptions,
    TrainOptions,
)

_D = TrainOptions()


@dataclass
class TrainRequest(DeviceSettings, LogSettings):
    """``lucidflux train --pairs DIR|MANIFEST -o run/``."""

    pairs: Path = setting(
        None,
        path="any",
        required=True,
        help="Training pairs: a `lucidflux data degrade` folder or manifest, or a folder with hq/ and lq/.",
    )
    out_dir: Path = setting(
        None,
        flags=("-o", "--output"),
        path="dir",
        required=True,
        help="Run folder: step-N.pth/.safetensors, step-N.state.pt, run-config.json, "
        "cache/, validation/. Rerunning the same command resumes from its last state.",
    )
    steps: int = setting(1000, minimum=1, help="Optimiser steps in total (a resumed run continues to this).")
    learning_rate: float = setting(_D.learning_rate, help="AdamW learning rate (the paper: 2e-5).")
    weight_decay: float = setting(_D.weight_decay, help="AdamW weight decay (the paper: 0.01).")
    batch_size: int = setting(
        _D.batch_size, minimum=1, help="Pairs per process and micro-batch (the paper: 2 per GPU)."
    )
    accumulation: int = setting(
        _D.accumulation, minimum=1, help="Micro-batches per optimiser step (the paper: 2)."
    )
    warmup_steps: int = setting(_D.warmup_steps, minimum=0, help="Linear learning-rate warm-up steps.")
    optimizer: str = setting(
        _D.optimizer,
        choices=OPTIMIZERS,
        help="adamw-8bit: bitsandbytes' 8-bit AdamW states (pip install 'lucidflux-cli[train]').",
    )
    timesteps: str = setting(
        _D.timesteps.sampler,
        choices=TIMESTEP_SAMPLERS,
        help="Timestep sampling; clamped-uniform is FluxIR's (t = clamp(u, 0, 1)).",
    )
    epsilon: float = setting(_D.timesteps.epsilon, help="clamped-uniform: u ~ U(-epsilon, 1 + epsilon).")
    pixel_loss: float = setting(
        _D.pixel_loss,
        help="Weight of the L1 between the VAE-decoded predicted clean latent and the "
        "HQ image (FluxIR: 1.0); decoded on a crop, --pixel-crop.",
    )
    pixel_crop: int = setting(
        _D.pixel_crop, minimum=16, help="Side in px of the window decoded for --pixel-loss."
    )
    crop: int | None = setting(
        None, minimum=16, help="Train on random square crops of this side in px (multiple of 16)."
    )
    gradient_checkpointing: bool = setting(
        _D.gradient_checkpointing,
        flag=True,
        help="Recompute activations in the backward pass (about a third less memory, a third more time).",
    )
    lora_rank: int = setting(
        0,
        minimum=0,
        help="Train LoRA adapters of this rank on the branches (peft) instead of "
        "all their weights; 0: full training.",
    )
    from_scratch: bool = setting(
        False,
        flag=True,
        help="Start the condition module from zero-initialised outputs "
        "instead of the released lucidflux.pth.",
    )
    save_every: int = setting(
        500,
        minimum=0,
        help="Checkpoint every N steps (and always at the end and on SIGTERM/SIGINT); 0: only then.",
    )
    validation: Path | None = setting(
        None,
        path="dir",
        help="Held-out LQ images restored and scored at every "
        "--validate-every step into validation/index.md.",
    )
    validate_every: int = setting(500, minimum=1, help="Steps between validations.")
    validation_metrics: str = setting(
        "niqe",
        metavar="LIST",
        help="No-reference metrics of the validation page (`lucidflux eval`'s; none: no scores).",
    )
    validation_steps: int = setting(20, minimum=1, help="Denoising steps of the validation restores.")
    seed: int = setting(
        _D.seed,
        minimum=0,
        maximum=2**63 - 1,
        help="Every draw (pair order, crops, times, noise) comes from (seed, sample index).",
    )
    weights: dict[str, Path | None] = field(default_factory=dict)  # --flux, --ae, ... as for restore

    def provenance(self) -> dict[str, str]:
        return {"pairs": str(self.pairs), "steps": str(self.steps), "seed": str(self.seed)}

    def options(self) -> TrainOptions:
        """The library's options (ValueError for impossible combinations)."""
        return TrainOptions(
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            accumulation=self.accumulation,
            warmup_steps=self.warmup_steps,
            optimizer=self.optimizer,
            timesteps=TimestepOptions(sampler=self.timesteps, epsilon=self.epsilon),
            pixel_loss=self.pixel_loss,
            pixel_crop=self.pixel_crop,
            crop=self.crop,
            gradient_checkpointing=self.gradient_checkpointing,
            lora=LoraOptions(rank=self.lora_rank) if self.lora_rank else None,
            save_every=self.save_every,
            seed=self.seed,
        )
