"""Transformer denoiser of action chunks, in the spirit of Diffusion Policy's TransformerForDiffusion.

Action tokens (one per chunk step) attend to themselves (optionally causally) and, through
cross-attention, to conditioning tokens: one for ``t``, one for the step-size level ``d``, and one per
observation frame. ``forward(x (B,H,A), t (B,), level (B,), cond (B, n_obs_steps * F)) -> (B,H,A)``.
"""

from __future__ import annotations

import torch
from torch import nn

from .embeddings import LevelEmbedding, TimeEmbedding


class TransformerDenoiser(nn.Module):
    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        n_levels: int,
        horizon: int,
        n_obs_steps: int,
        d_model: int = 128,
        n_heads: int = 4,
        n_layers: int = 4,
        n_cond_layers: int = 0,
        dropout: float = 0.1,
        causal: bool = True,
    ) -> None:
        super().__init__()
        if cond_dim % n_obs_steps:
            raise ValueError(f"cond_dim: expected a multiple of n_obs_steps={n_obs_steps}, got {cond_dim}")
        if d_model % n_heads:
            raise ValueError(f"policy.transformer.d_model: expected a multiple of n_heads={n_heads}, got {d_model}")
        self.n_obs_steps = n_obs_steps
        self.action_in = nn.Linear(action_dim, d_model)
        self.action_pos = nn.Parameter(torch.zeros(1, horizon, d_model))
        self.time = TimeEmbedding(d_model)
        self.level = LevelEmbedding(n_levels, d_model)
        self.obs_in = nn.Linear(cond_dim // n_obs_steps, d_model)
        self.cond_pos = nn.Parameter(torch.zeros(1, 2 + n_obs_steps, d_model))
        if n_cond_layers:
            layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout, "gelu", batch_first=True, norm_first=True)
            self.cond_encoder: nn.Module = nn.TransformerEncoder(layer, n_cond_layers, enable_nested_tensor=False)
        else:
            self.cond_encoder = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.Mish(), nn.Linear(4 * d_model, d_model))
        layer = nn.TransformerDecoderLayer(d_model, n_heads, 4 * d_model, dropout, "gelu", batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, n_layers)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, action_dim)
        mask = torch.triu(torch.full((horizon, horizon), float("-inf")), diagonal=1) if causal else None
        self.register_buffer("causal_mask", mask, persistent=False)
        nn.init.normal_(self.action_pos, std=0.02)
        nn.init.normal_(self.cond_pos, std=0.02)

    def forward(self, x: torch.Tensor, t: torch.Tensor, level: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        frames = self.obs_in(cond.view(b, self.n_obs_steps, -1))  # (B, To, D)
        tokens = torch.cat([self.time(t)[:, None], self.level(level)[:, None], frames], dim=1) + self.cond_pos
        memory = self.cond_encoder(tokens)  # (B, 2 + To, D)
        h = self.action_in(x) + self.action_pos  # (B, H, D)
        h = self.decoder(h, memory, tgt_mask=self.causal_mask)
        return self.head(self.norm(h))  # (B, H, A)
