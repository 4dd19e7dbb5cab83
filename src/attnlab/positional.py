"""Positional encodings.

Two kinds share one base class:

* encodings added to the token embeddings (``none``, ``learned``, ``sinusoidal``) implement
  ``forward(x, offset)``;
* encodings that act inside attention (``rotary``, ``alibi``, ``t5``) return a
  :class:`~attnlab.attention.PositionHook` from ``attention_hook(causal)`` and leave ``forward``
  as the identity.

Architectures always do both — add ``pos(x)`` to the embeddings and hand
``pos.attention_hook(causal)`` to their self-attention — so a new kind never touches them.
Cross-attention gets no hook: a distance between a target and a source position means nothing.
"""

from __future__ import annotations

import math
from typing import List, Optional

import torch
from torch import Tensor, nn

from attnlab.attention import PositionHook
from attnlab.dropout import Dropout

__all__ = [
    "PositionalEncoding",
    "NoPositionalEncoding",
    "LearnedPositionalEncoding",
    "SinusoidalPositionalEncoding",
    "RotaryPositionalEncoding",
    "ALiBiPositionalEncoding",
    "T5RelativePositionalBias",
    "alibi_slopes",
    "relative_position_bucket",
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

    acts_in_attention: bool = False  # True: the encoding is the hook (an RNN, which has none, refuses it)
    name: str = "this positional encoding"

    def refuse_without_self_attention(self, arch: str) -> None:
        if self.acts_in_attention:
            raise ValueError(
                f"arch={arch} takes pos_enc none, learned or sinusoidal: {self.name} acts inside "
                f"self-attention, which an {arch.upper()} does not have"
            )

    def attention_hook(self, causal: bool = False) -> Optional[PositionHook]:
        """What the self-attention of an encoder (``causal=False``) or a decoder gets."""
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
        self.dropout = Dropout(dropout)
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
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        end = offset + x.size(1)
        if end > self.max_len:
            raise ValueError(
                f"a sequence of {end} positions does not fit the learned positional table of "
                f"pos_enc.max_len={self.max_len}; raise pos_enc.max_len to at least {end}"
            )
        positions = torch.arange(offset, end, device=x.device)
        return self.dropout(x + self.embedding(positions).to(x.dtype))



# -- positions inside attention ---------------------------------------------------------------------
class RotaryHook(PositionHook):
    rotates = True
    name = "rotary"

    def __init__(self, base: float):
        self.base = base
        self._tables: dict = {}

    def _cos_sin(self, dim: int, end: int, device, dtype):
        key = (dim, device, dtype)
        cached = self._tables.get(key)
        if cached is None or cached[0].size(0) < end:
            length = max(end, 2 * cached[0].size(0)) if cached is not None else max(end, 256)
            # ordinary tensors even when the first call comes under inference mode (a validation or a
            # sanity check before training, an evaluation before attnlab-heads' gradients): an
            # inference tensor in the cache would fail every later backward pass
            with torch.inference_mode(False):
                inv_freq = self.base ** (-torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim)  # θ_i = base^(-2i/d)
                angles = torch.arange(length, dtype=torch.float64, device=device)[:, None] * inv_freq[None, :]  # (L, d/2)
                cached = (angles.cos().to(dtype), angles.sin().to(dtype))
            self._tables[key] = cached
        return cached

    def rotate(self, x: Tensor, offset: int) -> Tensor:  # x: (B, H, L, dh)
        dim, length = x.size(-1), x.size(-2)
        if dim % 2:
            raise ValueError(f"rotary positions rotate pairs of dimensions: a head of {dim} has an odd one")
        cos, sin = self._cos_sin(dim, offset + length, x.device, x.dtype)
        cos, sin = cos[offset : offset + length], sin[offset : offset + length]  # (L, d/2)
        # pairs (i, i + d/2) — the GPT-NeoX layout of RoFormer's rotation: one slice, no interleaving
        first, second = x[..., : dim // 2], x[..., dim // 2 :]
        return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


class RotaryPositionalEncoding(PositionalEncoding):
    """RoFormer (Su et al. 2021): each query and key dimension pair rotated by position x θ_i,
    θ_i = base^(-2i/d_head), so the dot product of a query at i and a key at j depends on i - j
    only. Queries and keys are rotated before the fused kernel: the fast path stays."""

    name = "pos_enc=rotary"
    acts_in_attention = True

    def __init__(self, d_model: int, base: float = 10000.0):
        super().__init__(d_model)
        self.base = base

    def attention_hook(self, causal: bool = False) -> PositionHook:
        return RotaryHook(self.base)


def alibi_slopes(num_heads: int) -> List[float]:
    """ALiBi's head slopes (Press et al. 2022): 2^(-8/n), 2^(-16/n), ... for n heads; for n not a
    power of two, those of the nearest lower power of two, then every other slope of the next."""

    def geometric(n: int) -> List[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    if num_heads & (num_heads - 1) == 0:
        return geometric(num_heads)
    lower = 2 ** math.floor(math.log2(num_heads))
    return geometric(lower) + geometric(2 * lower)[0::2][: num_heads - lower]


def _key_positions(k_len: int, device, k_positions: Optional[Tensor]) -> Tensor:  # (1, S)
    return (torch.arange(k_len, device=device) if k_positions is None else k_positions)[None, :]


class ALiBiHook(PositionHook):
    biases = True
    name = "alibi"

    def bias(self, q_len: int, k_len: int, q_offset: int, device, num_heads: int, k_positions: Optional[Tensor] = None) -> Tensor:
        queries = torch.arange(q_offset, q_offset + q_len, device=device)[:, None]
        distance = (queries - _key_positions(k_len, device, k_positions)).abs()  # (T, S)
        slopes = torch.tensor(alibi_slopes(num_heads), device=device)[:, None, None]  # (H, 1, 1)
        return (-slopes * distance).unsqueeze(0)  # (1, H, T, S)


class ALiBiPositionalEncoding(PositionalEncoding):
    """ALiBi (Press et al. 2022): no position embedding; each head's scores get -m_h x distance.

    One symmetric form, -m_h x |i - j|, for encoders and decoders: under a decoder's causal mask
    only j <= i remain, where it is the paper's -m_h x (i - j); in an encoder it penalises
    distance both ways (the bidirectional form others use). Cross-attention gets none."""

    name = "pos_enc=alibi"
    acts_in_attention = True

    def attention_hook(self, causal: bool = False) -> PositionHook:
        return ALiBiHook()


def relative_position_bucket(relative_position: Tensor, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128) -> Tensor:
    """T5's buckets (Raffel et al. 2020) of key position - query position: exact for small
    distances, logarithmic up to ``max_distance``, one bucket beyond; half the buckets for each
    direction when ``bidirectional``, else the future shares bucket 0 with the present."""
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    exact = num_buckets // 2
    is_small = distance < exact
    large = exact + (torch.log(distance.float().clamp(min=1) / exact) / math.log(max_distance / exact) * (num_buckets - exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


class T5Hook(PositionHook):
    biases = True
    name = "t5"

    def __init__(self, owner: "T5RelativePositionalBias", causal: bool):
        self.owner, self.causal = owner, causal

    def check(self, attention) -> None:
        heads = self.owner.table.embedding_dim
        if attention.num_heads != heads:
            raise ValueError(f"pos_enc=t5 has a bias for {heads} heads, the attention has {attention.num_heads}: set pos_enc.num_heads={attention.num_heads}")

    def bias(self, q_len: int, k_len: int, q_offset: int, device, num_heads: int, k_positions: Optional[Tensor] = None) -> Tensor:
        table = self.owner.table
        queries = torch.arange(q_offset, q_offset + q_len, device=device)[:, None]
        relative = _key_positions(k_len, device, k_positions) - queries  # (T, S): key - query
        buckets = relative_position_bucket(relative, not self.causal, self.owner.num_buckets, self.owner.max_distance)
        return table(buckets).permute(2, 0, 1).unsqueeze(0)  # (1, H, T, S)


class T5RelativePositionalBias(PositionalEncoding):
    """T5's relative bias (Raffel et al. 2020): a learned scalar per (distance bucket, head) added to
    the scores, one table shared by the layers of a stack (the encoder's bidirectional, the
    decoder's causal). ``num_heads`` must be the attention's (1 for dot and additive)."""

    name = "pos_enc=t5"
    acts_in_attention = True

    def __init__(self, d_model: int, num_heads: int = 4, num_buckets: int = 32, max_distance: int = 128):
        super().__init__(d_model)
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.table = nn.Embedding(num_buckets, num_heads)
        nn.init.normal_(self.table.weight, std=0.02)

    def attention_hook(self, causal: bool = False) -> PositionHook:
        return T5Hook(self, causal)
