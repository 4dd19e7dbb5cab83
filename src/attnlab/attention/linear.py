"""Linear (kernelised) attention: Katharopoulos et al. 2020, "Transformers are RNNs".

softmax(q·k) is replaced by a feature map's dot product φ(q)·φ(k), so that

    out_i = φ(q_i)ᵀ (Σ_j φ(k_j) v_jᵀ) / φ(q_i)ᵀ (Σ_j φ(k_j))

and the sums over keys are formed once: O(n) in the length instead of O(n²). Causal attention
takes prefix sums, computed chunk by chunk (within a chunk the masked products, across chunks the
running sums), and decoding is a recurrence on a fixed d×d state per head
(:class:`~attnlab.attention.cache.RecurrentState`).

Feature maps: ``elu`` — φ(x) = elu(x) + 1 (the paper's); ``favor`` — Performer's positive
orthogonal random features (Choromanski et al. 2021), φ(x) = exp(wᵀx − |x|²/2)/√m with x scaled
by d^(-1/4), whose dot products estimate exp(q·k/√d), softmax attention's kernel.

Positions: rotary rotates the features in the numerator only, as RoFormer (Su et al. 2021,
section 3.3) does, so the normaliser stays positive; encodings added to the input work as
everywhere; ALiBi and T5 add to a score matrix that linear attention never forms, and are refused.

There is no attention matrix to drop out of, so ``attention.dropout`` must be 0. The weights it
returns for plots are the normalised kernel φ(q_i)·φ(k_j) / Σ_j φ(q_i)·φ(k_j), without the rotation.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.attention.cache import Memory, RecurrentState
from attnlab.attention.classic import MultiHeadAttention
from attnlab.attention.core import PositionHook, expand_kv_heads

FEATURE_MAPS = ("elu", "favor")


def orthogonal_gaussian(rows: int, dim: int, generator: torch.Generator) -> Tensor:
    """(rows, dim) random features: blocks of orthogonal directions with the lengths of Gaussian
    vectors (Performer's ORF), so each row is marginally N(0, I) and rows in a block never align."""
    blocks = []
    for start in range(0, rows, dim):
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
        blocks.append(q.T[: min(dim, rows - start)])
    directions = torch.cat(blocks)  # (rows, dim), unit rows
    lengths = torch.randn(rows, dim, generator=generator).norm(dim=1, keepdim=True)
    return directions * lengths


def _before(x: Tensor) -> Tensor:
    """Exclusive prefix sums along axis 2 (chunks): x[:, :, 0] + … + x[:, :, i - 1] at i."""
    total = torch.cumsum(x, 2)
    return torch.cat([torch.zeros_like(x[:, :, :1]), total[:, :, :-1]], 2)


class LinearAttention(MultiHeadAttention):
    """Multi-head attention with a kernel feature map instead of softmax."""

    name = "attention=linear"
    has_score_matrix = False

    def __init__(
        self,
        d_model: int,
        num_heads: int = 4,
        feature_map: str = "elu",
        num_features: Optional[int] = None,
        dropout: float = 0.0,
        bias: bool = True,
        position_hook: Optional[PositionHook] = None,
        num_kv_heads: Optional[int] = None,
        chunk: int = 64,
        seed: int = 0,
    ):
        super().__init__(d_model, num_heads, dropout, bias, position_hook, num_kv_heads)
        if feature_map not in FEATURE_MAPS:
            raise ValueError(f"attention.feature_map must be one of {', '.join(FEATURE_MAPS)}; got {feature_map!r}")
        if dropout:
            raise ValueError(f"attention.dropout={dropout}: attention=linear forms no attention weights to drop; set attention.dropout=0")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"attention.chunk must be a positive number of positions, got {chunk!r}")
        self.feature_map, self.chunk = feature_map, chunk
        if feature_map == "favor":
            num_features = self.head_dim * 2 if num_features is None else num_features
            if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
                raise ValueError(f"attention.num_features must be a positive number of random features, got {num_features!r}")
            if position_hook is not None and position_hook.rotates and num_features % 2:
                raise ValueError(f"attention.num_features={num_features} is odd: pos_enc=rotary rotates pairs of features")
            # drawn once and saved with the weights: a checkpoint attends with the same features
            self.register_buffer("projection", orthogonal_gaussian(num_features, self.head_dim, torch.Generator().manual_seed(seed)))
        elif num_features is not None:
            raise ValueError("attention.num_features is for attention.feature_map=favor; elu has head_dim features")
        self.num_features = num_features or self.head_dim

    # -- the feature map -------------------------------------------------------------------
    def features(self, x: Tensor, is_query: bool) -> Tensor:
        """φ(x): (B, H, L, dh) -> (B, H, L, F), positive."""
        if self.feature_map == "elu":
            return F.elu(x) + 1
        x = x * self.head_dim**-0.25
        projected = torch.matmul(x, self.projection.to(x.dtype).T)  # (B, H, L, m)
        exponent = projected - x.pow(2).sum(-1, keepdim=True) / 2
        if is_query:  # a query's own constant cancels between numerator and normaliser
            exponent = exponent - exponent.amax(-1, keepdim=True).detach()
        return torch.exp(exponent) * self.num_features**-0.5

    def _qkv_features(self, q: Tensor, keys: Tensor, q_offset: int, k_offset: int):
        """Numerator and normaliser features of projected queries (B, H, T, dh) and keys, in
        float32: (qn, kn, qd, kd)."""
        q, keys = q.float(), keys.float()
        keys = expand_kv_heads(keys, self.num_heads)
        qd, kd = self.features(q, True), self.features(keys, False)
        return self._rotate(qd, q_offset), self._rotate(kd, k_offset), qd, kd

    def _values(self, values: Tensor) -> Tensor:
        return expand_kv_heads(values.float(), self.num_heads)

    def project_memory(self, key: Tensor, value: Tensor, offset: int = 0):
        # keys unrotated: the rotation acts on their features, at attend
        return Memory(self._split(self.k_proj(key), self.num_kv_heads), self._split(self.v_proj(value), self.num_kv_heads))

    # -- the three forms ----------------------------------------------------------------------
    @staticmethod
    def explicit(qn: Tensor, kn: Tensor, qd: Tensor, kd: Tensor, v: Tensor, allowed: Optional[Tensor], eps: float = 1e-6) -> Tuple[Tensor, Tensor]:
        """The quadratic form (the reference): (out, weights) with the kernel matrices masked by
        ``allowed`` (bool, broadcastable to (B, H, T, S))."""
        numerator = torch.matmul(qn, kn.transpose(-2, -1))  # (B, H, T, S)
        kernel = torch.matmul(qd, kd.transpose(-2, -1))
        if allowed is not None:
            numerator, kernel = numerator * allowed, kernel * allowed
        normaliser = kernel.sum(-1, keepdim=True) + eps
        return torch.matmul(numerator, v) / normaliser, kernel / normaliser

    def _causal(self, qn, kn, qd, kd, v, state: Optional[RecurrentState], eps: float = 1e-6) -> Tuple[Tensor, Tensor, Tensor]:
        """Causal linear attention by chunks, continuing ``state``: -> out (B, H, L, dv), and the
        sums over all positions (B, H, F, dv), (B, H, F)."""
        B, H, L, Fn = qn.shape
        dv = v.size(-1)
        C = min(self.chunk, L)
        n = math.ceil(L / C)
        pad = n * C - L

        def chunks(x: Tensor) -> Tensor:  # (B, H, L, e) -> (B, H, n, C, e); zero features add nothing
            return F.pad(x, (0, 0, 0, pad)).view(B, H, n, C, x.size(-1))

        qn, kn, qd, kd, v = map(chunks, (qn, kn, qd, kd, v))
        kv = torch.einsum("bhncf,bhncd->bhnfd", kn, v)  # (B, H, n, F, dv) per chunk
        ks = kd.sum(3)  # (B, H, n, F)
        kv_before, ks_before = _before(kv), _before(ks)  # the sums over the chunks before each
        if state is not None:
            kv_before = kv_before + state.kv[:, :, None]
            ks_before = ks_before + state.k_sum[:, :, None]
        within = torch.ones(C, C, dtype=torch.bool, device=qn.device).tril()
        numerator = torch.einsum("bhncf,bhnfd->bhncd", qn, kv_before) + torch.matmul(torch.matmul(qn, kn.transpose(-2, -1)) * within, v)
        normaliser = torch.einsum("bhncf,bhnf->bhnc", qd, ks_before) + (torch.matmul(qd, kd.transpose(-2, -1)) * within).sum(-1)
        out = (numerator / (normaliser.unsqueeze(-1) + eps)).reshape(B, H, n * C, dv)[:, :, :L]
        kv_all, ks_all = kv_before[:, :, -1] + kv[:, :, -1], ks_before[:, :, -1] + ks[:, :, -1]
        return out, kv_all, ks_all

    def attend(self, query, memory, key_padding_mask=None, attn_mask=None, need_weights=False, q_offset=0, causal=False):
        q = self._split(self.q_proj(query), self.num_heads)  # (B, H, T, dh)
        # the sums run over every key: in float32 whatever the autocast, as a bf16 normaliser loses them
        with torch.autocast(query.device.type, enabled=False):
            out, weights = self._attend(q, memory, key_padding_mask, attn_mask, need_weights, q_offset, causal)
        return self._merge_heads(out.to(q.dtype)), weights

    def _attend(self, q, memory, key_padding_mask, attn_mask, need_weights, q_offset, causal) -> Tuple[Tensor, Optional[Tensor]]:
        B, _, T, _ = q.shape
        S = memory.keys.size(2)
        qn, kn, qd, kd = self._qkv_features(q, memory.keys, q_offset, 0)
        v = self._values(memory.values)
        keep = None
        if attn_mask is not None and attn_mask.dim() == 4 and attn_mask.shape[1:3] == (1, 1):
            # a key mask (the decoder's source padding): keys to leave out
            keep = ~attn_mask.squeeze(1).squeeze(1) if attn_mask.dtype == torch.bool else attn_mask.squeeze(1).squeeze(1).eq(0)
            attn_mask = None
        if key_padding_mask is not None:
            keep = ~key_padding_mask if keep is None else keep & ~key_padding_mask
        weights = None
        if attn_mask is not None or need_weights:
            allowed = torch.ones(T, S, dtype=torch.bool, device=q.device)
            if causal:
                allowed = allowed.tril(S - T)
            if attn_mask is not None:
                allowed = allowed & (~attn_mask if attn_mask.dtype == torch.bool else attn_mask.eq(0))
            if keep is not None:
                allowed = allowed & keep[:, None, None, :]
            out_explicit, weights = self.explicit(qn, kn, qd, kd, v, allowed)
            if attn_mask is not None:  # a general mask: only the quadratic form can take it
                return out_explicit, (weights if need_weights else None)
        if keep is not None:
            kn, kd = kn * keep[:, None, :, None], kd * keep[:, None, :, None]
        if causal:
            if S != T:  # the queries are the last T of S positions: the earlier ones as a state
                prefix = RecurrentState(torch.einsum("bhsf,bhsd->bhfd", kn[:, :, : S - T], v[:, :, : S - T]), kd[:, :, : S - T].sum(2), S - T)
                kn, kd, v = kn[:, :, S - T :], kd[:, :, S - T :], v[:, :, S - T :]
            else:
                prefix = None
            out, _, _ = self._causal(qn, kn, qd, kd, v, prefix)
        else:
            kv = torch.einsum("bhsf,bhsd->bhfd", kn, v)  # (B, H, F, dv)
            numerator = torch.matmul(qn, kv)  # (B, H, T, dv)
            normaliser = torch.matmul(qd, kd.sum(2).unsqueeze(-1))  # (B, H, T, 1)
            out = numerator / (normaliser + 1e-6)
        return out, weights

    def step(self, x: Tensor, cache: Optional[RecurrentState], offset: int, need_weights: bool = False):
        """New positions against the running sums: the RNN form. No weights (no keys are kept)."""
        if cache is not None and cache.seen != offset:
            raise RuntimeError(f"a linear attention state of {cache.seen} positions was given position {offset}")
        q = self._split(self.q_proj(x), self.num_heads)
        keys, values = self._split(self.k_proj(x), self.num_kv_heads), self._split(self.v_proj(x), self.num_kv_heads)
        with torch.autocast(x.device.type, enabled=False):  # the running sums in float32, as in attend
            qn, kn, qd, kd = self._qkv_features(q, keys, offset, offset)
            out, kv, ks = self._causal(qn, kn, qd, kd, self._values(values), cache)
        return self._merge_heads(out.to(q.dtype)), RecurrentState(kv, ks, offset + x.size(1)), None
