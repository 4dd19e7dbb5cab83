"""Transformer encoder-decoder (Vaswani et al. 2017) built from any attention type.

Self-attention and cross-attention are both made by the injected attention factory; the
positional module is added to the embeddings and offers its attention hook to self-attention.
``norm="post"`` is the paper's residual-then-LayerNorm; ``norm="pre"`` normalises before each
sublayer (more stable for deep stacks) and adds a final LayerNorm.

:class:`TransformerEncoder` stands on its own so classification and masked-LM heads reuse it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from attnlab.attention import Attention, Memory, merge_masks
from attnlab.dropout import Dropout
from attnlab.models.base import (
    AttentionFactory,
    Encoded,
    LanguageModel,
    PositionalFactory,
    Seq2Seq,
    Weights,
    check_attention_for_self_attention,
    make_attention,
    padding_mask,
)

NORMS = ("post", "pre")
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}  # gelu: the exact (erf) form, as BERT's


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"arch.activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), ACTIVATIONS[activation](), Dropout(dropout), nn.Linear(d_ff, d_model))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Sublayer(nn.Module):
    """Residual connection around a sublayer, with LayerNorm after (post) or before (pre) it."""

    def __init__(self, d_model: int, dropout: float, pre_norm: bool, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.dropout = Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, x: Tensor, fn) -> Tuple[Tensor, Optional[Tensor]]:
        out, w = fn(self.norm(x) if self.pre_norm else x)
        x = x + self.dropout(out)
        return (x if self.pre_norm else self.norm(x)), w


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, self_attn: Attention, d_ff: int, dropout: float, pre_norm: bool, activation: str = "relu", eps: float = 1e-5):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = FeedForward(d_model, d_ff, dropout, activation)
        self.attn_block = Sublayer(d_model, dropout, pre_norm, eps)
        self.ff_block = Sublayer(d_model, dropout, pre_norm, eps)

    def forward(self, x: Tensor, pad_mask: Tensor, need_weights: bool = False):
        x, w = self.attn_block(x, lambda h: self.self_attn(h, h, h, key_padding_mask=pad_mask, need_weights=need_weights))
        x, _ = self.ff_block(x, lambda h: (self.feed_forward(h), None))
        return x, w


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention over an encoder's outputs, feed-forward. Without
    ``cross_attn`` it is a decoder-only (GPT) block."""

    def __init__(self, d_model: int, self_attn: Attention, cross_attn: Optional[Attention], d_ff: int, dropout: float, pre_norm: bool, activation: str = "relu", eps: float = 1e-5):
        super().__init__()
        self.self_attn = self_attn
        self.cross_attn = cross_attn
        self.feed_forward = FeedForward(d_model, d_ff, dropout, activation)
        self.self_block = Sublayer(d_model, dropout, pre_norm, eps)
        self.cross_block = Sublayer(d_model, dropout, pre_norm, eps) if cross_attn is not None else None
        self.ff_block = Sublayer(d_model, dropout, pre_norm, eps)

    def forward(self, y: Tensor, memory: Optional[Tensor], memory_mask: Optional[Tensor], need_weights: bool = False):
        # no target padding mask: padding sits at the end, so the causal mask already hides it
        y, sw = self.self_block(y, lambda h: self.self_attn(h, h, h, need_weights=need_weights, causal=True))
        cw = None
        if self.cross_attn is not None:
            y, cw = self.cross_block(
                y, lambda h: self.cross_attn(h, memory, memory, key_padding_mask=memory_mask, need_weights=need_weights)
            )
        y, _ = self.ff_block(y, lambda h: (self.feed_forward(h), None))
        return y, sw, cw

    def step(self, y: Tensor, cache: Any, cross: Optional[Memory], cross_mask: Optional[Tensor], offset: int, need_weights: bool = False):
        """New positions y (B, t, d) from ``offset`` on, against the self-attention's cache (its own
        kind: see attnlab.attention.cache) and the source's cross-attention memory and additive
        mask (B, 1, 1, S), both built once. Returns y, the grown cache, weights. Several positions
        at once (a prompt) see each other causally."""
        grown: List[Any] = []

        def self_attention(h):
            out, grown_cache, weights = self.self_attn.step(h, cache, offset, need_weights)
            grown.append(grown_cache)
            return out, weights

        y, sw = self.self_block(y, self_attention)
        cw = None
        if self.cross_attn is not None:
            y, cw = self.cross_block(y, lambda h: self.cross_attn.attend(h, cross, attn_mask=cross_mask, need_weights=need_weights))
        y, _ = self.ff_block(y, lambda h: (self.feed_forward(h), None))
        return y, grown[0], sw, cw


