"""Dropout whose random numbers cost a quarter of PyTorch's.

On a CPU most of dropout's time is its random numbers: ``bernoulli_`` draws one from the generator
per element, and the transformer's 32 dropouts made a fifth of its training step. Here one 64-bit
draw decides four elements: it is split into four 16-bit integers, each kept when at or above
``round(p * 65536)``, so every element is dropped with probability p to within 1/65536 (p = 0.1:
0.100006), independently, from torch's own generator (``torch.manual_seed`` reproduces a run). The
same numbers as ``nn.Dropout`` in distribution and scaling; not the same draws.

``dropout_implementation("native")`` switches back to PyTorch's (the benchmarks compare both).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMPLEMENTATIONS = ("packed", "native")
_implementation = "packed"


@contextlib.contextmanager
def dropout_implementation(name: str) -> Iterator[None]:
    """Within the block every attnlab dropout uses ``name`` (``packed`` or ``native``)."""
    global _implementation
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"dropout implementation must be one of {', '.join(IMPLEMENTATIONS)}; got {name!r}")
    previous, _implementation = _implementation, name
    try:
        yield
    finally:
        _implementation = previous


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> Tensor:
    """A bool tensor of ``shape``, each element False with probability p (to within 2^-16)."""
    n = shape.numel()
    draws = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    halves = draws.view(torch.int16)[:n].view(shape)  # four signed 16-bit integers per draw
    return halves >= round(p * 65536) - 32768


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``F.dropout`` with the cheaper random numbers (on CPU; elsewhere PyTorch's own kernel)."""
    if not training or p == 0.0:
        return x
    if _implementation == "native" or x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training)
    return x * keep_mask(x.shape, p, x.device) * (1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same attribute ``p``, no parameters) with the cheaper random numbers."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)
