"""Tokenizers: word (hyphenated words stay whole, punctuation apart), character, and BPE subwords."""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Sequence, Union

from attnlab.data.subword import BPE

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
