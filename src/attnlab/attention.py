"""Attention types behind one interface.

Every type is called the same way::

    context, weights = attn(query, key, value, key_padding_mask=None, attn_mask=None,
                            need_weights=False)

with ``query`` (B, T, d), ``key``/``value`` (B, S, d), ``key_padding_mask`` (B, S) bool where
True marks padding, ``attn_mask`` (T, S), (B, T, S) or (B, H, T, S): bool where True forbids a
position, or float added to the scores. ``context`` is (B, T, d); ``weights`` is (B, H, T, S)
when ``need_weights`` is true, else None.

The work is split in two so that a decoder can attend step by step over a source whose keys are
projected only once: ``project_memory(key, value)`` returns a :class:`Memory`, and
``attend(query, memory, ...)`` scores queries against it.

Positional encodings that act inside attention (rotary, ALiBi, relative bias) plug in through a
:class:`PositionHook` given to the constructor; the architectures pass whatever their positional
module offers and never need to change when a new kind is added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from attnlab.dropout import dropout as apply_dropout
from attnlab.dropout import packed

__all__ = [
    "Attention",
    "AdditiveAttention",
    "DotProductAttention",
    "MultiHeadAttention",
    "NoAttention",
    "Memory",
    "PositionHook",
    "causal_mask",
    "merge_masks",
    "scaled_dot_attention",
]


@dataclass
class Memory:
    """Keys and values after the attention's own projections, reusable across decoder steps."""

    keys: Optional[Tensor]  # (B, H, S, dk) or (B, S, dk), as the attention type needs
    values: Optional[Tensor]  # (B, H, S, dv) or (B, S, dv)
    room: Optional["CacheRoom"] = field(default=None, repr=False, compare=False)
    # beam search's reordering, left for the next append to do: (keys, values, rows, their room)
    pending: Optional[Tuple[Tensor, Tensor, Tensor, Optional["CacheRoom"]]] = field(default=None, repr=False, compare=False)

    def index_select(self, index: Tensor) -> "Memory":
        """Batch rows ``index`` (beam search's surviving beams), consuming this memory.

        The copy waits for the next step's ``extend_memory``, which moves the rows inside the
        cache's own buffer where it can (only the rows whose beam changed: about a tenth a step)
        and otherwise selects them into a new one. Either way this memory's positions may be
        overwritten, so its ``keys`` and ``values`` become None: a consumed state fails loudly
        instead of reading another beam's keys."""
        if self.pending is not None:
            keys, values, rows, room = self.pending
            return Memory(None, None, pending=(keys, values, rows.index_select(0, index), room))
        if self.keys is None:
            raise RuntimeError(CONSUMED)
        if torch.is_grad_enabled() and self.keys.requires_grad:
            return Memory(self.keys.index_select(0, index), self.values.index_select(0, index))
        pending = Memory(None, None, pending=(self.keys, self.values, index, self.room))
        self.keys = self.values = None
        return pending

    def selected_and_extended(self, new: "Memory", dim: int) -> "Memory":
        """The pending rows of the cache followed by ``new``'s positions."""
        keys, values, rows, room = self.pending
        self.pending = None  # consumed too: its rows must not be moved twice
        length, added = keys.size(dim), new.keys.size(dim)
        in_place = room is not None and room.filled == length and room.capacity >= length + added and rows.numel() == keys.size(0)
        if in_place:
            room.move_rows(rows)
        else:
            room = CacheRoom(keys, values, max(16, 2 * (length + added)), dim, rows)
        return room.append(new)


CONSUMED = "this decoding state was reordered already: reorder_state consumes the state it is given"


class CacheRoom:
    """Buffers with spare positions after a cache's keys and values: a decoding step writes its
    new positions in place instead of copying the whole cache (``torch.cat``) every step. The
    capacity doubles when full, so a sequence of n steps copies O(n) positions, not O(n²)."""

    def __init__(self, keys: Tensor, values: Tensor, capacity: int, dim: int, rows: Optional[Tensor] = None):
        def grown(t: Tensor) -> Tensor:  # t's positions (its batch ``rows``) in a bigger buffer
            shape = list(t.shape)
            shape[dim] = capacity
            if rows is not None:
                shape[0] = rows.numel()
            buffer = t.new_empty(shape)
            filled = buffer.narrow(dim, 0, t.size(dim))
            if rows is None:
                filled.copy_(t)
            else:
                torch.index_select(t, 0, rows, out=filled)
            return buffer

        self.keys, self.values = grown(keys), grown(values)
        self.dim, self.capacity, self.filled = dim, capacity, keys.size(dim)

    def append(self, new: Memory) -> Memory:
        start, added = self.filled, new.keys.size(self.dim)
        self.keys.narrow(self.dim, start, added).copy_(new.keys)
        self.values.narrow(self.dim, start, added).copy_(new.values)
        self.filled = start + added
        return Memory(self.keys.narrow(self.dim, 0, self.filled), self.values.narrow(self.dim, 0, self.filled), self)

    def move_rows(self, rows: Tensor) -> None:
        """Row i of the filled positions becomes row rows[i], in place: only rows that change move."""
        moved = rows.ne(torch.arange(rows.numel(), device=rows.device)).nonzero().squeeze(1)  # (m,)
        if moved.numel() == 0:
            return
        sources = rows.index_select(0, moved)
        for buffer in (self.keys, self.values):
            filled = buffer.narrow(self.dim, 0, self.filled)
            # gathered before any is written: a row read is never one already overwritten
            filled.index_copy_(0, moved, filled.index_select(0, sources))


