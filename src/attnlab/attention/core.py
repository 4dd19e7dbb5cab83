"""The interface every attention type implements, and what the types share.

Every type is called the same way::

    context, weights = attn(query, key, value, key_padding_mask=None, attn_mask=None,
                            need_weights=False, causal=False)

with ``query`` (B, T, d), ``key``/``value`` (B, S, d), ``key_padding_mask`` (B, S) bool where
True marks padding, ``attn_mask`` (T, S), (B, T, S) or (B, H, T, S): bool where True forbids a
position, or float added to the scores; ``causal``: self-attention where a query never sees a
later key (the attention builds that mask itself, in whatever form it needs). ``context`` is
(B, T, d); ``weights`` is (B, H, T, S) when ``need_weights`` is true, else None.

The work is split in two so that a decoder can attend step by step over a source whose keys are
projected only once: ``project_memory(key, value)`` returns a :class:`Memory`, and
``attend(query, memory, ...)`` scores queries against it. Causal self-attention in decoding goes
through ``step(x, cache, offset)``: each type keeps its own cache (see
:mod:`attnlab.attention.cache`) and its own step mask.

Positional encodings that act inside attention (rotary, ALiBi, relative bias) plug in through a
:class:`PositionHook` given to the constructor; the architectures pass whatever their positional
module offers and never need to change when a new kind is added.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.cache import Memory
from attnlab.dropout import dropout as apply_dropout
from attnlab.dropout import packed

__all__ = [
    "Attention",
    "PositionHook",
    "causal_mask",
    "expand_kv_heads",
    "merge_masks",
    "scaled_dot_attention",
]


class PositionHook:
    """Seam for positional encodings that act inside attention.

    ``bias`` returns a float score bias broadcastable to (B, H, T, S) (ALiBi, relative bias) for
    queries from position ``q_offset`` on and keys at ``k_positions`` (S,) (default 0 … S-1: a
    ring buffer's slots hold other positions); ``rotate`` transforms projected queries or keys
    (rotary), which only means something for a dot-product score (``rotates``). The defaults do
    nothing. ``biases``: the encoding adds to a score matrix, which an attention without one
    (linear) cannot take.
    """

    rotates: bool = False
    biases: bool = False
    name: str = "this positional encoding"

    def check(self, attention: "Attention") -> None:
        """Raise ValueError (naming the keys) when this encoding cannot work with ``attention``."""

    def bias(self, q_len: int, k_len: int, q_offset: int, device: torch.device, num_heads: int, k_positions: Optional[Tensor] = None) -> Optional[Tensor]:
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


def expand_kv_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, Hkv, L, d) -> (B, num_heads, L, d): each key/value head repeated for its group of query
    heads (grouped-query attention); unchanged when there are as many."""
    return x if x.size(1) == num_heads else x.repeat_interleave(num_heads // x.size(1), dim=1)


def scaled_dot_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Optional[Tensor],
    scale: float,
    dropout_p: float,
    need_weights: bool,
    grouped: bool = False,
    is_causal: bool = False,
) -> Tuple[Tensor, Optional[Tensor]]:
    """softmax(q kᵀ · scale + mask) v on (B, H, T|S, d) tensors.

    Without weights this is the fused kernel; with them, the explicit math that returns the
    (B, H, T, S) weights. Both compute the same numbers (dropout aside). ``grouped``: k and v have
    fewer heads than q, each shared by a group of query heads. ``is_causal`` (with no ``mask``, as
    many queries as keys): the fused kernel's own causal mode, about 1.2x faster than the same
    mask given as a tensor. Queries and keys of another width than the values (differential
    attention, MLA) are padded with zeros to the same width: PyTorch's fused CPU kernels take only
    equal widths and fall back to a ×4 slower path otherwise.

    Attention dropout on a CPU takes the explicit path too: PyTorch's CPU kernels cannot drop
    weights inside the fused kernel, so SDPA falls back to its own math with a ``bernoulli_`` per
    weight, while the explicit path draws attnlab's packed dropout (x1.2-1.6 the attention's
    forward and backward at 16-32 tokens, benchmarks/peers.py).
    """
    if not need_weights and not (dropout_p > 0 and packed(q.device)):
        width, dv = q.size(-1), v.size(-1)
        if width < dv:  # zeros added to queries and keys leave every score as it is
            q, k = F.pad(q, (0, dv - width)), F.pad(k, (0, dv - width))
        elif dv < width:
            v = F.pad(v, (0, width - dv))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale, enable_gqa=grouped, is_causal=is_causal)
        return out[..., :dv], None
    if is_causal:
        mask = merge_masks(None, causal_mask(q.size(-2), q.device), q.dtype)
    if grouped:  # give every query head its key/value head
        k, v = expand_kv_heads(k, q.size(1)), expand_kv_heads(v, q.size(1))  # (B, H, S, dh)
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)  # (B, H, T, S); in place: no copy
    if mask is not None:
        scores = scores + mask  # the mask may broadcast the scores' batch
    weights = torch.softmax(scores, dim=-1)
    out = torch.matmul(apply_dropout(weights, dropout_p) if dropout_p > 0 else weights, v)
    return out, (weights if need_weights else None)


