"""A LightningDataModule for language modelling: each split one stream of tokens.

The corpus gives documents per split (``{split: [(text, title), ...]}``: plays, Bible books, the
user's files); a split's documents are joined by blank lines and tokenized into one stream.
Training reads contiguous blocks of ``block_size + 1`` tokens at random offsets (the GPT way: an
epoch is as many blocks as the stream holds, drawn anew every epoch from ``shuffle_seed`` and
the epoch, so a resumed run draws the same); evaluation reads the stream in fixed,
non-overlapping blocks (a last piece shorter than a block is left out). No block ever reads
across splits: each split is its own stream.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Dataset

from attnlab.data.base import CorpusDataModule, TokenizerSpec
from attnlab.data.corpus_cache import SPLITS, Pairs
from attnlab.data.sampling import ResumableBatchSampler, rank_and_world
from attnlab.data.tokenization import Tokenizer
from attnlab.data.vocab import Vocab

DOCUMENT_SEPARATOR = "\n\n"


class TokenStream(Dataset):
    """A split's tokens (N,); item ``offset`` is the block ``tokens[offset : offset + block + 1]``."""

    def __init__(self, ids: torch.Tensor, block_size: int):
        self.ids = ids
        self.block_size = block_size

    def __len__(self) -> int:
        return self.ids.numel()

    def __getitem__(self, offset: int) -> Tuple[int, torch.Tensor]:
        return offset, self.ids[offset : offset + self.block_size + 1]


def stack_blocks(items: List[Tuple[int, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    offsets, blocks = zip(*items)
    # (B, block + 1) and (B,): where each block starts, which names it in per-example records
    return {"tokens": torch.stack(blocks), "index": torch.tensor(offsets, dtype=torch.long)}


class BlockSampler(ResumableBatchSampler):
    """Batches of block offsets. Training (``shuffle``): ``(N - 1) // block`` random offsets an
    epoch, dealt to the ranks in turn (padded to equal counts); evaluation: the fixed offsets
    0, block, 2 x block, ..., each on one rank only."""

    def __init__(self, stream_len: int, block_size: int, batch_size: int, shuffle: bool, seed: int = 0):
        super().__init__(shuffle, seed)
        self.stream_len, self.block_size, self.batch_size = stream_len, block_size, batch_size
        self.num_blocks = (stream_len - 1) // block_size

    def _offsets(self) -> List[int]:
        if self.shuffle:
            return torch.randint(0, self.stream_len - self.block_size, (self.num_blocks,), generator=self._generator()).tolist()
        return [i * self.block_size for i in range(self.num_blocks)]

    def _rank_batches(self) -> List[List[int]]:
        offsets = self._offsets()
        rank, world = rank_and_world()
        total = math.ceil(len(offsets) / world) * world if self.shuffle else len(offsets)
        offsets += offsets[: total - len(offsets)]
        mine = offsets[rank:total:world]
        return [mine[i : i + self.batch_size] for i in range(0, len(mine), self.batch_size)]


class StreamDataModule(CorpusDataModule):
    """Documents per split -> one token stream per split, read in blocks of ``block_size`` (+1 for
    the targets). Tokenizers: ``char`` (default) or ``bpe``; the vocabulary comes from the
    training stream (a checkpoint's, when given)."""

    def __init__(
        self,
        name: str,
        corpus: Callable[..., Pairs],
        cache_dir: str,
        tokenizer: TokenizerSpec = "char",
        vocab: Optional[Sequence[str]] = None,
        specials: Optional[Mapping[str, str]] = None,
        block_size: int = 64,
        test_block_size: Optional[int] = None,
        **common: Any,
    ):
        common.setdefault("cache", False)  # documents hold newlines: they are read, not cached as lines
        super().__init__(name, corpus, cache_dir, **common)
        if block_size < 1:
            raise ValueError(f"data.block_size must be positive; got {block_size}")
        if test_block_size is not None and test_block_size < block_size:
            raise ValueError(f"data.test_block_size={test_block_size} must be at least data.block_size={block_size}")
        self.block_size = block_size
        self.test_block_size = test_block_size or block_size  # longer: the test reads contexts training never saw
        self._tokenizer_spec = tokenizer
        self.tokenizer: Optional[Tokenizer] = None if tokenizer == "bpe" else Tokenizer.from_spec(tokenizer)
        self.vocab: Optional[Vocab] = Vocab(list(vocab), specials) if vocab else None
        self.streams: Dict[str, TokenStream] = {}
        self.texts: Dict[str, str] = {}

    def setup(self, stage: Optional[str] = None) -> None:
        if self.streams:
            return
        documents = self.read_corpus()
        for split in SPLITS:
            if not documents.get(split):
                raise ValueError(f"data={self.name}: the {split} split is empty")
        self.texts = {split: DOCUMENT_SEPARATOR.join(text for text, _ in items) for split, items in documents.items()}
        if self.tokenizer is None:  # "bpe": trained on the training documents
            self.tokenizer = self.trained_bpe([text for text, _ in documents["train"]])
        tokens = {split: self.tokenizer.tokenize(text) for split, text in self.texts.items()}
        self.vocab = self.vocab or Vocab.build([tokens["train"]])
        for split, pieces in tokens.items():
            block, key = (self.test_block_size, "data.test_block_size") if split == "test" else (self.block_size, "data.block_size")
            if len(pieces) < block + 1:
                raise ValueError(
                    f"data={self.name}: the {split} split has {len(pieces)} tokens, fewer than one block "
                    f"({key}={block} + 1 for the targets); lower {key}"
                )
            self.streams[split] = TokenStream(torch.tensor(self.vocab.encode(pieces), dtype=torch.long), block)

    @property
    def longest_sequence(self) -> int:
        return self.test_block_size  # what a learned positional table must hold

    @property
    def train_length_range(self) -> tuple:
        return 1, self.block_size  # the contexts training saw

    def _loader(self, split: str, train: bool) -> DataLoader:
        stream = self.streams[split]
        sampler = BlockSampler(len(stream), stream.block_size, self.batch_size if train else self.eval_batch_size, shuffle=train and self.shuffle, seed=self.shuffle_seed)
        return DataLoader(
            stream,
            batch_sampler=sampler,
            collate_fn=stack_blocks,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator(),
        )
