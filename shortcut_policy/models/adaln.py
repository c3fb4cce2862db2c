"""adaLN-Zero transformer blocks (Peebles & Xie 2023): a condition vector sets each block's norms.

The condition c (B, D) gives every block a shift, a scale and a gate for its attention and MLP
branches. The gates start at zero, so each block starts as the identity and the final layer outputs
zero. The image DiT and the action-chunk transformer both build on these blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class AdaLNZeroBlock(nn.Module):
    """Pre-norm transformer block whose norms are modulated by the condition, with zero-initialised gates.

    ``causal``: each token attends only to itself and earlier tokens (action chunks, in time order).
    ``dropout``: on the attention weights and on each branch's output."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0, causal: bool = False) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"adaLN block hidden size: expected a multiple of heads={heads}, got {hidden}")
        self.heads, self.causal, self.dropout = heads, causal, dropout
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        width = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, width), nn.GELU(approximate="tanh"), nn.Linear(width, hidden))
        self.drop = nn.Dropout(dropout)  # on each branch's output, before its gate
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))
        for layer in (self.qkv, self.proj, self.mlp[0], self.mlp[-1]):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        nn.init.zeros_(self.modulation[-1].weight)
        nn.init.zeros_(self.modulation[-1].bias)

    def attention(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, D) -> (B, N, D)
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=self.causal)  # (B, heads, N, D/heads)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # x (B, N, D), c (B, D)
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c)[:, None].chunk(6, dim=-1)
        x = x + gate1 * self.drop(self.attention(modulate(self.norm1(x), shift1, scale1)))
        return x + gate2 * self.drop(self.mlp(modulate(self.norm2(x), shift2, scale2)))


class FinalLayer(nn.Module):
    """Modulated norm and a zero-initialised projection to the output features."""

    def __init__(self, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.linear = nn.Linear(hidden, out_dim)
        for layer in (self.modulation[-1], self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(c)[:, None].chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))
