"""Class-conditional DiT (Peebles & Xie 2023) as the shortcut paper uses it for images.

Images (B, C, H, W) are cut into p x p patches, one token each, with fixed 2D sin-cos positions.
Every block is adaLN-Zero: the condition c = emb(t) + emb(d) + emb(class) sets a shift, a scale and a
gate for the attention and MLP branches, and the gates start at zero, so each block (and the final
layer's output) starts as the identity (zero). The step size d enters through its own embedder, as
in the action-chunk denoisers. The class table has one extra row, the null
class, which classifier-free guidance and label dropout use (``null_cond``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.embeddings import ScalarEmbedding


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, p * p * C), patches in row-major order."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(tokens: torch.Tensor, patch: int, channels: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, N, p * p * C) -> (B, C, H, W)."""
    b = tokens.shape[0]
    gh, gw = height // patch, width // patch
    x = tokens.reshape(b, gh, gw, patch, patch, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, height, width)


def sincos_positions(dim: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """Fixed 2D sin-cos position embedding (grid_h * grid_w, dim): half the channels per axis."""
    if dim % 4:
        raise ValueError(f"DiT hidden size: expected a multiple of 4 for 2D sin-cos positions, got {dim}")
    quarter = dim // 4
    freqs = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    ys, xs = torch.meshgrid(torch.arange(grid_h, dtype=torch.float64), torch.arange(grid_w, dtype=torch.float64), indexing="ij")
    parts = []
    for pos in (ys.flatten(), xs.flatten()):
        args = pos[:, None] * freqs[None]
        parts += [args.sin(), args.cos()]
    return torch.cat(parts, dim=1).float()


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class AdaLNZeroBlock(nn.Module):
    """Pre-norm transformer block whose norms are modulated by the condition, with zero-initialised gates."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"DiT hidden size: expected a multiple of heads={heads}, got {hidden}")
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        width = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, width), nn.GELU(approximate="tanh"), nn.Linear(width, hidden))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))
        nn.init.zeros_(self.modulation[-1].weight)
        nn.init.zeros_(self.modulation[-1].bias)

    def attention(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, D) -> (B, N, D)
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, D/heads)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # x (B, N, D), c (B, D)
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c)[:, None].chunk(6, dim=-1)
        x = x + gate1 * self.attention(modulate(self.norm1(x), shift1, scale1))
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    """Modulated norm and a zero-initialised projection to patch pixels."""

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


class DiT(nn.Module):
    """Follows the objectives' ``Denoiser`` protocol: ``encode(labels)``, ``forward(x, t, d, cond)``, ``null_cond``."""

    def __init__(
        self,
        image_size: int,
        channels: int,
        num_classes: int,
        hidden: int = 128,
        depth: int = 4,
        heads: int = 4,
        patch_size: int = 2,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"model.patch_size: expected a divisor of image_size={image_size}, got {patch_size}")
        if num_classes < 1:
            raise ValueError(f"DiT num_classes: expected >= 1, got {num_classes}")
        self.image_size, self.channels, self.patch_size = image_size, channels, patch_size
        self.num_classes = num_classes  # the null class is index num_classes
        grid = image_size // patch_size
        self.patch_embed = nn.Linear(patch_size * patch_size * channels, hidden)
        self.register_buffer("positions", sincos_positions(hidden, grid, grid)[None], persistent=False)
        self.time = ScalarEmbedding(hidden)
        self.step = ScalarEmbedding(hidden)
        self.class_embed = nn.Embedding(num_classes + 1, hidden)
        self.blocks = nn.ModuleList(AdaLNZeroBlock(hidden, heads, mlp_ratio) for _ in range(depth))
        self.final = FinalLayer(hidden, patch_size * patch_size * channels)
        for block in self.blocks:
            for layer in (block.qkv, block.proj, block.mlp[0], block.mlp[2]):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        nn.init.normal_(self.class_embed.weight, std=0.02)

    def encode(self, labels: torch.Tensor) -> torch.Tensor:  # (B,) long in [0, num_classes] -> (B, hidden)
        labels = torch.as_tensor(labels, device=self.class_embed.weight.device)
        if labels.ndim != 1 or labels.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"labels: expected a 1D integer tensor (B,), got {tuple(labels.shape)} {labels.dtype}")
        if len(labels) and (labels.min() < 0 or labels.max() > self.num_classes):
            raise ValueError(
                f"labels: expected classes 0..{self.num_classes - 1} (or {self.num_classes}, the null class), "
                f"got values {labels.min().item()}..{labels.max().item()}"
            )
        return self.class_embed(labels.long())

    def null_cond(self, cond: torch.Tensor) -> torch.Tensor:
        """The null class's embedding, broadcast to ``cond`` (B, hidden)."""
        return self.class_embed.weight[self.num_classes].expand_as(cond)

    def forward(self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.patch_embed(patchify(x, self.patch_size)) + self.positions  # (B, N, hidden)
        c = self.time(t) + self.step(d) + cond  # (B, hidden)
        for block in self.blocks:
            h = block(h, c)
        out = self.final(h, c)  # (B, N, p * p * C)
        return unpatchify(out, self.patch_size, self.channels, self.image_size, self.image_size)

