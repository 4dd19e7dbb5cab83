"""Batches that are shuffled reproducibly, sharded across DDP ranks and resumable mid-epoch.

The sampler's ``state_dict`` (epoch, batches consumed) goes into every checkpoint through
:class:`attnlab.callbacks.ResumeState`, so a run killed in the middle of an epoch resumes on
exactly the next batch. The permutation of an epoch comes from the sampler's own generator
(``seed + epoch``), never from the global RNG, so resuming replays it exactly.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterator, List

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ShardedBatchSampler(Sampler[List[int]]):
    """Index batches for this rank. Like DistributedSampler, the order is padded with repeats so
    every rank gets the same number of batches (evaluation removes the repeats by index)."""

    def __init__(self, size: int, batch_size: int, shuffle: bool, seed: int = 0):
        self.size = size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.consumed = 0  # batches of this epoch the training loop has finished (set by a callback)
        self._skip = 0  # batches to skip at the next iteration (after a mid-epoch resume)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._skip = 0
        self.epoch = epoch

    def _rank_indices(self) -> List[int]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        else:
            order = list(range(self.size))
        rank, world = rank_and_world()
        total = math.ceil(self.size / world) * world
        order += order[: total - self.size]
        return order[rank:total:world]

    def __len__(self) -> int:
        _, world = rank_and_world()
        return math.ceil(math.ceil(self.size / world) / self.batch_size)

    def __iter__(self) -> Iterator[List[int]]:
        indices = self._rank_indices()
        start, self._skip = self._skip, 0
        self.consumed = start
        for begin in range(start * self.batch_size, len(indices), self.batch_size):
            yield indices[begin : begin + self.batch_size]

    def state_dict(self) -> Dict[str, Any]:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.epoch = state["epoch"]
        self._skip = state["consumed"]
