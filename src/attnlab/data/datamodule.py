"""A LightningDataModule for parallel text: tokenize, build vocabularies, batch with padding."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from attnlab.data.corpus_cache import SPLITS, Pairs, ensure_cached, read_pairs
from attnlab.data.sampling import ResumableBatchSampler, ShardedBatchSampler, TokenBucketBatchSampler
from attnlab.data.subword import cached_bpe
from attnlab.data.tokenization import Tokenizer
from attnlab.data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocab


DEFAULT_BPE = {"vocab_size": 8000, "min_frequency": 2, "joint": True}


@dataclass
class Example:
    index: int  # position in its split
    src_ids: List[int]  # source tokens + EOS
    tgt_ids: List[int]  # BOS + target tokens + EOS
    src_text: str
    tgt_text: str


class ParallelDataset(Dataset):
    def __init__(self, examples: List[Example]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


def pad(seqs: List[List[int]]) -> torch.Tensor:
    out = torch.full((len(seqs), max(len(s) for s in seqs)), PAD_ID, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def collate(examples: List[Example]) -> Dict[str, object]:
    """-> src (B, S), tgt (B, T+1) with BOS ... EOS, and the raw texts for metrics."""
    return {
        "src": pad([e.src_ids for e in examples]),
        "tgt": pad([e.tgt_ids for e in examples]),
        "index": torch.tensor([e.index for e in examples], dtype=torch.long),
        "src_text": [e.src_text for e in examples],
        "tgt_text": [e.tgt_text for e in examples],
    }


class TranslationDataModule(L.LightningDataModule):
    """Parallel data from a corpus callable (a Hydra partial) returning
    ``{"train"|"val"|"test": [(source, target), ...]}``.

    Generated and built corpora (``cache: true``) are cached under ``cache_dir``, keyed by the
    callable and its arguments (and ``seed``, for corpora that take one); the user's own files
    (``cache: false``) are read as they are at every run.

    Tokenizers are ``word``, ``char`` or ``bpe`` (trained on the training split, see ``bpe``),
    or a checkpoint's tokenizer spec. ``max_tokens`` switches training batches from
    ``batch_size`` sentences to length-bucketed batches of at most that many tokens per side.
    """

    def __init__(
        self,
        name: str,
        corpus: Callable[..., Pairs],
        cache_dir: str,
        seed: int = 1234,
        src_tokenizer: Union[str, Mapping[str, str]] = "word",
        tgt_tokenizer: Union[str, Mapping[str, str]] = "word",
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        src_vocab: Optional[List[str]] = None,
        tgt_vocab: Optional[List[str]] = None,
        shuffle: bool = True,
        shuffle_seed: int = 0,
        cache: bool = True,
        bpe: Optional[Mapping[str, Any]] = None,
        max_tokens: Optional[int] = None,
        eval_max_tokens: Optional[int] = None,
    ):
        super().__init__()
        self.name = name
        self.corpus = corpus
        self.cache_dir = cache_dir
        self.seed = seed
        self.cache = cache
        self.bpe = {**DEFAULT_BPE, **(bpe or {})}
        unknown = set(self.bpe) - set(DEFAULT_BPE)
        if unknown:
            raise ValueError(f"data.bpe has unknown keys {sorted(unknown)}; expected {sorted(DEFAULT_BPE)}")
        # a "bpe" tokenizer is trained in setup(); a checkpoint's spec comes with its model
        self._tokenizer_specs = (src_tokenizer, tgt_tokenizer)
        self.src_tokenizer = None if src_tokenizer == "bpe" else Tokenizer.from_spec(src_tokenizer)
        self.tgt_tokenizer = None if tgt_tokenizer == "bpe" else Tokenizer.from_spec(tgt_tokenizer)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.max_tokens = max_tokens
        self.eval_max_tokens = eval_max_tokens
        self.num_workers = num_workers
        self.shuffle = shuffle
        self.shuffle_seed = shuffle_seed  # the training order of epoch e comes from shuffle_seed + e
        # given vocabularies (a checkpoint's) are used as they are; else built from the train split
        self.src_vocab: Optional[Vocab] = Vocab(list(src_vocab)) if src_vocab else None
        self.tgt_vocab: Optional[Vocab] = Vocab(list(tgt_vocab)) if tgt_vocab else None
        self.splits: Dict[str, ParallelDataset] = {}

    def _corpus_kwargs(self) -> tuple:
        generator = getattr(self.corpus, "func", self.corpus)
        kwargs = dict(getattr(self.corpus, "keywords", {}))
        if "seed" in inspect.signature(generator).parameters:
            kwargs["seed"] = self.seed
        return generator, kwargs

    def _cache_file(self):
        generator, kwargs = self._corpus_kwargs()
        return ensure_cached(self.cache_dir, self.name, generator, kwargs)

    def prepare_data(self) -> None:
        if self.cache:
            self._cache_file()  # generate once (rank 0 only under DDP); reading is setup's job

    def _read_pairs(self) -> Pairs:
        if self.cache:
            return read_pairs(self._cache_file())
        generator, kwargs = self._corpus_kwargs()
        return generator(**kwargs)

    def _train_subword_tokenizers(self, train: List[tuple]) -> None:
        """Train BPE for each side that asks for it: one model on both sides when ``joint``."""
        wants = [spec == "bpe" for spec in self._tokenizer_specs]
        if not any(wants):
            return
        size, min_freq = int(self.bpe["vocab_size"]), int(self.bpe["min_frequency"])
        if self.bpe["joint"] and all(wants):
            model = cached_bpe([s for s, _ in train] + [t for _, t in train], size, min_freq, self.cache_dir)
            self.src_tokenizer = self.tgt_tokenizer = Tokenizer("bpe", model)
            return
        if wants[0]:
            self.src_tokenizer = Tokenizer("bpe", cached_bpe([s for s, _ in train], size, min_freq, self.cache_dir))
        if wants[1]:
            self.tgt_tokenizer = Tokenizer("bpe", cached_bpe([t for _, t in train], size, min_freq, self.cache_dir))

    def setup(self, stage: Optional[str] = None) -> None:
        if self.splits:
            return
        pairs = self._read_pairs()
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
            split: ParallelDataset(
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

    def batch_sampler(self, split: str, train: bool) -> ResumableBatchSampler:
        dataset = self.splits[split]
        max_tokens = self.max_tokens if train else self.eval_max_tokens
        shuffle = self.shuffle if train else False
        if max_tokens:
            # a batch costs its longest source and its longest target: bucket on the longer side
            lengths = [max(len(e.src_ids), len(e.tgt_ids)) for e in dataset.examples]
            return TokenBucketBatchSampler(lengths, max_tokens, shuffle, seed=self.shuffle_seed, pad=train)
        return ShardedBatchSampler(len(dataset), self.batch_size if train else self.eval_batch_size, shuffle, seed=self.shuffle_seed, pad=train)

    def _loader(self, split: str, train: bool) -> DataLoader:
        return DataLoader(
            self.splits[split],
            batch_sampler=self.batch_sampler(split, train),
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator(),  # creating an iterator must not draw from the global RNG
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)
