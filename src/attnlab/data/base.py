"""What every attnlab datamodule shares: a corpus callable read (and cached) once, tokenizers
trained on the training split, and batches that are shuffled reproducibly, sharded across DDP
ranks and resumable mid-epoch (a fixed number of examples, or length buckets within a token
budget)."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from attnlab.data.corpus_cache import Pairs, ensure_cached, read_pairs
from attnlab.data.sampling import ResumableBatchSampler, ShardedBatchSampler, TokenBucketBatchSampler
from attnlab.data.subword import cached_bpe
from attnlab.data.tokenization import Tokenizer

DEFAULT_BPE = {"vocab_size": 8000, "min_frequency": 2, "joint": True}
TokenizerSpec = Union[str, Mapping[str, str]]


class ListDataset(Dataset):
    def __init__(self, examples: List[Any]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Any:
        return self.examples[i]


def pad(seqs: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """Ragged id lists -> (B, longest), right-padded."""
    out = torch.full((len(seqs), max(len(s) for s in seqs)), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


class CorpusDataModule(L.LightningDataModule):
    """Base of the datamodules built from a corpus callable (a Hydra partial) that returns
    ``{"train"|"val"|"test": [(a, b), ...]}``.

    Generated and built corpora (``cache: true``) are cached under ``cache_dir``, keyed by the
    callable and its arguments (and ``seed``, for corpora that take one); the user's own files
    (``cache: false``) are read as they are at every run. ``max_tokens`` switches training
    batches from ``batch_size`` examples to length-bucketed batches of at most that many tokens.
    """

    def __init__(
        self,
        name: str,
        corpus: Callable[..., Pairs],
        cache_dir: str,
        seed: int = 1234,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        max_tokens: Optional[int] = None,
        eval_max_tokens: Optional[int] = None,
        num_workers: int = 0,
        shuffle: bool = True,
        shuffle_seed: int = 0,
        cache: bool = True,
        bpe: Optional[Mapping[str, Any]] = None,
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
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.max_tokens = max_tokens
        self.eval_max_tokens = eval_max_tokens
        self.num_workers = num_workers
        self.shuffle = shuffle
        self.shuffle_seed = shuffle_seed  # the training order of epoch e comes from shuffle_seed + e
        self.splits: Dict[str, ListDataset] = {}

    # -- reading the corpus -----------------------------------------------------------------------
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

    def read_corpus(self) -> Pairs:
        if self.cache:
            return read_pairs(self._cache_file())
        generator, kwargs = self._corpus_kwargs()
        return generator(**kwargs)

    def trained_bpe(self, texts: Sequence[str]) -> Tokenizer:
        """A BPE tokenizer trained on ``texts`` with ``data.bpe``'s settings (cached)."""
        return Tokenizer("bpe", cached_bpe(list(texts), int(self.bpe["vocab_size"]), int(self.bpe["min_frequency"]), self.cache_dir))

    # -- batching ---------------------------------------------------------------------------------
    def batch_sampler(self, lengths: Sequence[int], train: bool) -> ResumableBatchSampler:
        """Training batches are shuffled and padded to equal counts across ranks; evaluation
        batches are in order and see every example exactly once."""
        max_tokens = self.max_tokens if train else self.eval_max_tokens
        shuffle = self.shuffle if train else False
        if max_tokens:
            return TokenBucketBatchSampler(lengths, max_tokens, shuffle, seed=self.shuffle_seed, pad=train)
        return ShardedBatchSampler(len(lengths), self.batch_size if train else self.eval_batch_size, shuffle, seed=self.shuffle_seed, pad=train)

    def example_length(self, example: Any) -> int:
        """What an example costs in a batch (its longest side, in tokens)."""
        raise NotImplementedError

    def collate(self, examples: List[Any]) -> Dict[str, Any]:
        raise NotImplementedError

    def _loader(self, split: str, train: bool) -> DataLoader:
        dataset = self.splits[split]
        return DataLoader(
            dataset,
            batch_sampler=self.batch_sampler([self.example_length(e) for e in dataset.examples], train),
            collate_fn=self.collate,
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