@dataclass
class DecoderCache:
    """Incremental decoding state: per layer, the self-attention keys/values so far and the
    cross-attention memory and padding mask (computed once per source); the next position."""

    self_attn: List[Any]  # each attention's own cache, None before the first step
    cross_attn: List[Memory]
    offset: int
    cross_mask: Optional[Tensor] = None  # (B, 1, 1, S) additive; None where no source has padding


class ScaledEmbedding(nn.Module):
    """Token embedding times √d (Vaswani et al. 2017, section 3.4); ``scale=False`` leaves it
    unscaled (BERT)."""

    def __init__(self, vocab_size: int, d_model: int, pad_id: int, scale: bool = True):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        nn.init.normal_(self.embedding.weight, std=d_model**-0.5)
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        self.scale = math.sqrt(d_model) if scale else None

    @property
    def weight(self) -> nn.Parameter:
        return self.embedding.weight

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embedding(tokens)
        return x if self.scale is None else x * self.scale


def _check_norm(norm: str) -> bool:
    if norm not in NORMS:
        raise ValueError(f"arch.norm must be one of {', '.join(NORMS)}; got {norm!r}")
    return norm == "pre"


class TransformerEncoder(nn.Module):
    """Embedding + positions + N self-attention layers: (B, S) tokens -> (B, S, d).

    The defaults are the paper's encoder. BERT's differs in four switches: ``activation="gelu"``,
    ``embed_scale=False`` (no √d), ``embedding_norm=True`` (LayerNorm over the summed embeddings)
    and ``type_vocab_size=2`` (segment embeddings), with ``norm_eps=1e-12``.
    """

    def __init__(
        self,
        vocab_size: int,
        attention: AttentionFactory,
        pos_enc: PositionalFactory,
        pad_id: int = 0,
        d_model: int = 256,
        num_layers: int = 3,
        d_ff: int = 1024,
        dropout: float = 0.1,
        norm: str = "post",
        activation: str = "relu",
        norm_eps: float = 1e-5,
        embed_scale: bool = True,
        embedding_norm: bool = False,
        type_vocab_size: int = 0,
    ):
        super().__init__()
        pre_norm = _check_norm(norm)
        self.pad_id = pad_id
        self.d_model = d_model
        self.embed = ScaledEmbedding(vocab_size, d_model, pad_id, scale=embed_scale)
        self.pos = pos_enc(d_model=d_model)
        self.token_type = nn.Embedding(type_vocab_size, d_model) if type_vocab_size else None
        self.embed_norm = nn.LayerNorm(d_model, eps=norm_eps) if embedding_norm else nn.Identity()
        self.dropout = Dropout(dropout)
        hook = self.pos.attention_hook(causal=False)
        layers = []
        for i in range(num_layers):
            self_attn = make_attention(attention, i, d_model=d_model, position_hook=hook)
            check_attention_for_self_attention(self_attn, "transformer")
            layers.append(EncoderLayer(d_model, self_attn, d_ff, dropout, pre_norm, activation, norm_eps))
        self.layers = nn.ModuleList(layers)
        self.final_norm = nn.LayerNorm(d_model, eps=norm_eps) if pre_norm else nn.Identity()

    def attention_layers(self) -> Dict[str, List[Attention]]:
        return {"self": [layer.self_attn for layer in self.layers]}

    def forward(self, src: Tensor, need_weights: bool = False, token_types: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """-> outputs (B, S, d), padding mask (B, S), per-layer weights (B, H, S, S).
        ``token_types`` (B, S): segment ids (all 0 when not given)."""
        mask = padding_mask(src, self.pad_id)
        x = self.pos(self.embed(src))  # (B, S, d)
        if self.token_type is not None:
            x = x + (self.token_type(token_types) if token_types is not None else self.token_type.weight[0])
        x = self.dropout(self.embed_norm(x))
        weights = []
        for layer in self.layers:
            x, w = layer(x, mask, need_weights)
            weights.append(w)
        return self.final_norm(x), mask, weights


class TransformerSeq2Seq(Seq2Seq):
    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        attention: AttentionFactory,
        pos_enc: PositionalFactory,
        pad_id: int = 0,
        d_model: int = 256,
        num_encoder_layers: int = 3,
        num_decoder_layers: int = 3,
        d_ff: int = 1024,
        dropout: float = 0.1,
        norm: str = "post",
        tie_embeddings: bool = True,
        incremental: bool = True,
        activation: str = "relu",
        norm_eps: float = 1e-5,
        embed_scale: bool = True,
    ):
        super().__init__()
        pre_norm = _check_norm(norm)
        self.pad_id = pad_id
        # step-wise decoding with a key/value cache (else each step recomputes the prefix)
        self.incremental = incremental
        self.encoder = TransformerEncoder(
            src_vocab_size, attention, pos_enc, pad_id, d_model, num_encoder_layers, d_ff, dropout, norm, activation, norm_eps, embed_scale
        )
        self.embed = ScaledEmbedding(tgt_vocab_size, d_model, pad_id, scale=embed_scale)
        self.pos = pos_enc(d_model=d_model)
        self.max_source_positions = self.encoder.pos.max_len
        self.max_target_positions = self.pos.max_len
        self.dropout = Dropout(dropout)
        hook = self.pos.attention_hook(causal=True)
        self.layers = nn.ModuleList(
            DecoderLayer(
                d_model,
                make_attention(attention, i, d_model=d_model, position_hook=hook),
                make_attention(attention, i, cross=True, d_model=d_model),
                d_ff,
                dropout,
                pre_norm,
                activation,
                norm_eps,
            )
            for i in range(num_decoder_layers)
        )
        for layer in self.layers:
            check_attention_for_self_attention(layer.self_attn, "transformer")
        self.final_norm = nn.LayerNorm(d_model, eps=norm_eps) if pre_norm else nn.Identity()
        self.generator = nn.Linear(d_model, tgt_vocab_size)
        if tie_embeddings:
            self.generator.weight = self.embed.weight

    @classmethod
    def decoder_only(
        cls,
        vocab_size: int,
        attention: AttentionFactory,
        pos_enc: PositionalFactory,
        pad_id: int = 0,
        d_model: int = 256,
        num_decoder_layers: int = 3,
        d_ff: int = 1024,
        dropout: float = 0.1,
        norm: str = "post",
        tie_embeddings: bool = True,
        activation: str = "relu",
        norm_eps: float = 1e-5,
        embed_scale: bool = True,
        num_encoder_layers: Optional[int] = None,  # the encoder-decoder's own settings: unused here
        incremental: Optional[bool] = None,
    ) -> "TransformerLM":
        """The decoder of this architecture without cross-attention (GPT), from the same ``arch``
        settings: a causal language model."""
        return TransformerLM(vocab_size, attention, pos_enc, pad_id, d_model, num_decoder_layers, d_ff, dropout, norm, tie_embeddings, activation, norm_eps, embed_scale)

    @classmethod
    def encoder_only(
        cls,
        vocab_size: int,
        attention: AttentionFactory,
        pos_enc: PositionalFactory,
        pad_id: int = 0,
        d_model: int = 256,
        num_encoder_layers: int = 3,
        d_ff: int = 1024,
        dropout: float = 0.1,
        norm: str = "post",
        activation: str = "relu",
        norm_eps: float = 1e-5,
        embed_scale: bool = True,
        embedding_norm: bool = False,
        type_vocab_size: int = 0,
        num_decoder_layers: Optional[int] = None,  # the encoder-decoder's own settings: unused here
        tie_embeddings: Optional[bool] = None,
        incremental: Optional[bool] = None,
    ) -> TransformerEncoder:
        """The encoder of this architecture, from the same ``arch`` settings (text classification,
        masked-LM pre-training)."""
        return TransformerEncoder(
            vocab_size, attention, pos_enc, pad_id, d_model, num_encoder_layers, d_ff, dropout, norm,
            activation, norm_eps, embed_scale, embedding_norm, type_vocab_size,
        )

    def attention_layers(self) -> Dict[str, List[Attention]]:
        return {
            "encoder_self": self.encoder.attention_layers()["self"],
            "decoder_self": [layer.self_attn for layer in self.layers],
            "cross": [layer.cross_attn for layer in self.layers],
        }

    def encode(self, src: Tensor, need_weights: bool = False) -> Encoded:
        memory, mask, weights = self.encoder(src, need_weights)
        return Encoded(memory=memory, padding_mask=mask, weights={"encoder_self": weights} if need_weights else {})

    def _decode(self, tgt_in: Tensor, encoded: Encoded, need_weights: bool) -> Tuple[Tensor, Weights]:
        y = self.dropout(self.pos(self.embed(tgt_in)))  # (B, T, d)
        self_w, cross_w = [], []
        for layer in self.layers:
            y, sw, cw = layer(y, encoded.memory, encoded.padding_mask, need_weights)
            self_w.append(sw)
            cross_w.append(cw)
        logits = self.generator(self.final_norm(y))
        return logits, ({"decoder_self": self_w, "cross": cross_w} if need_weights else {})

    def decode(self, tgt_in: Tensor, encoded: Encoded, need_weights: bool = False) -> Tuple[Tensor, Weights]:
        return self._decode(tgt_in, encoded, need_weights)

    # Step-wise decoding. With ``incremental`` the state is a DecoderCache; without it the state is
    # the prefix of tokens so far (B, t), recomputed at every step (the reference for the cache).
    def start(self, encoded: Encoded):
        if not self.incremental:
            return encoded.memory.new_empty(encoded.memory.size(0), 0, dtype=torch.long)
        cross = [layer.cross_attn.project_memory(encoded.memory, encoded.memory) for layer in self.layers]
        # every step and layer reads the same source mask: built once, and dropped when it masks
        # nothing (SDPA runs faster without one)
        pad = encoded.padding_mask
        cross_mask = merge_masks(pad, None, encoded.memory.dtype) if pad is not None and bool(pad.any()) else None
        return DecoderCache([None] * len(self.layers), cross, 0, cross_mask)

    def step(self, tokens, state, encoded, need_weights=False):
        if not self.incremental:
            prefix = torch.cat([state, tokens.unsqueeze(1)], dim=1)  # (B, t+1)
            logits, weights = self._decode(prefix, encoded, need_weights)
            last = {k: [w[:, :, -1:] for w in v] for k, v in weights.items()}
            return logits[:, -1], prefix, last
        y = self.dropout(self.pos(self.embed(tokens.unsqueeze(1)), offset=state.offset))  # (B, 1, d)
        caches, self_w, cross_w = [], [], []
        for layer, cache, cross in zip(self.layers, state.self_attn, state.cross_attn):
            y, cache, sw, cw = layer.step(y, cache, cross, state.cross_mask, state.offset, need_weights)
            caches.append(cache)
            self_w.append(sw)
            cross_w.append(cw)
        logits = self.generator(self.final_norm(y))[:, 0]
        weights = {"decoder_self": self_w, "cross": cross_w} if need_weights else {}
        return logits, DecoderCache(caches, state.cross_attn, state.offset + 1, state.cross_mask), weights

    def reorder_state(self, state, index: Tensor):
        if not self.incremental:
            return state.index_select(0, index)

        return DecoderCache([m.index_select(index) for m in state.self_attn], state.cross_attn, state.offset, state.cross_mask)


