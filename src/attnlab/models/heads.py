"""Heads on a standalone :class:`~attnlab.models.transformer.TransformerEncoder`.

``SequenceClassifier`` pools the encoder's outputs (CLS token, mean, or learned attention
pooling) into class logits; ``MaskedLanguageModel`` predicts masked tokens (BERT). Both take the
encoder as an argument, so one pre-trained encoder moves from one head to the other.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.models.transformer import TransformerEncoder


class CLSPooling(nn.Module):
    """The first position's vector (a [CLS] token the data puts there)."""

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tensor:  # (B, S, d) -> (B, d)
        return x[:, 0]


class MeanPooling(nn.Module):
    """Average over the real (non-padding) positions."""

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tensor:
        keep = (~pad_mask).unsqueeze(-1).to(x.dtype)  # (B, S, 1)
        return (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)


class AttentionPooling(nn.Module):
    """A learned query scores every position; the pooled vector is the weighted average."""

    def __init__(self, d_model: int):
        super().__init__()
        self.score = nn.Linear(d_model, 1)

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tensor:
        scores = self.score(x).squeeze(-1).masked_fill(pad_mask, float("-inf"))  # (B, S)
        return torch.einsum("bs,bsd->bd", torch.softmax(scores, dim=-1), x)


POOLINGS = {"cls": CLSPooling, "mean": MeanPooling, "attention": AttentionPooling}


class SequenceClassifier(nn.Module):
    def __init__(self, encoder: TransformerEncoder, num_classes: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        self.encoder = encoder
        d = encoder.d_model
        self.pooling = AttentionPooling(d) if pooling == "attention" else POOLINGS[pooling]()
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d, num_classes))

    def forward(self, tokens: Tensor) -> Tensor:  # (B, S) -> (B, C)
        x, mask, _ = self.encoder(tokens)
        return self.head(self.pooling(x, mask))


class MaskedLanguageModel(nn.Module):
    """Encoder + transform + vocabulary projection tied to the input embedding (BERT)."""

    def __init__(self, encoder: TransformerEncoder):
        super().__init__()
        self.encoder = encoder
        d = encoder.d_model
        self.transform = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d))
        vocab_size = encoder.embed.weight.size(0)
        self.decoder = nn.Linear(d, vocab_size)
        self.decoder.weight = encoder.embed.weight

    def forward(self, tokens: Tensor) -> Tensor:  # (B, S) -> logits (B, S, V)
        x, _, _ = self.encoder(tokens)
        return self.decoder(self.transform(x))
