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
from torch import nn

from ..models.adaln import AdaLNZeroBlock, FinalLayer
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

