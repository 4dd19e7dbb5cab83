"""The lesson's attention types: multi-head (with grouped-query), Luong's dot-product scores,
Bahdanau's additive scores, and none (the encoder's final state)."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from attnlab.attention.cache import Memory
from attnlab.attention.core import Attention, PositionHook, scaled_dot_attention
from attnlab.dropout import dropout as apply_dropout


class MultiHeadAttention(Attention):
    """Vaswani et al. 2017: H heads of scaled dot-product attention with in/out projections.

    ``num_kv_heads`` below ``num_heads`` shares each key/value head among a group of query heads
    (grouped-query attention, Ainslie et al. 2023; 1: multi-query attention, Shazeer 2019): fewer
    key/value projections, and a key/value cache ``num_heads / num_kv_heads`` times smaller.
    """

    name = "attention=multihead"
    headed = True

    def __init__(
        self,
        d_model: int,
        num_heads: int = 4,
        dropout: float = 0.0,
        bias: bool = True,
        position_hook: Optional[PositionHook] = None,
        num_kv_heads: Optional[int] = None,
    ):
        super().__init__(d_model, dropout, position_hook)
        if d_model % num_heads != 0:
            raise ValueError(
                f"arch.d_model={d_model} is not divisible by attention.num_heads={num_heads}: "
                "each head gets d_model / num_heads dimensions"
            )
        num_kv_heads = num_kv_heads or num_heads
        if num_heads % num_kv_heads != 0:
            raise ValueError(f"attention.num_heads={num_heads} is not a multiple of attention.num_kv_heads={num_kv_heads}: each key/value head serves a whole group of query heads")
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = d_model // num_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, num_kv_heads * self.head_dim, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _split(self, x: Tensor, heads: int) -> Tensor:  # (B, L, heads*dh) -> (B, heads, L, dh)
        B, L, _ = x.shape
        return x.view(B, L, heads, self.head_dim).transpose(1, 2)

    def project_memory(self, key: Tensor, value: Tensor, offset: int = 0) -> Memory:
        keys = self._rotate(self._split(self.k_proj(key), self.num_kv_heads), offset)
        return Memory(keys=keys, values=self._split(self.v_proj(value), self.num_kv_heads))  # (B, Hkv, S, dh)

    def attend(self, query, memory, key_padding_mask=None, attn_mask=None, need_weights=False, q_offset=0, causal=False):
        q = self._rotate(self._split(self.q_proj(query), self.num_heads), q_offset)  # (B, H, T, dh)
        mask, is_causal = self._scores_mask(query, memory.keys.size(2), key_padding_mask, attn_mask, q_offset, causal)
        out, weights = scaled_dot_attention(
            q, memory.keys, memory.values, mask, 1.0 / math.sqrt(self.head_dim), self._dropout_p, need_weights, self.num_kv_heads != self.num_heads, is_causal
        )
        return self._merge_heads(out), weights


class DotProductAttention(Attention):
    """Luong et al. 2015 single-head scores: ``dot`` qᵀk, ``general`` qᵀWk, ``scaled`` qᵀk/√d."""

    name = "attention=dot"

    SCORES = ("dot", "general", "scaled")

    def __init__(
        self,
        d_model: int,
        score: str = "dot",
        dropout: float = 0.0,
        position_hook: Optional[PositionHook] = None,
    ):
        super().__init__(d_model, dropout, position_hook)
        if score not in self.SCORES:
            raise ValueError(f"attention.score must be one of {', '.join(self.SCORES)}; got {score!r}")
        self.score = score
        self.key_proj = nn.Linear(d_model, d_model, bias=False) if score == "general" else None
        self.scale = 1.0 / math.sqrt(d_model) if score == "scaled" else 1.0

    def project_memory(self, key: Tensor, value: Tensor, offset: int = 0) -> Memory:
        if self.key_proj is not None:
            key = self.key_proj(key)
        return Memory(keys=self._rotate(key.unsqueeze(1), offset), values=value.unsqueeze(1))  # (B, 1, S, d)

    def attend(self, query, memory, key_padding_mask=None, attn_mask=None, need_weights=False, q_offset=0, causal=False):
        q = self._rotate(query.unsqueeze(1), q_offset)  # (B, 1, T, d)
        mask, is_causal = self._scores_mask(query, memory.keys.size(2), key_padding_mask, attn_mask, q_offset, causal)
        out, weights = scaled_dot_attention(q, memory.keys, memory.values, mask, self.scale, self._dropout_p, need_weights, is_causal=is_causal)
        return out.squeeze(1), weights


class AdditiveAttention(Attention):
    """Bahdanau et al. 2015: score(q, k) = vᵀ tanh(W_q q + W_k k).

    The (B, T, S, d_attn) tensor inside the tanh is built at most ``max_chunk_elements``
    elements at a time (query rows are processed in chunks, and recomputed in the backward pass
    rather than stored), so self-attention over long sequences stays within memory.
    ``max_chunk_elements=None`` builds it whole.
    """

    cache_elements = 2**18  # a chunk this size (1 MiB in fp32) stays in a core's cache
    name = "attention=additive"
    scores_by_dot_product = False

    def __init__(
        self,
        d_model: int,
        d_attn: Optional[int] = None,
        dropout: float = 0.0,
        max_chunk_elements: Optional[int] = 2**22,
        position_hook: Optional[PositionHook] = None,
    ):
        super().__init__(d_model, dropout, position_hook)
        self.d_attn = d_attn or d_model
        self.max_chunk_elements = max_chunk_elements
        self.query_proj = nn.Linear(d_model, self.d_attn, bias=False)
        self.key_proj = nn.Linear(d_model, self.d_attn, bias=True)
        self.energy = nn.Linear(self.d_attn, 1, bias=False)  # the vector v

    def project_memory(self, key: Tensor, value: Tensor, offset: int = 0) -> Memory:
        return Memory(keys=self.key_proj(key), values=value, seq_dim=1)  # (B, S, da), (B, S, d)

    def _score_rows(self, q: Tensor, k: Tensor) -> Tensor:
        # q (B, t, da), k (B, S, da) -> (B, t, S); builds a (B, t, S, da) tensor
        return self.energy(torch.tanh(q.unsqueeze(2) + k.unsqueeze(1))).squeeze(-1)

    def scores(self, q: Tensor, k: Tensor) -> Tensor:
        """Unnormalised scores (B, T, S) of projected queries against projected keys.

        Query rows go through in chunks of about ``cache_elements`` elements even when memory
        allows the whole tensor: the elementwise tanh is memory-bound, and cache-sized pieces run
        faster than one big tensor. Past ``max_chunk_elements`` in all, chunks are recomputed in
        the backward pass instead of stored.
        """
        B, T, da = q.shape
        S = k.size(1)
        row_elements = B * S * da
        rows = max(1, self.cache_elements // row_elements)
        recompute = self.max_chunk_elements is not None and T * row_elements > self.max_chunk_elements
        if recompute:
            rows = max(1, min(rows, self.max_chunk_elements // row_elements))
        if rows >= T:
            return self._score_rows(q, k)
        recompute = recompute and torch.is_grad_enabled() and (q.requires_grad or k.requires_grad)
        chunks = []
        for start in range(0, T, rows):
            q_rows = q[:, start : start + rows]
            if recompute:
                chunks.append(checkpoint(self._score_rows, q_rows, k, use_reentrant=False))
            else:
                chunks.append(self._score_rows(q_rows, k))
        return torch.cat(chunks, dim=1)

    def attend(self, query, memory, key_padding_mask=None, attn_mask=None, need_weights=False, q_offset=0, causal=False):
        q = self.query_proj(query)  # (B, T, da)
        scores = self.scores(q, memory.keys).unsqueeze(1)  # (B, 1, T, S)
        mask = self._mask(query, memory.keys.size(1), key_padding_mask, attn_mask, q_offset, causal)
        if mask is not None:
            scores = scores + mask
        weights = torch.softmax(scores, dim=-1)  # (B, 1, T, S)
        attended = apply_dropout(weights, self._dropout_p) if self._dropout_p > 0 else weights
        out = torch.matmul(attended.squeeze(1), memory.values)  # (B, T, d)
        return out, (weights if need_weights else None)


class NoAttention(Attention):
    """No attention: every query receives the encoder's final state (the last real position).

    This is the classic encoder-decoder (Cho et al. 2014; Sutskever et al. 2014) that the lesson
    starts from. The returned weights are one-hot on that position, so plots still work.
    It only makes sense over an encoder's outputs, so architectures built on self-attention
    reject it (``allows_self_attention``).
    """

    allows_self_attention = False
    name = "attention=none"

    def project_memory(self, key: Tensor, value: Tensor, offset: int = 0) -> Memory:
        return Memory(keys=key, values=value, seq_dim=1)

    def attend(self, query, memory, key_padding_mask=None, attn_mask=None, need_weights=False, q_offset=0, causal=False):
        B, T, _ = query.shape
        S = memory.values.size(1)
        if key_padding_mask is None:
            last = torch.full((B,), S - 1, dtype=torch.long, device=query.device)
        else:
            last = (~key_padding_mask).sum(dim=1).clamp(min=1) - 1  # (B,)
        final = memory.values[torch.arange(B, device=query.device), last]  # (B, d)
        out = final.unsqueeze(1).expand(B, T, final.size(-1))
        weights = None
        if need_weights:
            weights = F.one_hot(last, S).to(query.dtype)[:, None, None, :].expand(B, 1, T, S)
        return out, weights

