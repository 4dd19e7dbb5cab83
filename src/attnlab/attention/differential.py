"""Differential attention, Ye et al. 2024 ("Differential Transformer", sections 2.1-2.2).

Each head splits its queries and keys in two and takes the difference of two softmax maps:

    DiffAttn(X) = (softmax(Q₁K₁ᵀ/√d) − λ softmax(Q₂K₂ᵀ/√d)) V,   V of width 2d,
    λ = exp(λ_q1·λ_k1) − exp(λ_q2·λ_k2) + λ_init,   λ_init = 0.8 − 0.6·exp(−0.3·(l − 1))

for layer l = 1, 2, …; every head is normalised on its own (RMSNorm, the paper's GroupNorm over
heads) and scaled by (1 − λ_init) before the output projection. With H heads of width
d = d_model / (2H), the parameters match a multi-head layer of 2H heads, as in the paper.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from attnlab.attention.cache import Memory
from attnlab.attention.core import Attention, PositionHook, scaled_dot_attention


def lambda_init_for(layer_index: int) -> float:
    """The paper's λ_init for 0-based layer ``layer_index`` (l = layer_index + 1)."""
    return 0.8 - 0.6 * math.exp(-0.3 * layer_index)


class DifferentialAttention(Attention):
    name = "attention=differential"
    headed = True
    takes_layer_index = True

    def __init__(
        self,
        d_model: int,
        num_heads: int = 4,
        dropout: float = 0.0,
        bias: bool = True,
        position_hook: Optional[PositionHook] = None,
        lambda_init: Optional[float] = None,
        layer_index: int = 0,
    ):
        super().__init__(d_model, dropout, position_hook)
        if d_model % (2 * num_heads) != 0:
            raise ValueError(
                f"arch.d_model={d_model} is not divisible by 2 × attention.num_heads={num_heads}: "
                "each differential head splits its d_model / num_heads dimensions into two query/key maps"
            )
        if lambda_init is not None and not (isinstance(lambda_init, (int, float)) and 0 <= lambda_init < 1):
            raise ValueError(f"attention.lambda_init={lambda_init!r} must be in [0, 1) (null: the paper's schedule over layers)")
        self.num_heads = num_heads
        self.head_dim = d_model // (2 * num_heads)
        self.lambda_init = lambda_init_for(layer_index) if lambda_init is None else float(lambda_init)
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        # λ's re-parameterisation, initialised N(0, 0.1²) as the authors' code does
        self.lambda_q1, self.lambda_k1, self.lambda_q2, self.lambda_k2 = (nn.Parameter(torch.randn(self.head_dim) * 0.1) for _ in range(4))
        self.head_norm = nn.RMSNorm(2 * self.head_dim, eps=1e-5)

    def lambda_(self) -> Tensor:
        return torch.exp(torch.dot(self.lambda_q1, self.lambda_k1)) - torch.exp(torch.dot(self.lambda_q2, self.lambda_k2)) + self.lambda_init

    def _maps(self, x: Tensor) -> Tensor:  # (B, L, d) -> (B, 2H, L, dh): maps 2h and 2h + 1 are head h's pair
        B, L, _ = x.shape
        return x.view(B, L, 2 * self.num_heads, self.head_dim).transpose(1, 2)

    def project_memory(self, key: Tensor, value: Tensor, offset: int = 0) -> Memory:
        B, S, _ = value.shape
        keys = self._rotate(self._maps(self.k_proj(key)), offset)  # (B, 2H, S, dh)
        values = self.v_proj(value).view(B, S, self.num_heads, 2 * self.head_dim).transpose(1, 2)  # (B, H, S, 2dh)
        return Memory(keys, values)

    def attend(self, query, memory, key_padding_mask=None, attn_mask=None, need_weights=False, q_offset=0, causal=False):
        B, T, _ = query.shape
        H, S = self.num_heads, memory.keys.size(2)
        q = self._rotate(self._maps(self.q_proj(query)), q_offset)  # (B, 2H, T, dh)
        mask, is_causal = self._scores_mask(query, S, key_padding_mask, attn_mask, q_offset, causal)
        if mask is not None and mask.size(1) == H and H > 1:  # a per-head bias serves both maps of its head
            mask = mask.repeat_interleave(2, dim=1)
        values = memory.values.repeat_interleave(2, dim=1)  # (B, 2H, S, 2dh): both maps read V
        out, weights = scaled_dot_attention(q, memory.keys, values, mask, 1.0 / math.sqrt(self.head_dim), self._dropout_p, need_weights, is_causal=is_causal)
        lam = self.lambda_()
        out = out.view(B, H, 2, T, 2 * self.head_dim)
        out = self.head_norm(out[:, :, 0] - lam * out[:, :, 1]) * (1 - self.lambda_init)  # (B, H, T, 2dh)
        if weights is not None:
            weights = weights.view(B, H, 2, T, S)
            weights = weights[:, :, 0] - lam * weights[:, :, 1]  # (B, H, T, S), may be negative
        return self._merge_heads(out), weights
