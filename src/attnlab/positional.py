"""Positional encodings.

Two kinds share one base class:

* encodings added to the token embeddings (``none``, ``learned``, ``sinusoidal``) implement
  ``forward(x, offset)``;
* encodings that act inside attention (rotary, ALiBi, relative bias) return a
  :class:`~attnlab.attention.PositionHook` from ``attention_hook()`` and leave ``forward`` as the
  identity.

Architectures always do both — add ``pos(x)`` to the embeddings and hand
``pos.attention_hook()`` to their self-attention — so a new kind never touches them.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from attnlab.attention import PositionHook

__all__ = [
    "PositionalEncoding",
    "NoPositionalEncoding",
    "LearnedPositionalEncoding",
    "SinusoidalPositionalEncoding",
    "sinusoidal_table",
]


class PositionalEncoding(nn.Module):
    """Base class. ``max_len`` is None when any length works."""

    max_len: Optional[int] = None

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:  # x: (B, T, d)
        return x

    def attention_hook(self) -> Optional[PositionHook]:
        return None


class NoPositionalEncoding(PositionalEncoding):
    """No position information at all (an RNN has its own sense of order)."""


def sinusoidal_table(length: int, d_model: int, device=None, dtype=torch.float32) -> Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)); (L, d)."""
    position = torch.arange(length, device=device, dtype=torch.float64).unsqueeze(1)  # (L, 1)
    div = torch.exp(torch.arange(0, d_model, 2, device=device, dtype=torch.float64) * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model, device=device, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div[: d_model // 2])
    return table.to(dtype)


class SinusoidalPositionalEncoding(PositionalEncoding):
    """The fixed sinusoids of Vaswani et al. 2017, for any length (the table grows on demand)."""

    def __init__(self, d_model: int, dropout: float = 0.0):
        super().__init__(d_model)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("table", sinusoidal_table(256, d_model), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        end = offset + x.size(1)
        if end > self.table.size(0):
            self.table = sinusoidal_table(max(end, 2 * self.table.size(0)), self.d_model, device=x.device)
        return self.dropout(x + self.table[offset:end].to(x.dtype))


class LearnedPositionalEncoding(PositionalEncoding):
    """A trainable table of ``max_len`` position vectors (BERT, GPT-2)."""

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0):
        super().__init__(d_model)
        if max_len <= 0:
            raise ValueError(f"pos_enc.max_len must be positive, got {max_len}")
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        end = offset + x.size(1)
        if end > self.max_len:
            raise ValueError(
                f"a sequence of {end} positions does not fit the learned positional table of "
                f"pos_enc.max_len={self.max_len}; raise pos_enc.max_len to at least {end}"
            )
        positions = torch.arange(offset, end, device=x.device)
        return self.dropout(x + self.embedding(positions).to(x.dtype))