class PositionHook:
    """Seam for positional encodings that act inside attention.

    ``bias`` returns a float score bias broadcastable to (B, H, T, S) (ALiBi, relative bias) for
    queries from position ``q_offset`` on and keys from 0; ``rotate`` transforms projected queries
    or keys (rotary), which only means something for a dot-product score (``rotates``). The
    defaults do nothing.
    """

    rotates: bool = False

    def check(self, attention: "Attention") -> None:
        """Raise ValueError (naming the keys) when this encoding cannot work with ``attention``."""

    def bias(self, q_len: int, k_len: int, q_offset: int, device: torch.device, num_heads: int) -> Optional[Tensor]:
        return None

    def rotate(self, x: Tensor, offset: int) -> Tensor:  # x: (B, H, L, dh)
        return x


def causal_mask(size: int, device: torch.device | None = None, offset: int = 0) -> Tensor:
    """(T, offset + T) bool mask, True where a key comes after its query: the query at position
    ``offset + t`` may look at keys 0 .. offset + t (``offset``: positions already cached)."""
    return torch.ones(size, offset + size, dtype=torch.bool, device=device).triu(offset + 1)


def merge_masks(
    key_padding_mask: Optional[Tensor],
    attn_mask: Optional[Tensor],
    dtype: torch.dtype,
    extra_bias: Optional[Tensor] = None,
) -> Optional[Tensor]:
    """Fold padding, attention mask and positional bias into one additive float mask.

    Returns None when there is nothing to mask, else a tensor broadcastable to (B, H, T, S)
    holding 0 where attending is allowed and -inf where it is not.
    """
    merged: Optional[Tensor] = None

    def add(mask: Tensor) -> None:
        nonlocal merged
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
        else:
            mask = mask.to(dtype)
        merged = mask if merged is None else merged + mask

    if key_padding_mask is not None:
        add(key_padding_mask[:, None, None, :])  # (B, 1, 1, S)
    if attn_mask is not None:
        while attn_mask.dim() < 4:
            attn_mask = attn_mask.unsqueeze(0 if attn_mask.dim() == 2 else 1)  # -> (B|1, H|1, T, S)
        add(attn_mask)
    if extra_bias is not None:
        add(extra_bias)
    return merged


def scaled_dot_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Optional[Tensor],
    scale: float,
    dropout_p: float,
    need_weights: bool,
    grouped: bool = False,
) -> Tuple[Tensor, Optional[Tensor]]:
    """softmax(q kᵀ · scale + mask) v on (B, H, T|S, d) tensors.

    Without weights this is the fused kernel; with them, the explicit math that returns the
    (B, H, T, S) weights. Both compute the same numbers (dropout aside). ``grouped``: k and v have
    fewer heads than q, each shared by a group of query heads.

    Attention dropout on a CPU takes the explicit path too: PyTorch's CPU kernels cannot drop
    weights inside the fused kernel, so SDPA falls back to its own math with a ``bernoulli_`` per
    weight, while the explicit path draws attnlab's packed dropout (x1.2-1.6 the attention's
    forward and backward at 16-32 tokens, benchmarks/peers.py).
    """
    if not need_weights and not (dropout_p > 0 and packed(q.device)):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale, enable_gqa=grouped)
        return out, None
    if grouped:  # give every query head its key/value head
        group = q.size(1) // k.size(1)
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # (B, H, S, dh)
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)  # (B, H, T, S); in place: no copy
    if mask is not None:
        scores = scores + mask  # the mask may broadcast the scores' batch
    weights = torch.softmax(scores, dim=-1)
    out = torch.matmul(apply_dropout(weights, dropout_p) if dropout_p > 0 else weights, v)
    return out, (weights if need_weights else None)