class Attention(nn.Module):
    """Base class: subclasses implement ``project_memory`` and ``attend``; types whose decoding
    cache is not rows of keys and values also implement ``step``."""

    num_heads: int = 1
    allows_self_attention: bool = True  # False for types that only read an encoder's outputs
    allows_rnn: bool = True  # False for types an RNN cannot use (refused in one line there)
    name: str = "this attention type"
    scores_by_dot_product: bool = True  # what a rotation of queries and keys (rotary) acts on
    has_score_matrix: bool = True  # False: a score bias (ALiBi, T5) has nothing to add to
    takes_layer_index: bool = False  # True: the architectures pass ``layer_index`` (0-based)
    # True: ``num_heads`` heads whose outputs are concatenated before one output projection, each
    # of which a gate can switch off (Michel et al. 2019's ξ_h; task.head_mask, attnlab-heads)
    headed: bool = False
    head_gate: Optional[Tensor] = None  # (H,): each head's output times its gate; None: no gate, no cost
    weights_sink: Optional[Any] = None  # called with (weights (B, H, T, S), key_padding_mask) on every forward

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
        if position_hook is not None and position_hook.biases and not self.has_score_matrix:
            raise ValueError(
                f"{self.name} cannot use pos_enc={position_hook.name}: it adds a bias to every query-key score, "
                f"and {self.name} never forms the score matrix; choose pos_enc=sinusoidal, learned, rotary or none"
            )
        self.d_model = d_model
        self.dropout = dropout
        self.position_hook = position_hook
        self.cross = False

    def for_cross_attention(self) -> "Attention":
        """Mark this instance as reading another sequence (a source, a pooling query): what is tied
        to positions in one sequence (a window) does not apply. Returns self."""
        self.cross = True
        return self

    def project_memory(self, key: Tensor, value: Tensor, offset: int = 0) -> Memory:
        """Project keys and values once; ``offset`` is the position of the first key."""
        raise NotImplementedError

    def extend_memory(self, memory: Optional[Memory], new: Memory) -> Memory:
        """Append newly projected positions to a cached memory (incremental decoding)."""
        return new if memory is None else memory.extend(new)

    def attend(
        self,
        query: Tensor,
        memory: Memory,
        key_padding_mask: Optional[Tensor] = None,
        attn_mask: Optional[Tensor] = None,
        need_weights: bool = False,
        q_offset: int = 0,
        causal: bool = False,
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
        causal: bool = False,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        memory = self.project_memory(key, value)
        if self.weights_sink is None:
            return self.attend(query, memory, key_padding_mask, attn_mask, need_weights, causal=causal)
        # attnlab-heads reads every layer's weights from one ordinary forward pass of the task
        out, weights = self.attend(query, memory, key_padding_mask, attn_mask, True, causal=causal)
        self.weights_sink(weights, key_padding_mask)
        return out, (weights if need_weights else None)

    def step(self, x: Tensor, cache: Any, offset: int, need_weights: bool = False) -> Tuple[Tensor, Any, Optional[Tensor]]:
        """Causal self-attention of new positions ``x`` (B, t, d), at ``offset`` … ``offset + t - 1``,
        over themselves and what ``cache`` (None at the start) holds of the earlier ones.
        -> output (B, t, d), the cache grown by them, weights (B, H, t, offset + t) or None."""
        memory = self.extend_memory(cache, self.project_memory(x, x, offset))
        out, weights = self.attend(x, memory, need_weights=need_weights, q_offset=offset, causal=x.size(1) > 1)
        return out, memory, weights

    def set_head_gate(self, gate: Optional[Tensor]) -> None:
        """Gate each head's output by ``gate`` (H,) — 1 keeps a head, 0 removes it — or remove the
        gates (None). A gate that requires grad gives each head's ∂L/∂ξ_h (Michel et al. 2019)."""
        if gate is not None and (not self.headed or gate.shape != (self.num_heads,)):
            raise ValueError(f"{self.name} takes a head gate of shape ({self.num_heads},), got {tuple(gate.shape)}" if self.headed else f"{self.name} has no heads to gate")
        self.head_gate = gate

    # -- helpers shared by the subclasses -------------------------------------------------
    def _merge_heads(self, out: Tensor) -> Tensor:
        """(B, H, T, w) per-head outputs -> (B, T, H·w) through the output projection, each head
        times its gate when one is set."""
        if self.head_gate is not None:
            out = out * self.head_gate.to(out.device, out.dtype)[:, None, None]
        B, H, T, w = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(B, T, H * w))

    def _bias(self, query: Tensor, memory_len: int, q_offset: int) -> Optional[Tensor]:
        if self.position_hook is None:
            return None
        return self.position_hook.bias(query.size(1), memory_len, q_offset, query.device, self.num_heads)

    def _mask(self, query: Tensor, memory_len: int, key_padding_mask, attn_mask, q_offset: int, causal: bool = False):
        return self._merged(query, memory_len, key_padding_mask, attn_mask, causal, self._bias(query, memory_len, q_offset))

    def _merged(self, query: Tensor, memory_len: int, key_padding_mask, attn_mask, causal: bool, bias: Optional[Tensor]):
        if causal:  # the queries are the memory's last positions: earlier ones are cached
            bias = merge_masks(None, attn_mask, query.dtype, bias)
            attn_mask = causal_mask(query.size(1), query.device, memory_len - query.size(1))
        return merge_masks(key_padding_mask, attn_mask, query.dtype, bias)

    def _scores_mask(self, query: Tensor, memory_len: int, key_padding_mask, attn_mask, q_offset: int, causal: bool) -> Tuple[Optional[Tensor], bool]:
        """(mask, is_causal) for scaled_dot_attention: a causal mask alone over as many keys as
        queries is left to the kernel."""
        bias = self._bias(query, memory_len, q_offset)
        if causal and memory_len == query.size(1) and key_padding_mask is None and attn_mask is None and bias is None:
            return None, True
        return self._merged(query, memory_len, key_padding_mask, attn_mask, causal, bias), False

    def _rotate(self, x: Tensor, offset: int) -> Tensor:
        return x if self.position_hook is None else self.position_hook.rotate(x, offset)

    @property
    def _dropout_p(self) -> float:
        return self.dropout if self.training else 0.0
