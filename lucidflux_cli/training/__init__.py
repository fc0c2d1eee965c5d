"""Fine-tuning LucidFlux's condition side on one's own pairs (issue 15); the layer under ``lucidflux train``.

pairs      training pairs on disk (``data degrade`` manifests, hq/ + lq/ folders)
cache      the frozen models' outputs per pair, computed once
timesteps  training-time samplers (logit-normal, uniform, clamped-uniform) + the FLUX shift
objective  flow matching in the sampler's convention; the pixel-space L1
trainable  what learns (five lucidflux.pth parts), from-scratch zero init, LoRA
step       one forward to the loss; gradient checkpointing
loop       AdamW, accumulation, accelerate, signals, resume
checkpoint released-layout weights (.pth, .safetensors) and the resumable state
released   the loader's key mapping, inverted
"""
