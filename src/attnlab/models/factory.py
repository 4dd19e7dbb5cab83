"""Assemble a model from component specs (see :mod:`attnlab.components`): the architecture
receives its attention and positional factories by injection. One ``arch`` setting builds the
encoder-decoder, or its encoder alone under a classification or masked-LM head."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from attnlab import components
from attnlab.models.base import LanguageModel, Seq2Seq
from attnlab.models.heads import MaskedLanguageModel, SequenceClassifier


def build_seq2seq(
    arch: Mapping[str, Any],
    attention: Mapping[str, Any],
    pos_enc: Mapping[str, Any],
    src_vocab_size: int,
    tgt_vocab_size: int,
    pad_id: int,
) -> Seq2Seq:
    """An encoder-decoder of the registered ``arch`` with the registered ``attention`` and
    ``pos_enc``; every spec is checked against the registry first."""
    return components.build(arch, "arch", kind="arch")(
        src_vocab_size=src_vocab_size,
        tgt_vocab_size=tgt_vocab_size,
        attention=components.build(attention, "attention", kind="attention"),
        pos_enc=components.build(pos_enc, "pos_enc", kind="pos_enc"),
        pad_id=pad_id,
    )


def build_encoder(arch: Mapping[str, Any], attention: Mapping[str, Any], pos_enc: Mapping[str, Any], vocab_size: int, pad_id: int) -> nn.Module:
    """The encoder of the registered ``arch`` (its ``encoder_only`` form, from the same settings)."""
    arch_factory = components.build(arch, "arch", kind="arch")
    return arch_factory.func.encoder_only(
        vocab_size=vocab_size,
        attention=components.build(attention, "attention", kind="attention"),
        pos_enc=components.build(pos_enc, "pos_enc", kind="pos_enc"),
        pad_id=pad_id,
        **arch_factory.keywords,
    )


def build_classifier(
    arch: Mapping[str, Any], attention: Mapping[str, Any], pos_enc: Mapping[str, Any], vocab_size: int, num_classes: int, pad_id: int, pooling: str, dropout: float
) -> SequenceClassifier:
    """An encoder and a classification head; ``pooling="attention"`` pools with the registered
    ``attention`` (a learned query; ``attention=none``: the final state)."""
    encoder = build_encoder(arch, attention, pos_enc, vocab_size, pad_id)
    return SequenceClassifier(encoder, num_classes, pooling, dropout, components.build(attention, "attention", kind="attention"))


def build_masked_lm(arch: Mapping[str, Any], attention: Mapping[str, Any], pos_enc: Mapping[str, Any], vocab_size: int, pad_id: int) -> MaskedLanguageModel:
    return MaskedLanguageModel(build_encoder(arch, attention, pos_enc, vocab_size, pad_id))


def build_language_model(arch: Mapping[str, Any], attention: Mapping[str, Any], pos_enc: Mapping[str, Any], vocab_size: int, pad_id: int) -> LanguageModel:
    """The decoder of the registered ``arch`` as a causal language model (its ``decoder_only``)."""
    arch_factory = components.build(arch, "arch", kind="arch")
    return arch_factory.func.decoder_only(
        vocab_size=vocab_size,
        attention=components.build(attention, "attention", kind="attention"),
        pos_enc=components.build(pos_enc, "pos_enc", kind="pos_enc"),
        pad_id=pad_id,
        **arch_factory.keywords,
    )


def dry_build(task: Any, arch: Mapping[str, Any], attention: Mapping[str, Any], pos_enc: Mapping[str, Any], pooling: Any = None) -> None:
    """Build the model of ``task`` (translation, classification, mlm, lm; another name: nothing)
    on the meta device with a toy vocabulary, for the errors its components raise when they do
    not fit together."""
    vocab, pad = 8, 0
    builders = {
        "translation": lambda: build_seq2seq(arch, attention, pos_enc, vocab, vocab, pad),
        "classification": lambda: build_classifier(arch, attention, pos_enc, vocab, 2, pad, pooling or "attention", 0.0),
        "mlm": lambda: build_masked_lm(arch, attention, pos_enc, vocab, pad),
        "lm": lambda: build_language_model(arch, attention, pos_enc, vocab, pad),
    }
    if task in builders:
        with torch.device("meta"):
            builders[task]()
