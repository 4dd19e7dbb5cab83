"""Attention types behind one interface (:class:`Attention`, in :mod:`.core`), a module per kind:

* :mod:`.classic` — the lesson's: multi-head (and grouped-query), dot-product, additive, none;
* :mod:`.local` — sliding-window attention, a ring-buffer cache;
* :mod:`.linear` — kernelised ("transformers are RNNs") attention, a recurrent-state cache;
* :mod:`.latent` — multi-head latent attention (DeepSeek-V2), a compressed cache;
* :mod:`.differential` — differential attention (Diff Transformer).

What a decoding cache is, and the kinds of it, is in :mod:`.cache`.
"""

from attnlab.attention.cache import CacheRoom, Memory, RecurrentState, RingMemory
from attnlab.attention.classic import AdditiveAttention, DotProductAttention, MultiHeadAttention, NoAttention
from attnlab.attention.core import Attention, PositionHook, causal_mask, merge_masks, scaled_dot_attention
from attnlab.attention.differential import DifferentialAttention
from attnlab.attention.latent import LatentAttention
from attnlab.attention.linear import LinearAttention
from attnlab.attention.local import LocalAttention

__all__ = [
    "AdditiveAttention",
    "Attention",
    "CacheRoom",
    "DifferentialAttention",
    "DotProductAttention",
    "LatentAttention",
    "LinearAttention",
    "LocalAttention",
    "Memory",
    "MultiHeadAttention",
    "NoAttention",
    "PositionHook",
    "RecurrentState",
    "RingMemory",
    "causal_mask",
    "merge_masks",
    "scaled_dot_attention",
]
