"""The training loop: AdamW, gradient accumulation, accelerate for devices, checkpoints, signals.

Randomness is drawn per *sample*, from a generator seeded by (run seed, the sample's index in
the whole run): its pair, crop, time and noise do not depend on the batch size, the
accumulation, the number of processes or an interruption. That is what makes 2x1 equal 1x2
and a resumed run equal an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers.optimization import get_scheduler

from lucidflux_cli.model.pipeline import LucidFluxPipeline
from lucidflux_cli.training import checkpoint, objective
from lucidflux_cli.training.cache import CachedPairs
from lucidflux_cli.training.options import OPTIMIZERS, TrainOptions  # noqa: F401 (re-exported)
from lucidflux_cli.training.step import Batch, ConditionTrainer, Draws, enable_gradient_checkpointing
from lucidflux_cli.training.timesteps import sample_timesteps
from lucidflux_cli.training.trainable import (
    load_trainable_state,
    prepare_trainable,
    trainable_state,
)

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    steps: int  # optimiser steps done in total
    interrupted: str | None  # the signal's name when stopped by one
    checkpoints: list[Path]
    losses: list[float]


class Trainer:
    """Trains the condition side of ``pipeline`` on ``data``; one instance per process."""

    def __init__(
        self,
        pipeline: LucidFluxPipeline,
        data: CachedPairs,
        options: TrainOptions,
        accelerator: Accelerator | None = None,
    ):
        self.options, self.data, self.pipeline = options, data, pipeline
        self.accelerator = accelerator or make_accelerator(pipeline.device)
        params = prepare_trainable(pipeline.c, options.lora)
        if options.gradient_checkpointing:
            enable_gradient_checkpointing(pipeline)
        self.optimizer = _optimizer(params, options)
        self.scheduler = get_scheduler(
            "constant_with_warmup", self.optimizer, num_warmup_steps=options.warmup_steps
        )
        # The scheduler is stepped by hand once per optimiser step: accelerate's wrapper would step it
        # once per process, changing the warm-up's meaning with the number of GPUs.
        self.model, self.optimizer = self.accelerator.prepare(
            ConditionTrainer(pipeline, options.guidance, options.pixel_loss), self.optimizer
        )
        self.step = 0
        # Where this process's sample sequence starts: (step, sample index) at start or resume, so a
        # run resumed with another batch size, accumulation or GPU count continues the same sequence.
        self._origin = (0, 0)
        self._stop: str | None = None

    # --- one optimiser step ----------------------------------------------------------------

    def train_step(self) -> float:
        """Accumulate ``options.accumulation`` micro-batches, clip, step; returns the mean loss."""
        loss = self.accumulate_gradients()
        self.apply_gradients()
        return loss

    def accumulate_gradients(self) -> float:
        """Forward and backward of this step's micro-batches; gradients summed, scaled to a mean."""
        options, accelerator = self.options, self.accelerator
        total = 0.0
        for micro in range(options.accumulation):
            batch, draws = self._micro_batch(self._sample_indices(self.step, micro))
            last = micro == options.accumulation - 1
            # DDP all-reduces gradients only on the last micro-batch of a step.
            with accelerator.autocast(), _no_sync(accelerator, self.model, not last):
                loss = self.model(batch, draws)["loss"]
                accelerator.backward(loss / options.accumulation)
            total += float(loss.detach()) / options.accumulation
        return total

    def apply_gradients(self) -> None:
        if self.options.max_grad_norm:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.options.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1

    def _sample_indices(self, step: int, micro: int) -> list[int]:
        """Indices in the run's sample sequence of this process's share of one micro-batch."""
        o, world, rank = self.options, self.accelerator.num_processes, self.accelerator.process_index
        origin_step, origin_sample = self._origin
        first = (
            origin_sample + (((step - origin_step) * o.accumulation + micro) * world + rank) * o.batch_size
        )
        return list(range(first, first + o.batch_size))

    def _next_sample(self) -> int:
        """The run-wide index of the first sample the next step will use (all processes together)."""
        return (
            self._sample_indices(self.step, 0)[0] - self.accelerator.process_index * self.options.batch_size
        )

    def _micro_batch(self, indices: list[int]) -> tuple[Batch, Draws]:
        samples, s, noise, windows = [], [], [], []
        for index in indices:
            generator = torch.Generator().manual_seed(draw_seed(self.options.seed, "sample", index))
            sample = _crop(self.data.sample(self._pair_of(index)), self.options.crop, generator)
            height, width = sample["lq"].shape[-2:]
            s.append(sample_timesteps(1, self.options.timesteps, height, width, generator))
            noise.append(torch.randn(sample["latents"].shape, generator=generator))
            windows.append(
                objective.latent_window(
                    *sample["latents"].shape[-2:], self.options.pixel_crop // 8, generator
                )
            )
            samples.append(sample)
        device = self.accelerator.device
        stacked = {k: torch.stack([x[k] for x in samples]).to(device) for k in samples[0]}
        draws = Draws(
            torch.cat(s).to(device),
            torch.stack(noise).to(device),
            windows if self.options.pixel_loss > 0 else None,
        )
        return Batch(**stacked), draws

    def _pair_of(self, index: int) -> int:
        """Epoch-wise shuffling: sample ``index`` is pair ``permutation(epoch)[index % n]``."""
        count = len(self.data)
        epoch, position = divmod(index, count)
        order = torch.randperm(
            count, generator=torch.Generator().manual_seed(draw_seed(self.options.seed, "order", epoch))
        )
        return int(order[position])

    # --- the run ---------------------------------------------------------------------------

    def run(
        self,
        steps: int,
        folder: Path | None = None,
        on_step: Callable[[int, float, float], None] | None = None,
    ) -> Outcome:
        """Train until ``steps`` optimiser steps in total; checkpoints into ``folder``.

        SIGTERM/SIGINT finish the current step, save, and return (``Outcome.interrupted``).
        ``on_step(step, loss, steps_per_second)`` after each step (progress display).
        """
        outcome = Outcome(self.step, None, [], [])
        if folder is not None and self.accelerator.is_main_process:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / "run-config.json").write_text(
                json.dumps(_jsonable(asdict(self.options)), indent=2)
            )
        with _signals(self):
            while self.step < steps and self._stop is None:
                started = time.perf_counter()
                loss = self.train_step()
                outcome.losses.append(loss)
                if on_step is not None:
                    on_step(self.step, loss, 1.0 / max(time.perf_counter() - started, 1e-9))
                every = self.options.save_every
                if folder is not None and (
                    self._stop or self.step == steps or (every and self.step % every == 0)
                ):
                    outcome.checkpoints.append(self.save(folder))
        outcome.steps, outcome.interrupted = self.step, self._stop
        return outcome

    def request_stop(self, reason: str) -> None:
        self._stop = reason

    # --- checkpoints -----------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "trainable": trainable_state(self.pipeline.c),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": checkpoint.rng_states(),
            "data": {"next_sample": self._next_sample(), "seed": self.options.seed},
            "options": _jsonable(asdict(self.options)),
        }

    def save(self, folder: Path) -> Path:
        """``step-N.pth``/``.safetensors`` (weights) and ``step-N.state.pt``; returns the state's path."""
        self.accelerator.wait_for_everyone()
        stem = Path(folder) / f"step-{self.step}"
        if self.accelerator.is_main_process:
            checkpoint.export_weights(self.pipeline.c, stem, getattr(torch, self.options.export_dtype))
            checkpoint.save_state(Path(f"{stem}.state.pt"), self.state_dict())
        self.accelerator.wait_for_everyone()
        return Path(f"{stem}.state.pt")

    def resume(self, path: Path) -> None:
        """Continue from a ``step-N.state.pt``: same weights, optimiser moments, schedule, RNG, data
        position."""
        state = checkpoint.load_state(path)
        if state["data"]["seed"] != self.options.seed:
            raise ValueError(
                f"{path}: saved with seed {state['data']['seed']}, this run has {self.options.seed}"
            )
        load_trainable_state(self.pipeline.c, state["trainable"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        checkpoint.restore_rng_states(state["rng"])
        self.step = int(state["step"])
        self._origin = (self.step, int(state["data"]["next_sample"]))


def _optimizer(params: list[torch.nn.Parameter], options: TrainOptions) -> torch.optim.Optimizer:
    if options.optimizer == "adamw-8bit":
        try:
            import bitsandbytes as bnb
        except ImportError as error:
            raise RuntimeError(
                "--optimizer adamw-8bit needs bitsandbytes (pip install bitsandbytes)"
            ) from error
        return bnb.optim.AdamW8bit(params, lr=options.learning_rate, weight_decay=options.weight_decay)
    return torch.optim.AdamW(params, lr=options.learning_rate, weight_decay=options.weight_decay)


def draw_seed(seed: int, stream: str, index: int) -> int:
    """The seed of one stream of draws (a sample's, an epoch's order) of a run seeded ``seed``.

    Hashed into 32 bits, because torch's CPU generator keeps only the low 32 bits of a seed:
    ``seed * 2**32 + index`` made every run seed give the same draws.
    """
    digest = hashlib.sha256(f"lucidflux-train:{int(seed)}:{stream}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def make_accelerator(device: torch.device | str) -> Accelerator:
    """bf16 autocast on CUDA (the report trains in bf16); plain float32 elsewhere (tests, CPU).
    Under ``accelerate launch``/torchrun it joins the processes (DDP, or FSDP from its config)."""
    from accelerate.utils import DistributedDataParallelKwargs

    cuda = torch.device(device).type == "cuda"
    # cpu=True: without it accelerate leaves CPU processes under torchrun unjoined (each trains alone).
    # find_unused_parameters: the released branches hold layers a step does not use (DDP would stop).
    return Accelerator(
        mixed_precision="bf16" if cuda else "no",
        cpu=not cuda,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def _crop(
    sample: dict[str, torch.Tensor], crop: int | None, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """A random ``crop`` x ``crop`` window aligned to 16 px (one latent token), the same in every tensor."""
    if crop is None:
        return sample
    height, width = sample["lq"].shape[-2:]
    if crop > min(height, width):
        raise ValueError(f"crop {crop} is larger than a {width}x{height} training image")
    top = 16 * int(torch.randint(0, (height - crop) // 16 + 1, (1,), generator=generator))
    left = 16 * int(torch.randint(0, (width - crop) // 16 + 1, (1,), generator=generator))
    out = dict(sample)
    for key in ("lq", "ldr", "hq"):
        out[key] = sample[key][..., top : top + crop, left : left + crop]
    out["latents"] = sample["latents"][..., top // 8 : (top + crop) // 8, left // 8 : (left + crop) // 8]
    return out


class _no_sync:
    """``accelerator.no_sync`` when ``skip`` (a micro-batch before the last), a no-op otherwise."""

    def __init__(self, accelerator: Accelerator, model: torch.nn.Module, skip: bool):
        self.context = accelerator.no_sync(model) if skip else None

    def __enter__(self):
        return self.context.__enter__() if self.context else None

    def __exit__(self, *exc):
        return self.context.__exit__(*exc) if self.context else False


class _signals:
    """SIGTERM/SIGINT ask the trainer to stop after the current step (the main thread only); a
    second one while it finishes the step aborts at once (KeyboardInterrupt), without saving."""

    def __init__(self, trainer: Trainer):
        self.trainer, self.previous = trainer, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, number: int, _frame) -> None:
        if self.trainer._stop is not None:
            raise KeyboardInterrupt
        self.trainer.request_stop(signal.Signals(number).name)

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