@dataclass
class LMCache:
    """Incremental generation state: per layer, the self-attention keys/values so far; the next position."""

    self_attn: List[Any]  # each attention's own cache, None before the first step
    offset: int


class TransformerLM(LanguageModel):
    """Decoder-only transformer (GPT, Radford et al. 2018): the encoder-decoder's decoder blocks
    without cross-attention, causal self-attention with any attention type, any positional
    encoding, the output layer tied to the embedding (``tie_embeddings``)."""

    def __init__(
        self,
        vocab_size: int,
        attention: AttentionFactory,
        pos_enc: PositionalFactory,
        pad_id: int = 0,
        d_model: int = 256,
        num_layers: int = 3,
        d_ff: int = 1024,
        dropout: float = 0.1,
        norm: str = "pre",
        tie_embeddings: bool = True,
        activation: str = "relu",
        norm_eps: float = 1e-5,
        embed_scale: bool = True,
    ):
        super().__init__()
        pre_norm = _check_norm(norm)
        self.pad_id = pad_id
        self.embed = ScaledEmbedding(vocab_size, d_model, pad_id, scale=embed_scale)
        self.pos = pos_enc(d_model=d_model)
        self.max_positions = self.pos.max_len
        self.dropout = Dropout(dropout)
        hook = self.pos.attention_hook(causal=True)
        layers = []
        for i in range(num_layers):
            self_attn = make_attention(attention, i, d_model=d_model, position_hook=hook)
            check_attention_for_self_attention(self_attn, "transformer")
            layers.append(DecoderLayer(d_model, self_attn, None, d_ff, dropout, pre_norm, activation, norm_eps))
        self.layers = nn.ModuleList(layers)
        self.final_norm = nn.LayerNorm(d_model, eps=norm_eps) if pre_norm else nn.Identity()
        self.generator = nn.Linear(d_model, vocab_size)
        if tie_embeddings:
            self.generator.weight = self.embed.weight

    def attention_layers(self) -> Dict[str, List[Attention]]:
        return {"self": [layer.self_attn for layer in self.layers]}

    def forward(self, tokens: Tensor, need_weights: bool = False) -> Tuple[Tensor, Weights]:
        """(B, T) -> logits (B, T, V), each position seeing only itself and what came before."""
        y = self.dropout(self.pos(self.embed(tokens)))  # (B, T, d)
        weights = []
        for layer in self.layers:
            y, w, _ = layer(y, None, None, need_weights)
            weights.append(w)
        return self.generator(self.final_norm(y)), ({"self": weights} if need_weights else {})

    def start(self, batch_size: int) -> LMCache:
        return LMCache([None] * len(self.layers), 0)

    def step(self, tokens: Tensor, state: LMCache) -> Tuple[Tensor, LMCache]:
        y = self.dropout(self.pos(self.embed(tokens), offset=state.offset))  # (B, t, d)
        caches = []
        for layer, cache in zip(self.layers, state.self_attn):
            y, cache, _, _ = layer.step(y, cache, None, None, state.offset)
            caches.append(cache)
        return self.generator(self.final_norm(y)), LMCache(caches, state.offset + tokens.size(1))
