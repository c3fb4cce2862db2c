"""Transformer denoiser of action chunks. ``forward(x (B,H,A), t (B,), d (B,), cond (B, n_obs_steps * F)) -> (B,H,A)``.

Action tokens (one per chunk step) attend to themselves (optionally causally). Two ways in for the
condition:

- ``cross_attention``, in the spirit of Diffusion Policy's TransformerForDiffusion: the action tokens
  cross-attend to conditioning tokens, one for ``t``, one for the step size ``d`` and one per
  observation frame;
- ``adaln``, as in DiT (Peebles & Xie 2023) and like the U-Net's FiLM: one condition vector,
  emb(t) + emb(d) + MLP(observations), sets every block's norms (adaLN-Zero blocks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..utils.checks import at_least
from .adaln import AdaLNZeroBlock, FinalLayer
from .embeddings import T_SCALE, ScalarEmbedding

CONDITIONING = ("cross_attention", "adaln")


@dataclass
class TransformerConfig:
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 4
    n_cond_layers: int = 0  # 0: an MLP over the conditioning tokens; > 0: a transformer encoder
    dropout: float = 0.1
    causal: bool = True  # action tokens attend only to earlier ones (Diffusion Policy's default)
    # how t, d and the observations reach the action tokens: "adaln" (scores higher on Push-T at the default
    # budget, docs/results/transformer.md) or "cross_attention" (Diffusion Policy's design)
    conditioning: str = "adaln"

    def __post_init__(self) -> None:
        at_least("policy.transformer", self, 1, "n_heads")
        if self.d_model < 2 or self.d_model % self.n_heads or self.d_model % 2:
            raise ValueError(
                f"policy.transformer.d_model: expected an even multiple of n_heads={self.n_heads} (sinusoids), got {self.d_model}"
            )
        at_least("policy.transformer", self, 1, "n_layers")
        at_least("policy.transformer", self, 0, "n_cond_layers")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"policy.transformer.dropout: expected a value in [0, 1), got {self.dropout}")
        if self.conditioning not in CONDITIONING:
            raise ValueError(f"policy.transformer.conditioning: expected one of {list(CONDITIONING)}, got {self.conditioning!r}")
        if self.conditioning == "adaln" and self.n_cond_layers:
            raise ValueError(
                f"policy.transformer.n_cond_layers: adaln conditioning has no token encoder, expected 0, got {self.n_cond_layers}"
            )


class TransformerDenoiser(nn.Module):
    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        horizon: int,
        n_obs_steps: int,
        d_model: int = 128,
        n_heads: int = 4,
        n_layers: int = 4,
        n_cond_layers: int = 0,
        dropout: float = 0.1,
        causal: bool = True,
        conditioning: str = "adaln",
        embedding_scale: float = T_SCALE,  # t and d's stretch before their sinusoids (policy.embedding_scale)
    ) -> None:
        super().__init__()
        if cond_dim % n_obs_steps:
            raise ValueError(f"cond_dim: expected a multiple of n_obs_steps={n_obs_steps}, got {cond_dim}")
        TransformerConfig(d_model, n_heads, n_layers, n_cond_layers, dropout, causal, conditioning)  # its checks, for direct use too
        self.n_obs_steps = n_obs_steps
        self.conditioning = conditioning
        self.action_in = nn.Linear(action_dim, d_model)
        self.action_pos = nn.Parameter(torch.zeros(1, horizon, d_model))
        self.time = ScalarEmbedding(d_model, embedding_scale)
        self.step = ScalarEmbedding(d_model, embedding_scale)
        if conditioning == "adaln":
            self.obs_in = nn.Sequential(nn.Linear(cond_dim, 4 * d_model), nn.Mish(), nn.Linear(4 * d_model, d_model))
            self.blocks = nn.ModuleList(AdaLNZeroBlock(d_model, n_heads, 4.0, dropout, causal) for _ in range(n_layers))
            self.final = FinalLayer(d_model, action_dim)
            nn.init.normal_(self.action_pos, std=0.02)
            return
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

    def forward(self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.conditioning == "adaln":
            c = self.time(t) + self.step(d) + self.obs_in(cond)  # (B, D)
            h = self.action_in(x) + self.action_pos  # (B, H, D)
            for block in self.blocks:
                h = block(h, c)
            return self.final(h, c)  # (B, H, A)
        frames = self.obs_in(cond.view(b, self.n_obs_steps, -1))  # (B, To, D)
        tokens = torch.cat([self.time(t)[:, None], self.step(d)[:, None], frames], dim=1) + self.cond_pos
        memory = self.cond_encoder(tokens)  # (B, 2 + To, D)
        h = self.action_in(x) + self.action_pos  # (B, H, D)
        # said, not detected: torch would compare the mask on the device, a sync a CUDA graph cannot record
        h = self.decoder(h, memory, tgt_mask=self.causal_mask, tgt_is_causal=self.causal_mask is not None)
        return self.head(self.norm(h))  # (B, H, A)
