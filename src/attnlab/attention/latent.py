"""Multi-head latent attention (MLA), DeepSeek-V2 (DeepSeek-AI 2024, section 2.1).

Keys and values come from one compressed latent per position, c = RMSNorm(W_DKV h) of width
``kv_latent_dim``: k_h = W_UK,h c and v_h = W_UV,h c. The decoding cache holds only c, not the
H·d_h keys and values of every head. With ``pos_enc=rotary`` a rotation cannot pass through the
up-projection, so a small decoupled key k_R = RoPE(W_KR h) of ``rope_dim`` (shared by the heads)
and a per-head query part q_R carry the positions; the cache keeps k_R too:

    score_h(i, j) = [q_h,i ; q_R,h,i] · [k_h,j ; k_R,j] / √(d_h + d_R)

Decoding absorbs the up-projections (``absorb``): q_hᵀ W_UK,h c_j = (W_UK,hᵀ q_h)ᵀ c_j, and the
output Σ_j a_ij W_UV,h c_j = W_UV,h Σ_j a_ij c_j, so a step attends over the latent itself with no
per-head keys ever formed. Training (as many queries as keys) takes the plain path, which forms
them once.

The keys and values read one input: the ``key`` given (self-attention and cross-attention give
the same tensor as ``value``).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from attnlab.attention.cache import Memory
from attnlab.attention.core import Attention, PositionHook, scaled_dot_attention


class LatentAttention(Attention):
    name = "attention=mla"
    headed = True

    def __init__(
        self,
        d_model: int,
        num_heads: int = 4,
        kv_latent_dim: Optional[int] = None,
        rope_dim: Optional[int] = None,
        dropout: float = 0.0,
        bias: bool = True,
        position_hook: Optional[PositionHook] = None,
        absorb: bool = True,
    ):
        super().__init__(d_model, dropout, position_hook)
        if d_model % num_heads != 0:
            raise ValueError(f"arch.d_model={d_model} is not divisible by attention.num_heads={num_heads}: each head gets d_model / num_heads dimensions")
        self.num_heads, self.head_dim = num_heads, d_model // num_heads
        latent = kv_latent_dim if kv_latent_dim is not None else max(1, d_model // 4)
        if isinstance(latent, bool) or not isinstance(latent, int) or not 1 <= latent <= d_model:
            raise ValueError(f"attention.kv_latent_dim={latent!r} must be in [1, arch.d_model={d_model}]: the latent compresses the keys and values of all heads")
        self.kv_latent_dim = latent
        self.decoupled = position_hook is not None and position_hook.rotates
        rope = (rope_dim if rope_dim is not None else max(2, self.head_dim // 2)) if self.decoupled else 0
        if self.decoupled and (isinstance(rope, bool) or not isinstance(rope, int) or rope < 2 or rope % 2):
            raise ValueError(f"attention.rope_dim={rope!r} must be an even number ≥ 2: rotary positions rotate pairs of dimensions")
        self.rope_dim = rope
        self.absorb = absorb
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.kv_down = nn.Linear(d_model, latent, bias=bias)  # W_DKV
        self.kv_norm = nn.RMSNorm(latent, eps=1e-6)
        self.k_up = nn.Linear(latent, d_model, bias=False)  # W_UK
        self.v_up = nn.Linear(latent, d_model, bias=False)  # W_UV
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        if self.decoupled:
            self.q_rope = nn.Linear(d_model, num_heads * rope, bias=bias)
            self.k_rope = nn.Linear(d_model, rope, bias=bias)
        self.scale = 1.0 / math.sqrt(self.head_dim + rope)

    def project_memory(self, key: Tensor, value: Tensor, offset: int = 0) -> Memory:
        """-> one row a position (B, 1, S, c + d_R): the latent and the decoupled rotary key."""
        latent = self.kv_norm(self.kv_down(key)).unsqueeze(1)  # (B, 1, S, c)
        if self.decoupled:
            latent = torch.cat([latent, self._rotate(self.k_rope(key).unsqueeze(1), offset)], dim=-1)
        return Memory(latent)

    def _heads(self, x: Tensor, width: int) -> Tensor:  # (B, L, H*width) -> (B, H, L, width)
        B, L, _ = x.shape
        return x.view(B, L, self.num_heads, width).transpose(1, 2)

    def _per_head(self, layer: nn.Linear) -> Tensor:  # W (H*dh, c) -> (H, dh, c)
        return layer.weight.view(self.num_heads, self.head_dim, self.kv_latent_dim)

    def attend(self, query, memory, key_padding_mask=None, attn_mask=None, need_weights=False, q_offset=0, causal=False, absorb=None):
        B, T, _ = query.shape
        rows = memory.keys  # (B, 1, S, c + d_R)
        S, c = rows.size(2), self.kv_latent_dim
        q = self._heads(self.q_proj(query), self.head_dim)  # (B, H, T, dh)
        mask, is_causal = self._scores_mask(query, S, key_padding_mask, attn_mask, q_offset, causal)
        absorb = (self.absorb and T < S) if absorb is None else absorb
        if absorb:
            q = torch.einsum("bhtd,hdc->bhtc", q, self._per_head(self.k_up))  # W_UKᵀ q: (B, H, T, c)
            keys, values = rows, rows[..., :c]  # (B, 1, S, c + d_R), (B, 1, S, c)
        else:
            latent = rows[..., :c].squeeze(1)  # (B, S, c)
            keys, values = self._heads(self.k_up(latent), self.head_dim), self._heads(self.v_up(latent), self.head_dim)  # (B, H, S, dh)
            if self.decoupled:
                keys = torch.cat([keys, rows[..., c:].expand(B, self.num_heads, S, self.rope_dim)], dim=-1)
        if self.decoupled:
            q = torch.cat([q, self._rotate(self._heads(self.q_rope(query), self.rope_dim), q_offset)], dim=-1)
        out, weights = scaled_dot_attention(q, keys, values, mask, self.scale, self._dropout_p, need_weights, grouped=absorb, is_causal=is_causal)
        if absorb:
            out = torch.einsum("bhtc,hdc->bhtd", out, self._per_head(self.v_up))  # W_UV Σ a c: (B, H, T, dh)
        return self._merge_heads(out), weights
