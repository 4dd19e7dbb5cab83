"""A LightningDataModule for parallel text: tokenize, build vocabularies, batch with padding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import torch

from attnlab.data.base import CorpusDataModule, ListDataset, TokenizerSpec, pad
from attnlab.data.corpus_cache import SPLITS, Pairs
from attnlab.data.tokenization import Tokenizer
from attnlab.data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocab


@dataclass
class Example:
    index: int  # position in its split
    src_ids: List[int]  # source tokens + EOS
    tgt_ids: List[int]  # BOS + target tokens + EOS
    src_text: str
    tgt_text: str


def collate(examples: List[Example]) -> Dict[str, object]:
    """-> src (B, S), tgt (B, T+1) with BOS ... EOS, and the raw texts for metrics."""
    return {
        "src": pad([e.src_ids for e in examples], PAD_ID),
        "tgt": pad([e.tgt_ids for e in examples], PAD_ID),
        "index": torch.tensor([e.index for e in examples], dtype=torch.long),
        "src_text": [e.src_text for e in examples],
        "tgt_text": [e.tgt_text for e in examples],
    }


class TranslationDataModule(CorpusDataModule):
    """Sentence pairs ``(source, target)`` from the corpus.

    Tokenizers are ``word``, ``char`` or ``bpe`` (trained on the training split: one model for
    both sides with ``bpe.joint``), or a checkpoint's tokenizer spec; vocabularies come from the
    training split, or a checkpoint's.
    """

    def __init__(
        self,
        name: str,
        corpus: Callable[..., Pairs],
        cache_dir: str,
        src_tokenizer: TokenizerSpec = "word",
        tgt_tokenizer: TokenizerSpec = "word",
        src_vocab: Optional[List[str]] = None,
        tgt_vocab: Optional[List[str]] = None,
        **common: Any,
    ):
        super().__init__(name, corpus, cache_dir, **common)
        # a "bpe" tokenizer is trained in setup(); a checkpoint's spec comes with its model
        self._tokenizer_specs = (src_tokenizer, tgt_tokenizer)
        self.src_tokenizer = None if src_tokenizer == "bpe" else Tokenizer.from_spec(src_tokenizer)
        self.tgt_tokenizer = None if tgt_tokenizer == "bpe" else Tokenizer.from_spec(tgt_tokenizer)
        # given vocabularies (a checkpoint's) are used as they are; else built from the train split
        self.src_vocab: Optional[Vocab] = Vocab(list(src_vocab)) if src_vocab else None
        self.tgt_vocab: Optional[Vocab] = Vocab(list(tgt_vocab)) if tgt_vocab else None

    def _train_subword_tokenizers(self, train: List[tuple]) -> None:
        """Train BPE for each side that asks for it: one model on both sides when ``joint``."""
        wants = [spec == "bpe" for spec in self._tokenizer_specs]
        if self.bpe["joint"] and all(wants):
            self.src_tokenizer = self.tgt_tokenizer = self.trained_bpe([s for s, _ in train] + [t for _, t in train])
            return
        if wants[0]:
            self.src_tokenizer = self.trained_bpe([s for s, _ in train])
        if wants[1]:
            self.tgt_tokenizer = self.trained_bpe([t for _, t in train])

    def setup(self, stage: Optional[str] = None) -> None:
        if self.splits:
            return
        pairs = self.read_corpus()
        for split in SPLITS:
            if not pairs.get(split):
                raise ValueError(f"data={self.name}: the {split} split is empty")
        self._train_subword_tokenizers(pairs["train"])
        tokenized = {
            split: [(self.src_tokenizer.tokenize(s), self.tgt_tokenizer.tokenize(t), s, t) for s, t in items]
            for split, items in pairs.items()
        }
        if self.src_vocab is None and self.tgt_vocab is None and self.src_tokenizer is self.tgt_tokenizer:
            # a joint subword model gets one vocabulary: the same piece has the same id on both sides
            joint = Vocab.build([src for src, _, _, _ in tokenized["train"]] + [tgt for _, tgt, _, _ in tokenized["train"]])
            self.src_vocab = self.tgt_vocab = joint
        self.src_vocab = self.src_vocab or Vocab.build(src for src, _, _, _ in tokenized["train"])
        self.tgt_vocab = self.tgt_vocab or Vocab.build(tgt for _, tgt, _, _ in tokenized["train"])
        self.splits = {
            split: ListDataset(
                [
                    Example(i, self.src_vocab.encode(src) + [EOS_ID], [BOS_ID] + self.tgt_vocab.encode(tgt) + [EOS_ID], s, t)
                    for i, (src, tgt, s, t) in enumerate(items)
                ]
            )
            for split, items in tokenized.items()
        }

    @property
    def longest_sequence(self) -> int:
        """Tokens of the longest source or target (with BOS/EOS) in any split: what a learned
        positional table must cover."""
        return max(max(len(e.src_ids), len(e.tgt_ids)) for ds in self.splits.values() for e in ds.examples)

    @property
    def train_length_range(self) -> tuple:
        """The shortest and longest training source, in words (what a length study marks)."""
        lengths = [len(e.src_text.split()) for e in self.splits["train"].examples]
        return min(lengths), max(lengths)

    def example_length(self, example: Example) -> int:
        # a batch costs its longest source and its longest target: bucket on the longer side
        return max(len(example.src_ids), len(example.tgt_ids))

    def collate(self, examples: List[Example]) -> Dict[str, Any]:
        return collate(examples)
