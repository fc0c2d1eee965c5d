"""The LucidFlux architecture and its sampling defaults, one place per fact.

Pure Python on purpose (no torch): the CLI reads the sampling defaults at start-up, and
``lucidflux --help`` must stay fast. Loaders still read every size off the weights; a config
is what they build and compare, what the self-test and the benchmarks construct, and what the
tests' tiny release is written with. Sizes are those of docs/reference-pipeline.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class FluxShape:
    """Hyper-parameters of a Flux-style transformer (the backbone or one condition branch)."""

    hidden: int
    in_channels: int  # packed latent: 16 channels x 2 x 2
    context_dim: int  # T5 width
    vec_dim: int  # CLIP pooled width
    head_dim: int
    mlp_hidden: int
    depth: int  # double-stream blocks
    depth_single: int  # single-stream blocks
    guidance: bool  # FLUX-dev's guidance embedding

    @property
    def heads(self) -> int:
        return self.hidden // self.head_dim

    @property
    def axes_dim(self) -> tuple[int, int, int]:
        # RoPE axes are not stored in checkpoints; FLUX splits each head 1/8 : 7/16 : 7/16
        # (16, 56, 56 for 128-dim heads).
        first = self.head_dim // 8
        rest = (self.head_dim - first) // 2
        return (first, rest, self.head_dim - first - rest)


@dataclass(frozen=True)
class VaeShape:
    """The FLUX autoencoder. Scale and shift are facts its checkpoint does not store."""

    channels: tuple[int, ...]  # per level; len(channels) - 1 halvings: 4 levels = 8x down
    layers_per_block: int
    latent_channels: int = 16
    norm_groups: int = 32
    scaling: float = 0.3611
    shift: float = 0.1159


@dataclass(frozen=True)
class SiglipShape:
    """The SigLIP vision tower whose last hidden state feeds the connector."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    image_size: int = 512
    patch_size: int = 16


@dataclass(frozen=True)
class SwinIRShape:
    """DiffBIR's SwinIR (pixel-unshuffle by 8, ``nearest+conv`` upsampler, output at input size)."""

    embed_dim: int
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    window: int = 8
    mlp_ratio: float = 2.0
    unshuffle: int = 8
    img_size: int = 64


@dataclass(frozen=True)
class SamplingDefaults:
    """The reference script's sampling parameters."""

    steps: int = 20
    guidance: float = 4.0  # FLUX-dev guidance embedding; no classifier-free guidance
    seed: int = 123456789
    color_fix: str = "wavelet"  # the reference's wavelet reconstruction


SAMPLING = SamplingDefaults()

# What the model layer can be asked to run with (the CLI's choices; the model modules validate them).
COLOR_FIXES = ("wavelet", "none")
PRECISIONS = ("bf16", "fp8")
OFFLOAD_MODES = ("none", "model", "sequential")
COMPILE_MODES = ("auto", "on", "off")
DEFAULT_REMOVER = "swinir"
TILE_BATCH = 1  # tiles per model call


@dataclass(frozen=True)
class LucidFluxConfig:
    """The whole architecture: backbone, condition branches, connector, SigLIP, VAE, SwinIR."""

    backbone: FluxShape
    vae: VaeShape
    siglip: SiglipShape
    swinir: SwinIRShape
    branch_depth: int = 2  # double blocks per condition branch; residual k uses branch output k % depth
    hint_channels: int = 16  # the pixel-space hint encoder's width (its output is packed like the latent)
    prompt_tokens: int = 512  # T5 tokens of the shipped prompt embeddings
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)

    @property
    def branch(self) -> FluxShape:
        """One condition branch: the backbone's embedders and block shape, no single blocks."""
        return replace(self.backbone, depth=self.branch_depth, depth_single=0)

    @property
    def residuals(self) -> int:
        """One modulated residual per backbone double block."""
        return self.backbone.depth

    @classmethod
    def full(cls) -> LucidFluxConfig:
        """The released 12B model: FLUX.1-dev, SigLIP2 so400m patch16-512, DiffBIR's SwinIR."""
        return cls(
            backbone=FluxShape(
                hidden=3072,
                in_channels=64,
                context_dim=4096,
                vec_dim=768,
                head_dim=128,
                mlp_hidden=4 * 3072,
                depth=19,
                depth_single=38,
                guidance=True,
            ),
            vae=VaeShape(channels=(128, 256, 512, 512), layers_per_block=2),
            siglip=SiglipShape(hidden=1152, intermediate=4304, layers=27, heads=16),
            swinir=SwinIRShape(embed_dim=180, depths=(6,) * 8, heads=(6,) * 8),
        )

    @classmethod
    def tiny(cls) -> LucidFluxConfig:
        """The test size: every structural fact of :meth:`full` (19 residuals, 8x VAE, SigLIP at
        512 px, the hint encoder), with small widths. The tests' tiny release is written with it,
        and the reference outputs in tests/data/reference were made from that release."""
        return cls(
            backbone=FluxShape(
                hidden=64,
                in_channels=64,
                context_dim=32,
                vec_dim=16,
                head_dim=32,
                mlp_hidden=4 * 64,
                depth=19,
                depth_single=2,
                guidance=True,
            ),
            vae=VaeShape(channels=(32, 32, 32, 32), layers_per_block=1),
            siglip=SiglipShape(hidden=32, intermediate=64, layers=2, heads=2),
            swinir=SwinIRShape(embed_dim=16, depths=(2,), heads=(2,)),
            prompt_tokens=16,
        )
