"""Vocabularies: token <-> id, with special tokens.

attnlab's own vocabularies start with ``<pad> <unk> <bos> <eos>`` at ids 0-3 (translation relies
on those ids); text tasks add ``<mask>`` (masked-LM pre-training) right after them. A vocabulary
taken from a pretrained model (BERT's WordPiece) names its own special tokens instead
(``[PAD] [UNK] [CLS] [SEP] [MASK]``, with CLS as ``bos`` and SEP as ``eos``).
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

PAD, UNK, BOS, EOS, MASK = "<pad>", "<unk>", "<bos>", "<eos>", "<mask>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
ROLES = ("pad", "unk", "bos", "eos", "mask")
DEFAULT_SPECIALS = dict(zip(ROLES, (PAD, UNK, BOS, EOS, MASK)))


class Vocab:
    """Token <-> id. Without ``specials`` ids 0-3 are attnlab's special tokens; with them (a
    pretrained model's vocabulary), the special tokens are wherever that vocabulary has them."""

    def __init__(self, tokens: Sequence[str], specials: Optional[Mapping[str, str]] = None):
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if specials is None and tuple(self.tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with the special tokens {SPECIALS}")
        self.specials: Dict[str, str] = {**DEFAULT_SPECIALS, **(specials or {})}
        missing = [f"{role} ({self.specials[role]})" for role in ROLES[:4] if self.specials[role] not in self.index]
        if missing:
            raise ValueError(f"the vocabulary has no {', '.join(missing)} token")
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = (self.index[self.specials[r]] for r in ROLES[:4])
        self.mask_id: Optional[int] = self.index.get(self.specials["mask"])
        self.special_ids = {i for i in (self.pad_id, self.unk_id, self.bos_id, self.eos_id, self.mask_id) if i is not None}

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]], min_freq: int = 1, mask: bool = False) -> "Vocab":
        """From tokenized training text; ``mask`` adds ``<mask>`` after the four specials."""
        counts = Counter(t for seq in sequences for t in seq)
        specials = list(SPECIALS) + ([MASK] if mask else [])
        # sorted by frequency, then alphabetically, so the same data always gives the same ids
        kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in specials), key=lambda t: (-counts[t], t))
        return cls(specials + kept)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> List[int]:
        return [self.index.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: Iterable[int]) -> List[str]:
        """Ids -> tokens, stopping at EOS and dropping padding and BOS."""
        out = []
        for i in ids:
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.tokens[i])
        return out
