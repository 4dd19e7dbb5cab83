"""Assemble a model from component specs (see :mod:`attnlab.components`): the architecture
receives its attention and positional factories by injection."""

from __future__ import annotations

from typing import Any, Mapping

from attnlab import components
from attnlab.models.base import Seq2Seq


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
