"""Timestep- and layer-adaptive modulation of condition-branch residuals."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class LayerAdaptiveModulation(ModelMixin, ConfigMixin):
    """``M(x, t, k) = LayerNorm(x) * (1 + scale) + shift`` with (shift, scale) from t and layer k.

    The timestep and the backbone layer index both go through 256-dim sinusoidal embeddings
    (cos half first) and their own MLPs; the layer index is *not* scaled by 1000, the
    timestep is. Key names match ``modulation_lq`` / ``modulation_ldr`` in ``lucidflux.pth``.
    """

    @register_to_config
    def __init__(self, dim: int = 3072):
        super().__init__()
        self.time_proj = Timesteps(num_channels=256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.timestep_embedder = TimestepEmbedding(in_channels=256, time_embed_dim=dim)
        self.control_index_embedder = TimestepEmbedding(in_channels=256, time_embed_dim=dim)
        self.linear = nn.Linear(dim, 2 * dim)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)

    def time_embedding(self, timestep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, D); changes every step but is shared by all layers."""
        return self.timestep_embedder(self.time_proj(timestep * 1000).to(dtype))

    def layer_embedding(
        self, batch: int, layer: int, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """(B, D); fixed for the whole run. The reference casts the layer index to the activation dtype."""
        index = torch.full((batch,), layer, dtype=dtype, device=device)
        return self.control_index_embedder(self.time_proj(index).to(dtype))

    def shift_scale_from(self, time_emb: torch.Tensor, layer_emb: torch.Tensor) -> torch.Tensor:
        """(B, 2, D) shift and scale from the two embeddings."""
        shift, scale = self.linear(nn.functional.silu(time_emb + layer_emb)).chunk(2, dim=1)
        return torch.stack([shift, scale], dim=1)

    def shift_scale(self, timestep: torch.Tensor, layer: int, dtype: torch.dtype) -> torch.Tensor:
        """(B, 2, D) shift and scale for one layer; independent of the residual itself."""
        layer_emb = self.layer_embedding(timestep.shape[0], layer, dtype, timestep.device)
        return self.shift_scale_from(self.time_embedding(timestep, dtype), layer_emb)

    @staticmethod
    def modulate(normed: torch.Tensor, shift_scale: torch.Tensor) -> torch.Tensor:
        """Apply (B, 2, D) ``shift_scale`` to an already layer-normed residual (B, N, D)."""
        shift, scale = shift_scale.unbind(dim=1)
        return normed * (1 + scale[:, None]) + shift[:, None]

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, layer: int) -> torch.Tensor:
        return self.modulate(self.norm(x), self.shift_scale(timestep, layer, x.dtype))
