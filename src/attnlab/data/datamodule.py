"""A LightningDataModule for parallel text: tokenize, build vocabularies, batch with padding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from attnlab.data.corpus_cache import Pairs, ensure_cached, read_pairs
from attnlab.data.sampling import ShardedBatchSampler
from attnlab.data.vocab import BOS_ID, EOS_ID, PAD_ID, Tokenizer, Vocab


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
    """Parallel data from a corpus generator, cached under ``cache_dir``.

    ``corpus`` is a callable (a Hydra partial) taking ``seed`` and returning
    ``{"train"|"val"|"test": [(source, target), ...]}``.
    """

    def __init__(
        self,
        name: str,
        corpus: Callable[..., Pairs],
        cache_dir: str,
        seed: int = 1234,
        src_tokenizer: str = "word",
        tgt_tokenizer: str = "word",
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        src_vocab: Optional[List[str]] = None,
        tgt_vocab: Optional[List[str]] = None,
        shuffle: bool = True,
        shuffle_seed: int = 0,
    ):
        super().__init__()
        self.name = name
        self.corpus = corpus
        self.cache_dir = cache_dir
        self.seed = seed
        self.src_tokenizer = Tokenizer(src_tokenizer)
        self.tgt_tokenizer = Tokenizer(tgt_tokenizer)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.shuffle = shuffle
        self.shuffle_seed = shuffle_seed  # the training order of epoch e comes from shuffle_seed + e
        # given vocabularies (a checkpoint's) are used as they are; else built from the train split
        self.src_vocab: Optional[Vocab] = Vocab(list(src_vocab)) if src_vocab else None
        self.tgt_vocab: Optional[Vocab] = Vocab(list(tgt_vocab)) if tgt_vocab else None
        self.splits: Dict[str, ParallelDataset] = {}

    def _cache_file(self):
        kwargs = dict(getattr(self.corpus, "keywords", {}), seed=self.seed)
        generator = getattr(self.corpus, "func", self.corpus)
        return ensure_cached(self.cache_dir, self.name, generator, kwargs)

    def prepare_data(self) -> None:
        self._cache_file()  # generate once (rank 0 only under DDP); reading is setup's job

    def setup(self, stage: Optional[str] = None) -> None:
        if self.splits:
            return
        pairs = read_pairs(self._cache_file())
        tokenized = {
            split: [(self.src_tokenizer.tokenize(s), self.tgt_tokenizer.tokenize(t), s, t) for s, t in items]
            for split, items in pairs.items()
        }
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
    def max_source_len(self) -> int:
        return max(len(e.src_ids) for ds in self.splits.values() for e in ds.examples)

    @property
    def max_target_len(self) -> int:
        return max(len(e.tgt_ids) for ds in self.splits.values() for e in ds.examples)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = self.splits[split]
        return DataLoader(
            dataset,
            batch_sampler=ShardedBatchSampler(len(dataset), batch_size, shuffle, seed=self.shuffle_seed),
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator(),  # creating an iterator must not draw from the global RNG
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)
