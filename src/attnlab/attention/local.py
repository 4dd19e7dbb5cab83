"""Sliding-window (local) attention: Longformer's band (Beltagy et al. 2020), Mistral's causal
window with a rolling-buffer cache (Jiang et al. 2023).

Each query sees only the keys within ``window`` positions: the previous ``window`` (itself
included) when causal, ``window`` on each side when not. It is multi-head attention under a band
mask, and is computed that way for short sequences and for weights; past two windows the queries
go in blocks of ``window``, each against its own ``2·window`` (causal) or ``3·window`` keys, so
time and memory grow linearly with the length. Decoding keeps only the last ``window`` keys and
values (:class:`~attnlab.attention.cache.RingMemory`).

Cross-attention (a source, a pooling query) is not windowed: the window bounds what
self-attention costs as a sequence grows, and a target position and a source position share no
axis to measure a window on.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.attention.cache import RingMemory
from attnlab.attention.classic import MultiHeadAttention
from attnlab.attention.core import PositionHook, expand_kv_heads, merge_masks, scaled_dot_attention


def band_mask(q_positions: Tensor, k_positions: Tensor, window: int, causal: bool) -> Tensor:
    """(T, S) bool, True where key j is outside query i's window: causal i - window < j <= i,
    else |i - j| <= window."""
    distance = q_positions[:, None] - k_positions[None, :]
    if causal:
        return (distance < 0) | (distance >= window)
    return distance.abs() > window


class LocalAttention(MultiHeadAttention):
    """Multi-head attention that sees ``window`` positions (grouped-query heads allowed)."""

    name = "attention=local"
    allows_rnn = False

    def __init__(
        self,
        d_model: int,
        num_heads: int = 4,
        window: int = 64,
        dropout: float = 0.0,
        bias: bool = True,
        position_hook: Optional[PositionHook] = None,
        num_kv_heads: Optional[int] = None,
    ):
        super().__init__(d_model, num_heads, dropout, bias, position_hook, num_kv_heads)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"attention.window must be a positive number of positions, got {window!r}")
        self.window = window

    def _bias(self, q_len: int, k_positions: Tensor, q_offset: int) -> Optional[Tensor]:
        if self.position_hook is None:
            return None
        return self.position_hook.bias(q_len, k_positions.numel(), q_offset, k_positions.device, self.num_heads, k_positions=k_positions)

    def attend(self, query, memory, key_padding_mask=None, attn_mask=None, need_weights=False, q_offset=0, causal=False):
        if self.cross:
            return super().attend(query, memory, key_padding_mask, attn_mask, need_weights, q_offset, causal)
        B, T, _ = query.shape
        S = memory.keys.size(2)
        q = self._rotate(self._split(self.q_proj(query), self.num_heads), q_offset)  # (B, H, T, dh)
        weights = None
        if attn_mask is None and not need_weights and q_offset == 0 and S == T and T > 2 * self.window:
            out = self._blocked(q, memory.keys, memory.values, key_padding_mask, causal)
        else:
            q_pos = torch.arange(q_offset, q_offset + T, device=query.device)
            k_pos = torch.arange(S, device=query.device)
            forbidden = band_mask(q_pos, k_pos, self.window, causal)  # (T, S)
            if key_padding_mask is not None:  # a padding query keeps itself: no row is all -inf
                forbidden = forbidden | (key_padding_mask[:, None, :] & (q_pos[:, None] != k_pos[None, :]))  # (B, T, S)
                key_padding_mask = None
            extra = merge_masks(None, attn_mask, query.dtype, self._bias(T, k_pos, q_offset))
            mask = merge_masks(None, forbidden, query.dtype, extra)
            out, weights = scaled_dot_attention(
                q, memory.keys, memory.values, mask, 1.0 / math.sqrt(self.head_dim), self._dropout_p, need_weights, self.num_kv_heads != self.num_heads
            )
        return self._merge_heads(out), weights

    def _blocked(self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Optional[Tensor], causal: bool) -> Tensor:
        """The band computed block by block: queries in blocks of W, each block against the keys
        W before it to W after it (0 after, causal). q (B, H, T, dh) -> (B, H, T, dh)."""
        W = self.window
        k, v = expand_kv_heads(k, self.num_heads), expand_kv_heads(v, self.num_heads)
        B, H, T, dh = q.shape
        right = 0 if causal else W
        span = W + W + right  # keys a block of W queries can see
        blocks = math.ceil(T / W)
        tail = blocks * W - T
        q = F.pad(q, (0, 0, 0, tail)).view(B, H, blocks, W, dh)  # (B, H, n, W, dh)
        k = F.pad(k, (0, 0, W, tail + right)).unfold(2, span, W).transpose(-1, -2)  # (B, H, n, span, dh)
        v = F.pad(v, (0, 0, W, tail + right)).unfold(2, span, W).transpose(-1, -2)
        # the same band in every block: query W + i, key j of the block's span
        local_q = torch.arange(W, 2 * W, device=q.device)
        local_k = torch.arange(span, device=q.device)
        forbidden = band_mask(local_q, local_k, W, causal)  # (W, span)
        starts = torch.arange(blocks, device=q.device)[:, None] * W
        k_abs, q_abs = starts - W + local_k[None, :], starts + torch.arange(W, device=q.device)[None, :]  # (n, span), (n, W)
        # keys of the padding added around the sequence; a query of the padding added after it
        # (its output is cut off) may read them: no row of the softmax is all -inf, so no NaN
        # reaches the gradients
        outside = (k_abs < 0)[:, None, :] | ((k_abs >= T)[:, None, :] & (q_abs < T)[:, :, None])  # (n, W, span)
        forbidden = (forbidden[None] | outside)[None, None]  # (1, 1, n, W, span)
        if key_padding_mask is not None:
            pad = F.pad(key_padding_mask, (W, tail + right), value=True).unfold(1, span, W)  # (B, n, span)
            itself = local_q[:, None] == local_k[None, :]  # (W, span): a padding query keeps itself
            forbidden = forbidden | (pad[:, None, :, None, :] & ~itself)  # (B, 1, n, W, span)
        mask = torch.zeros(forbidden.shape, dtype=q.dtype, device=q.device).masked_fill_(forbidden, float("-inf"))
        bias = self._bias(W, local_k, W)  # (1, H, W, span) or None: relative, the same for every block
        if bias is not None:
            mask = mask + bias.to(q.dtype).unsqueeze(2)
        out, _ = scaled_dot_attention(q, k, v, mask, 1.0 / math.sqrt(dh), self._dropout_p, False)
        return out.reshape(B, H, blocks * W, dh)[:, :, :T]

    def step(self, x: Tensor, cache: Optional[RingMemory], offset: int, need_weights: bool = False):
        """Causal self-attention of new positions against the ring of the last ``window``."""
        B, t, _ = x.shape
        new = self.project_memory(x, x, offset)  # keys (B, Hkv, t, dh) rotated at their positions
        ring = cache if cache is not None else RingMemory.empty(new.keys, self.window)
        if ring.seen != offset:
            raise RuntimeError(f"a local attention cache of {ring.seen} positions was given position {offset}")
        keys = torch.cat([ring.keys, new.keys], dim=2)  # (B, Hkv, W + t, dh)
        values = torch.cat([ring.values, new.values], dim=2)
        q_pos = torch.arange(offset, offset + t, device=x.device)
        k_pos = torch.cat([ring.positions(), q_pos])  # (W + t,) -1: a slot never written
        forbidden = band_mask(q_pos, k_pos, self.window, True) | (k_pos < 0)[None, :]
        mask = merge_masks(None, forbidden, x.dtype, self._bias(t, k_pos.clamp(min=0), offset))
        q = self._rotate(self._split(self.q_proj(x), self.num_heads), offset)
        out, weights = scaled_dot_attention(
            q, keys, values, mask, 1.0 / math.sqrt(self.head_dim), self._dropout_p, need_weights, self.num_kv_heads != self.num_heads
        )
        if weights is not None:  # from slot order to position order: (B, H, t, offset + t)
            placed = weights.new_zeros(B, weights.size(1), t, offset + t)
            seen = k_pos >= 0
            weights = placed.index_copy_(3, k_pos[seen], weights[..., seen])
        return self._merge_heads(out), ring.written(new.keys, new.values), weights
