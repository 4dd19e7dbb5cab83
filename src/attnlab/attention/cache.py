"""What an attention keeps of the positions it has seen: its decoding cache.

A cache is whatever one attention type needs to attend from the next positions without
recomputing the earlier ones. Each type makes and reads its own (``Attention.step``); the rest of
attnlab (decoders, beam search, benchmarks) holds it without looking inside and uses only what
every cache answers:

* ``index_select(rows)`` — the batch rows ``rows`` (beam search keeps its surviving beams);
* ``nbytes`` — the memory it holds (what a longer context costs);
* ``length`` — how many positions it has seen.

The kinds in attnlab:

* :class:`Memory` — rows per position, appended along a sequence axis: keys and values
  (multihead, dot, additive, differential) or a compressed latent (MLA). Grows with the context.
* :class:`RingMemory` — the last ``window`` positions' keys and values, written over in turn
  (local attention): stops growing at the window.
* :class:`RecurrentState` — a fixed sum over all positions seen (linear attention's d×d state per
  head): the same size whatever the context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ["CONSUMED", "CacheRoom", "Memory", "RecurrentState", "RingMemory"]

CONSUMED = "this decoding state was reordered already: reorder_state consumes the state it is given"


def _nbytes(*tensors: Optional[Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


@dataclass
class Memory:
    """Rows per key position after the attention's own projections, reusable across decoder
    steps. ``values`` is None where the keys double as values (MLA's latent)."""

    keys: Optional[Tensor]  # (B, H, S, dk) or (B, S, dk), as the attention type needs
    values: Optional[Tensor] = None  # (B, H, S, dv) or (B, S, dv)
    room: Optional["CacheRoom"] = field(default=None, repr=False, compare=False)
    # beam search's reordering, left for the next append to do: (keys, values, rows, their room)
    pending: Optional[Tuple[Tensor, Optional[Tensor], Tensor, Optional["CacheRoom"]]] = field(default=None, repr=False, compare=False)
    seq_dim: int = 2  # the axis that runs over key positions

    @property
    def length(self) -> int:
        return (self.keys if self.keys is not None else self.pending[0]).size(self.seq_dim)

    @property
    def nbytes(self) -> int:
        if self.pending is not None:
            return _nbytes(self.pending[0], self.pending[1])
        return _nbytes(self.keys, self.values)

    def index_select(self, index: Tensor) -> "Memory":
        """Batch rows ``index`` (beam search's surviving beams), consuming this memory.

        The copy waits for the next step's ``extend``, which moves the rows inside the cache's
        own buffer where it can (only the rows whose beam changed: about a tenth a step) and
        otherwise selects them into a new one. Either way this memory's positions may be
        overwritten, so its ``keys`` and ``values`` become None: a consumed state fails loudly
        instead of reading another beam's keys."""
        if self.pending is not None:
            keys, values, rows, room = self.pending
            return Memory(None, None, pending=(keys, values, rows.index_select(0, index), room), seq_dim=self.seq_dim)
        if self.keys is None:
            raise RuntimeError(CONSUMED)
        if torch.is_grad_enabled() and self.keys.requires_grad:
            values = None if self.values is None else self.values.index_select(0, index)
            return Memory(self.keys.index_select(0, index), values, seq_dim=self.seq_dim)
        pending = Memory(None, None, pending=(self.keys, self.values, index, self.room), seq_dim=self.seq_dim)
        self.keys = self.values = None
        return pending

    def extend(self, new: "Memory") -> "Memory":
        """These positions followed by ``new``'s (incremental decoding), written into spare room
        after them where there is some."""
        dim = self.seq_dim
        if self.pending is not None:
            return self._selected_and_extended(new)
        if self.keys is None:
            raise RuntimeError(CONSUMED)
        grad = torch.is_grad_enabled() and (self.keys.requires_grad or new.keys.requires_grad)
        if grad:
            values = None if self.values is None else torch.cat([self.values, new.values], dim=dim)
            return Memory(torch.cat([self.keys, new.keys], dim=dim), values, seq_dim=dim)
        length, needed = self.keys.size(dim), self.keys.size(dim) + new.keys.size(dim)
        room = self.room
        # a memory that is not the newest its room holds (a branch from an earlier step) gets a
        # room of its own: nothing written for another is overwritten
        if room is None or room.filled != length or room.capacity < needed:
            room = CacheRoom(self.keys, self.values, max(16, 2 * needed), dim)
        return room.append(new)

    def _selected_and_extended(self, new: "Memory") -> "Memory":
        """The pending rows of the cache followed by ``new``'s positions."""
        keys, values, rows, room = self.pending
        self.pending = None  # consumed too: its rows must not be moved twice
        dim = self.seq_dim
        length, added = keys.size(dim), new.keys.size(dim)
        in_place = room is not None and room.filled == length and room.capacity >= length + added and rows.numel() == keys.size(0)
        if in_place:
            room.move_rows(rows)
        else:
            room = CacheRoom(keys, values, max(16, 2 * (length + added)), dim, rows)
        return room.append(new)


class CacheRoom:
    """Buffers with spare positions after a cache's keys and values: a decoding step writes its
    new positions in place instead of copying the whole cache (``torch.cat``) every step. The
    capacity doubles when full, so a sequence of n steps copies O(n) positions, not O(n²)."""

    def __init__(self, keys: Tensor, values: Optional[Tensor], capacity: int, dim: int, rows: Optional[Tensor] = None):
        def grown(t: Tensor) -> Tensor:  # t's positions (its batch ``rows``) in a bigger buffer
            shape = list(t.shape)
            shape[dim] = capacity
            if rows is not None:
                shape[0] = rows.numel()
            buffer = t.new_empty(shape)
            filled = buffer.narrow(dim, 0, t.size(dim))
            if rows is None:
                filled.copy_(t)
            else:
                torch.index_select(t, 0, rows, out=filled)
            return buffer

        self.keys = grown(keys)
        self.values = None if values is None else grown(values)
        self.dim, self.capacity, self.filled = dim, capacity, keys.size(dim)

    def _buffers(self):
        return (self.keys,) if self.values is None else (self.keys, self.values)

    def append(self, new: Memory) -> Memory:
        start, added = self.filled, new.keys.size(self.dim)
        self.keys.narrow(self.dim, start, added).copy_(new.keys)
        if self.values is not None:
            self.values.narrow(self.dim, start, added).copy_(new.values)
        self.filled = start + added
        values = None if self.values is None else self.values.narrow(self.dim, 0, self.filled)
        return Memory(self.keys.narrow(self.dim, 0, self.filled), values, self, seq_dim=self.dim)

    def move_rows(self, rows: Tensor) -> None:
        """Row i of the filled positions becomes row rows[i], in place: only rows that change move."""
        moved = rows.ne(torch.arange(rows.numel(), device=rows.device)).nonzero().squeeze(1)  # (m,)
        if moved.numel() == 0:
            return
        sources = rows.index_select(0, moved)
        for buffer in self._buffers():
            filled = buffer.narrow(self.dim, 0, self.filled)
            # gathered before any is written: a row read is never one already overwritten
            filled.index_copy_(0, moved, filled.index_select(0, sources))


class _Ring:
    """The buffers a :class:`RingMemory` writes into, and how many positions were written."""

    def __init__(self, keys: Tensor, values: Tensor, written: int):
        self.keys, self.values, self.written = keys, values, written  # (B, H, W, dh)


@dataclass
class RingMemory:
    """The keys and values of the last ``window`` positions (Mistral's rolling buffer): position
    p lives in slot p mod window, so a new position overwrites the one ``window`` back, and the
    memory stops growing once the window is full."""

    ring: _Ring = field(repr=False)
    seen: int  # positions written so far

    @property
    def window(self) -> int:
        return self.ring.keys.size(2)

    @property
    def length(self) -> int:
        return self.seen

    @property
    def nbytes(self) -> int:
        return _nbytes(self.ring.keys, self.ring.values)

    @property
    def keys(self) -> Tensor:  # (B, H, W, dh), slot order
        return self.ring.keys

    @property
    def values(self) -> Tensor:
        return self.ring.values

    def positions(self) -> Tensor:
        """(W,) the position each slot holds, -1 where a slot was never written."""
        w = self.window
        slots = torch.arange(w, device=self.ring.keys.device)
        latest = self.seen - 1 - (self.seen - 1 - slots) % w  # the last p < seen with p % w == slot
        return torch.where(latest >= 0, latest, torch.full_like(latest, -1))

    @classmethod
    def empty(cls, like: Tensor, window: int) -> "RingMemory":
        """An empty ring for keys shaped like ``like`` (B, H, t, dh)."""
        shape = (like.size(0), like.size(1), window, like.size(3))
        return cls(_Ring(like.new_zeros(shape), like.new_zeros(shape), 0), 0)

    def written(self, keys: Tensor, values: Tensor) -> "RingMemory":
        """This ring with new positions ``seen`` … ``seen + t - 1`` (B, H, t, dh) written in."""
        ring, w, t = self.ring, self.window, keys.size(2)
        if ring.written != self.seen or (torch.is_grad_enabled() and (keys.requires_grad or ring.keys.requires_grad)):
            # a branch from an earlier step, or a graph to keep: write into a copy
            ring = _Ring(ring.keys.clone(), ring.values.clone(), self.seen)
        keep = min(t, w)  # of a chunk longer than the window only its last w positions stay
        slots = (torch.arange(self.seen + t - keep, self.seen + t, device=keys.device)) % w
        ring.keys.index_copy_(2, slots, keys[:, :, t - keep :])
        ring.values.index_copy_(2, slots, values[:, :, t - keep :])
        ring.written = self.seen + t
        return RingMemory(ring, self.seen + t)

    def index_select(self, index: Tensor) -> "RingMemory":
        ring = _Ring(self.ring.keys.index_select(0, index), self.ring.values.index_select(0, index), self.seen)
        return RingMemory(ring, self.seen)


@dataclass
class RecurrentState:
    """Linear attention as an RNN (Katharopoulos et al. 2020): per head, the sum S = Σ φ(k)ᵀ v
    over the positions seen and the normaliser z = Σ φ(k); the same size whatever the context."""

    kv: Tensor  # (B, H, F, dv): Σ φ(k_j) v_jᵀ (with rotary: of the rotated features)
    k_sum: Tensor  # (B, H, F): Σ φ(k_j)
    seen: int

    @property
    def length(self) -> int:
        return self.seen

    @property
    def nbytes(self) -> int:
        return _nbytes(self.kv, self.k_sum)

    def index_select(self, index: Tensor) -> "RecurrentState":
        return RecurrentState(self.kv.index_select(0, index), self.k_sum.index_select(0, index), self.seen)
