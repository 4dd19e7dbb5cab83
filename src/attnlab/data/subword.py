"""Byte-pair-encoding subwords with Hugging Face ``tokenizers``, trained on the training split.

Words keep their leading space as "▁" (Metaspace) and punctuation is its own piece, so
decoding gives back the exact text: translations are scored on detokenized strings.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

from attnlab.data.corpus_cache import atomic_writer
from attnlab.data.vocab import SPECIALS, UNK


def _pipeline():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"), pre_tokenizers.Punctuation(behavior="isolated")]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return tokenizer


def train_bpe(texts: Sequence[str], vocab_size: int, min_frequency: int = 2) -> str:
    """Train BPE on ``texts``; returns the tokenizer as its JSON string (what checkpoints keep)."""
    from tokenizers import trainers

    if vocab_size <= len(SPECIALS):
        raise ValueError(f"data.bpe.vocab_size must be larger than {len(SPECIALS)}; got {vocab_size}")
    tokenizer = _pipeline()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIALS), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer.to_str()


def cached_bpe(texts: Sequence[str], vocab_size: int, min_frequency: int, cache_dir: Optional[str]) -> str:
    """:func:`train_bpe`, cached under ``cache_dir`` by a hash of the texts and the settings."""
    if cache_dir is None:
        return train_bpe(texts, vocab_size, min_frequency)
    digest = hashlib.sha1(f"{vocab_size}|{min_frequency}|".encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\n")
    path = Path(cache_dir) / f"bpe-{digest.hexdigest()[:12]}.json"
    if path.exists():
        return path.read_text(encoding="utf-8")
    model = train_bpe(texts, vocab_size, min_frequency)
    with atomic_writer(path) as f:
        f.write(model)
    return model


class BPE:
    """Text <-> subword pieces with a Hugging Face ``tokenizers`` model (its JSON string): a BPE
    trained here, or a pretrained model's own (WordPiece). Special tokens, padding and truncation
    stay attnlab's business, not the tokenizer's."""

    def __init__(self, model: str):
        from tokenizers import Tokenizer

        self.model = model
        self._tokenizer = Tokenizer.from_str(model)
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

    def tokenize(self, text: str) -> List[str]:
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def detokenize(self, pieces: Iterable[str]) -> str:
        return self._tokenizer.decoder.decode(list(pieces))
