"""Tokenizers (word, character) and vocabularies with special tokens."""

from __future__ import annotations

import re
from collections import Counter
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)

_WORD = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")
_SPACE_BEFORE_PUNCT = re.compile(r" ([,.;:!?)\]])")


class Tokenizer:
    """``word``: words (hyphenated words stay whole) and punctuation marks; ``char``: characters;
    ``bpe``: subword pieces of a trained model (see :mod:`attnlab.data.subword`).

    :attr:`spec` is what a checkpoint stores to rebuild the tokenizer: the kind's name, or for
    ``bpe`` a dict with the model's JSON, so a checkpoint alone can translate.
    """

    KINDS = ("word", "char", "bpe")

    def __init__(self, kind: str = "word", model: Optional[str] = None):
        if kind not in self.KINDS:
            raise ValueError(f"data.src_tokenizer/tgt_tokenizer must be one of {', '.join(self.KINDS)}; got {kind!r}")
        if (kind == "bpe") != (model is not None):
            raise ValueError("a bpe tokenizer needs its trained model; word and char tokenizers take none")
        self.kind = kind
        self._bpe = None
        if model is not None:
            from attnlab.data.subword import BPE

            self._bpe = BPE(model)

    @classmethod
    def from_spec(cls, spec: Union[str, Mapping[str, str]]) -> "Tokenizer":
        if isinstance(spec, str):
            return cls(spec)
        return cls(spec["kind"], spec.get("model"))

    @property
    def spec(self) -> Union[str, Dict[str, str]]:
        return {"kind": self.kind, "model": self._bpe.model} if self._bpe else self.kind

    def tokenize(self, text: str) -> List[str]:
        if self._bpe is not None:
            return self._bpe.tokenize(text)
        return list(text) if self.kind == "char" else _WORD.findall(text)

    def detokenize(self, tokens: Sequence[str]) -> str:
        if self._bpe is not None:
            return self._bpe.detokenize(tokens)
        if self.kind == "char":
            return "".join(tokens)
        return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(tokens))


class Vocab:
    """Token <-> id. Ids 0-3 are the special tokens; the rest come from the training split."""

    def __init__(self, tokens: Sequence[str]):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with the special tokens {SPECIALS}")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]], min_freq: int = 1) -> "Vocab":
        counts = Counter(t for seq in sequences for t in seq)
        # sorted by frequency, then alphabetically, so the same data always gives the same ids
        kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in SPECIALS), key=lambda t: (-counts[t], t))
        return cls(list(SPECIALS) + kept)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> List[int]:
        return [self.index.get(t, UNK_ID) for t in tokens]

    def decode(self, ids: Iterable[int]) -> List[str]:
        """Ids -> tokens, stopping at EOS and dropping padding and BOS."""
        out = []
        for i in ids:
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                out.append(self.tokens[i])
        return out