class Attention(nn.Module):
    """Base class: subclasses implement ``project_memory`` and ``attend``."""

    num_heads: int = 1
    allows_self_attention: bool = True  # False for types that only read an encoder's outputs
    name: str = "this attention type"
    scores_by_dot_product: bool = True  # what a rotation of queries and keys (rotary) acts on

    def __init__(self, d_model: int, dropout: float = 0.0, position_hook: Optional[PositionHook] = None):
        super().__init__()
        if d_model <= 0:
            raise ValueError(f"d_model must be positive, got {d_model}")
        if position_hook is not None and position_hook.rotates and not self.scores_by_dot_product:
            raise ValueError(
                f"{self.name} cannot use pos_enc=rotary: rotary positions rotate queries and keys so that "
                f"their dot product depends on the distance, and {self.name} scores by no dot product; "
                f"choose attention=dot or multihead, or another pos_enc"
            )
        self.d_model = d_model
        self.dropout = dropout
        self.position_hook = position_hook

    memory_seq_dim: int = 2  # the axis of Memory tensors that runs over key positions

    def project_memory(self, key: Tensor, value: Tensor, offset: int = 0) -> Memory:
        """Project keys and values once; ``offset`` is the position of the first key."""
        raise NotImplementedError

    def extend_memory(self, memory: Optional[Memory], new: Memory) -> Memory:
        """Append newly projected positions to a cached memory (incremental decoding)."""
        if memory is None:
            return new
        dim = self.memory_seq_dim
        if memory.pending is not None:
            return memory.selected_and_extended(new, dim)
        if memory.keys is None:
            raise RuntimeError(CONSUMED)
        if torch.is_grad_enabled() and (memory.keys.requires_grad or new.keys.requires_grad):
            return Memory(torch.cat([memory.keys, new.keys], dim=dim), torch.cat([memory.values, new.values], dim=dim))
        length, needed = memory.keys.size(dim), memory.keys.size(dim) + new.keys.size(dim)
        room = memory.room
        # a memory that is not the newest its room holds (a branch from an earlier step) gets a
        # room of its own: nothing written for another is overwritten
        if room is None or room.filled != length or room.capacity < needed:
            room = CacheRoom(memory.keys, memory.values, max(16, 2 * needed), dim)
        return room.append(new)

    def attend(
        self,
        query: Tensor,
        memory: Memory,
        key_padding_mask: Optional[Tensor] = None,
        attn_mask: Optional[Tensor] = None,
        need_weights: bool = False,
        q_offset: int = 0,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        raise NotImplementedError

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Optional[Tensor] = None,
        attn_mask: Optional[Tensor] = None,
        need_weights: bool = False,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        memory = self.project_memory(key, value)
        return self.attend(query, memory, key_padding_mask, attn_mask, need_weights)

    # -- helpers shared by the subclasses -------------------------------------------------
    def _mask(self, query: Tensor, memory_len: int, key_padding_mask, attn_mask, q_offset: int):
        bias = None
        if self.position_hook is not None:
            bias = self.position_hook.bias(query.size(1), memory_len, q_offset, query.device, self.num_heads)
        return merge_masks(key_padding_mask, attn_mask, query.dtype, bias)

    def _rotate(self, x: Tensor, offset: int) -> Tensor:
        return x if self.position_hook is None else self.position_hook.rotate(x, offset)

    @property
    def _dropout_p(self) -> float:
        return self.dropout if self.training else 0.0


class MultiHeadAttention(Attention):
    """Vaswani et al. 2017: H heads of scaled dot-product attention with in/out projections.

    ``num_kv_heads`` below ``num_heads`` shares each key/value head among a group of query heads
    (grouped-query attention, Ainslie et al. 2023; 1: multi-query attention, Shazeer 2019): fewer
    key/value projections, and a key/value cache ``num_heads / num_kv_heads`` times smaller.
    """

    name = "attention=multihead"

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

    def attend(self, query, memory, key_padding_mask=None, attn_mask=None, need_weights=False, q_offset=0):
        B, T, _ = query.shape
        q = self._rotate(self._split(self.q_proj(query), self.num_heads), q_offset)  # (B, H, T, dh)
        mask = self._mask(query, memory.keys.size(2), key_padding_mask, attn_mask, q_offset)
        keys, values = memory.keys, memory.values
        out, weights = scaled_dot_attention(
            q, keys, values, mask, 1.0 / math.sqrt(self.head_dim), self._dropout_p, need_weights, self.num_kv_heads != self.num_heads
        )
        out = out.transpose(1, 2).reshape(B, T, self.d_model)  # (B, T, d)
        return self.out_proj(out), weights


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

    def attend(self, query, memory, key_padding_mask=None, attn_mask=None, need_weights=False, q_offset=0):
        q = self._rotate(query.unsqueeze(1), q_offset)  # (B, 1, T, d)
        mask = self._mask(query, memory.keys.size(2), key_padding_mask, attn_mask, q_offset)
        out, weights = scaled_dot_attention(
            q, memory.keys, memory.values, mask, self.scale, self._dropout_p, need_weights
        )
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

    memory_seq_dim = 1

    def project_memory(self, key: Tensor, value: Tensor, offset: int = 0) -> Memory:
        return Memory(keys=self.key_proj(key), values=value)  # (B, S, da), (B, S, d)

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

    def attend(self, query, memory, key_padding_mask=None, attn_mask=None, need_weights=False, q_offset=0):
        q = self.query_proj(query)  # (B, T, da)
        scores = self.scores(q, memory.keys).unsqueeze(1)  # (B, 1, T, S)
        mask = self._mask(query, memory.keys.size(1), key_padding_mask, attn_mask, q_offset)
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

    memory_seq_dim = 1

    def project_memory(self, key: Tensor, value: Tensor, offset: int = 0) -> Memory:
        return Memory(keys=key, values=value)

    def attend(self, query, memory, key_padding_mask=None, attn_mask=None, need_weights=False, q_offset=0):
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

