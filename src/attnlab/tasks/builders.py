"""Turn config nodes (plain dicts with ``_target_``) into models."""

from __future__ import annotations

from typing import Any, Mapping

from hydra.utils import instantiate

from attnlab.models.base import Seq2Seq


def build_seq2seq(arch: Mapping[str, Any], attention: Mapping[str, Any], pos_enc: Mapping[str, Any], src_vocab_size: int, tgt_vocab_size: int, pad_id: int) -> Seq2Seq:
    """``arch``, ``attention`` and ``pos_enc`` are partial-instantiable nodes (``_partial_: true``)."""
    return instantiate(arch)(
        src_vocab_size=src_vocab_size,
        tgt_vocab_size=tgt_vocab_size,
        attention=instantiate(attention),
        pos_enc=instantiate(pos_enc),
        pad_id=pad_id,
    )
