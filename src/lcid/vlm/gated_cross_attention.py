"""Gated cross-attention (Flamingo §2.2) and the wrapper that interleaves it in an LM.

Each block adds ``tanh(alpha) * attention(text, image latents)`` and ``tanh(beta) * MLP``
to the text stream; ``alpha`` and ``beta`` start at zero, so at initialisation the
language model's output is exactly what it was without images.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lcid.vlm.resampler import feed_forward


class GatedCrossAttentionBlock(nn.Module):
    """Text tokens ``(B, T, dim)`` attend to image latents ``(B, L, dim)``; tanh-gated."""

    def __init__(self, dim: int, *, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        self.ff = feed_forward(dim, dropout=dropout)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def forward(self, text: torch.Tensor, media: torch.Tensor) -> torch.Tensor:
        media = media.to(text.dtype)
        attended = self.attn(self.norm(text), media, media, need_weights=False)[0]
        text = text + torch.tanh(self.attn_gate) * attended
        return text + torch.tanh(self.ff_gate) * self.ff(text)


class ConditionedDecoderLayer(nn.Module):
    """An LM decoder layer preceded by a gated cross-attention block.

    The image latents are set with :meth:`condition` before the LM's forward pass (the
    layer signature of the wrapped LM stays untouched, as in OpenFlamingo).
    """

    def __init__(self, layer: nn.Module, cross_attention: GatedCrossAttentionBlock | None) -> None:
        super().__init__()
        self.layer = layer
        self.cross_attention = cross_attention
        self._media: torch.Tensor | None = None

    def condition(self, media: torch.Tensor | None) -> None:
        """Set (or clear with ``None``) the image latents ``(B, L, dim)`` for the next pass."""
        self._media = media

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if self.cross_attention is not None and self._media is not None:
            hidden_states = self.cross_attention(hidden_states, self._media)
        return self.layer(hidden_states, *args, **kwargs)
