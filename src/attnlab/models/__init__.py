"""Architectures: plain PyTorch modules assembled from injected attention and positional parts."""

from attnlab.models.base import Encoded, Seq2Seq
from attnlab.models.heads import MaskedLanguageModel, SequenceClassifier
from attnlab.models.rnn import RNNSeq2Seq
from attnlab.models.transformer import TransformerEncoder, TransformerSeq2Seq

__all__ = [
    "Encoded",
    "MaskedLanguageModel",
    "RNNSeq2Seq",
    "Seq2Seq",
    "SequenceClassifier",
    "TransformerEncoder",
    "TransformerSeq2Seq",
]
