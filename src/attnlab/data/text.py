"""A LightningDataModule for single texts: labelled (text classification) or not (masked-LM
pre-training reads the same corpora and ignores the labels).

Each text becomes ``<bos> tokens <eos>`` — the ``<bos>`` is the classifier's [CLS] position, as
BERT's ``[CLS] ... [SEP]`` — cut to ``max_len`` tokens in all.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch

from attnlab.data.base import CorpusDataModule, ListDataset, TokenizerSpec, pad
from attnlab.data.corpus_cache import SPLITS, Pairs
from attnlab.data.tokenization import Tokenizer
from attnlab.data.vocab import Vocab


@dataclass
class TextExample:
    index: int  # position in its split
    ids: List[int]  # <bos> tokens <eos>
    word_starts: List[bool]  # per id: whether it begins a word (whole-word masking)
    label: int  # -1: unlabelled
    text: str


class TextDataModule(CorpusDataModule):
    """Texts ``(text, label)`` from the corpus; ``label`` may be empty for unlabelled text.

    ``labels`` are the classes in a fixed order (a checkpoint's); by default the sorted labels of the
    training split. A label that occurs only in val or test is an error. ``train_size`` or
    ``labels_per_class`` keep only that many training examples (drawn with ``seed``; val and test
    stay whole), to train on few labels.
    """

    def __init__(
        self,
        name: str,
        corpus: Callable[..., Pairs],
        cache_dir: str,
        tokenizer: TokenizerSpec = "word",
        vocab: Optional[Sequence[str]] = None,
        specials: Optional[Mapping[str, str]] = None,
        labels: Optional[Sequence[str]] = None,
        max_len: int = 128,
        train_size: Optional[int] = None,
        labels_per_class: Optional[int] = None,
        **common: Any,
    ):
        super().__init__(name, corpus, cache_dir, **common)
        if max_len < 3:
            raise ValueError(f"data.max_len must be at least 3 (<bos>, a token, <eos>); got {max_len}")
        if train_size is not None and labels_per_class is not None:
            raise ValueError("set data.train_size or data.labels_per_class, not both")
        self._tokenizer_spec = tokenizer
        self.tokenizer: Optional[Tokenizer] = None if tokenizer == "bpe" else Tokenizer.from_spec(tokenizer)
        self.vocab: Optional[Vocab] = Vocab(list(vocab), specials) if vocab else None
        self.labels: Optional[List[str]] = list(labels) if labels else None
        self.max_len = max_len
        self.train_size = train_size
        self.labels_per_class = labels_per_class

    def _subsample(self, train: List[tuple]) -> List[tuple]:
        """The training examples a few-label run keeps: the same ones for every model and run seed."""
        rng = random.Random(self.seed)
        if self.train_size is not None:
            if self.train_size > len(train):
                raise ValueError(f"data.train_size={self.train_size} is larger than the training split ({len(train)} examples)")
            return rng.sample(train, self.train_size)
        by_label: Dict[str, List[tuple]] = defaultdict(list)
        for item in train:
            by_label[item[1]].append(item)
        kept = [x for label in sorted(by_label) for x in rng.sample(by_label[label], min(self.labels_per_class, len(by_label[label])))]
        rng.shuffle(kept)
        return kept

    def setup(self, stage: Optional[str] = None) -> None:
        if self.splits:
            return
        texts = self.read_corpus()
        for split in SPLITS:
            if not texts.get(split):
                raise ValueError(f"data={self.name}: the {split} split is empty")
        if self.labels is None:  # the classes are the whole training split's, however few examples a run keeps
            self.labels = sorted({label for _, label in texts["train"] if label})
        if self.train_size is not None or self.labels_per_class is not None:
            texts = {**texts, "train": self._subsample(texts["train"])}
        if self.tokenizer is None:  # "bpe": trained on the training texts
            self.tokenizer = self.trained_bpe([t for t, _ in texts["train"]])
        tokenized = {split: [self.tokenizer.tokenize(t) for t, _ in items] for split, items in texts.items()}
        self.vocab = self.vocab or Vocab.build(tokenized["train"], mask=True)
        known = {label: i for i, label in enumerate(self.labels)}
        for split in ("val", "test"):
            unseen = sorted({label for _, label in texts[split] if label and label not in known})
            if unseen:
                raise ValueError(f"data={self.name}: label(s) {', '.join(map(repr, unseen[:5]))} of the {split} split never occur in training")
        body = self.max_len - 2
        self.splits = {
            split: ListDataset(
                [
                    TextExample(
                        i,
                        [self.vocab.bos_id, *self.vocab.encode(tokens[:body]), self.vocab.eos_id],
                        [True, *self.tokenizer.word_starts(tokens[:body]), True],
                        known.get(label, -1),
                        text,
                    )
                    for i, ((text, label), tokens) in enumerate(zip(items, tokenized[split]))
                ]
            )
            for split, items in texts.items()
        }

    @property
    def longest_sequence(self) -> int:
        return max(len(e.ids) for ds in self.splits.values() for e in ds.examples)

    def example_length(self, example: TextExample) -> int:
        return len(example.ids)

    def collate(self, examples: List[TextExample]) -> Dict[str, Any]:
        """-> tokens (B, L), word_starts (B, L) bool, labels (B,), index (B,), the texts."""
        starts = torch.zeros(len(examples), max(len(e.ids) for e in examples), dtype=torch.bool)
        for i, e in enumerate(examples):
            starts[i, : len(e.word_starts)] = torch.tensor(e.word_starts)
        return {
            "tokens": pad([e.ids for e in examples], self.vocab.pad_id),
            "word_starts": starts,
            "labels": torch.tensor([e.label for e in examples], dtype=torch.long),
            "index": torch.tensor([e.index for e in examples], dtype=torch.long),
            "text": [e.text for e in examples],
        }
