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

    def shift_scale(self, timestep: torch.Tensor, layer: int, dtype: torch.dtype) -> torch.Tensor:
        """(B, 2, D) shift and scale for one layer; independent of the residual itself."""
        time_emb = self.timestep_embedder(self.time_proj(timestep * 1000).to(dtype))
        # The reference casts the layer index to the activation dtype before embedding it.
        index = torch.full_like(timestep, layer, dtype=dtype)
        layer_emb = self.control_index_embedder(self.time_proj(index).to(dtype))
        shift, scale = self.linear(nn.functional.silu(time_emb + layer_emb)).chunk(2, dim=1)
        return torch.stack([shift, scale], dim=1)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, layer: int) -> torch.Tensor:
        shift, scale = self.shift_scale(timestep, layer, x.dtype).unbind(dim=1)
        return self.norm(x) * (1 + scale[:, None]) + shift[:, None]
