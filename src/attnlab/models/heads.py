"""Heads on an encoder: (B, S) tokens -> states (B, S, d), padding mask (B, S), weights.

``SequenceClassifier`` pools the encoder's states (the CLS token, their mean, or a learned query
that attends over them with any attention type — the lesson's attention, used to read a sentence)
into class logits; ``MaskedLanguageModel`` predicts masked tokens (BERT). Both take the encoder as
an argument, so one pre-trained encoder moves from one head to the other. Encoders:
:class:`~attnlab.models.transformer.TransformerEncoder` and
:class:`~attnlab.models.rnn.RNNTextEncoder` (each architecture's ``encoder_only``).
"""

from __future__ import annotations

import functools
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from attnlab.attention import Attention, DotProductAttention
from attnlab.dropout import Dropout

POOLINGS = ("cls", "mean", "attention")


class CLSPooling(nn.Module):
    """The first position's vector (a [CLS] token the data puts there)."""

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tuple[Tensor, Optional[Tensor]]:  # (B, S, d) -> (B, d)
        return x[:, 0], None


class MeanPooling(nn.Module):
    """Average over the real (non-padding) positions."""

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        keep = (~pad_mask).unsqueeze(-1).to(x.dtype)  # (B, S, 1)
        return (x * keep).sum(1) / keep.sum(1).clamp(min=1.0), None


class QueryPooling(nn.Module):
    """A learned query attends over the states with the given attention type; the context is the
    sentence's vector and the weights (B, H, 1, S) show which words it read. With ``NoAttention``
    this is the final real state (the classic RNN sentence vector)."""

    def __init__(self, attention: Attention):
        super().__init__()
        self.attention = attention.for_cross_attention()  # a learned query reads the states: no window
        self.query = nn.Parameter(torch.randn(1, 1, attention.d_model) * attention.d_model**-0.5)

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        query = self.query.expand(x.size(0), 1, -1).to(x.dtype)  # (B, 1, d)
        context, weights = self.attention(query, x, x, key_padding_mask=pad_mask, need_weights=True)
        return context[:, 0], weights


class SequenceClassifier(nn.Module):
    """Encoder + pooling + dropout + linear layer. ``attention`` (a factory taking ``d_model``) is
    what ``pooling="attention"`` attends with; scaled dot-product when not given."""

    def __init__(self, encoder: nn.Module, num_classes: int, pooling: str = "mean", dropout: float = 0.1, attention: Optional[Callable[..., Attention]] = None):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"task.pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        self.encoder = encoder
        d = encoder.d_model
        if pooling == "attention":
            self.pooling = QueryPooling((attention or functools.partial(DotProductAttention, score="scaled"))(d_model=d))
        else:
            self.pooling = CLSPooling() if pooling == "cls" else MeanPooling()
        self.head = nn.Sequential(Dropout(dropout), nn.Linear(d, num_classes))

    def attention_layers(self) -> Dict[str, List[Attention]]:
        """The encoder's ``self`` layers, and ``pooling`` for attention pooling."""
        layers = self.encoder.attention_layers()
        if isinstance(self.pooling, QueryPooling):
            layers["pooling"] = [self.pooling.attention]
        return layers

    def classify(self, tokens: Tensor, need_weights: bool = False) -> Tuple[Tensor, Dict[str, List[Tensor]]]:
        """-> logits (B, C) and, when asked, weights: ``self`` per encoder layer (B, H, S, S),
        ``pooling`` (B, H, 1, S) for attention pooling."""
        x, mask, layers = self.encoder(tokens, need_weights=need_weights)
        pooled, pool_weights = self.pooling(x, mask)
        weights: Dict[str, List[Tensor]] = {}
        if need_weights:
            if layers and layers[0] is not None:
                weights["self"] = layers
            if pool_weights is not None:
                weights["pooling"] = [pool_weights]
        return self.head(pooled), weights

    def forward(self, tokens: Tensor) -> Tensor:  # (B, S) -> (B, C)
        return self.classify(tokens)[0]


class MaskedLanguageModel(nn.Module):
    """Encoder + transform + vocabulary projection tied to the input embedding (BERT)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        d = encoder.d_model
        vocab_size, emb_dim = encoder.embed.weight.shape  # an RNN's embedding may be narrower than its states
        self.transform = nn.Sequential(nn.Linear(d, emb_dim), nn.GELU(), nn.LayerNorm(emb_dim))
        self.decoder = nn.Linear(emb_dim, vocab_size)
        self.decoder.weight = encoder.embed.weight

    def attention_layers(self) -> Dict[str, List[Attention]]:
        return self.encoder.attention_layers()

    def forward(self, tokens: Tensor, positions: Optional[Tensor] = None) -> Tensor:
        """(B, S) -> logits (B, S, V); with ``positions`` (B, S) bool, only those: (N, V)."""
        x, _, _ = self.encoder(tokens)
        if positions is not None:
            x = x[positions]  # (N, d): the vocabulary projection only where a prediction is scored
        return self.decoder(self.transform(x))
