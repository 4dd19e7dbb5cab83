"""Batches that are shuffled reproducibly, sharded across DDP ranks and resumable mid-epoch.

Two ways to batch: a fixed number of sentences (:class:`ShardedBatchSampler`), or as many
similar-length sentences as fit a token budget (:class:`TokenBucketBatchSampler`), which spends
far less compute on padding when lengths vary (real text).

A sampler's ``state_dict`` (epoch, batches consumed) goes into every checkpoint through
:class:`attnlab.callbacks.ResumeState`, so a run killed in the middle of an epoch resumes on
exactly the next batch. The order of an epoch comes from the sampler's own generator
(``seed + epoch``), never from the global RNG, so resuming replays it exactly.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterator, List, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ResumableBatchSampler(Sampler[List[int]]):
    """Epoch-seeded, rank-sharded, resumable iteration over the batches of :meth:`_rank_batches`."""

    def __init__(self, shuffle: bool, seed: int = 0):
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.consumed = 0  # batches of this epoch the training loop has finished (set by a callback)
        self._skip = 0  # batches to skip at the next iteration (after a mid-epoch resume)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._skip = 0
        self.epoch = epoch

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + self.epoch)

    def _rank_batches(self) -> List[List[int]]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._rank_batches())

    def __iter__(self) -> Iterator[List[int]]:
        batches = self._rank_batches()
        start, self._skip = self._skip, 0
        self.consumed = start
        yield from batches[start:]

    def state_dict(self) -> Dict[str, Any]:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.epoch = state["epoch"]
        self._skip = state["consumed"]


class ShardedBatchSampler(ResumableBatchSampler):
    """``batch_size`` sentences a batch. With ``pad`` (training), like DistributedSampler, the order
    is padded with repeats so every rank gets the same number of batches; without it (evaluation)
    every example is seen exactly once, on one rank, so summed metrics are exact."""

    def __init__(self, size: int, batch_size: int, shuffle: bool, seed: int = 0, pad: bool = True):
        super().__init__(shuffle, seed)
        self.size = size
        self.batch_size = batch_size
        self.pad = pad

    def _rank_batches(self) -> List[List[int]]:
        order = torch.randperm(self.size, generator=self._generator()).tolist() if self.shuffle else list(range(self.size))
        rank, world = rank_and_world()
        total = math.ceil(self.size / world) * world if self.pad else self.size
        order += order[: total - self.size]
        mine = order[rank:total:world]
        return [mine[i : i + self.batch_size] for i in range(0, len(mine), self.batch_size)]

    def __len__(self) -> int:  # without building the epoch's order
        rank, world = rank_and_world()
        mine = math.ceil(self.size / world) if self.pad else len(range(rank, self.size, world))
        return math.ceil(mine / self.batch_size)


class TokenBucketBatchSampler(ResumableBatchSampler):
    """Batches of similar-length examples whose padded size (sentences x longest) stays within
    ``max_tokens``.

    Shuffled examples are cut into windows of ``window`` batches' worth, sorted by length inside
    each window, packed, and the batches shuffled: batches are near padding-free yet differ from
    epoch to epoch. Without shuffling the whole split is sorted (evaluation: least padding).
    Whole batches are dealt to the ranks in turn (with ``pad``, padded with repeats to an equal
    count; without it, for evaluation, every batch is used once).
    """

    def __init__(self, lengths: Sequence[int], max_tokens: int, shuffle: bool, seed: int = 0, window: int = 100, pad: bool = True):
        super().__init__(shuffle, seed)
        self.pad = pad
        longest = max(lengths, default=0)
        if max_tokens < longest:
            raise ValueError(f"data.max_tokens={max_tokens} is smaller than the longest example ({longest} tokens)")
        self.lengths = list(lengths)
        self.max_tokens = max_tokens
        self.window = window
        self._packed: Dict[int, List[List[int]]] = {}  # epoch -> batches: __len__ and __iter__ share one packing

    def _pack(self, indices: List[int]) -> List[List[int]]:
        batches, batch, longest = [], [], 0
        for i in indices:
            length = self.lengths[i]
            if batch and (len(batch) + 1) * max(longest, length) > self.max_tokens:
                batches.append(batch)
                batch, longest = [], 0
            batch.append(i)
            longest = max(longest, length)
        if batch:
            batches.append(batch)
        return batches

    def _epoch_batches(self) -> List[List[int]]:
        if self.epoch in self._packed:
            return self._packed[self.epoch]
        size = len(self.lengths)
        if not self.shuffle:
            batches = self._pack(sorted(range(size), key=lambda i: self.lengths[i]))
        else:
            generator = self._generator()
            order = torch.randperm(size, generator=generator).tolist()
            mean = max(1.0, sum(self.lengths) / max(1, size))
            span = max(1, int(self.window * self.max_tokens / mean))  # examples per sorting window
            batches = []
            for begin in range(0, size, span):
                batches += self._pack(sorted(order[begin : begin + span], key=lambda i: self.lengths[i]))
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        self._packed = {self.epoch: batches}  # only the current epoch's
        return batches

    def _rank_batches(self) -> List[List[int]]:
        batches = self._epoch_batches()
        rank, world = rank_and_world()
        total = math.ceil(len(batches) / world) * world if self.pad else len(batches)
        padded = batches + batches[: total - len(batches)]
        return padded[rank:total:world]


def padding_fraction(batches: Sequence[Sequence[int]], *lengths_per_side: Sequence[int]) -> float:
    """Share of padding among all the token positions the batches occupy, over every side given."""
    real = padded = 0
    for lengths in lengths_per_side:
        for batch in batches:
            sizes = [lengths[i] for i in batch]
            real += sum(sizes)
            padded += len(sizes) * max(sizes)
    return 1.0 - real / padded if padded else 0.0
