"""Perceiver resampler (Alayrac et al. 2022, Flamingo §2.1): a few learned latents
cross-attend to a variable number of image tokens and return a fixed number of tokens."""

from __future__ import annotations

import torch
from torch import nn


def feed_forward(dim: int, *, mult: int = 4, dropout: float = 0.0) -> nn.Sequential:
    """Pre-norm two-layer GELU MLP ``dim -> mult*dim -> dim``."""
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, mult * dim),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(mult * dim, dim),
    )


class PerceiverLayer(nn.Module):
    """Latents attend to ``[image tokens; latents]`` (as in Flamingo), then an MLP."""

    def __init__(self, dim: int, *, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        self.ff = feed_forward(dim, dropout=dropout)

    def forward(self, latents: torch.Tensor, media: torch.Tensor) -> torch.Tensor:
        q = self.norm_latents(latents)
        kv = torch.cat([self.norm_media(media), q], dim=1)
        latents = latents + self.attn(q, kv, kv, need_weights=False)[0]
        return latents + self.ff(latents)


class PerceiverResampler(nn.Module):
    """``(B, N, dim)`` image tokens -> ``(B, n_latents, dim)`` latent tokens."""

    def __init__(self, dim: int, *, n_latents: int, depth: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(n_latents, dim) * 0.02)
        self.layers = nn.ModuleList(PerceiverLayer(dim, n_heads=n_heads, dropout=dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, media: torch.Tensor) -> torch.Tensor:
        latents = self.latents.unsqueeze(0).expand(media.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(latents, media)
        return self.norm(latents)
