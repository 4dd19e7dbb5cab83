"""Tokenizers: word (hyphenated words stay whole, punctuation apart), character, and BPE subwords."""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Sequence, Union

from attnlab.data.subword import BPE

_WORD = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")
_SPACE_BEFORE_PUNCT = re.compile(r" ([,.;:!?)\]])")


class Tokenizer:
    """``word``: words (hyphenated words stay whole) and punctuation marks; ``char``: characters;
    ``bpe``: subword pieces of a model trained here (see :mod:`attnlab.data.subword`); ``hf``: a
    pretrained model's own Hugging Face tokenizer (BERT's ).

    :attr:`spec` is what a checkpoint stores to rebuild the tokenizer: the kind's name, or for
    ``bpe`` and ``hf`` a dict with the tokenizer's JSON, so a checkpoint alone can run.
    """

    KINDS = ("word", "char", "bpe", "hf")
    WITH_MODEL = ("bpe", "hf")

    def __init__(self, kind: str = "word", model: Optional[str] = None):
        if kind not in self.KINDS:
            raise ValueError(f"a tokenizer (data.tokenizer, data.src_tokenizer, data.tgt_tokenizer) must be one of {', '.join(self.KINDS)}; got {kind!r}")
        if (kind in self.WITH_MODEL) != (model is not None):
            raise ValueError("bpe and hf tokenizers need their model; word and char tokenizers take none")
        self.kind = kind
        self._bpe = None
        if model is not None:
            self._bpe = BPE(model)

    @classmethod
    def from_spec(cls, spec: Union[str, Mapping[str, str]]) -> "Tokenizer":
        if isinstance(spec, str):
            return cls(spec)
        if not isinstance(spec, Mapping) or not isinstance(spec.get("kind"), str) or not isinstance(spec.get("model", ""), str):
            raise ValueError(f"a tokenizer spec is a kind or {{kind, model}}; got {type(spec).__name__}")
        return cls(spec["kind"], spec.get("model"))

    def word_starts(self, tokens: Sequence[str]) -> List[bool]:
        """Per token, whether it begins a word (whole-word masking masks a word's tokens together).
        BPE marks a word's first piece ("▁"), WordPiece its continuations ("##")."""
        if self.kind == "word":
            return [True] * len(tokens)
        if self.kind == "char":
            return [t.isspace() or i == 0 or tokens[i - 1].isspace() for i, t in enumerate(tokens)]
        if self.kind == "hf":
            return [not t.startswith("##") for t in tokens]
        return [i == 0 or t.startswith("▁") for i, t in enumerate(tokens)]

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
